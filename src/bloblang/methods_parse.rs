//! Parsing and formatting methods: JSON, YAML, CSV, logfmt, URLs and form bodies, XML,
//! MessagePack, and a small JSON Schema validator.

use bumpalo::collections::Vec as BVec;
use bumpalo::Bump;

use super::ast::{Call, MethodFn};
use super::eval::{make_object, type_name, Ctx, R};
use super::json;
use super::methods::{any_bytes, as_str, opt_bool, opt_str, req_str};
use super::methods_strings::url_unescape;
use crate::message::Value;

pub fn lookup(name: &str) -> Option<MethodFn> {
    Some(match name {
        "parse_json" => |c, v, _| {
            let b = any_bytes(c, v);
            json::parse(c.arena, b).map_err(|e| c.err(&e))
        },
        "format_json" => format_json,
        "parse_yaml" => parse_yaml,
        "format_yaml" => |c, v, _| {
            let y = to_yaml(&v);
            match serde_yaml::to_string(&y) {
                Ok(s) => Ok(c.str(&s)),
                Err(e) => c.fail(&e.to_string()),
            }
        },
        "parse_csv" => parse_csv,
        "parse_logfmt" => parse_logfmt,
        "parse_url" => parse_url,
        "parse_form_url_encoded" => parse_form,
        "parse_xml" => parse_xml,
        "format_xml" => format_xml,
        "parse_msgpack" => |c, v, _| {
            let mut b = any_bytes(c, v);
            match rmpv::decode::read_value(&mut b) {
                Ok(m) => Ok(from_msgpack(c.arena, &m)),
                Err(e) => c.fail(&format!("failed to parse msgpack: {e}")),
            }
        },
        "format_msgpack" => |c, v, _| {
            let mut out = Vec::new();
            match rmpv::encode::write_value(&mut out, &to_msgpack(&v)) {
                Ok(()) => Ok(Value::Bytes(c.arena.alloc_slice_copy(&out))),
                Err(e) => c.fail(&e.to_string()),
            }
        },
        "json_schema" => json_schema,
        _ => return None,
    })
}

fn format_json<'a>(ctx: &Ctx<'a, '_>, v: Value<'a>, call: &Call) -> R<'a> {
    let indent = opt_str(ctx, call, 0, "indent")?.unwrap_or("    ");
    let no_indent = opt_bool(ctx, call, 1, "no_indent", false)?;
    let esc = opt_bool(ctx, call, 2, "escape_html", true)?;
    let mut s = String::new();
    json::write_pretty(&v, if no_indent { "" } else { indent }, esc, &mut s);
    Ok(ctx.str(&s))
}

fn from_yaml<'a>(arena: &'a Bump, y: &serde_yaml::Value) -> Value<'a> {
    use serde_yaml::Value as Y;
    match y {
        Y::Null => Value::Null,
        Y::Bool(b) => Value::Bool(*b),
        Y::Number(n) => match n.as_i64() {
            Some(i) => Value::Int(i),
            None => Value::Float(n.as_f64().unwrap_or(0.0)),
        },
        Y::String(s) => Value::Str(arena.alloc_str(s)),
        Y::Sequence(items) => {
            let out = BVec::from_iter_in(items.iter().map(|i| from_yaml(arena, i)), arena);
            Value::Array(out.into_bump_slice())
        }
        Y::Mapping(m) => {
            let mut out = BVec::new_in(arena);
            for (k, v) in m {
                let key: &'a str = match k {
                    Y::String(s) => arena.alloc_str(s),
                    other => {
                        arena.alloc_str(serde_yaml::to_string(other).unwrap_or_default().trim_end())
                    }
                };
                out.push((key, from_yaml(arena, v)));
            }
            make_object(arena, out)
        }
        Y::Tagged(t) => from_yaml(arena, &t.value),
    }
}

fn to_yaml(v: &Value<'_>) -> serde_yaml::Value {
    use serde_yaml::Value as Y;
    match v {
        Value::Null => Y::Null,
        Value::Bool(b) => Y::Bool(*b),
        Value::Int(i) => Y::Number((*i).into()),
        Value::Float(f) => Y::Number((*f).into()),
        Value::Str(s) => Y::String(s.to_string()),
        Value::Bytes(b) => Y::String(String::from_utf8_lossy(b).into_owned()),
        Value::Array(items) => Y::Sequence(items.iter().map(to_yaml).collect()),
        Value::Object(m) => {
            let mut map = serde_yaml::Mapping::new();
            for (k, x) in m.iter() {
                map.insert(Y::String(k.to_string()), to_yaml(x));
            }
            Y::Mapping(map)
        }
    }
}

fn parse_yaml<'a>(ctx: &Ctx<'a, '_>, v: Value<'a>, _: &Call) -> R<'a> {
    let b = any_bytes(ctx, v);
    match serde_yaml::from_slice::<serde_yaml::Value>(b) {
        Ok(y) => Ok(from_yaml(ctx.arena, &y)),
        Err(e) => ctx.fail(&format!("failed to parse yaml: {e}")),
    }
}

fn parse_csv<'a>(ctx: &Ctx<'a, '_>, v: Value<'a>, call: &Call) -> R<'a> {
    let b = any_bytes(ctx, v);
    let header = opt_bool(ctx, call, 0, "parse_header_row", true)?;
    let delim = opt_str(ctx, call, 1, "delimiter")?.unwrap_or(",");
    let lazy = opt_bool(ctx, call, 2, "lazy_quotes", false)?;
    if delim.len() != 1 {
        return ctx.fail("delimiter value must be exactly one character");
    }
    let _ = lazy;
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(false)
        .delimiter(delim.as_bytes()[0])
        .flexible(false)
        .from_reader(b);
    let mut rows: Vec<Vec<&'a str>> = Vec::new();
    for rec in rdr.records() {
        let rec = rec.map_err(|e| ctx.err(&format!("failed to parse csv: {e}")))?;
        rows.push(rec.iter().map(|f| &*ctx.arena.alloc_str(f)).collect());
    }
    let mut out = BVec::new_in(ctx.arena);
    if header {
        let mut it = rows.into_iter();
        let Some(names) = it.next() else {
            return Ok(Value::Array(&[]));
        };
        for row in it {
            let items = BVec::from_iter_in(
                names
                    .iter()
                    .zip(row.iter())
                    .map(|(k, v)| (*k, Value::Str(v))),
                ctx.arena,
            );
            out.push(make_object(ctx.arena, items));
        }
    } else {
        for row in rows {
            let items = BVec::from_iter_in(row.into_iter().map(Value::Str), ctx.arena);
            out.push(Value::Array(items.into_bump_slice()));
        }
    }
    Ok(Value::Array(out.into_bump_slice()))
}

fn parse_logfmt<'a>(ctx: &Ctx<'a, '_>, v: Value<'a>, _: &Call) -> R<'a> {
    let s = as_str(ctx, v)?;
    let mut out = BVec::new_in(ctx.arena);
    let mut rest = s.trim_start();
    while !rest.is_empty() {
        let kend = rest
            .find(|c: char| c == '=' || c.is_whitespace())
            .unwrap_or(rest.len());
        let key: &'a str = &rest[..kend];
        rest = &rest[kend..];
        if let Some(r) = rest.strip_prefix('=') {
            rest = r;
            if rest.starts_with('"') {
                let mut end = 1;
                let b = rest.as_bytes();
                while end < b.len() && b[end] != b'"' {
                    if b[end] == b'\\' {
                        end += 1;
                    }
                    end += 1;
                }
                let quoted = &rest[..(end + 1).min(rest.len())];
                let val = super::methods_strings::go_unquote(quoted)
                    .unwrap_or_else(|| quoted.to_string());
                out.push((key, ctx.str(&val)));
                rest = &rest[(end + 1).min(rest.len())..];
            } else {
                let vend = rest.find(char::is_whitespace).unwrap_or(rest.len());
                out.push((key, Value::Str(&rest[..vend])));
                rest = &rest[vend..];
            }
        } else if !key.is_empty() {
            out.push((key, Value::Bool(true)));
        }
        rest = rest.trim_start();
    }
    Ok(make_object(ctx.arena, out))
}

fn parse_url<'a>(ctx: &Ctx<'a, '_>, v: Value<'a>, _: &Call) -> R<'a> {
    let raw = as_str(ctx, v)?;
    let fail = |e: String| {
        ctx.err(&format!(
            "parse {}: {e}",
            super::methods_strings::go_quote(raw)
        ))
    };
    let (rest, frag) = match raw.split_once('#') {
        Some((r, f)) => (r, Some(f)),
        None => (raw, None),
    };
    let fail_rest = |e: String| {
        ctx.err(&format!(
            "parse {}: {e}",
            super::methods_strings::go_quote(rest)
        ))
    };
    let mut scheme = "";
    let mut body = rest;
    if let Some(i) = rest.find(':') {
        let cand = &rest[..i];
        if !cand.is_empty()
            && cand.starts_with(|c: char| c.is_ascii_alphabetic())
            && cand
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
        {
            scheme = cand;
            body = &rest[i + 1..];
        }
    }
    let (body, query) = match body.split_once('?') {
        Some((b, q)) => (b, q),
        None => (body, ""),
    };
    let mut opaque = "";
    let mut host = "";
    let mut user: Option<(String, Option<String>)> = None;
    let mut path = body;
    if let Some(after) = body.strip_prefix("//") {
        let end = after.find('/').unwrap_or(after.len());
        let auth = &after[..end];
        path = &after[end..];
        let hostpart = match auth.rsplit_once('@') {
            Some((u, h)) => {
                let (n, p) = match u.split_once(':') {
                    Some((n, p)) => (n, Some(p)),
                    None => (u, None),
                };
                let n = url_unescape(n, false).map_err(fail_rest)?;
                let p = p
                    .map(|p| url_unescape(p, false))
                    .transpose()
                    .map_err(fail_rest)?;
                user = Some((n, p));
                h
            }
            None => auth,
        };
        host = hostpart;
    } else if !scheme.is_empty() && !body.starts_with('/') {
        opaque = body;
        path = "";
    }
    let path = url_unescape(path, false).map_err(fail_rest)?;
    let fragment = match frag {
        Some(f) => url_unescape(f, false).map_err(fail)?,
        None => String::new(),
    };
    let mut items = BVec::new_in(ctx.arena);
    items.push(("scheme", ctx.str(&scheme.to_ascii_lowercase())));
    items.push(("opaque", Value::Str(opaque)));
    items.push(("host", Value::Str(host)));
    items.push(("path", ctx.str(&path)));
    items.push(("raw_path", Value::Str("")));
    items.push(("raw_query", Value::Str(query)));
    items.push(("fragment", ctx.str(&fragment)));
    items.push(("raw_fragment", Value::Str("")));
    if let Some((n, p)) = user {
        let mut u = BVec::new_in(ctx.arena);
        u.push(("name", ctx.str(&n)));
        if let Some(p) = p {
            u.push(("password", ctx.str(&p)));
        }
        items.push(("user", make_object(ctx.arena, u)));
    }
    Ok(make_object(ctx.arena, items))
}

fn parse_form<'a>(ctx: &Ctx<'a, '_>, v: Value<'a>, _: &Call) -> R<'a> {
    let s = as_str(ctx, v)?;
    let mut pairs: Vec<(&'a str, Vec<Value<'a>>)> = Vec::new();
    for part in s.split('&').filter(|p| !p.is_empty()) {
        let (k, val) = part.split_once('=').unwrap_or((part, ""));
        let k = url_unescape(k, true).map_err(|e| ctx.err(&e))?;
        let val = url_unescape(val, true).map_err(|e| ctx.err(&e))?;
        let k: &'a str = ctx.arena.alloc_str(&k);
        let val = ctx.str(&val);
        match pairs.iter_mut().find(|(pk, _)| *pk == k) {
            Some((_, vs)) => vs.push(val),
            None => pairs.push((k, vec![val])),
        }
    }
    let items = BVec::from_iter_in(
        pairs.into_iter().map(|(k, vs)| {
            let v = if vs.len() == 1 {
                vs[0]
            } else {
                Value::Array(ctx.arena.alloc_slice_copy(&vs))
            };
            (k, v)
        }),
        ctx.arena,
    );
    Ok(make_object(ctx.arena, items))
}

// ----- XML -----

#[derive(Debug, Default)]
struct XNode {
    name: String,
    attrs: Vec<(String, String)>,
    children: Vec<XNode>,
    text: String,
}

fn cast_text<'a>(arena: &'a Bump, s: &str, cast: bool) -> Value<'a> {
    if cast {
        if let Ok(i) = s.parse::<i64>() {
            return Value::Int(i);
        }
        if let Ok(f) = s.parse::<f64>() {
            return Value::Float(f);
        }
        match s.to_ascii_lowercase().as_str() {
            "true" => return Value::Bool(true),
            "false" => return Value::Bool(false),
            _ => {}
        }
    }
    Value::Str(arena.alloc_str(s))
}

fn xnode_value<'a>(arena: &'a Bump, n: &XNode, cast: bool) -> Value<'a> {
    let text = n.text.trim();
    if n.attrs.is_empty() && n.children.is_empty() {
        return cast_text(arena, text, cast);
    }
    let mut items: Vec<(&'a str, Vec<Value<'a>>)> = Vec::new();
    for (k, v) in &n.attrs {
        let key: &'a str = arena.alloc_str(&format!("-{k}"));
        items.push((key, vec![cast_text(arena, v, cast)]));
    }
    for c in &n.children {
        let v = xnode_value(arena, c, cast);
        match items.iter_mut().find(|(k, _)| *k == c.name) {
            Some((_, vs)) => vs.push(v),
            None => items.push((arena.alloc_str(&c.name), vec![v])),
        }
    }
    if !text.is_empty() {
        items.push(("#text", vec![cast_text(arena, text, cast)]));
    }
    let out = BVec::from_iter_in(
        items.into_iter().map(|(k, vs)| {
            let v = if vs.len() == 1 {
                vs[0]
            } else {
                Value::Array(arena.alloc_slice_copy(&vs))
            };
            (k, v)
        }),
        arena,
    );
    make_object(arena, out)
}

fn parse_xml<'a>(ctx: &Ctx<'a, '_>, v: Value<'a>, call: &Call) -> R<'a> {
    use quick_xml::events::Event;
    let b = any_bytes(ctx, v);
    let cast = opt_bool(ctx, call, 0, "cast", false)?;
    let mut reader = quick_xml::Reader::from_reader(b);
    let mut stack: Vec<XNode> = vec![XNode::default()];
    let mut buf = Vec::new();
    let bad = |e: &dyn std::fmt::Display| ctx.err(&format!("failed to parse xml: {e}"));
    loop {
        match reader.read_event_into(&mut buf).map_err(|e| bad(&e))? {
            Event::Start(e) | Event::Empty(e) if false => drop(e),
            Event::Start(e) => {
                let mut n = XNode {
                    name: String::from_utf8_lossy(e.name().as_ref()).into_owned(),
                    ..Default::default()
                };
                for a in e.attributes().flatten() {
                    let val = a.unescape_value().map_err(|e| bad(&e))?.into_owned();
                    n.attrs
                        .push((String::from_utf8_lossy(a.key.as_ref()).into_owned(), val));
                }
                stack.push(n);
            }
            Event::Empty(e) => {
                let mut n = XNode {
                    name: String::from_utf8_lossy(e.name().as_ref()).into_owned(),
                    ..Default::default()
                };
                for a in e.attributes().flatten() {
                    let val = a.unescape_value().map_err(|e| bad(&e))?.into_owned();
                    n.attrs
                        .push((String::from_utf8_lossy(a.key.as_ref()).into_owned(), val));
                }
                if let Some(top) = stack.last_mut() {
                    top.children.push(n);
                }
            }
            Event::End(_) => {
                let n = stack
                    .pop()
                    .ok_or_else(|| ctx.err("failed to parse xml: unbalanced"))?;
                match stack.last_mut() {
                    Some(top) => top.children.push(n),
                    None => return ctx.fail("failed to parse xml: unbalanced"),
                }
            }
            Event::Text(t) => {
                let s = t.unescape().map_err(|e| bad(&e))?;
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&s);
                }
            }
            Event::CData(t) => {
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&String::from_utf8_lossy(&t));
                }
            }
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    let root = stack.pop().unwrap_or_default();
    let mut out = BVec::new_in(ctx.arena);
    for c in &root.children {
        out.push((
            &*ctx.arena.alloc_str(&c.name),
            xnode_value(ctx.arena, c, cast),
        ));
    }
    Ok(make_object(ctx.arena, out))
}

fn xml_elem(name: &str, v: &Value<'_>, indent: &str, level: usize, out: &mut String) {
    if let Value::Array(items) = v {
        for (i, it) in items.iter().enumerate() {
            if i > 0 && !indent.is_empty() {
                out.push('\n');
                out.push_str(&indent.repeat(level));
            }
            xml_elem(name, it, indent, level, out);
        }
        return;
    }
    out.push('<');
    out.push_str(name);
    let mut text = String::new();
    let mut children: Vec<(&str, &Value<'_>)> = Vec::new();
    match v {
        Value::Object(m) => {
            for (k, x) in m.iter() {
                if let Some(a) = k.strip_prefix('-') {
                    out.push(' ');
                    out.push_str(a);
                    out.push_str("=\"");
                    super::methods_strings::escape_html_into(
                        super::eval::to_text(&Bump::new(), x),
                        out,
                    );
                    out.push('"');
                } else if *k == "#text" {
                    super::methods_strings::escape_html_into(
                        super::eval::to_text(&Bump::new(), x),
                        &mut text,
                    );
                } else {
                    children.push((k, x));
                }
            }
        }
        Value::Null => {}
        other => super::methods_strings::escape_html_into(
            super::eval::to_text(&Bump::new(), other),
            &mut text,
        ),
    }
    if children.is_empty() && text.is_empty() && matches!(v, Value::Null | Value::Object(_)) {
        out.push_str("/>");
        return;
    }
    out.push('>');
    out.push_str(&text);
    for (k, x) in &children {
        if !indent.is_empty() {
            out.push('\n');
            out.push_str(&indent.repeat(level + 1));
        }
        xml_elem(k, x, indent, level + 1, out);
    }
    if !children.is_empty() && !indent.is_empty() {
        out.push('\n');
        out.push_str(&indent.repeat(level));
    }
    out.push_str("</");
    out.push_str(name);
    out.push('>');
}

fn format_xml<'a>(ctx: &Ctx<'a, '_>, v: Value<'a>, call: &Call) -> R<'a> {
    let indent = opt_str(ctx, call, 0, "indent")?.unwrap_or("    ");
    let no_indent = opt_bool(ctx, call, 1, "no_indent", false)?;
    let indent = if no_indent { "" } else { indent };
    let Value::Object(m) = v else {
        return ctx.fail(&format!("expected object value, got {}", type_name(&v)));
    };
    let mut out = String::new();
    for (i, (k, x)) in m.iter().enumerate() {
        if i > 0 && !indent.is_empty() {
            out.push('\n');
        }
        xml_elem(k, x, indent, 0, &mut out);
    }
    Ok(ctx.str(&out))
}

// ----- MessagePack -----

fn from_msgpack<'a>(arena: &'a Bump, m: &rmpv::Value) -> Value<'a> {
    use rmpv::Value as M;
    match m {
        M::Nil => Value::Null,
        M::Boolean(b) => Value::Bool(*b),
        M::Integer(i) => match i.as_i64() {
            Some(x) => Value::Int(x),
            None => Value::Float(i.as_f64().unwrap_or(0.0)),
        },
        M::F32(f) => Value::Float(*f as f64),
        M::F64(f) => Value::Float(*f),
        M::String(s) => Value::Str(arena.alloc_str(&String::from_utf8_lossy(s.as_bytes()))),
        M::Binary(b) => Value::Bytes(arena.alloc_slice_copy(b)),
        M::Array(items) => {
            let out = BVec::from_iter_in(items.iter().map(|i| from_msgpack(arena, i)), arena);
            Value::Array(out.into_bump_slice())
        }
        M::Map(entries) => {
            let mut out = BVec::new_in(arena);
            for (k, v) in entries {
                let key: &'a str = match k {
                    M::String(s) => arena.alloc_str(&String::from_utf8_lossy(s.as_bytes())),
                    other => arena.alloc_str(&other.to_string()),
                };
                out.push((key, from_msgpack(arena, v)));
            }
            make_object(arena, out)
        }
        M::Ext(_, b) => Value::Bytes(arena.alloc_slice_copy(b)),
    }
}

fn to_msgpack(v: &Value<'_>) -> rmpv::Value {
    use rmpv::Value as M;
    match v {
        Value::Null => M::Nil,
        Value::Bool(b) => M::Boolean(*b),
        Value::Int(i) => M::Integer((*i).into()),
        Value::Float(f) => M::F64(*f),
        Value::Str(s) => M::String((*s).into()),
        Value::Bytes(b) => M::Binary(b.to_vec()),
        Value::Array(items) => M::Array(items.iter().map(to_msgpack).collect()),
        Value::Object(m) => M::Map(
            m.iter()
                .map(|(k, x)| (M::String((*k).into()), to_msgpack(x)))
                .collect(),
        ),
    }
}

// ----- JSON Schema (draft-7 core keywords) -----

fn schema_type(v: &Value<'_>) -> &'static str {
    match v {
        Value::Int(_) => "integer",
        Value::Float(f) if f.fract() == 0.0 => "integer",
        Value::Float(_) => "number",
        other => type_name(other),
    }
}

fn type_matches(want: &str, v: &Value<'_>) -> bool {
    let got = schema_type(v);
    want == got || (want == "number" && got == "integer") || (want == "string" && got == "bytes")
}

fn validate(schema: &Value<'_>, v: &Value<'_>, path: &str, errs: &mut Vec<String>) {
    use super::eval::get_field;
    let Value::Object(_) = schema else {
        return;
    };
    let at = if path.is_empty() { "(root)" } else { path };
    match get_field(*schema, "type") {
        Value::Str(t) if !type_matches(t, v) => {
            errs.push(format!(
                "{at} invalid type. expected: {t}, given: {}",
                schema_type(v)
            ));
            return;
        }
        Value::Array(ts)
            if !ts
                .iter()
                .any(|t| matches!(t, Value::Str(t) if type_matches(t, v))) =>
        {
            errs.push(format!("{at} invalid type. given: {}", schema_type(v)));
            return;
        }
        _ => {}
    }
    if let Value::Array(en) = get_field(*schema, "enum") {
        if !en.iter().any(|e| super::eval::equal(e, v)) {
            errs.push(format!("{at} must be one of the enum values"));
        }
    }
    if let (Value::Object(m), Value::Array(req)) = (v, get_field(*schema, "required")) {
        for r in req {
            if let Value::Str(k) = r {
                if super::eval::obj_get(m, k).is_none() {
                    errs.push(format!("{k} is required"));
                }
            }
        }
    }
    let join = |k: &str| {
        if path.is_empty() {
            k.to_string()
        } else {
            format!("{path}.{k}")
        }
    };
    if let (Value::Object(m), Value::Object(props)) = (v, get_field(*schema, "properties")) {
        for (k, sub) in props.iter() {
            if let Some(x) = super::eval::obj_get(m, k) {
                validate(sub, &x, &join(k), errs);
            }
        }
    }
    if let Value::Array(items) = v {
        let sub = get_field(*schema, "items");
        for (i, x) in items.iter().enumerate() {
            validate(&sub, x, &join(&i.to_string()), errs);
        }
    }
    let num = match v {
        Value::Int(i) => Some(*i as f64),
        Value::Float(f) => Some(*f),
        _ => None,
    };
    if let Some(n) = num {
        if let Value::Int(_) | Value::Float(_) = get_field(*schema, "minimum") {
            let m = super::eval::to_text(&Bump::new(), &get_field(*schema, "minimum"))
                .parse::<f64>()
                .unwrap_or(f64::MIN);
            if n < m {
                errs.push(format!("{at} must be greater than or equal to {m}"));
            }
        }
        if let Value::Int(_) | Value::Float(_) = get_field(*schema, "maximum") {
            let m = super::eval::to_text(&Bump::new(), &get_field(*schema, "maximum"))
                .parse::<f64>()
                .unwrap_or(f64::MAX);
            if n > m {
                errs.push(format!("{at} must be less than or equal to {m}"));
            }
        }
    }
    if let Value::Str(s) = v {
        if let Value::Int(m) = get_field(*schema, "minLength") {
            if (s.chars().count() as i64) < m {
                errs.push(format!(
                    "{at} string length must be greater than or equal to {m}"
                ));
            }
        }
        if let Value::Int(m) = get_field(*schema, "maxLength") {
            if (s.chars().count() as i64) > m {
                errs.push(format!(
                    "{at} string length must be less than or equal to {m}"
                ));
            }
        }
    }
}

fn json_schema<'a>(ctx: &Ctx<'a, '_>, v: Value<'a>, call: &Call) -> R<'a> {
    let src = req_str(ctx, call, 0, "schema")?;
    let schema = json::parse(ctx.arena, src.as_bytes())
        .map_err(|e| ctx.err(&format!("failed to parse json schema: {e}")))?;
    let mut errs = Vec::new();
    validate(&schema, &v, "", &mut errs);
    if errs.is_empty() {
        Ok(v)
    } else {
        ctx.fail(&errs.join("\n"))
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_eval as eval;

    #[test]
    fn json_and_yaml() {
        assert_eq!(
            eval("root = this.s.parse_json().a", r#"{"s":"{\"a\":[1]}"}"#),
            "[1]"
        );
        assert_eq!(
            eval(
                "root = this.format_json(no_indent: true, escape_html: false)",
                r#"{"a":"<"}"#
            ),
            r#"{"a":"<"}"#
        );
        assert_eq!(
            eval(
                "root = this.s.parse_yaml()",
                r#"{"s":"a: [1, x]\nb: true"}"#
            ),
            r#"{"a":[1,"x"],"b":true}"#
        );
        assert_eq!(eval("root = this.format_yaml()", r#"{"a":1}"#), "a: 1\n");
    }

    #[test]
    fn csv_logfmt_forms() {
        assert_eq!(
            eval("root = this.parse_csv()", r#""a,b\n1,2""#),
            r#"[{"a":"1","b":"2"}]"#
        );
        assert_eq!(
            eval("root = this.parse_logfmt()", r#""a=1 b=\"x y\" c""#),
            r#"{"a":"1","b":"x y","c":true}"#
        );
        assert_eq!(
            eval("root = this.parse_form_url_encoded()", r#""a=1&a=2&b=%20""#),
            r#"{"a":["1","2"],"b":" "}"#
        );
    }

    #[test]
    fn urls() {
        let out = eval(
            "root = this.parse_url()",
            r#""http://u:p@h:80/a%20b?q=1#f""#,
        );
        assert_eq!(
            out,
            r#"{"fragment":"f","host":"h:80","opaque":"","path":"/a b","raw_fragment":"","raw_path":"","raw_query":"q=1","scheme":"http","user":{"name":"u","password":"p"}}"#
        );
        assert!(eval("root = this.parse_url()", r#""%zz""#).contains("invalid URL escape"));
    }

    #[test]
    fn xml_and_msgpack() {
        assert_eq!(
            eval(
                "root = this.parse_xml()",
                r#""<a x=\"1\"><b>2</b><b>3</b></a>""#
            ),
            r#"{"a":{"-x":"1","b":["2","3"]}}"#
        );
        assert_eq!(
            eval(
                "root = this.format_xml(no_indent: true)",
                r#"{"a":{"-x":1,"b":"t"}}"#
            ),
            r#"<a x="1"><b>t</b></a>"#
        );
        assert_eq!(
            eval(
                "root = this.format_msgpack().parse_msgpack()",
                r#"{"a":[1,-2,"x",null]}"#
            ),
            r#"{"a":[1,-2,"x",null]}"#
        );
    }

    #[test]
    fn schema() {
        let m = r#"root = this.json_schema("""{"type":"object","required":["a"],"properties":{"a":{"type":"integer","minimum":2}}}""")"#;
        assert_eq!(eval(m, r#"{"a":3}"#), r#"{"a":3}"#);
        assert!(eval(m, r#"{"a":1}"#).contains("greater than or equal to 2"));
        assert!(eval(m, r#"{}"#).contains("a is required"));
    }
}
