//! Bloblang functions (`name(args)` without a target): message access, counters,
//! identifiers, randomness, clocks, environment.

use bumpalo::collections::Vec as BVec;
use rand::Rng;

use super::ast::{Call, FuncFn};
use super::eval::{get_field, make_object, Ctx, Flow, R};
use super::methods::{opt, opt_i64, opt_str, req_str};
use crate::message::Value;

/// The implementation of function `name`, if it exists.
pub fn lookup(name: &str) -> Option<FuncFn> {
    Some(match name {
        "content" => content,
        "json" => json,
        "deleted" => |_, _| Err(Flow::Deleted),
        "nothing" => |_, _| Err(Flow::Nothing),
        "throw" => throw,
        "range" => range,
        "count" => count,
        "counter" => counter,
        "meta" => meta,
        "metadata" => metadata,
        "error" => error,
        "errored" => |ctx, _| Ok(Value::Bool(ctx.message().error.is_some())),
        "batch_index" => |ctx, _| Ok(Value::Int(ctx.env.index as i64)),
        "batch_size" => |ctx, _| Ok(Value::Int(ctx.env.batch.len() as i64)),
        "now" => |ctx, _| {
            Ok(ctx.str(&super::methods_time::format_rfc3339(
                chrono::Utc::now().into(),
            )))
        },
        "timestamp_unix" => |_, _| Ok(Value::Int(chrono::Utc::now().timestamp())),
        "timestamp_unix_milli" => |_, _| Ok(Value::Int(chrono::Utc::now().timestamp_millis())),
        "timestamp_unix_micro" => |_, _| Ok(Value::Int(chrono::Utc::now().timestamp_micros())),
        "timestamp_unix_nano" => |_, _| {
            Ok(Value::Int(
                chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0),
            ))
        },
        "uuid_v4" => |ctx, _| Ok(ctx.str(&uuid::Uuid::new_v4().to_string())),
        "uuid_v7" => |ctx, _| Ok(ctx.str(&uuid::Uuid::now_v7().to_string())),
        "nanoid" => nanoid,
        "ksuid" => |ctx, _| Ok(ctx.str(&ksuid())),
        "random_int" => random_int,
        "hostname" => hostname,
        "env" => env,
        "file" => file,
        "tracing_id" => |_, _| Ok(Value::Str("")),
        "tracing_span" => |_, _| Ok(Value::Null),
        "pi" => |_, _| Ok(Value::Float(std::f64::consts::PI)),
        _ => return None,
    })
}

fn content<'a>(ctx: &Ctx<'a, '_>, _: &Call) -> R<'a> {
    Ok(Value::Bytes(ctx.message().payload))
}

/// Follows a dotted path (`a.b.0`) into `v`.
pub fn dot_path<'a>(mut v: Value<'a>, path: &str) -> Value<'a> {
    if path.is_empty() {
        return v;
    }
    for seg in path.split('.') {
        v = get_field(v, seg);
    }
    v
}

fn json<'a>(ctx: &Ctx<'a, '_>, call: &Call) -> R<'a> {
    let doc = ctx.input()?;
    let path = opt_str(ctx, call, 0, "path")?.unwrap_or("");
    Ok(dot_path(doc, path))
}

fn throw<'a>(ctx: &Ctx<'a, '_>, call: &Call) -> R<'a> {
    let msg = req_str(ctx, call, 0, "why")?;
    Err(Flow::Err(msg))
}

/// Largest array `range()` builds.
const MAX_RANGE: i128 = 1 << 24;

fn range<'a>(ctx: &Ctx<'a, '_>, call: &Call) -> R<'a> {
    let start = opt_i64(ctx, call, 0, "start")?.unwrap_or(0);
    let stop = opt_i64(ctx, call, 1, "stop")?.unwrap_or(0);
    let step = opt_i64(ctx, call, 2, "step")?.unwrap_or(if stop < start { -1 } else { 1 });
    if step == 0 {
        return ctx.fail("step must not be zero");
    }
    if (step > 0 && stop < start) || (step < 0 && stop > start) {
        return ctx.fail("with positive step arg start must be less than stop, with negative step arg stop must be less than start");
    }
    // Upstream sizes the result as (stop - start) / step, truncating: range(0, 250, 100)
    // is [0, 100].
    let n = (stop as i128 - start as i128) / step as i128;
    if n > MAX_RANGE {
        return ctx.fail(&format!(
            "range of {n} elements exceeds the limit of {MAX_RANGE}"
        ));
    }
    let n = n as i64;
    let mut out = BVec::with_capacity_in(n as usize, ctx.arena);
    for k in 0..n {
        out.push(Value::Int(start + k * step));
    }
    Ok(Value::Array(out.into_bump_slice()))
}

fn count<'a>(_: &Ctx<'a, '_>, call: &Call) -> R<'a> {
    let n = call.state.get() + 1;
    call.state.set(n);
    Ok(Value::Int(n))
}

fn counter<'a>(ctx: &Ctx<'a, '_>, call: &Call) -> R<'a> {
    let min = opt_i64(ctx, call, 0, "min")?.unwrap_or(1);
    let max = opt_i64(ctx, call, 1, "max")?.unwrap_or(i64::MAX);
    if let Some(e) = call.arg(2, "set") {
        match ctx.eval(e) {
            Err(Flow::Nothing) => {}
            Ok(Value::Null) => {
                return Ok(Value::Int(if call.started.get() {
                    call.state.get()
                } else {
                    min
                }));
            }
            Ok(v) => {
                let n = super::methods::as_i64(ctx, v)?;
                call.state.set(n);
                call.started.set(true);
                return Ok(Value::Int(n));
            }
            Err(f) => return Err(f),
        }
    }
    let next = if !call.started.get() {
        min
    } else {
        let c = call.state.get();
        if c >= max {
            min
        } else {
            c + 1
        }
    };
    call.started.set(true);
    call.state.set(next);
    Ok(Value::Int(next))
}

fn meta<'a>(ctx: &Ctx<'a, '_>, call: &Call) -> R<'a> {
    let msg = ctx.message();
    match opt_str(ctx, call, 0, "key")? {
        Some(k) => Ok(match msg.meta.get(k) {
            Some(v) => Value::Str(v.to_text(ctx.arena)),
            None => Value::Null,
        }),
        None => {
            let items = BVec::from_iter_in(
                msg.meta
                    .iter()
                    .map(|(k, v)| (k, Value::Str(v.to_text(ctx.arena)))),
                ctx.arena,
            );
            Ok(make_object(ctx.arena, items))
        }
    }
}

fn metadata<'a>(ctx: &Ctx<'a, '_>, call: &Call) -> R<'a> {
    let msg = ctx.message();
    match opt_str(ctx, call, 0, "key")? {
        Some(k) => Ok(msg.meta.get(k).unwrap_or(Value::Null)),
        None => {
            let items = BVec::from_iter_in(msg.meta.iter(), ctx.arena);
            Ok(make_object(ctx.arena, items))
        }
    }
}

fn error<'a>(ctx: &Ctx<'a, '_>, _: &Call) -> R<'a> {
    Ok(match ctx.message().error {
        Some(e) => Value::Str(e),
        None => Value::Null,
    })
}

const NANOID_ALPHABET: &str = "_-0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";

fn nanoid<'a>(ctx: &Ctx<'a, '_>, call: &Call) -> R<'a> {
    let len = opt_i64(ctx, call, 0, "length")?.unwrap_or(21);
    let alphabet = opt_str(ctx, call, 1, "alphabet")?.unwrap_or(NANOID_ALPHABET);
    let chars: Vec<char> = alphabet.chars().collect();
    if chars.is_empty() || !(0..=4096).contains(&len) {
        return ctx.fail("invalid nanoid parameters");
    }
    let mut rng = rand::thread_rng();
    let s: String = (0..len)
        .map(|_| chars[rng.gen_range(0..chars.len())])
        .collect();
    Ok(ctx.str(&s))
}

/// A KSUID: 4 bytes of seconds since 2014-05-13 plus 16 random bytes, base62, 27 chars.
pub fn ksuid() -> String {
    const EPOCH: i64 = 1_400_000_000;
    const ALPHA: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let ts = (chrono::Utc::now().timestamp() - EPOCH) as u32;
    let mut bytes = [0u8; 20];
    bytes[..4].copy_from_slice(&ts.to_be_bytes());
    rand::thread_rng().fill(&mut bytes[4..]);
    // Repeated division of the 160-bit big-endian number by 62.
    let mut num: Vec<u32> = bytes.iter().map(|&b| b as u32).collect();
    let mut out = Vec::new();
    while num.iter().any(|&d| d != 0) {
        let mut rem = 0u32;
        for d in num.iter_mut() {
            let acc = rem * 256 + *d;
            *d = acc / 62;
            rem = acc % 62;
        }
        out.push(ALPHA[rem as usize]);
    }
    while out.len() < 27 {
        out.push(b'0');
    }
    out.reverse();
    String::from_utf8(out).unwrap_or_default()
}

fn random_int<'a>(ctx: &Ctx<'a, '_>, call: &Call) -> R<'a> {
    let min = opt_i64(ctx, call, 1, "min")?.unwrap_or(0);
    let max = opt_i64(ctx, call, 2, "max")?.unwrap_or(i64::MAX - 1);
    if max < min {
        return ctx.fail("min must be less than or equal to max");
    }
    let seed = opt(ctx, call, 0, "seed")?;
    let n = match seed {
        Some(Value::Int(s)) => {
            use rand::SeedableRng;
            // Seeded: one generator per call site, like upstream's per-function state.
            let step = call.state.get();
            call.state.set(step + 1);
            let mut r = rand::rngs::StdRng::seed_from_u64(s as u64 ^ (step as u64).rotate_left(32));
            r.gen_range(min..=max)
        }
        _ => rand::thread_rng().gen_range(min..=max),
    };
    Ok(Value::Int(n))
}

fn hostname<'a>(ctx: &Ctx<'a, '_>, _: &Call) -> R<'a> {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its whole length; gethostname NUL-terminates within it.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return ctx.fail("failed to read hostname");
    }
    let n = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    Ok(ctx.str(&String::from_utf8_lossy(&buf[..n])))
}

fn env<'a>(ctx: &Ctx<'a, '_>, call: &Call) -> R<'a> {
    let name = req_str(ctx, call, 0, "name")?;
    Ok(match std::env::var(name) {
        Ok(v) => ctx.str(&v),
        Err(_) => Value::Null,
    })
}

fn file<'a>(ctx: &Ctx<'a, '_>, call: &Call) -> R<'a> {
    let path = req_str(ctx, call, 0, "path")?;
    match std::fs::read(path) {
        Ok(b) => Ok(Value::Bytes(ctx.arena.alloc_slice_copy(&b))),
        Err(e) => ctx.fail(&format!("failed to read file {path}: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::super::Mapping;
    use super::*;
    use crate::message::Message;
    use bumpalo::Bump;

    fn run_lines(mapping: &str, inputs: &[&str]) -> Vec<String> {
        let m = Mapping::parse(mapping).unwrap();
        inputs
            .iter()
            .map(|i| {
                let arena = Bump::new();
                let batch = [Message::new(&arena, arena.alloc_slice_copy(i.as_bytes()))];
                let out = m.exec(&arena, &batch, 0).unwrap().unwrap();
                String::from_utf8_lossy(out.payload).into_owned()
            })
            .collect()
    }

    #[test]
    fn counters_keep_state_per_mapping() {
        assert_eq!(
            run_lines("root = counter(min: 5, max: 6)", &["{}", "{}", "{}"]),
            ["5", "6", "5"]
        );
        assert_eq!(
            run_lines(
                "root = counter(set: if this.reset { 10 })",
                &[
                    r#"{"reset":false}"#,
                    r#"{"reset":true}"#,
                    r#"{"reset":false}"#
                ]
            ),
            ["1", "10", "11"]
        );
    }

    #[test]
    fn ids_and_ranges() {
        let out = run_lines(
            "root = [uuid_v4().length(), nanoid().length(), ksuid().length(), range(3, 0)]",
            &["{}"],
        );
        assert_eq!(out, ["[36,21,27,[3,2,1]]"]);
        assert_eq!(ksuid().len(), 27);
    }

    #[test]
    fn message_functions() {
        let m = Mapping::parse("root = [content().string(), batch_index(), batch_size(), errored(), metadata(\"k\"), meta(\"n\")]").unwrap();
        let arena = Bump::new();
        let mut msg = Message::new(&arena, b"hi");
        msg.meta.set("k", Value::Str("v"));
        msg.meta.set("n", Value::Int(3));
        let out = m.exec(&arena, &[msg], 0).unwrap().unwrap();
        assert_eq!(out.payload, br#"["hi",0,1,false,"v","3"]"#);
    }
}
