//! String methods: case, trimming, searching, splitting, quoting, escaping (HTML, URL),
//! paths, `format` (Go's printf verbs), slugs and Unicode segmentation.

use std::fmt::Write;

use bumpalo::collections::Vec as BVec;
use unicode_segmentation::UnicodeSegmentation;

use super::ast::{Call, MethodFn};
use super::eval::{Ctx, R};
use super::methods::{as_array, as_bytes, as_str, opt, opt_bool, opt_str, req, req_str};
use crate::message::write_go_float;
use crate::message::Value;

pub fn lookup(name: &str) -> Option<MethodFn> {
    Some(match name {
        "uppercase" => |c, v, _| map_str(c, v, |s| s.to_uppercase()),
        "lowercase" => |c, v, _| map_str(c, v, |s| s.to_lowercase()),
        "capitalize" => |c, v, _| map_str(c, v, title),
        "trim" => trim,
        "trim_prefix" => trim_prefix,
        "trim_suffix" => trim_suffix,
        "has_prefix" => |c, v, call| {
            let p = req_str(c, call, 0, "value")?;
            Ok(Value::Bool(as_bytes(c, v)?.starts_with(p.as_bytes())))
        },
        "has_suffix" => |c, v, call| {
            let p = req_str(c, call, 0, "value")?;
            Ok(Value::Bool(as_bytes(c, v)?.ends_with(p.as_bytes())))
        },
        "index_of" => index_of,
        "replace_all" | "replace" => replace_all,
        "replace_all_many" | "replace_many" => replace_many,
        "split" => split,
        "join" => join,
        "repeat" => repeat,
        "quote" => |c, v, _| map_str(c, v, go_quote),
        "unquote" => unquote,
        "escape_html" => |c, v, _| map_str(c, v, escape_html),
        "unescape_html" => |c, v, _| map_str(c, v, unescape_html),
        "escape_url_query" => |c, v, _| map_str(c, v, |s| url_escape(s, true)),
        "escape_url_path" => |c, v, _| map_str(c, v, |s| url_escape(s, false)),
        "unescape_url_query" => |c, v, _| unescape_url(c, v, true),
        "unescape_url_path" => |c, v, _| unescape_url(c, v, false),
        "filepath_join" => filepath_join,
        "filepath_split" => filepath_split,
        "format" => format,
        "strip_html" => strip_html,
        "slug" => slug,
        "unicode_segments" => unicode_segments,
        _ => return None,
    })
}

fn map_str<'a>(ctx: &Ctx<'a, '_>, v: Value<'a>, f: impl Fn(&str) -> String) -> R<'a> {
    let s = as_str(ctx, v)?;
    Ok(ctx.str(&f(s)))
}

/// Go's `strings.Title`: upper-case the first letter of each word.
fn title(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut sep = true;
    for c in s.chars() {
        if sep && c.is_alphabetic() {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        sep = !(c.is_alphanumeric() || c == '_' || c == '\'');
    }
    out
}

fn trim<'a>(ctx: &Ctx<'a, '_>, v: Value<'a>, call: &Call) -> R<'a> {
    let s = as_str(ctx, v)?;
    Ok(Value::Str(match opt_str(ctx, call, 0, "cutset")? {
        Some(cut) => s.trim_matches(|c| cut.contains(c)),
        None => s.trim(),
    }))
}

fn trim_prefix<'a>(ctx: &Ctx<'a, '_>, v: Value<'a>, call: &Call) -> R<'a> {
    let s = as_str(ctx, v)?;
    let p = req_str(ctx, call, 0, "prefix")?;
    Ok(Value::Str(s.strip_prefix(p).unwrap_or(s)))
}

fn trim_suffix<'a>(ctx: &Ctx<'a, '_>, v: Value<'a>, call: &Call) -> R<'a> {
    let s = as_str(ctx, v)?;
    let p = req_str(ctx, call, 0, "suffix")?;
    Ok(Value::Str(s.strip_suffix(p).unwrap_or(s)))
}

fn index_of<'a>(ctx: &Ctx<'a, '_>, v: Value<'a>, call: &Call) -> R<'a> {
    let hay = as_bytes(ctx, v)?;
    let needle = req_str(ctx, call, 0, "value")?.as_bytes();
    let pos = if needle.is_empty() {
        Some(0)
    } else {
        hay.windows(needle.len()).position(|w| w == needle)
    };
    Ok(Value::Int(pos.map(|p| p as i64).unwrap_or(-1)))
}

fn replace_all<'a>(ctx: &Ctx<'a, '_>, v: Value<'a>, call: &Call) -> R<'a> {
    let s = as_str(ctx, v)?;
    let from = req_str(ctx, call, 0, "old")?;
    let to = req_str(ctx, call, 1, "new")?;
    Ok(ctx.str(&s.replace(from, to)))
}

fn replace_many<'a>(ctx: &Ctx<'a, '_>, v: Value<'a>, call: &Call) -> R<'a> {
    let s = as_str(ctx, v)?;
    let pairs = as_array(ctx, req(ctx, call, 0, "values")?)?;
    if pairs.len() % 2 != 0 {
        return ctx.fail("invalid arguments: expected an even number of replacement values");
    }
    let mut olds = Vec::new();
    for p in pairs.chunks(2) {
        olds.push((as_str(ctx, p[0])?, as_str(ctx, p[1])?));
    }
    // Go's strings.Replacer: at each position the first matching pair (in order) wins.
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    'outer: while i < s.len() {
        for (o, n) in &olds {
            if !o.is_empty() && s[i..].starts_with(o) {
                out.push_str(n);
                i += o.len();
                continue 'outer;
            }
        }
        let c = s[i..].chars().next().unwrap_or(' ');
        out.push(c);
        i += c.len_utf8();
    }
    Ok(ctx.str(&out))
}

fn split<'a>(ctx: &Ctx<'a, '_>, v: Value<'a>, call: &Call) -> R<'a> {
    let s = as_str(ctx, v)?;
    let delim = req_str(ctx, call, 0, "delimiter")?;
    let empty_null = opt_bool(ctx, call, 1, "empty_as_null", false)?;
    let mut out = BVec::new_in(ctx.arena);
    let conv = |p: &'a str| {
        if empty_null && p.is_empty() {
            Value::Null
        } else {
            Value::Str(p)
        }
    };
    if delim.is_empty() {
        for (i, c) in s.char_indices() {
            out.push(conv(&s[i..i + c.len_utf8()]));
        }
    } else {
        for p in s.split(delim) {
            out.push(conv(p));
        }
    }
    Ok(Value::Array(out.into_bump_slice()))
}

fn join<'a>(ctx: &Ctx<'a, '_>, v: Value<'a>, call: &Call) -> R<'a> {
    let items = as_array(ctx, v)?;
    let delim = opt_str(ctx, call, 0, "delimiter")?.unwrap_or("");
    let mut out = bumpalo::collections::String::new_in(ctx.arena);
    for (i, it) in items.iter().enumerate() {
        if i > 0 {
            out.push_str(delim);
        }
        out.push_str(as_str(ctx, *it)?);
    }
    Ok(Value::Str(out.into_bump_str()))
}

fn repeat<'a>(ctx: &Ctx<'a, '_>, v: Value<'a>, call: &Call) -> R<'a> {
    let s = as_str(ctx, v)?;
    let n = super::methods::req_i64(ctx, call, 0, "count")?;
    if n < 0 {
        return ctx.fail("invalid count, must be greater than or equal to zero");
    }
    if (n as u128) * (s.len() as u128) > MAX_OUTPUT as u128 {
        return ctx.fail("repeat result would be too large");
    }
    Ok(ctx.str(&s.repeat(n as usize)))
}

/// Go's `strconv.Quote`.
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Go's `strconv.Unquote` for `"..."`, `` `...` `` and `'c'`.
pub fn go_unquote(s: &str) -> Option<String> {
    if s.len() >= 2 && s.starts_with('`') && s.ends_with('`') {
        return Some(s[1..s.len() - 1].to_string());
    }
    let q = s.chars().next()?;
    if s.len() < 2 || (q != '"' && q != '\'') || !s.ends_with(q) {
        return None;
    }
    let body = &s[1..s.len() - 1];
    let mut out = String::new();
    let mut it = body.chars();
    while let Some(c) = it.next() {
        if c == q {
            return None;
        }
        if c != '\\' {
            out.push(c);
            continue;
        }
        match it.next()? {
            'n' => out.push('\n'),
            't' => out.push('\t'),
            'r' => out.push('\r'),
            'a' => out.push('\u{7}'),
            'b' => out.push('\u{8}'),
            'f' => out.push('\u{c}'),
            'v' => out.push('\u{b}'),
            '\\' => out.push('\\'),
            '"' => out.push('"'),
            '\'' => out.push('\''),
            e @ ('x' | 'u' | 'U') => {
                let n = match e {
                    'x' => 2,
                    'u' => 4,
                    _ => 8,
                };
                let h: String = (0..n).filter_map(|_| it.next()).collect();
                let cp = u32::from_str_radix(&h, 16).ok()?;
                out.push(char::from_u32(cp)?);
            }
            _ => return None,
        }
    }
    Some(out)
}

fn unquote<'a>(ctx: &Ctx<'a, '_>, v: Value<'a>, _: &Call) -> R<'a> {
    let s = as_str(ctx, v)?;
    match go_unquote(s) {
        Some(u) => Ok(ctx.str(&u)),
        None => ctx.fail("invalid syntax"),
    }
}

fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    escape_html_into(s, &mut out);
    out
}

/// Go's `html.EscapeString` (also what `format_xml` needs for text), appended to `out`.
pub(super) fn escape_html_into(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&#34;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
}

fn unescape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        let end = rest[1..]
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '#'))
            .map(|e| e + 1);
        let (name, consumed) = match end {
            Some(e) if rest[e..].starts_with(';') => (&rest[1..e], e + 1),
            Some(e) => (&rest[1..e], e),
            None => (&rest[1..], rest.len()),
        };
        let rep = match name {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            "nbsp" => Some('\u{a0}'),
            "copy" => Some('\u{a9}'),
            "reg" => Some('\u{ae}'),
            n if n.starts_with("#x") || n.starts_with("#X") => u32::from_str_radix(&n[2..], 16)
                .ok()
                .and_then(char::from_u32),
            n if n.starts_with('#') => n[1..].parse().ok().and_then(char::from_u32),
            _ => None,
        };
        match rep {
            Some(c) => {
                out.push(c);
                rest = &rest[consumed..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Go's `url.QueryEscape` (query) or `url.PathEscape` (path).
pub fn url_escape(s: &str, query: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        let keep = b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'_' | b'.' | b'~')
            || (!query && matches!(b, b'$' | b'&' | b'+' | b':' | b'=' | b'@'));
        if keep {
            out.push(b as char);
        } else if b == b' ' && query {
            out.push('+');
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// Go's `url.QueryUnescape` / `url.PathUnescape`.
pub fn url_unescape(s: &str, query: bool) -> Result<String, String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = s
                    .get(i + 1..i + 3)
                    .filter(|h| h.bytes().all(|c| c.is_ascii_hexdigit()));
                match hex {
                    Some(h) => {
                        out.push(u8::from_str_radix(h, 16).unwrap_or(0));
                        i += 3;
                    }
                    None => {
                        let bad: String = s[i..].chars().take(3).collect();
                        return Err(format!("invalid URL escape {bad:?}"));
                    }
                }
            }
            b'+' if query => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

fn unescape_url<'a>(ctx: &Ctx<'a, '_>, v: Value<'a>, query: bool) -> R<'a> {
    let s = as_str(ctx, v)?;
    match url_unescape(s, query) {
        Ok(u) => Ok(ctx.str(&u)),
        Err(e) => ctx.fail(&e),
    }
}

/// Go's `path.Clean`.
pub fn clean_path(p: &str) -> String {
    if p.is_empty() {
        return ".".into();
    }
    let rooted = p.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for seg in p.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|l| *l != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            s => parts.push(s),
        }
    }
    let body = parts.join("/");
    match (rooted, body.is_empty()) {
        (true, _) => format!("/{body}"),
        (false, true) => ".".into(),
        (false, false) => body,
    }
}

fn filepath_join<'a>(ctx: &Ctx<'a, '_>, v: Value<'a>, _: &Call) -> R<'a> {
    let items = as_array(ctx, v)?;
    let mut parts = Vec::new();
    for it in items {
        let s = as_str(ctx, *it)?;
        if !s.is_empty() {
            parts.push(s);
        }
    }
    if parts.is_empty() {
        return Ok(Value::Str(""));
    }
    Ok(ctx.str(&clean_path(&parts.join("/"))))
}

fn filepath_split<'a>(ctx: &Ctx<'a, '_>, v: Value<'a>, _: &Call) -> R<'a> {
    let s = as_str(ctx, v)?;
    let i = s.rfind('/').map(|i| i + 1).unwrap_or(0);
    let arr = ctx
        .arena
        .alloc_slice_copy(&[Value::Str(&s[..i]), Value::Str(&s[i..])]);
    Ok(Value::Array(arr))
}

/// Go's `%v` rendering of a value.
pub fn go_v(v: &Value<'_>, out: &mut String) {
    match v {
        Value::Null => out.push_str("<nil>"),
        Value::Bool(b) => {
            let _ = write!(out, "{b}");
        }
        Value::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Value::Float(f) => write_go_float(*f, out),
        Value::Str(s) => out.push_str(s),
        Value::Bytes(b) => {
            out.push('[');
            for (i, x) in b.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                let _ = write!(out, "{x}");
            }
            out.push(']');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, x) in items.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                go_v(x, out);
            }
            out.push(']');
        }
        Value::Object(m) => {
            out.push_str("map[");
            for (i, (k, x)) in m.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                out.push_str(k);
                out.push(':');
                go_v(x, out);
            }
            out.push(']');
        }
    }
}

fn pad(s: String, width: Option<usize>, left: bool, zero: bool) -> String {
    let n = s.chars().count();
    match width {
        Some(w) if w > n => {
            let fill = w - n;
            if left {
                format!("{s}{}", " ".repeat(fill))
            } else if zero {
                let (sign, digits) = if s.starts_with('-') || s.starts_with('+') {
                    s.split_at(1)
                } else {
                    ("", s.as_str())
                };
                format!("{sign}{}{digits}", "0".repeat(fill))
            } else {
                format!("{}{s}", " ".repeat(fill))
            }
        }
        _ => s,
    }
}

/// Largest string `repeat` builds, so a mapping cannot exhaust memory in one call.
const MAX_OUTPUT: usize = 64 << 20;

/// Largest width or precision `format` honours (bounds the output size).
const MAX_WIDTH: usize = 4096;

/// Go's `fmt.Sprintf` for the common verbs (`%s %v %d %f %e %g %t %q %x %X %%`).
pub fn go_sprintf(fmt: &str, args: &[Value<'_>]) -> String {
    let mut out = String::new();
    let mut it = fmt.chars().peekable();
    let mut argi = 0;
    while let Some(c) = it.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let (mut left, mut zero, mut plus, mut space) = (false, false, false, false);
        while let Some(&f) = it.peek() {
            match f {
                '-' => left = true,
                '0' => zero = true,
                '+' => plus = true,
                ' ' => space = true,
                '#' => {}
                _ => break,
            }
            it.next();
        }
        let mut width = None;
        while let Some(d) = it.peek().and_then(|c| c.to_digit(10)) {
            width = Some((width.unwrap_or(0) * 10 + d as usize).min(MAX_WIDTH));
            it.next();
        }
        let mut prec = None;
        if it.peek() == Some(&'.') {
            it.next();
            let mut p = 0;
            while let Some(d) = it.peek().and_then(|c| c.to_digit(10)) {
                p = (p * 10 + d as usize).min(MAX_WIDTH);
                it.next();
            }
            prec = Some(p);
        }
        let Some(verb) = it.next() else {
            out.push_str("%!(NOVERB)");
            break;
        };
        if verb == '%' {
            out.push('%');
            continue;
        }
        let Some(arg) = args.get(argi) else {
            let _ = write!(out, "%!{verb}(MISSING)");
            continue;
        };
        argi += 1;
        let num = match arg {
            Value::Int(i) => Some(*i as f64),
            Value::Float(f) => Some(*f),
            _ => None,
        };
        let body = match verb {
            'v' | 's' => {
                let mut s = String::new();
                go_v(arg, &mut s);
                if let Some(p) = prec {
                    s = s.chars().take(p).collect();
                }
                s
            }
            'd' => match arg {
                Value::Int(i) => {
                    let sign = if plus && *i >= 0 {
                        "+"
                    } else if space && *i >= 0 {
                        " "
                    } else {
                        ""
                    };
                    format!("{sign}{i}")
                }
                _ => {
                    let mut s = String::new();
                    go_v(arg, &mut s);
                    format!("%!d({s})")
                }
            },
            'f' | 'F' | 'e' | 'g' => match num {
                Some(f) => {
                    let p = prec.unwrap_or(6);
                    let s = match verb {
                        'e' => {
                            let s = format!("{f:.p$e}");
                            match s.split_once('e') {
                                Some((m, e)) => {
                                    let (sg, d) =
                                        e.strip_prefix('-').map(|d| ('-', d)).unwrap_or(('+', e));
                                    format!("{m}e{sg}{d:0>2}")
                                }
                                None => s,
                            }
                        }
                        'g' => {
                            let mut s = String::new();
                            write_go_float(f, &mut s);
                            s
                        }
                        _ => format!("{f:.p$}"),
                    };
                    if plus && f >= 0.0 {
                        format!("+{s}")
                    } else {
                        s
                    }
                }
                None => {
                    let mut s = String::new();
                    go_v(arg, &mut s);
                    format!("%!{verb}({s})")
                }
            },
            't' => match arg {
                Value::Bool(b) => b.to_string(),
                _ => "%!t".into(),
            },
            'q' => {
                let mut s = String::new();
                go_v(arg, &mut s);
                go_quote(&s)
            }
            'x' | 'X' => {
                let s = match arg {
                    Value::Int(i) => format!("{i:x}"),
                    Value::Str(s) => hex::encode(s.as_bytes()),
                    Value::Bytes(b) => hex::encode(b),
                    other => {
                        let mut s = String::new();
                        go_v(other, &mut s);
                        hex::encode(s.as_bytes())
                    }
                };
                if verb == 'X' {
                    s.to_uppercase()
                } else {
                    s
                }
            }
            other => format!("%!{other}(?)"),
        };
        out.push_str(&pad(body, width, left, zero && !left));
    }
    if argi < args.len() {
        out.push_str("%!(EXTRA ");
        for (i, a) in args[argi..].iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            go_v(a, &mut out);
        }
        out.push(')');
    }
    out
}

fn format<'a>(ctx: &Ctx<'a, '_>, v: Value<'a>, call: &Call) -> R<'a> {
    let f = as_str(ctx, v)?;
    let mut args = Vec::with_capacity(call.args.len());
    for a in &call.args {
        args.push(ctx.eval(&a.expr)?);
    }
    Ok(ctx.str(&go_sprintf(f, &args)))
}

fn strip_html<'a>(ctx: &Ctx<'a, '_>, v: Value<'a>, call: &Call) -> R<'a> {
    let s = as_str(ctx, v)?;
    let mut keep: Vec<String> = Vec::new();
    if let Some(list) = opt(ctx, call, 0, "preserve")? {
        for it in as_array(ctx, list)? {
            keep.push(as_str(ctx, *it)?.to_ascii_lowercase());
        }
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('<') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        let Some(end) = rest.find('>') else {
            break;
        };
        let tag = &rest[..=end];
        let name: String = tag[1..]
            .trim_start_matches('/')
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric())
            .collect::<String>()
            .to_ascii_lowercase();
        rest = &rest[end + 1..];
        if !tag.starts_with("</") && (name == "script" || name == "style") {
            let close = format!("</{name}");
            match rest.to_ascii_lowercase().find(&close) {
                Some(c) => {
                    rest = &rest[c..];
                    if let Some(e) = rest.find('>') {
                        rest = &rest[e + 1..];
                    }
                }
                None => rest = "",
            }
            continue;
        }
        if keep.contains(&name) {
            out.push_str(tag);
        }
    }
    out.push_str(rest);
    Ok(ctx.str(&out))
}

fn translit(c: char) -> Option<&'static str> {
    Some(match c {
        'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' | 'ā' => "a",
        'æ' => "ae",
        'ç' | 'č' | 'ć' => "c",
        'è' | 'é' | 'ê' | 'ë' | 'ē' | 'ę' | 'ě' => "e",
        'ì' | 'í' | 'î' | 'ï' | 'ī' => "i",
        'ñ' | 'ń' | 'ň' => "n",
        'ò' | 'ó' | 'ô' | 'õ' | 'ö' | 'ø' | 'ō' => "o",
        'œ' => "oe",
        'ù' | 'ú' | 'û' | 'ü' | 'ū' | 'ů' => "u",
        'ý' | 'ÿ' => "y",
        'ß' => "ss",
        'š' | 'ś' => "s",
        'ž' | 'ź' | 'ż' => "z",
        'ł' => "l",
        'ř' => "r",
        'đ' | 'ð' => "d",
        'þ' => "th",
        _ => return None,
    })
}

fn slug<'a>(ctx: &Ctx<'a, '_>, v: Value<'a>, call: &Call) -> R<'a> {
    let s = as_str(ctx, v)?;
    let lang = opt_str(ctx, call, 0, "lang")?.unwrap_or("en");
    let and = match lang {
        "fr" => "et",
        "de" => "und",
        "es" => "y",
        "it" => "e",
        "nl" => "en",
        "pl" => "i",
        "sv" | "fi" => "och",
        _ => "and",
    };
    let mut text = String::new();
    for c in s.to_lowercase().chars() {
        if c == '&' {
            text.push(' ');
            text.push_str(and);
            text.push(' ');
        } else if let Some(t) = translit(c) {
            text.push_str(t);
        } else {
            text.push(c);
        }
    }
    let mut out = String::new();
    let mut dash = false;
    for c in text.chars() {
        if c.is_ascii_alphanumeric() || c == '_' || (c.is_alphanumeric() && !c.is_ascii()) {
            if dash && !out.is_empty() {
                out.push('-');
            }
            dash = false;
            out.push(c);
        } else {
            dash = true;
        }
    }
    Ok(ctx.str(&out))
}

fn unicode_segments<'a>(ctx: &Ctx<'a, '_>, v: Value<'a>, call: &Call) -> R<'a> {
    let s = as_str(ctx, v)?;
    let kind = req_str(ctx, call, 0, "segmentation_type")?;
    let parts: Vec<&'a str> = match kind {
        "grapheme" => s.graphemes(true).collect(),
        "word" => s.split_word_bounds().collect(),
        "sentence" => s.split_sentence_bounds().collect(),
        other => return ctx.fail(&format!("unknown segmentation type: {other}")),
    };
    let out = BVec::from_iter_in(parts.into_iter().map(Value::Str), ctx.arena);
    Ok(Value::Array(out.into_bump_slice()))
}

#[cfg(test)]
mod tests {
    use super::super::test_eval as eval;
    use super::*;

    #[test]
    fn case_and_trim() {
        assert_eq!(
            eval("root = this.s.capitalize()", r#"{"s":"hi there, you_two"}"#),
            "Hi There, You_two"
        );
        assert_eq!(
            eval("root = this.s.trim(\"-\").uppercase()", r#"{"s":"--ab-"}"#),
            "AB"
        );
        assert_eq!(
            eval(
                "root = this.s.trim_prefix(\"x\").trim_suffix(\"z\")",
                r#"{"s":"xyz"}"#
            ),
            "y"
        );
    }

    #[test]
    fn printf_verbs() {
        let args = [
            Value::Str("a"),
            Value::Int(7),
            Value::Float(2.5),
            Value::Bool(true),
        ];
        assert_eq!(go_sprintf("%s-%03d-%.2f-%t-%%", &args), "a-007-2.50-true-%");
        assert_eq!(
            go_sprintf("%v %q", &[Value::Null, Value::Str("x\n")]),
            "<nil> \"x\\n\""
        );
        assert_eq!(
            go_sprintf("%5s|%-3d|", &[Value::Str("ab"), Value::Int(1)]),
            "   ab|1  |"
        );
    }

    #[test]
    fn escaping() {
        assert_eq!(url_escape("a b/c?", true), "a+b%2Fc%3F");
        assert_eq!(url_escape("a b/c", false), "a%20b%2Fc");
        assert_eq!(url_unescape("a%2Fb+c", true).unwrap(), "a/b c");
        assert!(url_unescape("%zz", false).is_err());
        assert_eq!(
            unescape_html("&lt;b&gt; &#65;&#x42; &bogus;"),
            "<b> AB &bogus;"
        );
        assert_eq!(
            go_unquote(&go_quote("tab\there \"q\"")).unwrap(),
            "tab\there \"q\""
        );
    }

    #[test]
    fn paths_slugs_segments() {
        assert_eq!(clean_path("a//b/../c/"), "a/c");
        assert_eq!(
            eval("root = this.p.filepath_split()", r#"{"p":"a/b"}"#),
            r#"["a/","b"]"#
        );
        assert_eq!(
            eval("root = this.t.slug()", r#"{"t":"Ärger & Co!"}"#),
            "arger-and-co"
        );
        assert_eq!(
            eval(
                "root = this.t.unicode_segments(\"word\").length()",
                r#"{"t":"a b"}"#
            ),
            "3"
        );
        assert_eq!(
            eval(
                "root = this.h.strip_html()",
                r#"{"h":"<b>x</b><style>p{}</style>y"}"#
            ),
            "xy"
        );
    }

    #[test]
    fn split_join_replace() {
        assert_eq!(
            eval("root = this.s.split(\",\").join(\"+\")", r#"{"s":"a,b"}"#),
            "a+b"
        );
        assert_eq!(
            eval(
                "root = this.s.replace_all_many([\"a\", \"b\", \"b\", \"a\"])",
                r#"{"s":"ab"}"#
            ),
            "ba"
        );
        assert_eq!(eval("root = this.s.index_of(\"z\")", r#"{"s":"ab"}"#), "-1");
    }
}
