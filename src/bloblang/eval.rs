//! Bloblang evaluator: walks the syntax tree for one message with every value allocated in
//! the request arena; also the value helpers (equality, ordering, arithmetic, object
//! building, path assignment) that functions and methods share.

use std::cell::{Cell, OnceCell, RefCell};

use bumpalo::collections::Vec as BVec;
use bumpalo::Bump;

use super::ast::{BinOp, Expr, Fields, Lit, Pat, Program, Stmt};
use super::json;
use crate::message::{Message, Meta, Value};

/// Non-value outcomes of an expression: an error, `deleted()`, or nothing (an `if`
/// without a matching branch, a `match` with no matching case).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Flow<'a> {
    Err(&'a str),
    Deleted,
    Nothing,
}

pub type R<'a> = Result<Value<'a>, Flow<'a>>;

/// The document being built.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum RootState<'a> {
    Unset,
    Deleted,
    Val(Value<'a>),
}

/// The document a run (or a named map) builds.
pub struct Root<'a> {
    state: Cell<RootState<'a>>,
    /// With the program's `Fields` plan: each planned key's current value. `state`
    /// then stays `Unset`; root is the object of the fields once `touched` (the first
    /// assignment that takes effect), and `get` builds it on demand.
    fields: Option<&'a [Cell<Slot<'a>>]>,
    touched: Cell<bool>,
}

/// What one planned field of root holds.
#[derive(Clone, Copy, Debug)]
pub enum Slot<'a> {
    Absent,
    Val(Value<'a>),
    /// The literal `Fields::consts[i]`, not yet converted to a value.
    Const(u32),
}

impl<'a> Slot<'a> {
    pub fn value(self, arena: &'a Bump, plan: &Fields) -> Option<Value<'a>> {
        match self {
            Slot::Absent => None,
            Slot::Val(v) => Some(v),
            Slot::Const(i) => Some(plan.consts[i as usize].0.to_value(arena)),
        }
    }
}

impl<'a> Root<'a> {
    /// An unset root kept as one value.
    pub fn new() -> Root<'a> {
        Root {
            state: Cell::new(RootState::Unset),
            fields: None,
            touched: Cell::new(false),
        }
    }

    /// The current root; with a plan, the object built from the fields (keys from
    /// `prog`, the program whose plan it is).
    pub fn get(&self, arena: &'a Bump, prog: &Program) -> RootState<'a> {
        match (self.fields, &prog.fields) {
            (Some(values), Some(plan)) if self.touched.get() => {
                let mut members = BVec::with_capacity_in(values.len(), arena);
                for (v, k) in values.iter().zip(&plan.keys) {
                    if let Some(v) = v.get().value(arena, plan) {
                        members.push((&*arena.alloc_str(k), v));
                    }
                }
                RootState::Val(Value::Object(members.into_bump_slice()))
            }
            _ => self.state.get(),
        }
    }

    pub fn set(&self, state: RootState<'a>) {
        self.state.set(state)
    }
}

impl Default for Root<'_> {
    fn default() -> Self {
        Root::new()
    }
}

/// Per-execution state shared by every expression of one mapping run.
pub struct Env<'a, 'c> {
    pub batch: &'c [Message<'a>],
    pub index: usize,
    /// `let` variables and lambda parameters, by slot.
    pub vars: &'c [Cell<Option<Value<'a>>>],
    /// The input document, parsed on first use of `this`.
    pub input: OnceCell<Result<Value<'a>, &'a str>>,
    /// Metadata of the message being built (`@` reads it, `meta x = ` writes it).
    pub meta: MetaCow<'a, 'c>,
    pub prog: &'c Program,
    /// Nesting of `.apply()` calls, bounded so a self-applying map errors, not overflows.
    pub depth: Cell<u32>,
}

/// The metadata a run reads and writes: the input message's, borrowed, until the
/// mapping first writes to it, then a copy. Most mappings never touch metadata, so most
/// runs copy none of it.
pub struct MetaCow<'a, 'c> {
    base: &'c Meta<'a>,
    own: RefCell<Option<Meta<'a>>>,
}

impl<'a, 'c> MetaCow<'a, 'c> {
    pub fn borrowed(base: &'c Meta<'a>) -> Self {
        MetaCow {
            base,
            own: RefCell::new(None),
        }
    }

    /// Calls `f` with the current metadata.
    pub fn read<R>(&self, f: impl FnOnce(&Meta<'a>) -> R) -> R {
        f(self.own.borrow().as_ref().unwrap_or(self.base))
    }

    /// The metadata to change, copied from the input's on the first write.
    fn write(&self) -> std::cell::RefMut<'_, Meta<'a>> {
        std::cell::RefMut::map(self.own.borrow_mut(), |own| {
            own.get_or_insert_with(|| self.base.clone())
        })
    }

    /// An independent view of the same metadata, for a sub-program whose writes must
    /// not reach this run: it shares the input's and copies only what this run wrote.
    fn fork(&self) -> MetaCow<'a, 'c> {
        MetaCow {
            base: self.base,
            own: RefCell::new(self.own.borrow().clone()),
        }
    }

    /// The metadata if the run wrote any (`None`: the input's, unchanged).
    fn into_written(self) -> Option<Meta<'a>> {
        self.own.into_inner()
    }
}

/// How deep `.apply()` may nest.
const MAX_APPLY_DEPTH: u32 = 64;

/// Evaluation context: the arena, the shared state, the current `this` and `root`.
#[derive(Clone, Copy)]
pub struct Ctx<'a, 'c> {
    pub arena: &'a Bump,
    pub env: &'c Env<'a, 'c>,
    /// None: the input document; Some: a context value (lambda, map, match subject).
    pub this: Option<Value<'a>>,
    pub root: &'c Root<'a>,
}

impl<'a, 'c> Ctx<'a, 'c> {
    /// An error value with `msg` copied into the arena.
    pub fn err(&self, msg: &str) -> Flow<'a> {
        Flow::Err(self.arena.alloc_str(msg))
    }

    pub fn fail<T>(&self, msg: &str) -> Result<T, Flow<'a>> {
        Err(self.err(msg))
    }

    pub fn with_this(&self, v: Value<'a>) -> Ctx<'a, 'c> {
        Ctx {
            this: Some(v),
            ..*self
        }
    }

    pub fn message(&self) -> &'c Message<'a> {
        &self.env.batch[self.env.index]
    }

    /// The input document (parsing the payload on first use).
    pub fn input(&self) -> R<'a> {
        let arena = self.arena;
        let payload = self.message().payload;
        match self.env.input.get_or_init(|| {
            json::parse(arena, payload).map_err(|e| {
                &*arena.alloc_str(&format!(
                    "unable to reference message as structured (with 'this'): parse as json: {e}"
                ))
            })
        }) {
            Ok(v) => Ok(*v),
            Err(e) => Err(Flow::Err(e)),
        }
    }

    pub fn this_val(&self) -> R<'a> {
        match self.this {
            Some(v) => Ok(v),
            None => self.input(),
        }
    }

    pub fn str(&self, s: &str) -> Value<'a> {
        Value::Str(self.arena.alloc_str(s))
    }

    /// Evaluates an argument expression.
    pub fn eval(&self, e: &Expr) -> R<'a> {
        eval(self, e)
    }

    /// Applies a lambda or context query to `v`: `x -> body` binds x, `_ -> body` and
    /// plain expressions run with `this` = v.
    pub fn apply(&self, e: &Expr, v: Value<'a>) -> R<'a> {
        match e {
            Expr::Lambda(Some(slot), body) => {
                let cell = &self.env.vars[*slot];
                let old = cell.replace(Some(v));
                let r = eval(self, body);
                cell.set(old);
                r
            }
            Expr::Lambda(None, body) => eval(&self.with_this(v), body),
            other => eval(&self.with_this(v), other),
        }
    }
}

pub fn type_name(v: &Value<'_>) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Int(_) | Value::Float(_) => "number",
        Value::Str(_) => "string",
        Value::Bytes(_) => "bytes",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Short rendering of a value for error messages, like upstream's `number (5)`.
pub fn describe_value(v: &Value<'_>) -> String {
    let mut out = Vec::new();
    crate::message::write_json(v, &mut out);
    let mut s = String::from_utf8_lossy(&out).into_owned();
    if s.len() > 60 {
        let mut cut = 57;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push_str("...");
    }
    format!("{} ({})", type_name(v), s)
}

pub fn expected<'a, T>(ctx: &Ctx<'a, '_>, what: &str, v: &Value<'_>) -> Result<T, Flow<'a>> {
    ctx.fail(&format!("expected {what} value, got {}", describe_value(v)))
}

/// Deep equality with numbers compared by value (1 == 1.0).
pub fn equal(a: &Value<'_>, b: &Value<'_>) -> bool {
    match (a, b) {
        (Value::Int(x), Value::Int(y)) => x == y,
        (Value::Int(_) | Value::Float(_), Value::Int(_) | Value::Float(_)) => num(a) == num(b),
        (Value::Str(x), Value::Str(y)) => x == y,
        (Value::Str(x), Value::Bytes(y)) | (Value::Bytes(y), Value::Str(x)) => x.as_bytes() == *y,
        (Value::Bytes(x), Value::Bytes(y)) => x == y,
        (Value::Null, Value::Null) => true,
        (Value::Bool(x), Value::Bool(y)) => x == y,
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y.iter()).all(|(p, q)| equal(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y.iter())
                    .all(|((k1, v1), (k2, v2))| k1 == k2 && equal(v1, v2))
        }
        _ => false,
    }
}

fn num(v: &Value<'_>) -> f64 {
    match *v {
        Value::Int(i) => i as f64,
        Value::Float(f) => f,
        _ => f64::NAN,
    }
}

/// Total-ish ordering used by `sort`, `max`, comparisons: numbers by value, strings
/// lexically; None when the kinds cannot be compared.
pub fn compare(a: &Value<'_>, b: &Value<'_>) -> Option<std::cmp::Ordering> {
    match (a, b) {
        (Value::Int(x), Value::Int(y)) => Some(x.cmp(y)),
        (Value::Int(_) | Value::Float(_), Value::Int(_) | Value::Float(_)) => {
            num(a).partial_cmp(&num(b))
        }
        (Value::Str(x), Value::Str(y)) => Some(x.cmp(y)),
        (Value::Bytes(x), Value::Bytes(y)) => Some(x.cmp(y)),
        (Value::Str(x), Value::Bytes(y)) => Some(x.as_bytes().cmp(y)),
        (Value::Bytes(x), Value::Str(y)) => Some(x.cmp(&y.as_bytes())),
        (Value::Bool(x), Value::Bool(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

/// Looks up `key` in sorted object members.
pub fn obj_get<'a>(members: &[(&'a str, Value<'a>)], key: &str) -> Option<Value<'a>> {
    members
        .binary_search_by(|(k, _)| (*k).cmp(key))
        .ok()
        .map(|i| members[i].1)
}

/// Field access (`.name`): object member, or array index for a numeric name; null when absent.
pub fn get_field<'a>(v: Value<'a>, key: &str) -> Value<'a> {
    match v {
        Value::Object(m) => obj_get(m, key).unwrap_or(Value::Null),
        Value::Array(items) => match key.parse::<i64>() {
            Ok(i) => {
                let idx = if i < 0 { items.len() as i64 + i } else { i };
                if idx >= 0 && (idx as usize) < items.len() {
                    items[idx as usize]
                } else {
                    Value::Null
                }
            }
            Err(_) => Value::Null,
        },
        _ => Value::Null,
    }
}

/// An object value from unsorted members (sorted by key, later duplicates win).
pub fn make_object<'a>(arena: &'a Bump, mut items: BVec<'a, (&'a str, Value<'a>)>) -> Value<'a> {
    if items.windows(2).any(|w| w[0].0 >= w[1].0) {
        items.sort_by(|a, b| a.0.cmp(b.0));
        let mut out = BVec::with_capacity_in(items.len(), arena);
        for i in 0..items.len() {
            if i + 1 < items.len() && items[i + 1].0 == items[i].0 {
                continue;
            }
            out.push(items[i]);
        }
        return Value::Object(out.into_bump_slice());
    }
    Value::Object(items.into_bump_slice())
}

/// `members` with `key` set to `v` (or removed when `v` is None), as a new slice.
pub fn obj_set<'a>(
    arena: &'a Bump,
    members: &'a [(&'a str, Value<'a>)],
    key: &str,
    v: Option<Value<'a>>,
) -> &'a [(&'a str, Value<'a>)] {
    match (members.binary_search_by(|(k, _)| (*k).cmp(key)), v) {
        (Ok(i), Some(v)) => {
            let out = arena.alloc_slice_copy(members);
            out[i].1 = v;
            out
        }
        (Ok(i), None) => {
            let mut out = BVec::with_capacity_in(members.len() - 1, arena);
            out.extend_from_slice_copy(&members[..i]);
            out.extend_from_slice_copy(&members[i + 1..]);
            out.into_bump_slice()
        }
        (Err(i), Some(v)) => {
            let key = arena.alloc_str(key);
            let mut out = BVec::with_capacity_in(members.len() + 1, arena);
            out.extend_from_slice_copy(&members[..i]);
            out.push((&*key, v));
            out.extend_from_slice_copy(&members[i..]);
            out.into_bump_slice()
        }
        (Err(_), None) => members,
    }
}

/// `base` with the value at `path` replaced by `v` (removed when None); missing or
/// non-object levels become objects.
pub fn set_path<'a, S: AsRef<str>>(
    arena: &'a Bump,
    base: Value<'a>,
    path: &[S],
    v: Option<Value<'a>>,
) -> Value<'a> {
    let Some((first, rest)) = path.split_first() else {
        return v.unwrap_or(Value::Null);
    };
    let key = first.as_ref();
    match base {
        Value::Array(items) => {
            if let Ok(i) = key.parse::<usize>() {
                if i < items.len() {
                    let out = arena.alloc_slice_copy(items);
                    match v {
                        None if rest.is_empty() => {
                            let mut o = BVec::from_iter_in(items.iter().copied(), arena);
                            o.remove(i);
                            return Value::Array(o.into_bump_slice());
                        }
                        _ => out[i] = set_path(arena, items[i], rest, v),
                    }
                    return Value::Array(out);
                }
                if i == items.len() && v.is_some() {
                    let mut o = BVec::from_iter_in(items.iter().copied(), arena);
                    o.push(set_path(arena, Value::Null, rest, v));
                    return Value::Array(o.into_bump_slice());
                }
            }
            if v.is_none() {
                return base;
            }
            set_path(arena, Value::Object(&[]), path, v)
        }
        Value::Object(members) => {
            if rest.is_empty() {
                return Value::Object(obj_set(arena, members, key, v));
            }
            let child = obj_get(members, key);
            if child.is_none() && v.is_none() {
                return base;
            }
            let nv = set_path(arena, child.unwrap_or(Value::Object(&[])), rest, v);
            Value::Object(obj_set(arena, members, key, Some(nv)))
        }
        _ => {
            if v.is_none() {
                return base;
            }
            set_path(arena, Value::Object(&[]), path, v)
        }
    }
}

/// Text of a value as `.string()` and interpolation give it: strings raw, numbers in
/// Go's formatting, everything else compact JSON.
pub fn to_text<'a>(arena: &'a Bump, v: &Value<'a>) -> &'a str {
    match *v {
        Value::Float(f) => {
            let mut s = bumpalo::collections::String::new_in(arena);
            crate::message::write_go_float(f, &mut s);
            s.into_bump_str()
        }
        Value::Str(_) | Value::Bytes(_) => v.to_text(arena),
        _ => {
            let mut out = BVec::with_capacity_in(32, arena);
            crate::message::write_json(v, &mut out);
            // SAFETY: write_json emits only valid UTF-8 (escaped strings, ASCII digits
            // and punctuation).
            unsafe { std::str::from_utf8_unchecked(out.into_bump_slice()) }
        }
    }
}

fn as_bool<'a>(ctx: &Ctx<'a, '_>, v: R<'a>) -> Result<bool, Flow<'a>> {
    match v? {
        Value::Bool(b) => Ok(b),
        other => expected(ctx, "bool", &other),
    }
}

fn arith<'a>(ctx: &Ctx<'a, '_>, op: BinOp, l: Value<'a>, r: Value<'a>) -> R<'a> {
    use Value::{Float, Int};
    let sym = match op {
        BinOp::Add => "add",
        BinOp::Sub => "subtract",
        BinOp::Mul => "multiply",
        BinOp::Div => "divide",
        _ => "modulo",
    };
    match (op, l, r) {
        (BinOp::Add, Value::Str(a), Value::Str(b)) => {
            let mut s =
                bumpalo::collections::String::with_capacity_in(a.len() + b.len(), ctx.arena);
            s.push_str(a);
            s.push_str(b);
            return Ok(Value::Str(s.into_bump_str()));
        }
        (BinOp::Add, Value::Bytes(a), Value::Bytes(b)) => {
            let mut s = BVec::with_capacity_in(a.len() + b.len(), ctx.arena);
            s.extend_from_slice_copy(a);
            s.extend_from_slice_copy(b);
            return Ok(Value::Bytes(s.into_bump_slice()));
        }
        (BinOp::Add, Int(a), Int(b)) => {
            return Ok(a
                .checked_add(b)
                .map(Int)
                .unwrap_or(Float(a as f64 + b as f64)))
        }
        (BinOp::Sub, Int(a), Int(b)) => {
            return Ok(a
                .checked_sub(b)
                .map(Int)
                .unwrap_or(Float(a as f64 - b as f64)))
        }
        (BinOp::Mul, Int(a), Int(b)) => {
            return Ok(a
                .checked_mul(b)
                .map(Int)
                .unwrap_or(Float(a as f64 * b as f64)))
        }
        (BinOp::Mod, Int(_) | Float(_), Int(_) | Float(_)) => {
            let (a, b) = (num(&l) as i64, num(&r) as i64);
            if b == 0 {
                return ctx.fail("attempted to divide by zero");
            }
            return Ok(Int(a.wrapping_rem(b)));
        }
        _ => {}
    }
    match (l, r) {
        (Int(_) | Float(_), Int(_) | Float(_)) => {
            let (a, b) = (num(&l), num(&r));
            Ok(Float(match op {
                BinOp::Add => a + b,
                BinOp::Sub => a - b,
                BinOp::Mul => a * b,
                _ => {
                    if b == 0.0 {
                        return ctx.fail("attempted to divide by zero");
                    }
                    a / b
                }
            }))
        }
        _ => ctx.fail(&format!(
            "cannot {sym} types {} and {}",
            describe_value(&l),
            describe_value(&r)
        )),
    }
}

fn binary<'a>(ctx: &Ctx<'a, '_>, op: BinOp, le: &Expr, re: &Expr) -> R<'a> {
    match op {
        BinOp::And => {
            if !as_bool(ctx, eval(ctx, le))? {
                return Ok(Value::Bool(false));
            }
            Ok(Value::Bool(as_bool(ctx, eval(ctx, re))?))
        }
        BinOp::Or => {
            if as_bool(ctx, eval(ctx, le))? {
                return Ok(Value::Bool(true));
            }
            Ok(Value::Bool(as_bool(ctx, eval(ctx, re))?))
        }
        BinOp::Coalesce => match eval(ctx, le) {
            Ok(Value::Null) | Err(Flow::Err(_)) | Err(Flow::Nothing) => eval(ctx, re),
            other => other,
        },
        BinOp::Eq | BinOp::Ne => {
            let (l, r) = (eval(ctx, le)?, eval(ctx, re)?);
            Ok(Value::Bool(equal(&l, &r) == (op == BinOp::Eq)))
        }
        BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge => {
            let (l, r) = (eval(ctx, le)?, eval(ctx, re)?);
            let Some(ord) = compare(&l, &r) else {
                return ctx.fail(&format!(
                    "cannot compare types {} and {}",
                    describe_value(&l),
                    describe_value(&r)
                ));
            };
            use std::cmp::Ordering::*;
            Ok(Value::Bool(match op {
                BinOp::Lt => ord == Less,
                BinOp::Le => ord != Greater,
                BinOp::Gt => ord == Greater,
                _ => ord != Less,
            }))
        }
        _ => {
            let (l, r) = (eval(ctx, le)?, eval(ctx, re)?);
            arith(ctx, op, l, r)
        }
    }
}

fn lit_equal(l: &Lit, v: &Value<'_>) -> bool {
    match (l, v) {
        (Lit::Str(s), Value::Str(t)) => **s == **t,
        (Lit::Str(s), Value::Bytes(t)) => s.as_bytes() == *t,
        (Lit::Null, Value::Null) => true,
        (Lit::Bool(a), Value::Bool(b)) => a == b,
        (Lit::Int(a), _) => equal(&Value::Int(*a), v),
        (Lit::Float(a), _) => equal(&Value::Float(*a), v),
        _ => false,
    }
}

/// Evaluates one expression.
pub fn eval<'a>(ctx: &Ctx<'a, '_>, e: &Expr) -> R<'a> {
    match e {
        Expr::Lit(l) => Ok(l.to_value(ctx.arena)),
        Expr::This => ctx.this_val(),
        Expr::Root => match ctx.root.get(ctx.arena, ctx.env.prog) {
            RootState::Val(v) => Ok(v),
            _ => Ok(Value::Null),
        },
        Expr::Get(t, f) => {
            // (`this.field` is the commonest path: no recursive call for `this`.)
            let t = match **t {
                Expr::This => ctx.this_val()?,
                _ => eval(ctx, t)?,
            };
            Ok(get_field(t, f))
        }
        Expr::Var(slot, name) => match ctx.env.vars[*slot].get() {
            Some(v) => Ok(v),
            None => ctx.fail(&format!("variable '{name}' undefined")),
        },
        Expr::Meta(Some(k)) => Ok(ctx.env.meta.read(|m| m.get(k)).unwrap_or(Value::Null)),
        Expr::Meta(None) => {
            let items = ctx
                .env
                .meta
                .read(|meta| BVec::from_iter_in(meta.iter(), ctx.arena));
            Ok(make_object(ctx.arena, items))
        }
        Expr::Func(f, call) => f(ctx, call),
        Expr::Method {
            target,
            f,
            call,
            desc,
        } => {
            let t = eval(ctx, target)?;
            match f(ctx, t, call) {
                Err(Flow::Err(m)) if desc.is_some() && !m.starts_with("field `") => {
                    let d = desc.as_deref().unwrap_or("");
                    Err(Flow::Err(
                        bumpalo::format!(in ctx.arena, "field `{}`: {}", d, m).into_bump_str(),
                    ))
                }
                r => r,
            }
        }
        Expr::Catch(t, a) => match eval(ctx, t) {
            Err(Flow::Err(m)) => match &**a {
                Expr::Lambda(..) => ctx.apply(a, Value::Str(m)),
                other => eval(ctx, other),
            },
            r => r,
        },
        Expr::Or(t, a) => match eval(ctx, t) {
            Err(Flow::Err(_)) | Ok(Value::Null) | Err(Flow::Nothing) => eval(ctx, a),
            r => r,
        },
        Expr::From(t, idx) => {
            let i = match eval(ctx, idx)? {
                Value::Int(i) => i,
                other => return expected(ctx, "integer", &other),
            };
            let n = ctx.env.batch.len() as i64;
            let i = if i < 0 { n + i } else { i };
            if i < 0 || i >= n {
                return ctx.fail(&format!(
                    "message index {i} out of bounds for batch size {n}"
                ));
            }
            eval_at(ctx, t, i as usize)
        }
        Expr::FromAll(t) => {
            let mut out = BVec::with_capacity_in(ctx.env.batch.len(), ctx.arena);
            for i in 0..ctx.env.batch.len() {
                out.push(match eval_at(ctx, t, i) {
                    Ok(v) => v,
                    Err(Flow::Err(_)) | Err(Flow::Nothing) | Err(Flow::Deleted) => Value::Null,
                });
            }
            Ok(Value::Array(out.into_bump_slice()))
        }
        Expr::WithCtx(t, b) => {
            let v = eval(ctx, t)?;
            ctx.apply(b, v)
        }
        Expr::Lambda(_, _) => {
            let v = ctx.this_val()?;
            ctx.apply(e, v)
        }
        Expr::Array(items) => {
            let mut out = BVec::with_capacity_in(items.len(), ctx.arena);
            for it in items {
                match eval(ctx, it) {
                    Ok(v) => out.push(v),
                    Err(Flow::Deleted | Flow::Nothing) => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(Value::Array(out.into_bump_slice()))
        }
        Expr::Object(items) => {
            let mut out = BVec::with_capacity_in(items.len(), ctx.arena);
            for (k, v) in items {
                let key = match eval(ctx, k)? {
                    Value::Str(s) => s,
                    Value::Bytes(b) => to_text(ctx.arena, &Value::Bytes(b)),
                    other => {
                        return ctx.fail(&format!(
                            "object keys must be strings, got {}",
                            describe_value(&other)
                        ))
                    }
                };
                match eval(ctx, v) {
                    Ok(v) => out.push((key, v)),
                    Err(Flow::Deleted | Flow::Nothing) => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(make_object(ctx.arena, out))
        }
        Expr::Bin(op, l, r) => binary(ctx, *op, l, r),
        Expr::Not(x) => Ok(Value::Bool(!as_bool(ctx, eval(ctx, x))?)),
        Expr::Neg(x) => match eval(ctx, x)? {
            Value::Int(i) => Ok(i
                .checked_neg()
                .map(Value::Int)
                .unwrap_or(Value::Float(-(i as f64)))),
            Value::Float(f) => Ok(Value::Float(-f)),
            other => expected(ctx, "number", &other),
        },
        Expr::If(branches, otherwise) => {
            for (c, body) in branches {
                if as_bool(ctx, eval(ctx, c))? {
                    return eval(ctx, body);
                }
            }
            match otherwise {
                Some(o) => eval(ctx, o),
                None => Err(Flow::Nothing),
            }
        }
        Expr::Match(subject, cases) => {
            let (sctx, sv) = match subject {
                Some(s) => {
                    let v = eval(ctx, s)?;
                    (ctx.with_this(v), Some(v))
                }
                None => (*ctx, None),
            };
            for (pat, val) in cases {
                let hit = match pat {
                    Pat::Any => true,
                    Pat::Lit(l) => {
                        let v = match sv {
                            Some(v) => v,
                            None => sctx.this_val()?,
                        };
                        match l {
                            Lit::Bool(b) if sv.is_none() => *b,
                            _ => lit_equal(l, &v),
                        }
                    }
                    Pat::Cond(c) => match eval(&sctx, c)? {
                        Value::Bool(b) => b,
                        other => match sv {
                            Some(v) => equal(&other, &v),
                            None => return expected(ctx, "bool", &other),
                        },
                    },
                };
                if hit {
                    return eval(&sctx, val);
                }
            }
            Err(Flow::Nothing)
        }
    }
}

/// Evaluates `e` as if the mapping ran on message `index` of the batch (`.from()`).
fn eval_at<'a>(ctx: &Ctx<'a, '_>, e: &Expr, index: usize) -> R<'a> {
    if index == ctx.env.index {
        return eval(ctx, e);
    }
    let env = Env {
        batch: ctx.env.batch,
        index,
        vars: ctx.env.vars,
        input: OnceCell::new(),
        meta: MetaCow::borrowed(&ctx.env.batch[index].meta),
        prog: ctx.env.prog,
        depth: Cell::new(ctx.env.depth.get()),
    };
    let sub = Ctx {
        arena: ctx.arena,
        env: &env,
        this: ctx.this,
        root: ctx.root,
    };
    eval(&sub, e)
}

/// Runs statements; an error carries the line of the failing statement.
pub fn run_stmts<'a>(ctx: &Ctx<'a, '_>, stmts: &[Stmt]) -> Result<(), (u32, &'a str)> {
    for st in stmts {
        match st {
            Stmt::Assign {
                path,
                expr,
                line,
                field,
            } => {
                if let (Some(values), Some(k)) = (ctx.root.fields, field.konst) {
                    // `root.key = <literal>` in the plan: nothing to evaluate.
                    values[field.index].set(Slot::Const(k));
                    ctx.root.touched.set(true);
                    continue;
                }
                let r = eval(ctx, expr);
                let v = match r {
                    Ok(v) => Some(v),
                    Err(Flow::Deleted) => None,
                    Err(Flow::Nothing) => continue,
                    Err(Flow::Err(m)) => return Err((*line, m)),
                };
                if let (Some(values), Some(plan)) = (ctx.root.fields, &ctx.env.prog.fields) {
                    if let Some(slot) = values.get(field.index) {
                        // The planned layout: root is an object, `path[0]` is key `index`.
                        let child = || slot.get().value(ctx.arena, plan);
                        let nv = match (&path[1..], v) {
                            ([], Some(v)) => Slot::Val(v),
                            ([], None) => Slot::Absent,
                            (rest, v) => match (child(), v) {
                                (None, None) => Slot::Absent,
                                (child, v) => Slot::Val(set_path(
                                    ctx.arena,
                                    child.unwrap_or(Value::Object(&[])),
                                    rest,
                                    v,
                                )),
                            },
                        };
                        slot.set(nv);
                        ctx.root.touched.set(true);
                        continue;
                    }
                }
                if path.is_empty() {
                    ctx.root.state.set(match v {
                        Some(v) => RootState::Val(v),
                        None => RootState::Deleted,
                    });
                    continue;
                }
                let base = match ctx.root.get(ctx.arena, ctx.env.prog) {
                    RootState::Val(b) => b,
                    _ => Value::Object(&[]),
                };
                ctx.root
                    .state
                    .set(RootState::Val(set_path(ctx.arena, base, path, v)));
            }
            Stmt::Meta { key, expr, line } => {
                let r = eval(ctx, expr);
                let meta = || ctx.env.meta.write();
                match (key, r) {
                    (_, Err(Flow::Nothing)) => {}
                    (_, Err(Flow::Err(m))) => return Err((*line, m)),
                    (Some(k), Err(Flow::Deleted)) => meta().remove(k),
                    (None, Err(Flow::Deleted)) => meta().clear(),
                    (Some(k), Ok(v)) => meta().set(ctx.arena.alloc_str(k), v),
                    (None, Ok(Value::Object(m))) => {
                        let mut meta = meta();
                        meta.clear();
                        for (k, v) in m {
                            meta.set(k, *v);
                        }
                    }
                    (None, Ok(other)) => {
                        let msg = format!("expected object value, got {}", describe_value(&other));
                        return Err((*line, ctx.arena.alloc_str(&msg)));
                    }
                }
            }
            Stmt::Let { slot, expr, line } => match eval(ctx, expr) {
                Ok(v) => ctx.env.vars[*slot].set(Some(v)),
                Err(Flow::Nothing) => {}
                Err(Flow::Deleted) => ctx.env.vars[*slot].set(None),
                Err(Flow::Err(m)) => return Err((*line, m)),
            },
            Stmt::If {
                branches,
                otherwise,
                line,
            } => {
                let mut done = false;
                for (c, body) in branches {
                    let b = as_bool(ctx, eval(ctx, c)).map_err(|f| match f {
                        Flow::Err(m) => (*line, m),
                        _ => (*line, "expected bool value, got nothing"),
                    })?;
                    if b {
                        run_stmts(ctx, body)?;
                        done = true;
                        break;
                    }
                }
                if !done {
                    if let Some(o) = otherwise {
                        run_stmts(ctx, o)?;
                    }
                }
            }
        }
    }
    Ok(())
}

/// How the document starts: `mapping` (unset) or `mutation` (a copy of the input).
#[derive(Clone, Copy, PartialEq)]
pub enum Mode {
    Mapping,
    Mutation,
}

/// The result of one run: the final root.
pub struct Outcome<'a> {
    pub root: RootState<'a>,
}

/// The result of one run with root as it was kept: with `fields` (only when the
/// program's `Fields` plan was used and assigned), root is the object of those fields
/// and `root` is unused.
pub struct RawOutcome<'a> {
    pub root: RootState<'a>,
    pub fields: Option<&'a [Cell<Slot<'a>>]>,
    /// `None`: the run wrote no metadata, the input's stands.
    pub meta: Option<Meta<'a>>,
}

/// Runs `prog` against message `index` of `batch`.
pub fn run<'a>(
    prog: &Program,
    arena: &'a Bump,
    batch: &[Message<'a>],
    index: usize,
    mode: Mode,
) -> Result<Outcome<'a>, (u32, &'a str)> {
    let out = run_raw(prog, arena, batch, index, mode)?;
    let root = Root {
        state: Cell::new(out.root),
        fields: out.fields,
        touched: Cell::new(out.fields.is_some()),
    };
    Ok(Outcome {
        root: root.get(arena, prog),
    })
}

/// Runs `prog` against message `index` of `batch`, keeping a planned root as fields.
pub fn run_raw<'a>(
    prog: &Program,
    arena: &'a Bump,
    batch: &[Message<'a>],
    index: usize,
    mode: Mode,
) -> Result<RawOutcome<'a>, (u32, &'a str)> {
    let msg = batch.get(index).ok_or((0, "message index out of range"))?;
    let vars = arena.alloc_slice_fill_with(prog.nvars, |_| Cell::new(None));
    let env = Env {
        batch,
        index,
        vars,
        input: OnceCell::new(),
        meta: MetaCow::borrowed(&msg.meta),
        prog,
        depth: Cell::new(0),
    };
    let root = Root {
        state: Cell::new(RootState::Unset),
        touched: Cell::new(false),
        fields: match (&prog.fields, mode) {
            (Some(plan), Mode::Mapping) => {
                Some(arena.alloc_slice_fill_with(plan.keys.len(), |_| Cell::new(Slot::Absent)))
            }
            _ => None,
        },
    };
    let ctx = Ctx {
        arena,
        env: &env,
        this: None,
        root: &root,
    };
    if mode == Mode::Mutation {
        if let Ok(v) = ctx.input() {
            root.set(RootState::Val(v));
        }
    }
    run_stmts(&ctx, &prog.stmts)?;
    Ok(RawOutcome {
        root: root.state.get(),
        fields: root.fields.filter(|_| root.touched.get()),
        meta: env.meta.into_written(),
    })
}

/// Runs a named map (`.apply("name")`) with `this` = `v`; returns its root.
pub fn apply_map<'a>(ctx: &Ctx<'a, '_>, name: &str, v: Value<'a>) -> R<'a> {
    let Some((_, stmts)) = ctx.env.prog.maps.iter().find(|(n, _)| n == name) else {
        return ctx.fail(&format!("map {name} was not found"));
    };
    let depth = ctx.env.depth.get();
    if depth >= MAX_APPLY_DEPTH {
        return ctx.fail(&format!("map {name}: maximum apply depth exceeded"));
    }
    ctx.env.depth.set(depth + 1);
    let root = Root::new();
    let sub = Ctx {
        arena: ctx.arena,
        env: ctx.env,
        this: Some(v),
        root: &root,
    };
    let r = run_stmts(&sub, stmts);
    ctx.env.depth.set(depth);
    r.map_err(|(_, m)| Flow::Err(m))?;
    match root.state.get() {
        RootState::Val(v) => Ok(v),
        RootState::Deleted => Err(Flow::Deleted),
        RootState::Unset => Err(Flow::Nothing),
    }
}

/// Runs another program (`.bloblang(mapping)`) with `this` = `v`; returns its root.
pub fn run_sub<'a>(ctx: &Ctx<'a, '_>, prog: &Program, v: Value<'a>) -> R<'a> {
    let vars = ctx
        .arena
        .alloc_slice_fill_with(prog.nvars, |_| Cell::new(None));
    let env = Env {
        batch: ctx.env.batch,
        index: ctx.env.index,
        vars,
        input: OnceCell::new(),
        meta: ctx.env.meta.fork(),
        prog,
        depth: Cell::new(ctx.env.depth.get() + 1),
    };
    if env.depth.get() > MAX_APPLY_DEPTH {
        return ctx.fail("maximum mapping depth exceeded");
    }
    let root = Root::new();
    let sub = Ctx {
        arena: ctx.arena,
        env: &env,
        this: Some(v),
        root: &root,
    };
    run_stmts(&sub, &prog.stmts).map_err(|(_, m)| Flow::Err(m))?;
    match root.state.get() {
        RootState::Val(v) => Ok(v),
        RootState::Deleted => Err(Flow::Deleted),
        RootState::Unset => Err(Flow::Nothing),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_and_delete_paths() {
        let arena = Bump::new();
        let v = set_path(&arena, Value::Null, &["a", "b"], Some(Value::Int(1)));
        let v = set_path(&arena, v, &["a", "c"], Some(Value::Int(2)));
        let v = set_path(&arena, v, &["0"], Some(Value::Bool(true)));
        assert_eq!(v.to_text(&arena), r#"{"0":true,"a":{"b":1,"c":2}}"#);
        let v = set_path(&arena, v, &["a", "b"], None);
        assert_eq!(v.to_text(&arena), r#"{"0":true,"a":{"c":2}}"#);
    }

    #[test]
    fn equality_and_ordering() {
        assert!(equal(&Value::Int(20), &Value::Float(20.0)));
        assert!(!equal(&Value::Str("1"), &Value::Int(1)));
        assert_eq!(
            compare(&Value::Str("a"), &Value::Str("b")),
            Some(std::cmp::Ordering::Less)
        );
        assert_eq!(compare(&Value::Str("a"), &Value::Int(1)), None);
    }

    use super::super::test_eval as run;

    #[test]
    fn control_flow_values() {
        assert_eq!(
            run("root = [1, deleted(), if false { 2 }, 3]", "{}"),
            "[1,3]"
        );
        assert_eq!(
            run("root.a = if false { 1 }\nroot.b = 2", "{}"),
            r#"{"b":2}"#
        );
        assert_eq!(run("root = this.a | this.b | \"c\"", r#"{"b":null}"#), "c");
        assert_eq!(
            run("root = this.a.number().catch(-1)", r#"{"a":"x"}"#),
            "-1"
        );
        assert_eq!(
            run("root = throw(\"boom\").catch(e -> e.uppercase())", "{}"),
            "BOOM"
        );
        assert_eq!(
            run("root = this\nroot.x = deleted()", r#"{"x":1,"y":2}"#),
            r#"{"y":2}"#
        );
        assert_eq!(
            run("root = match this.k { \"a\" => 1, _ => 2 }", r#"{"k":"a"}"#),
            "1"
        );
        assert_eq!(
            run("root = match { this.n > 5 => \"big\" }", r#"{"n":1}"#),
            r#"{"n":1}"#
        );
    }

    #[test]
    fn variables_meta_and_maps() {
        let m = "map inc {\n root = this + 1\n}\nlet a = 1.apply(\"inc\")\nmeta k = $a\nroot.v = @k\nroot.m = @";
        assert_eq!(run(m, "{}"), r#"{"m":{"k":2},"v":2}"#);
        let looped = "map f {\n root = this.apply(\"f\")\n}\nroot = 1.apply(\"f\")";
        assert!(run(looped, "{}").contains("maximum apply depth"));
        assert!(run("root = $nope", "{}").contains("variable 'nope' undefined"));
    }

    #[test]
    fn arithmetic_and_errors() {
        assert_eq!(
            run(
                "root = [1 + 2, 1 + 2.5, \"a\" + \"b\", 9223372036854775807 + 1 > 0]",
                "{}"
            ),
            "[3,3.5,\"ab\",true]"
        );
        assert!(
            run("root = \"a\" + 1", "{}").starts_with("ERR failed assignment (line 1): cannot add")
        );
        assert!(
            run("root = this.a", "not json").contains("unable to reference message as structured")
        );
        assert_eq!(run("root = content()", "not json"), "not json");
    }

    #[test]
    fn queries_against_other_messages() {
        let m = super::super::Mapping::parse(
            "root = [json(\"n\").from(1), json(\"n\").from_all(), batch_index()]",
        )
        .unwrap();
        let arena = Bump::new();
        let batch = [
            Message::new(&arena, br#"{"n":1}"#),
            Message::new(&arena, br#"{"n":2}"#),
        ];
        let out = m.exec(&arena, &batch, 0).unwrap().unwrap();
        assert_eq!(out.payload, br#"[2,[1,2],0]"#);
        assert!(m.exec(&arena, &batch[..1], 0).is_err());
    }

    #[test]
    fn text_of_values_uses_go_numbers() {
        let arena = Bump::new();
        let items = arena.alloc_slice_copy(&[Value::Float(1e21), Value::Float(0.5), Value::Int(3)]);
        assert_eq!(to_text(&arena, &Value::Array(items)), "[1e+21,0.5,3]");
        assert_eq!(to_text(&arena, &Value::Bytes(b"raw")), "raw");
    }

    #[test]
    fn objects_sort_and_dedup() {
        let arena = Bump::new();
        let mut items = BVec::new_in(&arena);
        items.push(("b", Value::Int(1)));
        items.push(("a", Value::Int(2)));
        items.push(("b", Value::Int(3)));
        let o = make_object(&arena, items);
        assert_eq!(o.to_text(&arena), r#"{"a":2,"b":3}"#);
        assert_eq!(get_field(o, "b"), Value::Int(3));
        let arr = Value::Array(arena.alloc_slice_copy(&[Value::Int(7), Value::Int(8)]));
        assert_eq!(get_field(arr, "-1"), Value::Int(8));
    }
}
