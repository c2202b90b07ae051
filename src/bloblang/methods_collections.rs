//! Generic and collection methods: type checks, conversions to string/bytes/array,
//! indexing and paths, lambdas over arrays and objects (`map_each`, `filter`, `fold`,
//! `sort_by`...), merging, diff/patch, JSON path queries, and `apply`/`bloblang`.

use bumpalo::collections::Vec as BVec;

use super::ast::{Cache, Call, MethodFn};
use super::eval::{
    self, compare, equal, expected, get_field, make_object, obj_get, set_path, type_name, Ctx,
    Flow, R,
};
use super::functions::dot_path;
use super::methods::{as_array, as_bytes, as_object, as_str, opt_bool, req, req_i64, req_str, Res};
use crate::message::Value;

pub fn lookup(name: &str) -> Option<MethodFn> {
    Some(match name {
        "type" => |_, v, _| Ok(Value::Str(type_name(&v))),
        "not_null" => |c, v, _| match v {
            Value::Null => c.fail("value is null"),
            v => Ok(v),
        },
        "not_empty" => not_empty,
        "array" => |c, v, _| match v {
            Value::Array(_) => Ok(v),
            v => Ok(Value::Array(c.arena.alloc_slice_copy(&[v]))),
        },
        "string" => |c, v, _| Ok(Value::Str(eval::to_text(c.arena, &v))),
        "bytes" => |c, v, _| Ok(Value::Bytes(super::methods::any_bytes(c, v))),
        "length" => length,
        "contains" => contains,
        "reverse" => reverse,
        "slice" => slice,
        "index" => index,
        "get" => |c, v, call| Ok(dot_path(v, req_str(c, call, 0, "path")?)),
        "exists" => exists,
        "apply" => |c, v, call| {
            let name = req_str(c, call, 0, "mapping")?;
            eval::apply_map(c, name, v)
        },
        "bloblang" => bloblang,
        "all" => all,
        "any" => any,
        "append" => append,
        "concat" => concat,
        "collapse" => collapse,
        "enumerated" => enumerated,
        "explode" => explode,
        "filter" => filter,
        "find" => |c, v, call| find(c, v, call, false, false),
        "find_all" => |c, v, call| find(c, v, call, true, false),
        "find_by" => |c, v, call| find(c, v, call, false, true),
        "find_all_by" => |c, v, call| find(c, v, call, true, true),
        "flatten" => flatten,
        "fold" => fold,
        "keys" => keys,
        "values" => values,
        "key_values" => key_values,
        "map_each" => map_each,
        "map_each_key" => map_each_key,
        "merge" => |c, v, call| {
            let o = req(c, call, 0, "with")?;
            Ok(merge(c, v, o, false))
        },
        "assign" => |c, v, call| {
            let o = req(c, call, 0, "with")?;
            Ok(merge(c, v, o, true))
        },
        "squash" => |c, v, _| {
            let items = as_array(c, v)?;
            let mut acc = Value::Object(&[]);
            for it in items {
                acc = merge(c, acc, *it, false);
            }
            Ok(acc)
        },
        "sort" => sort,
        "sort_by" => sort_by,
        "sum" => sum,
        "min" => |c, v, _| extreme(c, v, std::cmp::Ordering::Less),
        "max" => |c, v, _| extreme(c, v, std::cmp::Ordering::Greater),
        "unique" => unique,
        "without" => without,
        "with" => with,
        "zip" => zip,
        "diff" => diff,
        "patch" => patch,
        "json_path" => json_path,
        _ => return None,
    })
}

fn arr<'a>(ctx: &Ctx<'a, '_>, items: BVec<'a, Value<'a>>) -> Value<'a> {
    let _ = ctx;
    Value::Array(items.into_bump_slice())
}

fn kv<'a>(ctx: &Ctx<'a, '_>, k1: &'a str, v1: Value<'a>, k2: &'a str, v2: Value<'a>) -> Value<'a> {
    // Keys given in sorted order.
    Value::Object(ctx.arena.alloc_slice_copy(&[(k1, v1), (k2, v2)]))
}

fn not_empty<'a>(ctx: &Ctx<'a, '_>, v: Value<'a>, _: &Call) -> R<'a> {
    match v {
        Value::Str("") => ctx.fail("string value is empty"),
        Value::Bytes([]) => ctx.fail("bytes value is empty"),
        Value::Array([]) => ctx.fail("array value is empty"),
        Value::Object([]) => ctx.fail("object value is empty"),
        Value::Null => ctx.fail("value is null"),
        v => Ok(v),
    }
}

fn length<'a>(ctx: &Ctx<'a, '_>, v: Value<'a>, _: &Call) -> R<'a> {
    Ok(Value::Int(match v {
        Value::Str(s) => s.len(),
        Value::Bytes(b) => b.len(),
        Value::Array(a) => a.len(),
        Value::Object(o) => o.len(),
        other => return expected(ctx, "string, array or object", &other),
    } as i64))
}

fn contains<'a>(ctx: &Ctx<'a, '_>, v: Value<'a>, call: &Call) -> R<'a> {
    let needle = req(ctx, call, 0, "value")?;
    Ok(Value::Bool(match v {
        Value::Str(_) | Value::Bytes(_) => {
            let hay = as_bytes(ctx, v)?;
            let n = super::methods::any_bytes(ctx, needle);
            n.is_empty() || hay.windows(n.len()).any(|w| w == n)
        }
        Value::Array(a) => a.iter().any(|x| equal(x, &needle)),
        Value::Object(o) => o.iter().any(|(_, x)| equal(x, &needle)),
        other => return expected(ctx, "string, array or object", &other),
    }))
}

fn reverse<'a>(ctx: &Ctx<'a, '_>, v: Value<'a>, _: &Call) -> R<'a> {
    match v {
        Value::Str(s) => {
            let r: String = s.chars().rev().collect();
            Ok(ctx.str(&r))
        }
        Value::Bytes(b) => {
            let out = ctx.arena.alloc_slice_copy(b);
            out.reverse();
            Ok(Value::Bytes(out))
        }
        Value::Array(a) => {
            let out = ctx.arena.alloc_slice_copy(a);
            out.reverse();
            Ok(Value::Array(out))
        }
        other => expected(ctx, "string or array", &other),
    }
}

fn bounds<'a>(ctx: &Ctx<'a, '_>, call: &Call, len: usize) -> Res<'a, (usize, usize)> {
    let low = req_i64(ctx, call, 0, "low")?;
    let high = super::methods::opt_i64(ctx, call, 1, "high")?;
    let fix = |i: i64| -> usize {
        let i = if i < 0 { len as i64 + i } else { i };
        i.clamp(0, len as i64) as usize
    };
    let (l, h) = (fix(low), high.map(fix).unwrap_or(len));
    if l > h {
        return ctx.fail(&format!(
            "lower slice bound {l} must be lower than or equal to upper bound ({h})"
        ));
    }
    Ok((l, h))
}

fn slice<'a>(ctx: &Ctx<'a, '_>, v: Value<'a>, call: &Call) -> R<'a> {
    match v {
        Value::Str(s) => {
            let (l, h) = bounds(ctx, call, s.len())?;
            match s.get(l..h) {
                Some(sub) => Ok(Value::Str(sub)),
                None => Ok(ctx.str(&String::from_utf8_lossy(&s.as_bytes()[l..h]))),
            }
        }
        Value::Bytes(b) => {
            let (l, h) = bounds(ctx, call, b.len())?;
            Ok(Value::Bytes(&b[l..h]))
        }
        Value::Array(a) => {
            let (l, h) = bounds(ctx, call, a.len())?;
            Ok(Value::Array(&a[l..h]))
        }
        other => expected(ctx, "string or array", &other),
    }
}

fn index<'a>(ctx: &Ctx<'a, '_>, v: Value<'a>, call: &Call) -> R<'a> {
    let i = req_i64(ctx, call, 0, "index")?;
    let len = match v {
        Value::Array(a) => a.len(),
        Value::Bytes(b) => b.len(),
        Value::Str(s) => s.len(),
        other => return expected(ctx, "array", &other),
    } as i64;
    let idx = if i < 0 { len + i } else { i };
    if idx < 0 || idx >= len {
        return ctx.fail(&format!(
            "index {i} was out of bounds for array size: {len}"
        ));
    }
    Ok(match v {
        Value::Array(a) => a[idx as usize],
        Value::Bytes(b) => Value::Int(b[idx as usize] as i64),
        Value::Str(s) => Value::Int(s.as_bytes()[idx as usize] as i64),
        _ => Value::Null,
    })
}

fn exists<'a>(ctx: &Ctx<'a, '_>, v: Value<'a>, call: &Call) -> R<'a> {
    let path = req_str(ctx, call, 0, "path")?;
    let mut cur = v;
    for seg in path.split('.') {
        match cur {
            Value::Object(m) => match obj_get(m, seg) {
                Some(x) => cur = x,
                None => return Ok(Value::Bool(false)),
            },
            Value::Array(a) => match seg.parse::<usize>() {
                Ok(i) if i < a.len() => cur = a[i],
                _ => return Ok(Value::Bool(false)),
            },
            _ => return Ok(Value::Bool(false)),
        }
    }
    Ok(Value::Bool(true))
}

fn bloblang<'a>(ctx: &Ctx<'a, '_>, v: Value<'a>, call: &Call) -> R<'a> {
    let src = req_str(ctx, call, 0, "mapping")?;
    let cached = match call.cache.get() {
        Some(Cache::Mapping(s, m)) if **s == *src => Some(m.as_ref().clone()),
        _ => None,
    };
    let m = match cached {
        Some(m) => m,
        None => {
            let m = super::Mapping::parse(src).map_err(|e| ctx.err(&e.to_string()))?;
            let _ = call
                .cache
                .set(Cache::Mapping(src.into(), Box::new(m.clone())));
            m
        }
    };
    eval::run_sub(ctx, &m.prog, v)
}

fn pred<'a>(ctx: &Ctx<'a, '_>, q: &super::ast::Expr, v: Value<'a>) -> Res<'a, bool> {
    match ctx.apply(q, v)? {
        Value::Bool(b) => Ok(b),
        other => expected(ctx, "bool", &other),
    }
}

fn all<'a>(ctx: &Ctx<'a, '_>, v: Value<'a>, call: &Call) -> R<'a> {
    let q = call
        .arg(0, "test")
        .ok_or_else(|| ctx.err("missing parameter: test"))?;
    for it in as_array(ctx, v)? {
        if !pred(ctx, q, *it)? {
            return Ok(Value::Bool(false));
        }
    }
    Ok(Value::Bool(true))
}

fn any<'a>(ctx: &Ctx<'a, '_>, v: Value<'a>, call: &Call) -> R<'a> {
    let q = call
        .arg(0, "test")
        .ok_or_else(|| ctx.err("missing parameter: test"))?;
    for it in as_array(ctx, v)? {
        if pred(ctx, q, *it)? {
            return Ok(Value::Bool(true));
        }
    }
    Ok(Value::Bool(false))
}

fn append<'a>(ctx: &Ctx<'a, '_>, v: Value<'a>, call: &Call) -> R<'a> {
    let a = as_array(ctx, v)?;
    let mut out = BVec::from_iter_in(a.iter().copied(), ctx.arena);
    for arg in &call.args {
        out.push(ctx.eval(&arg.expr)?);
    }
    Ok(arr(ctx, out))
}

fn concat<'a>(ctx: &Ctx<'a, '_>, v: Value<'a>, call: &Call) -> R<'a> {
    let a = as_array(ctx, v)?;
    let mut out = BVec::from_iter_in(a.iter().copied(), ctx.arena);
    for arg in &call.args {
        let other = ctx.eval(&arg.expr)?;
        out.extend_from_slice_copy(as_array(ctx, other)?);
    }
    Ok(arr(ctx, out))
}

fn collapse_into<'a>(
    ctx: &Ctx<'a, '_>,
    prefix: &str,
    v: Value<'a>,
    empty: bool,
    out: &mut BVec<'a, (&'a str, Value<'a>)>,
) {
    let join = |k: &str| -> &'a str {
        if prefix.is_empty() {
            ctx.arena.alloc_str(k)
        } else {
            bumpalo::format!(in ctx.arena, "{}.{}", prefix, k).into_bump_str()
        }
    };
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, x) in m {
                collapse_into(ctx, join(k), *x, empty, out);
            }
        }
        Value::Array(a) if !a.is_empty() => {
            for (i, x) in a.iter().enumerate() {
                collapse_into(ctx, join(&i.to_string()), *x, empty, out);
            }
        }
        Value::Object(_) | Value::Array(_) => {
            if empty {
                out.push((ctx.arena.alloc_str(prefix), v));
            }
        }
        other => out.push((ctx.arena.alloc_str(prefix), other)),
    }
}

fn collapse<'a>(ctx: &Ctx<'a, '_>, v: Value<'a>, call: &Call) -> R<'a> {
    let empty = opt_bool(ctx, call, 0, "include_empty", false)?;
    let mut out = BVec::new_in(ctx.arena);
    collapse_into(ctx, "", v, empty, &mut out);
    Ok(make_object(ctx.arena, out))
}

fn enumerated<'a>(ctx: &Ctx<'a, '_>, v: Value<'a>, _: &Call) -> R<'a> {
    let a = as_array(ctx, v)?;
    let out = BVec::from_iter_in(
        a.iter()
            .enumerate()
            .map(|(i, x)| kv(ctx, "index", Value::Int(i as i64), "value", *x)),
        ctx.arena,
    );
    Ok(arr(ctx, out))
}

fn explode<'a>(ctx: &Ctx<'a, '_>, v: Value<'a>, call: &Call) -> R<'a> {
    let path = req_str(ctx, call, 0, "path")?;
    let segs: Vec<&str> = path.split('.').collect();
    match dot_path(v, path) {
        Value::Array(a) => {
            let out = BVec::from_iter_in(
                a.iter().map(|x| set_path(ctx.arena, v, &segs, Some(*x))),
                ctx.arena,
            );
            Ok(arr(ctx, out))
        }
        Value::Object(m) => {
            let out = BVec::from_iter_in(
                m.iter()
                    .map(|(k, x)| (*k, set_path(ctx.arena, v, &segs, Some(*x)))),
                ctx.arena,
            );
            Ok(Value::Object(out.into_bump_slice()))
        }
        other => expected(ctx, "array or object", &other),
    }
}

fn filter<'a>(ctx: &Ctx<'a, '_>, v: Value<'a>, call: &Call) -> R<'a> {
    let q = call
        .arg(0, "test")
        .ok_or_else(|| ctx.err("missing parameter: test"))?;
    match v {
        Value::Array(a) => {
            let mut out = BVec::new_in(ctx.arena);
            for it in a {
                if pred(ctx, q, *it)? {
                    out.push(*it);
                }
            }
            Ok(arr(ctx, out))
        }
        Value::Object(m) => {
            let mut out = BVec::new_in(ctx.arena);
            for (k, x) in m {
                if pred(ctx, q, kv(ctx, "key", Value::Str(k), "value", *x))? {
                    out.push((*k, *x));
                }
            }
            Ok(Value::Object(out.into_bump_slice()))
        }
        other => expected(ctx, "array or object", &other),
    }
}

fn find<'a>(ctx: &Ctx<'a, '_>, v: Value<'a>, call: &Call, all: bool, by: bool) -> R<'a> {
    let a = as_array(ctx, v)?;
    let mut hits = BVec::new_in(ctx.arena);
    let target = if by {
        None
    } else {
        Some(req(ctx, call, 0, "value")?)
    };
    for (i, it) in a.iter().enumerate() {
        let hit = match target {
            Some(t) => equal(it, &t),
            None => {
                let q = call
                    .arg(0, "query")
                    .ok_or_else(|| ctx.err("missing parameter: query"))?;
                pred(ctx, q, *it)?
            }
        };
        if hit {
            if !all {
                return Ok(Value::Int(i as i64));
            }
            hits.push(Value::Int(i as i64));
        }
    }
    Ok(if all { arr(ctx, hits) } else { Value::Int(-1) })
}

fn flatten<'a>(ctx: &Ctx<'a, '_>, v: Value<'a>, _: &Call) -> R<'a> {
    let a = as_array(ctx, v)?;
    let mut out = BVec::new_in(ctx.arena);
    for it in a {
        match it {
            Value::Array(inner) => out.extend_from_slice_copy(inner),
            other => out.push(*other),
        }
    }
    Ok(arr(ctx, out))
}

fn fold<'a>(ctx: &Ctx<'a, '_>, v: Value<'a>, call: &Call) -> R<'a> {
    let a = as_array(ctx, v)?;
    let mut tally = req(ctx, call, 0, "initial")?;
    let q = call
        .arg(1, "query")
        .ok_or_else(|| ctx.err("missing parameter: query"))?;
    for it in a {
        tally = ctx.apply(q, kv(ctx, "tally", tally, "value", *it))?;
    }
    Ok(tally)
}

fn keys<'a>(ctx: &Ctx<'a, '_>, v: Value<'a>, _: &Call) -> R<'a> {
    let m = as_object(ctx, v)?;
    Ok(arr(
        ctx,
        BVec::from_iter_in(m.iter().map(|(k, _)| Value::Str(k)), ctx.arena),
    ))
}

fn values<'a>(ctx: &Ctx<'a, '_>, v: Value<'a>, _: &Call) -> R<'a> {
    let m = as_object(ctx, v)?;
    Ok(arr(
        ctx,
        BVec::from_iter_in(m.iter().map(|(_, x)| *x), ctx.arena),
    ))
}

fn key_values<'a>(ctx: &Ctx<'a, '_>, v: Value<'a>, _: &Call) -> R<'a> {
    let m = as_object(ctx, v)?;
    let out = BVec::from_iter_in(
        m.iter()
            .map(|(k, x)| kv(ctx, "key", Value::Str(k), "value", *x)),
        ctx.arena,
    );
    Ok(arr(ctx, out))
}

fn map_each<'a>(ctx: &Ctx<'a, '_>, v: Value<'a>, call: &Call) -> R<'a> {
    let q = call
        .arg(0, "query")
        .ok_or_else(|| ctx.err("missing parameter: query"))?;
    match v {
        Value::Array(a) => {
            let mut out = BVec::with_capacity_in(a.len(), ctx.arena);
            for it in a {
                match ctx.apply(q, *it) {
                    Ok(x) => out.push(x),
                    Err(Flow::Deleted) => {}
                    Err(Flow::Nothing) => out.push(*it),
                    Err(e) => return Err(e),
                }
            }
            Ok(arr(ctx, out))
        }
        Value::Object(m) => {
            let mut out = BVec::with_capacity_in(m.len(), ctx.arena);
            for (k, x) in m {
                match ctx.apply(q, kv(ctx, "key", Value::Str(k), "value", *x)) {
                    Ok(nv) => out.push((*k, nv)),
                    Err(Flow::Deleted) => {}
                    Err(Flow::Nothing) => out.push((*k, *x)),
                    Err(e) => return Err(e),
                }
            }
            Ok(Value::Object(out.into_bump_slice()))
        }
        other => expected(ctx, "array or object", &other),
    }
}

fn map_each_key<'a>(ctx: &Ctx<'a, '_>, v: Value<'a>, call: &Call) -> R<'a> {
    let q = call
        .arg(0, "query")
        .ok_or_else(|| ctx.err("missing parameter: query"))?;
    let m = as_object(ctx, v)?;
    let mut out = BVec::with_capacity_in(m.len(), ctx.arena);
    for (k, x) in m {
        match ctx.apply(q, Value::Str(k)) {
            Ok(Value::Str(nk)) => out.push((nk, *x)),
            Ok(other) => return expected(ctx, "string", &other),
            Err(Flow::Deleted) => {}
            Err(Flow::Nothing) => out.push((*k, *x)),
            Err(e) => return Err(e),
        }
    }
    Ok(make_object(ctx.arena, out))
}

/// `merge` (collisions become arrays) or `assign` (the right side wins); objects merge
/// recursively, arrays concatenate.
pub fn merge<'a>(ctx: &Ctx<'a, '_>, a: Value<'a>, b: Value<'a>, assign: bool) -> Value<'a> {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let mut out = BVec::from_iter_in(x.iter().copied(), ctx.arena);
            for (k, bv) in y {
                match out.binary_search_by(|(ok, _)| (*ok).cmp(k)) {
                    Ok(i) => out[i].1 = merge(ctx, out[i].1, *bv, assign),
                    Err(i) => out.insert(i, (*k, *bv)),
                }
            }
            Value::Object(out.into_bump_slice())
        }
        (Value::Array(x), Value::Array(y)) => {
            let mut out = BVec::from_iter_in(x.iter().copied(), ctx.arena);
            out.extend_from_slice_copy(y);
            Value::Array(out.into_bump_slice())
        }
        (_, b) if assign => b,
        (Value::Array(x), b) => {
            let mut out = BVec::from_iter_in(x.iter().copied(), ctx.arena);
            out.push(b);
            Value::Array(out.into_bump_slice())
        }
        (a, b) => Value::Array(ctx.arena.alloc_slice_copy(&[a, b])),
    }
}

/// Stable merge sort driven by a "less than" predicate. Unlike `slice::sort_by`, it
/// cannot panic when a user-supplied comparison is inconsistent.
fn merge_sort<T: Copy>(items: &mut [T], less: &mut dyn FnMut(&T, &T) -> bool) {
    if items.len() < 2 {
        return;
    }
    let mid = items.len() / 2;
    merge_sort(&mut items[..mid], less);
    merge_sort(&mut items[mid..], less);
    let mut merged = Vec::with_capacity(items.len());
    let (mut i, mut j) = (0, mid);
    while i < mid && j < items.len() {
        if less(&items[j], &items[i]) {
            merged.push(items[j]);
            j += 1;
        } else {
            merged.push(items[i]);
            i += 1;
        }
    }
    merged.extend_from_slice(&items[i..mid]);
    merged.extend_from_slice(&items[j..]);
    items.copy_from_slice(&merged);
}

fn sort<'a>(ctx: &Ctx<'a, '_>, v: Value<'a>, call: &Call) -> R<'a> {
    let a = as_array(ctx, v)?;
    let mut items: Vec<Value<'a>> = a.to_vec();
    let mut err = None;
    match call.arg(0, "compare") {
        Some(q) => merge_sort(&mut items, &mut |l, r| {
            if err.is_some() {
                return false;
            }
            match pred(ctx, q, kv(ctx, "left", *l, "right", *r)) {
                Ok(b) => b,
                Err(e) => {
                    err = Some(e);
                    false
                }
            }
        }),
        None => merge_sort(&mut items, &mut |l, r| match compare(l, r) {
            Some(o) => o == std::cmp::Ordering::Less,
            None => {
                if err.is_none() {
                    err = Some(ctx.err(&format!(
                        "cannot compare {} and {}",
                        type_name(l),
                        type_name(r)
                    )));
                }
                false
            }
        }),
    }
    if let Some(e) = err {
        return Err(e);
    }
    Ok(Value::Array(ctx.arena.alloc_slice_copy(&items)))
}

fn sort_by<'a>(ctx: &Ctx<'a, '_>, v: Value<'a>, call: &Call) -> R<'a> {
    let a = as_array(ctx, v)?;
    let q = call
        .arg(0, "query")
        .ok_or_else(|| ctx.err("missing parameter: query"))?;
    let mut keyed = Vec::with_capacity(a.len());
    for it in a {
        keyed.push((ctx.apply(q, *it)?, *it));
    }
    let mut err = None;
    merge_sort(&mut keyed, &mut |l, r| match compare(&l.0, &r.0) {
        Some(o) => o == std::cmp::Ordering::Less,
        None => {
            err = Some(ctx.err("sort_by query returned values that cannot be compared"));
            false
        }
    });
    if let Some(e) = err {
        return Err(e);
    }
    Ok(arr(
        ctx,
        BVec::from_iter_in(keyed.into_iter().map(|(_, x)| x), ctx.arena),
    ))
}

fn sum<'a>(ctx: &Ctx<'a, '_>, v: Value<'a>, _: &Call) -> R<'a> {
    let mut ints: i64 = 0;
    let mut float: Option<f64> = None;
    for it in as_array(ctx, v)? {
        match *it {
            Value::Int(i) if float.is_none() => match ints.checked_add(i) {
                Some(s) => ints = s,
                None => float = Some(ints as f64 + i as f64),
            },
            Value::Int(i) => float = float.map(|f| f + i as f64),
            Value::Float(f) => float = Some(float.unwrap_or(ints as f64) + f),
            other => return expected(ctx, "number", &other),
        }
    }
    Ok(float.map(Value::Float).unwrap_or(Value::Int(ints)))
}

fn extreme<'a>(ctx: &Ctx<'a, '_>, v: Value<'a>, want: std::cmp::Ordering) -> R<'a> {
    let a = as_array(ctx, v)?;
    let mut best: Option<Value<'a>> = None;
    for it in a {
        if !matches!(it, Value::Int(_) | Value::Float(_)) {
            return expected(ctx, "number", it);
        }
        best = match best {
            Some(b) if compare(it, &b) != Some(want) => Some(b),
            _ => Some(*it),
        };
    }
    best.ok_or_else(|| ctx.err("the array was empty"))
}

fn unique<'a>(ctx: &Ctx<'a, '_>, v: Value<'a>, call: &Call) -> R<'a> {
    let a = as_array(ctx, v)?;
    let q = call.arg(0, "emit");
    let mut seen: Vec<Value<'a>> = Vec::new();
    let mut out = BVec::new_in(ctx.arena);
    for it in a {
        let key = match q {
            Some(q) => ctx.apply(q, *it)?,
            None => *it,
        };
        if !seen.iter().any(|s| equal(s, &key)) {
            seen.push(key);
            out.push(*it);
        }
    }
    Ok(arr(ctx, out))
}

fn without<'a>(ctx: &Ctx<'a, '_>, v: Value<'a>, call: &Call) -> R<'a> {
    let mut cur = v;
    for a in &call.args {
        let p = as_str(ctx, ctx.eval(&a.expr)?)?;
        let segs: Vec<&str> = p.split('.').collect();
        cur = set_path(ctx.arena, cur, &segs, None);
    }
    Ok(cur)
}

fn with<'a>(ctx: &Ctx<'a, '_>, v: Value<'a>, call: &Call) -> R<'a> {
    as_object(ctx, v)?;
    let mut out = Value::Object(&[]);
    for a in &call.args {
        let p = as_str(ctx, ctx.eval(&a.expr)?)?;
        let segs: Vec<&str> = p.split('.').collect();
        let mut cur = v;
        let mut found = true;
        for s in &segs {
            match cur {
                Value::Object(m) => match obj_get(m, s) {
                    Some(x) => cur = x,
                    None => {
                        found = false;
                        break;
                    }
                },
                _ => {
                    found = false;
                    break;
                }
            }
        }
        if found {
            out = set_path(ctx.arena, out, &segs, Some(cur));
        }
    }
    Ok(out)
}

fn zip<'a>(ctx: &Ctx<'a, '_>, v: Value<'a>, call: &Call) -> R<'a> {
    let mut lists = vec![as_array(ctx, v)?];
    for a in &call.args {
        let x = ctx.eval(&a.expr)?;
        lists.push(as_array(ctx, x)?);
    }
    let n = lists.iter().map(|l| l.len()).min().unwrap_or(0);
    let mut out = BVec::with_capacity_in(n, ctx.arena);
    for i in 0..n {
        let row = BVec::from_iter_in(lists.iter().map(|l| l[i]), ctx.arena);
        out.push(Value::Array(row.into_bump_slice()));
    }
    Ok(arr(ctx, out))
}

fn change<'a>(
    ctx: &Ctx<'a, '_>,
    ty: &'a str,
    path: &[&'a str],
    from: Value<'a>,
    to: Value<'a>,
) -> Value<'a> {
    let p = BVec::from_iter_in(path.iter().map(|s| Value::Str(s)), ctx.arena);
    Value::Object(ctx.arena.alloc_slice_copy(&[
        ("From", from),
        ("Path", Value::Array(p.into_bump_slice())),
        ("To", to),
        ("Type", Value::Str(ty)),
    ]))
}

fn diff_into<'a>(
    ctx: &Ctx<'a, '_>,
    path: &mut Vec<&'a str>,
    a: Value<'a>,
    b: Value<'a>,
    out: &mut BVec<'a, Value<'a>>,
) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let mut keys: Vec<&'a str> = x
                .iter()
                .map(|(k, _)| *k)
                .chain(y.iter().map(|(k, _)| *k))
                .collect();
            keys.sort_unstable();
            keys.dedup();
            for k in keys {
                path.push(k);
                match (obj_get(x, k), obj_get(y, k)) {
                    (Some(p), Some(q)) => diff_into(ctx, path, p, q, out),
                    (Some(p), None) => out.push(change(ctx, "delete", path, p, Value::Null)),
                    (None, Some(q)) => out.push(change(ctx, "create", path, Value::Null, q)),
                    (None, None) => {}
                }
                path.pop();
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            for i in 0..x.len().max(y.len()) {
                let k: &'a str = ctx.arena.alloc_str(&i.to_string());
                path.push(k);
                match (x.get(i), y.get(i)) {
                    (Some(p), Some(q)) => diff_into(ctx, path, *p, *q, out),
                    (Some(p), None) => out.push(change(ctx, "delete", path, *p, Value::Null)),
                    (None, Some(q)) => out.push(change(ctx, "create", path, Value::Null, *q)),
                    (None, None) => {}
                }
                path.pop();
            }
        }
        (p, q) => {
            if !equal(&p, &q) {
                out.push(change(ctx, "update", path, p, q));
            }
        }
    }
}

fn diff<'a>(ctx: &Ctx<'a, '_>, v: Value<'a>, call: &Call) -> R<'a> {
    let other = req(ctx, call, 0, "other")?;
    let mut out = BVec::new_in(ctx.arena);
    diff_into(ctx, &mut Vec::new(), v, other, &mut out);
    Ok(arr(ctx, out))
}

fn patch<'a>(ctx: &Ctx<'a, '_>, v: Value<'a>, call: &Call) -> R<'a> {
    let changes = as_array(ctx, req(ctx, call, 0, "changelog")?)?;
    let mut cur = v;
    for c in changes {
        let ty = as_str(ctx, get_field(*c, "Type"))?;
        let path = as_array(ctx, get_field(*c, "Path"))?;
        let segs: Vec<&str> = path.iter().map(|p| eval::to_text(ctx.arena, p)).collect();
        cur = match ty {
            "create" | "update" => set_path(ctx.arena, cur, &segs, Some(get_field(*c, "To"))),
            "delete" => set_path(ctx.arena, cur, &segs, None),
            other => return ctx.fail(&format!("unknown change type: {other}")),
        };
    }
    Ok(cur)
}

// ----- JSON path (a practical subset: $, .name, ['name'], [n], [*], .., [?(@.k op lit)]) -----

#[derive(Debug)]
enum JpStep {
    Child(String),
    Index(i64),
    Wild,
    Descend(Box<JpStep>),
    Filter(String, String, String),
}

fn jp_parse(p: &str) -> Result<Vec<JpStep>, String> {
    let s = p.strip_prefix('$').ok_or("json path must start with $")?;
    let b = s.as_bytes();
    let mut i = 0;
    let mut steps = Vec::new();
    while i < b.len() {
        let descend = s[i..].starts_with("..");
        if descend {
            i += 2;
        } else if b[i] == b'.' {
            i += 1;
        }
        let step = if i < b.len() && b[i] == b'[' {
            let end = s[i..].find(']').ok_or("unclosed [")? + i;
            let inner = s[i + 1..end].trim();
            i = end + 1;
            if inner == "*" {
                JpStep::Wild
            } else if let Some(f) = inner.strip_prefix("?(").and_then(|f| f.strip_suffix(')')) {
                let f = f.trim().strip_prefix("@.").ok_or("unsupported filter")?;
                let ops = ["==", "!=", ">=", "<=", ">", "<"];
                let (op, pos) = ops
                    .iter()
                    .filter_map(|o| f.find(o).map(|p| (*o, p)))
                    .min_by_key(|x| x.1)
                    .ok_or("unsupported filter")?;
                JpStep::Filter(
                    f[..pos].trim().to_string(),
                    op.to_string(),
                    f[pos + op.len()..].trim().to_string(),
                )
            } else if let Ok(n) = inner.parse::<i64>() {
                JpStep::Index(n)
            } else {
                JpStep::Child(inner.trim_matches(|c| c == '\'' || c == '"').to_string())
            }
        } else {
            let start = i;
            while i < b.len() && b[i] != b'.' && b[i] != b'[' {
                i += 1;
            }
            match &s[start..i] {
                "*" => JpStep::Wild,
                "" => return Err("empty path segment".into()),
                name => JpStep::Child(name.to_string()),
            }
        };
        steps.push(if descend {
            JpStep::Descend(Box::new(step))
        } else {
            step
        });
    }
    Ok(steps)
}

fn jp_lit<'a>(ctx: &Ctx<'a, '_>, s: &str) -> Value<'a> {
    let t = s.trim_matches(|c| c == '\'' || c == '"');
    if t.len() != s.len() {
        return ctx.str(t);
    }
    super::json::parse(ctx.arena, ctx.arena.alloc_slice_copy(s.as_bytes())).unwrap_or(Value::Null)
}

fn jp_step<'a>(ctx: &Ctx<'a, '_>, step: &JpStep, v: Value<'a>, out: &mut Vec<Value<'a>>) {
    match step {
        JpStep::Child(name) => {
            if let Value::Object(m) = v {
                if let Some(x) = obj_get(m, name) {
                    out.push(x);
                }
            }
        }
        JpStep::Index(n) => {
            if let Value::Array(a) = v {
                let i = if *n < 0 { a.len() as i64 + n } else { *n };
                if i >= 0 && (i as usize) < a.len() {
                    out.push(a[i as usize]);
                }
            }
        }
        JpStep::Wild => match v {
            Value::Object(m) => out.extend(m.iter().map(|(_, x)| *x)),
            Value::Array(a) => out.extend(a.iter().copied()),
            _ => {}
        },
        JpStep::Filter(k, op, lit) => {
            let items: Vec<Value<'a>> = match v {
                Value::Array(a) => a.to_vec(),
                Value::Object(m) => m.iter().map(|(_, x)| *x).collect(),
                _ => Vec::new(),
            };
            let want = jp_lit(ctx, lit);
            for it in items {
                let got = dot_path(it, k);
                let ord = compare(&got, &want);
                let ok = match op.as_str() {
                    "==" => equal(&got, &want),
                    "!=" => !equal(&got, &want),
                    ">" => ord == Some(std::cmp::Ordering::Greater),
                    "<" => ord == Some(std::cmp::Ordering::Less),
                    ">=" => matches!(
                        ord,
                        Some(std::cmp::Ordering::Greater | std::cmp::Ordering::Equal)
                    ),
                    _ => matches!(
                        ord,
                        Some(std::cmp::Ordering::Less | std::cmp::Ordering::Equal)
                    ),
                };
                if ok {
                    out.push(it);
                }
            }
        }
        JpStep::Descend(inner) => {
            jp_step(ctx, inner, v, out);
            match v {
                Value::Object(m) => {
                    for (_, x) in m {
                        jp_step(ctx, step, *x, out);
                    }
                }
                Value::Array(a) => {
                    for x in a {
                        jp_step(ctx, step, *x, out);
                    }
                }
                _ => {}
            }
        }
    }
}

fn json_path<'a>(ctx: &Ctx<'a, '_>, v: Value<'a>, call: &Call) -> R<'a> {
    let p = req_str(ctx, call, 0, "expression")?;
    let steps = jp_parse(p).map_err(|e| ctx.err(&e))?;
    let mut cur = vec![v];
    for st in &steps {
        let mut next = Vec::new();
        for x in cur {
            jp_step(ctx, st, x, &mut next);
        }
        cur = next;
    }
    Ok(Value::Array(ctx.arena.alloc_slice_copy(&cur)))
}

#[cfg(test)]
mod tests {
    use super::super::test_eval as eval;

    #[test]
    fn lambdas_over_arrays() {
        assert_eq!(
            eval(
                "root = this.map_each(x -> x * 2).filter(x -> x > 2)",
                "[1,2,3]"
            ),
            "[4,6]"
        );
        assert_eq!(
            eval("root = this.fold(0, t -> t.tally + t.value)", "[1,2,3]"),
            "6"
        );
        assert_eq!(eval("root = this.sort_by(x -> -x)", "[1,3,2]"), "[3,2,1]");
        assert_eq!(
            eval("root = this.sort(p -> p.left > p.right)", "[1,3,2]"),
            "[3,2,1]"
        );
        assert_eq!(
            eval(
                "root = [this.any(x -> x == 2), this.all(x -> x > 0)]",
                "[1,2]"
            ),
            "[true,true]"
        );
        assert_eq!(eval("root = this.unique()", "[1,1.0,\"1\"]"), "[1,\"1\"]");
    }

    #[test]
    fn objects() {
        assert_eq!(
            eval("root = this.map_each(kv -> kv.value + 1)", r#"{"a":1}"#),
            r#"{"a":2}"#
        );
        assert_eq!(
            eval(
                "root = this.a.merge(this.b)",
                r#"{"a":{"x":1},"b":{"x":2,"y":3}}"#
            ),
            r#"{"x":[1,2],"y":3}"#
        );
        assert_eq!(
            eval("root = this.without(\"a.b\")", r#"{"a":{"b":1,"c":2}}"#),
            r#"{"a":{"c":2}}"#
        );
        assert_eq!(
            eval("root = this.collapse()", r#"{"a":[{"b":1}]}"#),
            r#"{"a.0.b":1}"#
        );
        assert_eq!(
            eval("root = this.exists(\"a.0\")", r#"{"a":[null]}"#),
            "true"
        );
    }

    #[test]
    fn diff_patch_roundtrip() {
        let out = eval(
            "root = this.a.patch(this.a.diff(this.b)) == this.b",
            r#"{"a":{"x":1,"y":[1]},"b":{"y":[2,3],"z":true}}"#,
        );
        assert_eq!(out, "true");
    }

    #[test]
    fn json_paths() {
        assert_eq!(
            eval(
                "root = this.json_path(\"$.a[*].b\")",
                r#"{"a":[{"b":1},{"b":2}]}"#
            ),
            "[1,2]"
        );
        assert_eq!(
            eval("root = this.json_path(\"$..b\")", r#"{"a":{"b":1},"b":2}"#),
            "[2,1]"
        );
    }

    #[test]
    fn errors() {
        assert!(eval("root = this.index(5)", "[1]").starts_with("ERR"));
        assert!(eval("root = this.not_empty()", "[]").contains("array value is empty"));
    }
}
