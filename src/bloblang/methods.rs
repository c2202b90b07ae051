//! Method registry (name to implementation, resolved at parse time) and the argument and
//! coercion helpers every method family uses.

use super::ast::{Call, MethodFn};
use super::eval::{describe_value, expected, Ctx, Flow};
use super::{
    methods_collections, methods_encoding, methods_numbers, methods_parse, methods_regex,
    methods_strings, methods_time,
};
use crate::message::Value;

/// The implementation of method `name`, if it exists.
pub fn lookup(name: &str) -> Option<MethodFn> {
    methods_strings::lookup(name)
        .or_else(|| methods_numbers::lookup(name))
        .or_else(|| methods_collections::lookup(name))
        .or_else(|| methods_encoding::lookup(name))
        .or_else(|| methods_regex::lookup(name))
        .or_else(|| methods_time::lookup(name))
        .or_else(|| methods_parse::lookup(name))
}

pub type Res<'a, T> = Result<T, Flow<'a>>;

/// The evaluated argument at `pos` / `name`, or None when absent.
pub fn opt<'a>(
    ctx: &Ctx<'a, '_>,
    call: &Call,
    pos: usize,
    name: &str,
) -> Res<'a, Option<Value<'a>>> {
    match call.arg(pos, name) {
        Some(e) => ctx.eval(e).map(Some),
        None => Ok(None),
    }
}

/// The evaluated argument at `pos` / `name`; an error when absent.
pub fn req<'a>(ctx: &Ctx<'a, '_>, call: &Call, pos: usize, name: &str) -> Res<'a, Value<'a>> {
    match opt(ctx, call, pos, name)? {
        Some(v) => Ok(v),
        None => ctx.fail(&format!("{}: missing parameter: {name}", call.name)),
    }
}

pub fn req_str<'a>(ctx: &Ctx<'a, '_>, call: &Call, pos: usize, name: &str) -> Res<'a, &'a str> {
    let v = req(ctx, call, pos, name)?;
    as_str(ctx, v)
}

pub fn opt_str<'a>(
    ctx: &Ctx<'a, '_>,
    call: &Call,
    pos: usize,
    name: &str,
) -> Res<'a, Option<&'a str>> {
    match opt(ctx, call, pos, name)? {
        Some(v) => as_str(ctx, v).map(Some),
        None => Ok(None),
    }
}

pub fn opt_bool<'a>(
    ctx: &Ctx<'a, '_>,
    call: &Call,
    pos: usize,
    name: &str,
    dflt: bool,
) -> Res<'a, bool> {
    match opt(ctx, call, pos, name)? {
        Some(Value::Bool(b)) => Ok(b),
        Some(other) => expected(ctx, "bool", &other),
        None => Ok(dflt),
    }
}

pub fn opt_i64<'a>(ctx: &Ctx<'a, '_>, call: &Call, pos: usize, name: &str) -> Res<'a, Option<i64>> {
    match opt(ctx, call, pos, name)? {
        Some(v) => as_i64(ctx, v).map(Some),
        None => Ok(None),
    }
}

pub fn req_i64<'a>(ctx: &Ctx<'a, '_>, call: &Call, pos: usize, name: &str) -> Res<'a, i64> {
    let v = req(ctx, call, pos, name)?;
    as_i64(ctx, v)
}

/// A string or UTF-8 bytes value.
pub fn as_str<'a>(ctx: &Ctx<'a, '_>, v: Value<'a>) -> Res<'a, &'a str> {
    match v {
        Value::Str(s) => Ok(s),
        Value::Bytes(b) => Ok(crate::message::text_in(ctx.arena, b)),
        other => expected(ctx, "string", &other),
    }
}

/// String or bytes as bytes.
pub fn as_bytes<'a>(ctx: &Ctx<'a, '_>, v: Value<'a>) -> Res<'a, &'a [u8]> {
    match v {
        Value::Str(s) => Ok(s.as_bytes()),
        Value::Bytes(b) => Ok(b),
        other => expected(ctx, "string", &other),
    }
}

/// Bytes of any value: strings raw, others as JSON text.
pub fn any_bytes<'a>(ctx: &Ctx<'a, '_>, v: Value<'a>) -> &'a [u8] {
    match v {
        Value::Str(s) => s.as_bytes(),
        Value::Bytes(b) => b,
        other => super::eval::to_text(ctx.arena, &other).as_bytes(),
    }
}

pub fn as_f64<'a>(ctx: &Ctx<'a, '_>, v: Value<'a>) -> Res<'a, f64> {
    match v {
        Value::Int(i) => Ok(i as f64),
        Value::Float(f) => Ok(f),
        other => expected(ctx, "number", &other),
    }
}

pub fn as_i64<'a>(ctx: &Ctx<'a, '_>, v: Value<'a>) -> Res<'a, i64> {
    match v {
        Value::Int(i) => Ok(i),
        Value::Float(f) if f.fract() == 0.0 && f.abs() < 9.2e18 => Ok(f as i64),
        Value::Float(_) => ctx.fail(&format!(
            "expected integer value, got {}",
            describe_value(&v)
        )),
        other => expected(ctx, "number", &other),
    }
}

pub fn as_array<'a>(ctx: &Ctx<'a, '_>, v: Value<'a>) -> Res<'a, &'a [Value<'a>]> {
    match v {
        Value::Array(a) => Ok(a),
        other => expected(ctx, "array", &other),
    }
}

pub fn as_object<'a>(ctx: &Ctx<'a, '_>, v: Value<'a>) -> Res<'a, &'a [(&'a str, Value<'a>)]> {
    match v {
        Value::Object(o) => Ok(o),
        other => expected(ctx, "object", &other),
    }
}

/// A regex compiled once per call site (recompiled only when the pattern changes).
pub fn cached_regex(ctx: &Ctx<'_, '_>, call: &Call, pat: &str) -> Result<regex::Regex, String> {
    use super::ast::Cache;
    if let Some(Cache::Regex(p, r)) = call.cache.get() {
        if **p == *pat {
            return Ok(r.clone());
        }
    }
    let _ = ctx;
    let r = regex::Regex::new(pat).map_err(|e| e.to_string())?;
    let _ = call.cache.set(Cache::Regex(pat.into(), r.clone()));
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_knows_families() {
        for name in [
            "uppercase",
            "abs",
            "map_each",
            "encode",
            "re_match",
            "ts_format",
            "parse_json",
        ] {
            assert!(lookup(name).is_some(), "{name}");
        }
        assert!(lookup("no_such_method").is_none());
    }
}
