//! Number methods: rounding, logarithms, trigonometry, powers, bitwise operations and
//! the sized integer/float conversions (`int64()`, `uint8()`, `float32()`, `number()`).

use super::ast::{Call, MethodFn};
use super::eval::{expected, Ctx, R};
use super::methods::{as_f64, as_i64, as_str, req, Res};
use crate::message::Value;

pub fn lookup(name: &str) -> Option<MethodFn> {
    Some(match name {
        "abs" => |c, v, _| match v {
            Value::Int(i) => Ok(i
                .checked_abs()
                .map(Value::Int)
                .unwrap_or(Value::Float((i as f64).abs()))),
            v => Ok(Value::Float(as_f64(c, v)?.abs())),
        },
        "ceil" => |c, v, _| whole(c, v, f64::ceil),
        "floor" => |c, v, _| whole(c, v, f64::floor),
        "round" => |c, v, _| whole(c, v, f64::round),
        "log" => |c, v, _| Ok(Value::Float(as_f64(c, v)?.ln())),
        "log10" => |c, v, _| Ok(Value::Float(as_f64(c, v)?.log10())),
        "sin" => |c, v, _| Ok(Value::Float(as_f64(c, v)?.sin())),
        "cos" => |c, v, _| Ok(Value::Float(as_f64(c, v)?.cos())),
        "tan" => |c, v, _| Ok(Value::Float(as_f64(c, v)?.tan())),
        "pow" => |c, v, call| {
            let e = as_f64(c, req(c, call, 0, "exponent")?)?;
            Ok(Value::Float(as_f64(c, v)?.powf(e)))
        },
        "bitwise_and" => |c, v, call| bitwise(c, v, call, |a, b| a & b),
        "bitwise_or" => |c, v, call| bitwise(c, v, call, |a, b| a | b),
        "bitwise_xor" => |c, v, call| bitwise(c, v, call, |a, b| a ^ b),
        "int64" => |c, v, _| sized(c, v, i64::MIN as i128, i64::MAX as i128, "int64"),
        "int32" => |c, v, _| sized(c, v, i32::MIN as i128, i32::MAX as i128, "int32"),
        "int16" => |c, v, _| sized(c, v, i16::MIN as i128, i16::MAX as i128, "int16"),
        "int8" => |c, v, _| sized(c, v, i8::MIN as i128, i8::MAX as i128, "int8"),
        "uint64" => |c, v, _| sized(c, v, 0, u64::MAX as i128, "uint64"),
        "uint32" => |c, v, _| sized(c, v, 0, u32::MAX as i128, "uint32"),
        "uint16" => |c, v, _| sized(c, v, 0, u16::MAX as i128, "uint16"),
        "uint8" => |c, v, _| sized(c, v, 0, u8::MAX as i128, "uint8"),
        "float64" => |c, v, _| Ok(Value::Float(to_float(c, v)?)),
        "float32" => |c, v, _| {
            let f = to_float(c, v)? as f32;
            // Keep float32's shortest digits (6.674283e-11), not the widened f64 noise.
            Ok(Value::Float(
                f.to_string().parse::<f64>().unwrap_or(f as f64),
            ))
        },
        "number" => number,
        "bool" => to_bool,
        _ => return None,
    })
}

fn whole<'a>(ctx: &Ctx<'a, '_>, v: Value<'a>, f: fn(f64) -> f64) -> R<'a> {
    match v {
        Value::Int(i) => Ok(Value::Int(i)),
        v => {
            let r = f(as_f64(ctx, v)?);
            if r.abs() < 9.0e15 {
                Ok(Value::Int(r as i64))
            } else {
                Ok(Value::Float(r))
            }
        }
    }
}

fn bitwise<'a>(ctx: &Ctx<'a, '_>, v: Value<'a>, call: &Call, f: fn(i64, i64) -> i64) -> R<'a> {
    let a = as_i64(ctx, v)?;
    let b = as_i64(ctx, req(ctx, call, 0, "value")?)?;
    Ok(Value::Int(f(a, b)))
}

/// Parses an integer the way Go's `strconv.ParseInt(s, 0, 64)` does (0x, 0o, 0b, _).
fn parse_int(s: &str) -> Option<i128> {
    let t = s.trim();
    let (neg, body) = match t.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    let body = body.replace('_', "");
    let lower = body.to_ascii_lowercase();
    let (radix, digits) = if let Some(h) = lower.strip_prefix("0x") {
        (16, h.to_string())
    } else if let Some(o) = lower.strip_prefix("0o") {
        (8, o.to_string())
    } else if let Some(b) = lower.strip_prefix("0b") {
        (2, b.to_string())
    } else if lower.len() > 1 && lower.starts_with('0') {
        (8, lower[1..].to_string())
    } else {
        (10, lower)
    };
    let n = i128::from_str_radix(&digits, radix).ok()?;
    Some(if neg { -n } else { n })
}

fn sized<'a>(ctx: &Ctx<'a, '_>, v: Value<'a>, min: i128, max: i128, name: &str) -> R<'a> {
    let n: i128 = match v {
        Value::Int(i) => i as i128,
        Value::Float(f) => {
            if f.fract() != 0.0 {
                return ctx.fail(&format!("cannot convert non-integer float {f} to {name}"));
            }
            f as i128
        }
        Value::Str(_) | Value::Bytes(_) => {
            let s = as_str(ctx, v)?;
            match parse_int(s) {
                Some(n) => n,
                None => {
                    return ctx.fail(&format!("strconv.ParseInt: parsing {s:?}: invalid syntax"))
                }
            }
        }
        other => return expected(ctx, "number", &other),
    };
    if n < min || n > max {
        return ctx.fail(&format!("value {n} does not fit in {name}"));
    }
    if n > i64::MAX as i128 {
        return Ok(Value::Float(n as f64));
    }
    Ok(Value::Int(n as i64))
}

fn to_float<'a>(ctx: &Ctx<'a, '_>, v: Value<'a>) -> Res<'a, f64> {
    match v {
        Value::Str(_) | Value::Bytes(_) => {
            let s = as_str(ctx, v)?;
            s.trim().parse::<f64>().map_err(|_| {
                ctx.err(&format!(
                    "strconv.ParseFloat: parsing {s:?}: invalid syntax"
                ))
            })
        }
        other => as_f64(ctx, other),
    }
}

fn number<'a>(ctx: &Ctx<'a, '_>, v: Value<'a>, call: &Call) -> R<'a> {
    let r = match v {
        Value::Int(_) | Value::Float(_) => Ok(v),
        Value::Str(_) | Value::Bytes(_) => {
            let s = as_str(ctx, v)?.trim();
            match s.parse::<i64>() {
                Ok(i) => Ok(Value::Int(i)),
                Err(_) => s.parse::<f64>().map(Value::Float).map_err(|_| {
                    ctx.err(&format!(
                        "strconv.ParseFloat: parsing {s:?}: invalid syntax"
                    ))
                }),
            }
        }
        Value::Bool(b) => Ok(Value::Int(b as i64)),
        other => expected(ctx, "number", &other),
    };
    match (r, call.arg(0, "default")) {
        (Err(_), Some(d)) => ctx.eval(d),
        (r, _) => r,
    }
}

fn to_bool<'a>(ctx: &Ctx<'a, '_>, v: Value<'a>, call: &Call) -> R<'a> {
    let r = match v {
        Value::Bool(_) => Ok(v),
        Value::Int(i) => Ok(Value::Bool(i != 0)),
        Value::Float(f) => Ok(Value::Bool(f != 0.0)),
        Value::Str(_) | Value::Bytes(_) => match as_str(ctx, v)?.trim() {
            "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(Value::Bool(true)),
            "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(Value::Bool(false)),
            s => ctx.fail(&format!("strconv.ParseBool: parsing {s:?}: invalid syntax")),
        },
        other => expected(ctx, "bool", &other),
    };
    match (r, call.arg(0, "default")) {
        (Err(_), Some(d)) => ctx.eval(d),
        (r, _) => r,
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_eval as eval;
    use super::parse_int;

    #[test]
    fn rounding_and_math() {
        assert_eq!(
            eval(
                "root = [this.ceil(), this.floor(), this.round(), -this.abs()]",
                "-2.5"
            ),
            "[-2,-3,-3,-2.5]"
        );
        assert_eq!(eval("root = 2.pow(10)", "{}"), "1024");
        assert_eq!(
            eval(
                "root = 12.bitwise_and(10).bitwise_or(1).bitwise_xor(3)",
                "{}"
            ),
            "10"
        );
        assert_eq!(eval("root = 7 / 2", "{}"), "3.5");
        assert_eq!(eval("root = 7 % 4", "{}"), "3");
        assert!(eval("root = 1 / 0", "{}").starts_with("ERR"));
    }

    #[test]
    fn sized_conversions() {
        assert_eq!(parse_int("0x1F"), Some(31));
        assert_eq!(parse_int("-0b11"), Some(-3));
        assert_eq!(eval("root = this.int8()", "\"127\""), "127");
        assert!(eval("root = this.int8()", "128").starts_with("ERR"));
        assert!(eval("root = this.uint16()", "-1").starts_with("ERR"));
        assert_eq!(eval("root = this.float32()", "0.1"), "0.1");
        assert_eq!(
            eval(
                "root = [this.number(), \"x\".number(5), \"true\".bool()]",
                "\"2.5\""
            ),
            "[2.5,5,true]"
        );
    }
}
