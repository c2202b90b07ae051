//! Bloblang syntax tree: statements, expressions, constant literals, and the resolved
//! function/method call nodes the evaluator walks.

use std::cell::{Cell, OnceCell};

use super::eval::{Ctx, R};
use crate::message::Value;

/// A method implementation: receives the evaluated target and the unevaluated arguments
/// (so lambdas and `catch`-like arguments are evaluated on demand).
pub type MethodFn = for<'a, 'c> fn(&Ctx<'a, 'c>, Value<'a>, &Call) -> R<'a>;
/// A function implementation.
pub type FuncFn = for<'a, 'c> fn(&Ctx<'a, 'c>, &Call) -> R<'a>;

/// A constant known at parse time (literals, folded arrays/objects of literals).
#[derive(Clone, Debug, PartialEq)]
pub enum Lit {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(Box<str>),
}

/// One argument of a call, positional or `name: expr`.
#[derive(Clone, Debug)]
pub struct Arg {
    pub name: Option<Box<str>>,
    pub expr: Expr,
}

/// Things a call node may compute once and reuse across messages (compiled regular
/// expressions, time zones, parsed mappings), keyed by the argument text they came from.
#[derive(Clone, Debug)]
pub enum Cache {
    Regex(Box<str>, regex::Regex),
    Tz(Box<str>, chrono_tz::Tz),
    Mapping(Box<str>, Box<super::Mapping>),
}

/// A resolved function or method call.
#[derive(Clone, Debug)]
pub struct Call {
    pub name: Box<str>,
    pub args: Vec<Arg>,
    /// Per-call compiled helper (regex, tz, ...), filled on first use.
    pub cache: OnceCell<Cache>,
    /// Per-call integer state (`counter()`), per Mapping instance.
    pub state: Cell<i64>,
    /// Whether `state` was initialised.
    pub started: Cell<bool>,
}

impl Call {
    pub fn new(name: &str, args: Vec<Arg>) -> Call {
        Call {
            name: name.into(),
            args,
            cache: OnceCell::new(),
            state: Cell::new(0),
            started: Cell::new(false),
        }
    }

    /// The argument at `pos` (when positional) or named `name`.
    pub fn arg(&self, pos: usize, name: &str) -> Option<&Expr> {
        if let Some(a) = self.args.iter().find(|a| a.name.as_deref() == Some(name)) {
            return Some(&a.expr);
        }
        self.args
            .iter()
            .filter(|a| a.name.is_none())
            .nth(pos)
            .map(|a| &a.expr)
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum BinOp {
    Mul,
    Div,
    Mod,
    Add,
    Sub,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    And,
    Or,
    Coalesce,
}

/// A `match` case pattern.
#[derive(Clone, Debug)]
pub enum Pat {
    /// `_`
    Any,
    /// A literal compared for equality with the subject.
    Lit(Lit),
    /// Any other expression: a boolean condition evaluated against the subject.
    Cond(Expr),
}

#[derive(Clone, Debug)]
pub enum Expr {
    Lit(Lit),
    This,
    Root,
    /// `target.field` (or an array index when the target is an array).
    Get(Box<Expr>, Box<str>),
    /// `$name` or a lambda parameter, resolved to a slot.
    Var(usize, Box<str>),
    /// `@name` / `@`
    Meta(Option<Box<str>>),
    Func(FuncFn, Box<Call>),
    Method {
        target: Box<Expr>,
        f: MethodFn,
        call: Box<Call>,
        /// `this.a.b` when the target is a plain path: errors read "field `this.a.b`: ...".
        desc: Option<Box<str>>,
    },
    Catch(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    /// `query.from(index)`: the query run against another message of the batch.
    From(Box<Expr>, Box<Expr>),
    /// `query.from_all()`: the query run against every message of the batch.
    FromAll(Box<Expr>),
    /// `target.(expr)`: evaluate expr with `this` = target.
    WithCtx(Box<Expr>, Box<Expr>),
    /// `name -> body` (slot for the parameter) or `_ -> body` (None).
    Lambda(Option<usize>, Box<Expr>),
    Array(Vec<Expr>),
    Object(Vec<(Expr, Expr)>),
    Bin(BinOp, Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    Neg(Box<Expr>),
    If(Vec<(Expr, Expr)>, Option<Box<Expr>>),
    Match(Option<Box<Expr>>, Vec<(Pat, Expr)>),
}

/// A statement of a mapping (or of a named `map`).
#[derive(Clone, Debug)]
pub enum Stmt {
    /// `root.a.b = expr` (path after `root`; empty for `root = expr`).
    Assign {
        path: Vec<Box<str>>,
        expr: Expr,
        line: u32,
        /// Where `path[0]` sits in the program's `Fields` plan (`NO_FIELD` without one).
        field: FieldRef,
    },
    /// `meta k = expr` / `meta = expr`.
    Meta {
        key: Option<Box<str>>,
        expr: Expr,
        line: u32,
    },
    Let {
        slot: usize,
        expr: Expr,
        line: u32,
    },
    If {
        branches: Vec<(Expr, Vec<Stmt>)>,
        otherwise: Option<Vec<Stmt>>,
        line: u32,
    },
}

/// An assignment's place in a `Fields` plan.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FieldRef {
    /// Index of `path[0]` in `Fields::keys` (`usize::MAX` outside a plan).
    pub index: usize,
    /// For `root.key = <literal>`: the literal's index in `Fields::consts`.
    pub konst: Option<u32>,
}

/// `Stmt::Assign::field` of a statement outside a `Fields` plan.
pub const NO_FIELD: FieldRef = FieldRef {
    index: usize::MAX,
    konst: None,
};

/// Compile-time layout of the document a mapping builds when every top-level assignment
/// (including those inside `if` blocks) targets a field of `root` (`root.a = ...`,
/// `root.a.b = ...`) and none replaces root as a whole: root is then an object whose
/// top-level keys are known up front, so a run keeps one value per key instead of
/// rebuilding the object on each assignment, and serialises with pre-escaped keys.
#[derive(Clone, Debug, Default)]
pub struct Fields {
    /// The distinct first path segments, sorted (the object's key order).
    pub keys: Vec<Box<str>>,
    /// `,"key":` as JSON text, per key (the leading comma skipped for the first member).
    pub json_keys: Vec<Box<[u8]>>,
    /// Literals assigned to a top-level key, with their compact JSON text: a run records
    /// which one a key holds and the output copies the text.
    pub consts: Vec<(Lit, Box<[u8]>)>,
}

/// A parsed mapping: top-level statements, named maps, number of variable slots.
#[derive(Clone, Debug, Default)]
pub struct Program {
    /// Top-level statements, in order.
    pub stmts: Vec<Stmt>,
    /// `map name { ... }` bodies for `.apply("name")`.
    pub maps: Vec<(String, Vec<Stmt>)>,
    /// Number of variable/parameter slots an execution needs.
    pub nvars: usize,
    /// The field layout of root, when the statements allow one (see `Fields`).
    pub fields: Option<Fields>,
}

impl Program {
    /// Computes `fields` and numbers the assignments' `field`s (top level only: named
    /// maps build their own roots).
    pub fn plan_fields(&mut self) {
        fn collect<'s>(stmts: &'s [Stmt], keys: &mut Vec<&'s str>) -> bool {
            stmts.iter().all(|st| match st {
                Stmt::Assign { path, .. } => match path.first() {
                    Some(k) => {
                        keys.push(k);
                        true
                    }
                    None => false,
                },
                Stmt::If {
                    branches,
                    otherwise,
                    ..
                } => {
                    branches.iter().all(|(_, b)| collect(b, keys))
                        && otherwise.as_deref().is_none_or(|o| collect(o, keys))
                }
                Stmt::Meta { .. } | Stmt::Let { .. } => true,
            })
        }
        fn number(stmts: &mut [Stmt], keys: &[Box<str>], consts: &mut Vec<(Lit, Box<[u8]>)>) {
            for st in stmts {
                match st {
                    Stmt::Assign {
                        path, field, expr, ..
                    } => {
                        let Ok(index) = keys.binary_search_by(|k| (**k).cmp(&*path[0])) else {
                            *field = NO_FIELD;
                            continue;
                        };
                        let konst = match expr {
                            Expr::Lit(l) if path.len() == 1 => {
                                let arena = bumpalo::Bump::new();
                                let mut text = bumpalo::collections::Vec::new_in(&arena);
                                crate::message::write_json(&l.to_value(&arena), &mut text);
                                consts.push((l.clone(), Box::from(&text[..])));
                                u32::try_from(consts.len() - 1).ok()
                            }
                            _ => None,
                        };
                        *field = FieldRef { index, konst };
                    }
                    Stmt::If {
                        branches,
                        otherwise,
                        ..
                    } => {
                        for (_, b) in branches {
                            number(b, keys, consts);
                        }
                        if let Some(o) = otherwise {
                            number(o, keys, consts);
                        }
                    }
                    Stmt::Meta { .. } | Stmt::Let { .. } => {}
                }
            }
        }
        let mut found = Vec::new();
        if !collect(&self.stmts, &mut found) || found.is_empty() {
            self.fields = None;
            return;
        }
        let mut keys: Vec<Box<str>> = found.into_iter().map(Box::from).collect();
        keys.sort();
        keys.dedup();
        let mut consts = Vec::new();
        number(&mut self.stmts, &keys, &mut consts);
        let json_keys = keys
            .iter()
            .map(|k| {
                let mut text = vec![b','];
                crate::message::write_json_str(k, &mut text);
                text.push(b':');
                text.into_boxed_slice()
            })
            .collect();
        self.fields = Some(Fields {
            keys,
            json_keys,
            consts,
        });
    }
}

impl Lit {
    pub fn to_value<'a>(&self, arena: &'a bumpalo::Bump) -> Value<'a> {
        match self {
            Lit::Null => Value::Null,
            Lit::Bool(b) => Value::Bool(*b),
            Lit::Int(i) => Value::Int(*i),
            Lit::Float(f) => Value::Float(*f),
            Lit::Str(s) => Value::Str(arena.alloc_str(s)),
        }
    }
}

/// A textual description of a pure path expression (`this.a.b`), for error messages.
pub fn describe(e: &Expr) -> Option<String> {
    match e {
        Expr::This => Some("this".into()),
        Expr::Root => Some("root".into()),
        Expr::Var(_, n) => Some(format!("${n}")),
        Expr::Meta(Some(k)) => Some(format!("@{k}")),
        Expr::Get(t, f) => describe(t).map(|d| format!("{d}.{f}")),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_and_positional_args() {
        let c = Call::new(
            "x",
            vec![
                Arg {
                    name: None,
                    expr: Expr::Lit(Lit::Int(1)),
                },
                Arg {
                    name: Some("b".into()),
                    expr: Expr::Lit(Lit::Int(2)),
                },
            ],
        );
        assert!(matches!(c.arg(0, "a"), Some(Expr::Lit(Lit::Int(1)))));
        assert!(matches!(c.arg(5, "b"), Some(Expr::Lit(Lit::Int(2)))));
        assert!(c.arg(1, "c").is_none());
    }

    #[test]
    fn describes_paths() {
        let e = Expr::Get(
            Box::new(Expr::Get(Box::new(Expr::This), "a".into())),
            "b".into(),
        );
        assert_eq!(describe(&e).as_deref(), Some("this.a.b"));
        assert_eq!(describe(&Expr::Lit(Lit::Null)), None);
    }
}
