//! JSON for Bloblang: simd-json parsing into arena `Value`s (reused scratch buffers, so
//! no global heap on the success path), Go-style float text, and the compact and
//! indented/HTML-escaping writers.

use std::cell::RefCell;
use std::fmt::Write;

use simd_json::{Buffers, Node, StaticNode, Tape};

use bumpalo::collections::Vec as BVec;
use bumpalo::Bump;

use super::eval::make_object;
use crate::message::write_go_float;
use crate::message::Value;

/// Maximum nesting depth accepted, so hostile input cannot overflow the stack.
const MAX_DEPTH: usize = 512;
const TOO_DEEP: &str = "nesting deeper than 512";

thread_local! {
    /// simd-json's scratch buffers and tape, reused by every parse on this shard's
    /// thread so a steady stream of documents allocates nothing on the global heap.
    static SCRATCH: RefCell<(Buffers, Option<Tape<'static>>)> = RefCell::new((Buffers::new(4096), None));
}

/// Parses one JSON document (surrounding whitespace allowed) into the arena with
/// simd-json. simd-json unescapes in place, so it works on an arena copy of `input`,
/// and the strings of the result borrow that copy.
pub fn parse<'a>(arena: &'a Bump, input: &[u8]) -> Result<Value<'a>, String> {
    let buf: &'a mut [u8] = arena.alloc_slice_copy(input);
    SCRATCH.with(|scratch| {
        let mut scratch = scratch.borrow_mut();
        let (buffers, stored) = &mut *scratch;
        // (`Tape::null()` allocates, so the stored tape is taken, not swapped.)
        let mut tape: Tape<'a> = stored.take().map_or_else(Tape::null, Tape::reset);
        let result = simd_json::fill_tape(buf, buffers, &mut tape)
            .map_err(|e| format!("{e}"))
            .and_then(|()| {
                let nodes = &tape.0;
                if nodes.is_empty() {
                    return Err("empty input".to_string());
                }
                convert(arena, nodes, &mut 0, 0).map_err(str::to_string)
            });
        *stored = Some(tape.reset());
        result
    })
}

/// A scalar tape node as a value (None for arrays and objects).
#[inline(always)]
fn scalar<'a>(node: &Node<'a>) -> Option<Value<'a>> {
    Some(match *node {
        Node::String(s) => Value::Str(s),
        Node::Static(StaticNode::I64(n)) => Value::Int(n),
        Node::Static(StaticNode::F64(f)) => Value::Float(f),
        Node::Static(StaticNode::Bool(b)) => Value::Bool(b),
        Node::Static(StaticNode::Null) => Value::Null,
        Node::Static(StaticNode::U64(n)) => {
            i64::try_from(n).map_or(Value::Float(n as f64), Value::Int)
        }
        Node::Array { .. } | Node::Object { .. } => return None,
    })
}

/// Converts the tape node at `*at` (and its subtree) to a value, advancing `*at` past
/// the subtree. Scalars in arrays and objects are converted in the loop, without a
/// call per member.
fn convert<'a>(
    arena: &'a Bump,
    nodes: &[Node<'a>],
    at: &mut usize,
    depth: usize,
) -> Result<Value<'a>, &'static str> {
    if depth > MAX_DEPTH {
        return Err(TOO_DEEP);
    }
    let node = &nodes[*at];
    *at += 1;
    if let Some(v) = scalar(node) {
        return Ok(v);
    }
    // (Members sit one level deeper; the scalar shortcut must not skip that check.)
    if depth == MAX_DEPTH
        && matches!(
            *node,
            Node::Array { len: 1.., .. } | Node::Object { len: 1.., .. }
        )
    {
        return Err(TOO_DEEP);
    }
    match *node {
        Node::Array { len, .. } => {
            let items = arena.alloc_slice_fill_copy(len, Value::Null);
            for item in items.iter_mut() {
                *item = match scalar(&nodes[*at]) {
                    Some(v) => {
                        *at += 1;
                        v
                    }
                    None => convert(arena, nodes, at, depth + 1)?,
                };
            }
            Ok(Value::Array(items))
        }
        Node::Object { len, .. } => {
            let members = arena.alloc_slice_fill_copy(len, ("", Value::Null));
            let mut sorted = true;
            for i in 0..len {
                let Node::String(key) = nodes[*at] else {
                    return Err("object key is not a string");
                };
                *at += 1;
                let v = match scalar(&nodes[*at]) {
                    Some(v) => {
                        *at += 1;
                        v
                    }
                    None => convert(arena, nodes, at, depth + 1)?,
                };
                if i > 0 && members[i - 1].0 >= key {
                    sorted = false;
                }
                members[i] = (key, v);
            }
            if sorted {
                return Ok(Value::Object(members));
            }
            let mut items = BVec::with_capacity_in(len, arena);
            items.extend_from_slice_copy(members);
            Ok(make_object(arena, items))
        }
        _ => unreachable!("scalars are handled above"),
    }
}

/// `format_json`: Go's `json.Marshal`/`MarshalIndent` text (sorted keys; `indent` empty
/// means compact; `escape_html` turns `<`, `>`, `&` into `\u003c` and friends).
pub fn write_pretty(v: &Value<'_>, indent: &str, escape_html: bool, out: &mut String) {
    write_pretty_at(v, indent, escape_html, 0, out)
}

fn newline(indent: &str, level: usize, out: &mut String) {
    if !indent.is_empty() {
        out.push('\n');
        for _ in 0..level {
            out.push_str(indent);
        }
    }
}

fn write_pretty_at(v: &Value<'_>, indent: &str, esc: bool, level: usize, out: &mut String) {
    match v {
        Value::Str(s) => write_str(s, esc, out),
        Value::Bytes(b) => write_str(&String::from_utf8_lossy(b), esc, out),
        Value::Float(f) => write_go_float(*f, out),
        Value::Array(items) => {
            if items.is_empty() {
                out.push_str("[]");
                return;
            }
            out.push('[');
            for (i, it) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                newline(indent, level + 1, out);
                write_pretty_at(it, indent, esc, level + 1, out);
            }
            newline(indent, level, out);
            out.push(']');
        }
        Value::Object(members) => {
            if members.is_empty() {
                out.push_str("{}");
                return;
            }
            out.push('{');
            for (i, (k, it)) in members.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                newline(indent, level + 1, out);
                write_str(k, esc, out);
                out.push(':');
                if !indent.is_empty() {
                    out.push(' ');
                }
                write_pretty_at(it, indent, esc, level + 1, out);
            }
            newline(indent, level, out);
            out.push('}');
        }
        other => {
            let mut b = Vec::new();
            crate::message::write_json(other, &mut b);
            out.push_str(&String::from_utf8_lossy(&b));
        }
    }
}

fn write_str(s: &str, esc: bool, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' | '>' | '&' if esc => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            '\u{2028}' | '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_into_sorted_objects() {
        let arena = Bump::new();
        let v = parse(
            &arena,
            br#" {"b":[1,-2.5,true,null],"a":"x\u00e9\n","b2":{}} "#,
        )
        .unwrap();
        assert_eq!(
            v.to_text(&arena),
            "{\"a\":\"x\u{e9}\\n\",\"b\":[1,-2.5,true,null],\"b2\":{}}"
        );
        assert!(parse(&arena, b"{\"a\":}").is_err());
        assert!(parse(&arena, b"not json").is_err());
        assert!(parse(&arena, b"[1, 2").is_err());
        assert_eq!(
            parse(&arena, b"99999999999999999999").unwrap(),
            Value::Float(1e20)
        );
    }

    #[test]
    fn nesting_limit_counts_scalar_members() {
        let arena = Bump::new();
        let nest = |levels: usize, inner: &str| {
            format!("{}{inner}{}", "[".repeat(levels), "]".repeat(levels))
        };
        assert!(parse(&arena, nest(512, "1").as_bytes()).is_ok());
        assert!(parse(&arena, nest(513, "").as_bytes()).is_ok());
        let e = parse(&arena, nest(513, "1").as_bytes()).unwrap_err();
        assert!(e.contains("nesting deeper than 512"), "{e}");
        let e = parse(
            &arena,
            format!("{}{{\"a\":1}}{}", "[".repeat(512), "]".repeat(512)).as_bytes(),
        );
        assert!(e.unwrap_err().contains("nesting"));
    }

    #[test]
    fn parsed_documents_write_back_as_compact_json() {
        let arena = Bump::new();
        let v = parse(
            &arena,
            br#"{"a":[1,-2.5,123456.789,true,null],"b":"q\"\\\n\u0001\u00e9","c":{}}"#,
        )
        .unwrap();
        let mut arena_out = BVec::new_in(&arena);
        crate::message::write_json(&v, &mut arena_out);
        let mut vec_out = Vec::new();
        crate::message::write_json(&v, &mut vec_out);
        assert_eq!(&arena_out[..], &vec_out[..]);
        // Non-ASCII is written as UTF-8; only control characters are \u-escaped.
        assert_eq!(
            std::str::from_utf8(&vec_out).unwrap(),
            r#"{"a":[1,-2.5,123456.789,true,null],"b":"q\"\\\n\u0001é","c":{}}"#
        );
    }

    #[test]
    fn go_floats() {
        let f = |x: f64| {
            let mut s = String::new();
            write_go_float(x, &mut s);
            s
        };
        assert_eq!(f(1.5), "1.5");
        assert_eq!(f(3.0), "3");
        assert_eq!(f(6.674282313423544e-11), "6.674282313423544e-11");
        assert_eq!(f(1e21), "1e+21");
    }

    #[test]
    fn pretty_output() {
        let arena = Bump::new();
        let v = parse(&arena, br#"{"a":[1,{"b":"<&>"}],"c":{}}"#).unwrap();
        let mut s = String::new();
        write_pretty(&v, "  ", true, &mut s);
        assert_eq!(
            s,
            "{\n  \"a\": [\n    1,\n    {\n      \"b\": \"\\u003c\\u0026\\u003e\"\n    }\n  ],\n  \"c\": {}\n}"
        );
    }
}
