//! Regular expression methods (RE2 syntax via the `regex` crate, compiled once per call
//! site): `re_match`, `re_find_*`, `re_replace_all`.

use bumpalo::collections::Vec as BVec;

use super::ast::{Call, MethodFn};
use super::eval::{make_object, Ctx};
use super::methods::{as_str, cached_regex, req_str, Res};
use crate::message::Value;

pub fn lookup(name: &str) -> Option<MethodFn> {
    Some(match name {
        "re_match" => |c, v, call| {
            let (re, s) = setup(c, v, call)?;
            Ok(Value::Bool(re.is_match(s)))
        },
        "re_find_all" => |c, v, call| {
            let (re, s) = setup(c, v, call)?;
            let out = BVec::from_iter_in(re.find_iter(s).map(|m| Value::Str(m.as_str())), c.arena);
            Ok(Value::Array(out.into_bump_slice()))
        },
        "re_find_all_submatch" => |c, v, call| {
            let (re, s) = setup(c, v, call)?;
            let mut out = BVec::new_in(c.arena);
            for caps in re.captures_iter(s) {
                let row = BVec::from_iter_in(
                    caps.iter()
                        .map(|m| Value::Str(m.map(|m| m.as_str()).unwrap_or(""))),
                    c.arena,
                );
                out.push(Value::Array(row.into_bump_slice()));
            }
            Ok(Value::Array(out.into_bump_slice()))
        },
        "re_find_object" => |c, v, call| {
            let (re, s) = setup(c, v, call)?;
            match re.captures(s) {
                Some(caps) => Ok(caps_object(c, &re, &caps)),
                None => Ok(Value::Object(&[])),
            }
        },
        "re_find_all_object" => |c, v, call| {
            let (re, s) = setup(c, v, call)?;
            let mut out = BVec::new_in(c.arena);
            for caps in re.captures_iter(s) {
                out.push(caps_object(c, &re, &caps));
            }
            Ok(Value::Array(out.into_bump_slice()))
        },
        "re_replace_all" | "re_replace" => |c, v, call| {
            let (re, s) = setup(c, v, call)?;
            let with = req_str(c, call, 1, "value")?;
            Ok(c.str(&re.replace_all(s, with)))
        },
        _ => return None,
    })
}

fn setup<'a>(ctx: &Ctx<'a, '_>, v: Value<'a>, call: &Call) -> Res<'a, (regex::Regex, &'a str)> {
    let s = as_str(ctx, v)?;
    let pat = req_str(ctx, call, 0, "pattern")?;
    let re = cached_regex(ctx, call, pat).map_err(|e| ctx.err(&e))?;
    Ok((re, s))
}

fn caps_object<'a>(ctx: &Ctx<'a, '_>, re: &regex::Regex, caps: &regex::Captures<'a>) -> Value<'a> {
    let mut items = BVec::new_in(ctx.arena);
    for (i, name) in re.capture_names().enumerate() {
        let key: &'a str = match name {
            Some(n) => ctx.arena.alloc_str(n),
            None => ctx.arena.alloc_str(&i.to_string()),
        };
        let val = caps.get(i).map(|m| m.as_str()).unwrap_or("");
        items.push((key, Value::Str(val)));
    }
    make_object(ctx.arena, items)
}

#[cfg(test)]
mod tests {
    use super::super::test_eval as eval;

    #[test]
    fn matching_and_finding() {
        assert_eq!(eval(r#"root = this.re_match("^a+$")"#, r#""aaa""#), "true");
        assert_eq!(
            eval(r#"root = this.re_find_all("[0-9]")"#, r#""a1b22""#),
            r#"["1","2","2"]"#
        );
        assert_eq!(
            eval(
                r#"root = this.re_find_object("(?P<k>[a-z])=(\\d)")"#,
                r#""x=1""#
            ),
            r#"{"0":"x=1","2":"1","k":"x"}"#
        );
        assert_eq!(
            eval(
                r#"root = this.re_replace_all("(o+)", "<$1>")"#,
                r#""foo bo""#
            ),
            "f<oo> b<o>"
        );
        assert!(eval(r#"root = this.re_match("(")"#, r#""x""#).starts_with("ERR"));
    }
}
