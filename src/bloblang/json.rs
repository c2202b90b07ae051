//! JSON for Bloblang: simd-json parsing into arena `Value`s (reused scratch buffers, so
//! no global heap on the success path), Go-style float text, and the compact and
//! indented/HTML-escaping writers.

use std::cell::RefCell;
use std::fmt::Write;

use simd_json::{Buffers, Node, StaticNode, Tape};

use bumpalo::collections::Vec as BVec;
use bumpalo::Bump;

use super::eval::make_object;
use crate::message::Value;

/// Bytes a JSON string cannot hold raw: control characters, `"` and `\\`.
static SPECIAL: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = true;
        i += 1;
    }
    t[b'"' as usize] = true;
    t[b'\\' as usize] = true;
    t
};

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

pub fn write_go_float(f: f64, out: &mut impl Write) {
    if !f.is_finite() {
        let _ = out.write_str(if f.is_nan() {
            "NaN"
        } else if f > 0.0 {
            "+Inf"
        } else {
            "-Inf"
        });
        return;
    }
    let a = f.abs();
    if a != 0.0 && !(1e-6..1e21).contains(&a) {
        let mut buf = [0u8; 40];
        let mut cur = std::io::Cursor::new(&mut buf[..]);
        let _ = std::io::Write::write_fmt(&mut cur, format_args!("{f:e}"));
        let n = cur.position() as usize;
        let s = std::str::from_utf8(&buf[..n]).unwrap_or("0");
        match s.split_once('e') {
            Some((m, e)) if !e.starts_with('-') => {
                let _ = write!(out, "{m}e+{e}");
            }
            _ => {
                let _ = out.write_str(s);
            }
        }
    } else {
        let _ = write!(out, "{f}");
    }
}

/// Compact JSON of `v` into an arena buffer: the same text as `message::write_json`
/// (sorted keys, same number forms), but copying runs of bytes instead of one byte at a
/// time, and formatting floats on the stack.
pub fn write_compact(v: &Value<'_>, out: &mut BVec<'_, u8>) {
    match *v {
        Value::Null => out.extend_from_slice_copy(b"null"),
        Value::Bool(true) => out.extend_from_slice_copy(b"true"),
        Value::Bool(false) => out.extend_from_slice_copy(b"false"),
        Value::Int(i) => {
            let mut buf = [0u8; 20];
            let mut n = i.unsigned_abs();
            let mut pos = buf.len();
            loop {
                pos -= 1;
                buf[pos] = b'0' + (n % 10) as u8;
                n /= 10;
                if n == 0 {
                    break;
                }
            }
            if i < 0 {
                out.push(b'-');
            }
            out.extend_from_slice_copy(&buf[pos..]);
        }
        Value::Float(f) => {
            if f.is_finite() && f.fract() == 0.0 && f.abs() < 1e15 {
                write_compact(&Value::Int(f as i64), out);
            } else if f.is_finite() {
                // Go's JSON number form: exponent outside [1e-6, 1e21), like upstream.
                let mut buf = StackBuf {
                    buf: [0; 64],
                    len: 0,
                };
                write_go_float(f, &mut buf);
                out.extend_from_slice_copy(&buf.buf[..buf.len]);
            } else {
                out.extend_from_slice_copy(b"null");
            }
        }
        Value::Str(s) => write_compact_str(s.as_bytes(), out),
        Value::Bytes(b) => match std::str::from_utf8(b) {
            Ok(s) => write_compact_str(s.as_bytes(), out),
            Err(_) => write_compact_str(String::from_utf8_lossy(b).as_bytes(), out),
        },
        Value::Array(items) => {
            out.push(b'[');
            for (i, it) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_compact(it, out);
            }
            out.push(b']');
        }
        Value::Object(members) => {
            out.push(b'{');
            for (i, (k, it)) in members.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_compact_str(k.as_bytes(), out);
                out.push(b':');
                write_compact(it, out);
            }
            out.push(b'}');
        }
    }
}

/// A fixed buffer for formatting one number without the heap.
struct StackBuf {
    buf: [u8; 64],
    len: usize,
}

impl Write for StackBuf {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let end = self.len + s.len();
        if end > self.buf.len() {
            return Err(std::fmt::Error);
        }
        self.buf[self.len..end].copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// Whether any byte is a control character, `"` or `\\`; eight bytes at a time.
fn needs_escape(bytes: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let has_zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGHS;
    let mut chunks = bytes.chunks_exact(8);
    for c in &mut chunks {
        let v = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        // A byte below 0x20 borrows when 0x20 is subtracted; `"` and `\\` become zero
        // after the xor.
        let below = v.wrapping_sub(ONES * 0x20) & !v & HIGHS;
        if below | has_zero(v ^ (ONES * b'"' as u64)) | has_zero(v ^ (ONES * b'\\' as u64)) != 0 {
            return true;
        }
    }
    chunks.remainder().iter().any(|&b| SPECIAL[b as usize])
}

fn write_compact_str(bytes: &[u8], out: &mut BVec<'_, u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    // Fast path (vectorisable): nothing to escape.
    if !needs_escape(bytes) {
        out.extend_from_slice_copy(bytes);
        out.push(b'"');
        return;
    }
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let esc: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..=0x1f => b"",
            _ => continue,
        };
        out.extend_from_slice_copy(&bytes[start..i]);
        if esc.is_empty() {
            out.extend_from_slice_copy(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[(b >> 4) as usize],
                HEX[(b & 0xf) as usize],
            ]);
        } else {
            out.extend_from_slice_copy(esc);
        }
        start = i + 1;
    }
    out.extend_from_slice_copy(&bytes[start..]);
    out.push(b'"');
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
    fn compact_matches_message_write_json() {
        let arena = Bump::new();
        let v = parse(
            &arena,
            br#"{"a":[1,-2.5,123456.789,true,null],"b":"q\"\\\n\u0001\u00e9","c":{}}"#,
        )
        .unwrap();
        let mut mine = BVec::new_in(&arena);
        write_compact(&v, &mut mine);
        let mut theirs = Vec::new();
        crate::message::write_json(&v, &mut theirs);
        assert_eq!(&mine[..], &theirs[..]);
        let mut big = BVec::new_in(&arena);
        write_compact(&Value::Float(1e300), &mut big);
        assert_eq!(&big[..], b"1e+300");
    }

    #[test]
    fn escape_detection() {
        assert!(!needs_escape(
            b"plain ascii text, longer than eight bytes \x7f\xc3\xa9"
        ));
        for special in [b'"', b'\\', b'\n', 0u8, 0x1f] {
            for pos in 0..20 {
                let mut v = vec![b'a'; 20];
                v[pos] = special;
                assert!(needs_escape(&v), "{special} at {pos}");
            }
        }
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
