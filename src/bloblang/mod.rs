//! Bloblang, Redpanda Connect's mapping language: parse a mapping once (`Mapping`,
//! `Interpolated`), then evaluate it per message with every value in the request arena.
//!
//! # Layout
//! - `lexer`, `parser`, `ast`: source text to a `Program` (functions/methods resolved).
//! - `eval`: the tree walker and shared value helpers; `json`: arena JSON parser/writers.
//! - `functions`: `now()`, `counter()`, `uuid_v4()`, ...; `methods`: the method registry
//!   and argument helpers, with one file per family (`methods_strings`,
//!   `methods_numbers`, `methods_time`, `methods_encoding`, `methods_collections`,
//!   `methods_regex`, `methods_parse`).
//! - `interpolate`: `${! ... }` strings; `cli`: `sluice blobl`.
//!
//! Timestamps are RFC 3339 strings (as upstream prints them); `ts_*` methods parse them
//! on use, so `type()` of a timestamp says "string".

use std::fmt;
use std::path::Path;

use bumpalo::collections::Vec as BVec;
use bumpalo::Bump;

use crate::message::{Message, Value};

mod ast;
pub mod cli;
mod eval;
pub use eval::Mode;
mod functions;
mod interpolate;
mod json;
mod lexer;
mod methods;
mod methods_collections;
mod methods_encoding;
mod methods_numbers;
mod methods_parse;
mod methods_regex;
mod methods_strings;
mod methods_time;
mod parser;

pub use interpolate::Interpolated;

/// A syntax error with its position; Display gives `line L char C: msg`, the line, a caret.
#[derive(Clone, Debug, PartialEq)]
pub struct ParseError {
    /// 1-based line of the error.
    pub line: u32,
    /// 1-based column (in characters) of the error.
    pub col: u32,
    /// What was wrong, e.g. `expected query`.
    pub msg: String,
    /// The offending source line, for the caret display.
    pub line_text: String,
}

impl ParseError {
    pub fn new(src: &str, line: u32, col: u32, msg: impl Into<String>) -> ParseError {
        let line_text = src
            .lines()
            .nth(line.saturating_sub(1) as usize)
            .unwrap_or("")
            .to_string();
        ParseError {
            line,
            col,
            msg: msg.into(),
            line_text,
        }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "line {} char {}: {}\n{}\n",
            self.line, self.col, self.msg, self.line_text
        )?;
        let pad: String = self
            .line_text
            .chars()
            .take(self.col.saturating_sub(1) as usize)
            .map(|c| if c == '\t' { '\t' } else { ' ' })
            .collect();
        write!(f, "{pad}^")
    }
}

impl std::error::Error for ParseError {}

/// A runtime failure, e.g. `failed assignment (line 1): value is null`.
#[derive(Clone, Debug, PartialEq)]
pub struct ExecError(pub String);

impl fmt::Display for ExecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ExecError {}

fn exec_error((line, msg): (u32, &str)) -> ExecError {
    ExecError(format!("failed assignment (line {line}): {msg}"))
}

/// One message as a mapping left it: its payload and, if the mapping wrote any, its
/// metadata (`None`: the input message's stands).
pub struct Mapped<'a> {
    pub payload: &'a [u8],
    pub meta: Option<crate::message::Meta<'a>>,
}

impl<'a> Mapped<'a> {
    /// The message that replaces the input: the mapped payload, the metadata the
    /// mapping wrote or else the input's (`input_meta` is called only then: a caller
    /// that owns the input moves its metadata, one that borrows it copies), and the
    /// input's `error`.
    pub fn into_message(
        self,
        error: Option<&'a str>,
        input_meta: impl FnOnce() -> crate::message::Meta<'a>,
    ) -> Message<'a> {
        Message {
            payload: self.payload,
            meta: self.meta.unwrap_or_else(input_meta),
            error,
        }
    }
}

/// A compiled mapping. `Clone` gives an independent copy (its own `counter()` state);
/// `Send` but not `Sync` (per-call caches and counters use `Cell`s).
#[derive(Clone, Debug)]
pub struct Mapping {
    /// The parsed statements, named maps and variable slot count.
    prog: ast::Program,
    /// Capacity to give the next output buffer (from the last output's length).
    size_hint: std::cell::Cell<usize>,
}

impl Mapping {
    /// Parses a mapping; `import`/`from` paths are relative to the working directory.
    pub fn parse(src: &str) -> Result<Mapping, ParseError> {
        Self::parse_in(src, Path::new("."))
    }

    /// Parses a mapping whose `import`/`from` paths are relative to `dir`.
    pub fn parse_in(src: &str, dir: &Path) -> Result<Mapping, ParseError> {
        Ok(Mapping {
            prog: parser::parse_program(src, dir)?,
            size_hint: std::cell::Cell::new(64),
        })
    }

    /// `mapping` processor semantics: the new message starts as a copy of the input
    /// (metadata kept, payload unchanged until root is assigned). `Ok(None)`: deleted.
    pub fn exec<'a>(
        &self,
        arena: &'a Bump,
        batch: &[Message<'a>],
        index: usize,
    ) -> Result<Option<Message<'a>>, ExecError> {
        self.finish(arena, batch, index, Mode::Mapping)
    }

    /// `mutation` semantics: root starts as the input document.
    pub fn exec_mutation<'a>(
        &self,
        arena: &'a Bump,
        batch: &[Message<'a>],
        index: usize,
    ) -> Result<Option<Message<'a>>, ExecError> {
        self.finish(arena, batch, index, Mode::Mutation)
    }

    fn finish<'a>(
        &self,
        arena: &'a Bump,
        batch: &[Message<'a>],
        index: usize,
        mode: Mode,
    ) -> Result<Option<Message<'a>>, ExecError> {
        let input = &batch[index];
        Ok(self
            .exec_parts(arena, batch, index, mode)?
            .map(|m| m.into_message(input.error, || input.meta.clone())))
    }

    /// Runs the mapping on message `index` as `mode` says, for a caller that owns the
    /// batch: metadata the mapping did not write is not copied (`Mapped::meta` is
    /// `None`), the caller keeps the input's. `Ok(None)`: deleted.
    pub fn exec_parts<'a>(
        &self,
        arena: &'a Bump,
        batch: &[Message<'a>],
        index: usize,
        mode: Mode,
    ) -> Result<Option<Mapped<'a>>, ExecError> {
        let out = eval::run_raw(&self.prog, arena, batch, index, mode).map_err(exec_error)?;
        let payload = match (out.fields, &self.prog.fields, out.root) {
            (Some(values), Some(plan), _) => self.serialise_fields(arena, values, plan),
            (_, _, eval::RootState::Deleted) => return Ok(None),
            (_, _, eval::RootState::Unset) => batch[index].payload,
            (_, _, eval::RootState::Val(v)) => serialise(arena, &v),
        };
        Ok(Some(Mapped {
            payload,
            meta: out.meta,
        }))
    }

    /// Compact JSON of a root kept as the fields of `plan`: the keys are already sorted
    /// and escaped, so only the values are written.
    fn serialise_fields<'a>(
        &self,
        arena: &'a Bump,
        values: &[std::cell::Cell<eval::Slot<'a>>],
        plan: &ast::Fields,
    ) -> &'a [u8] {
        let mut out = BVec::with_capacity_in(self.size_hint.get(), arena);
        out.push(b'{');
        let mut skip = 1;
        for (v, key) in values.iter().zip(&plan.json_keys) {
            match v.get() {
                eval::Slot::Absent => continue,
                eval::Slot::Val(v) => {
                    out.extend_from_slice_copy(&key[skip..]);
                    crate::message::write_json(&v, &mut out);
                }
                eval::Slot::Const(i) => {
                    out.extend_from_slice_copy(&key[skip..]);
                    out.extend_from_slice_copy(&plan.consts[i as usize].1);
                }
            }
            skip = 0;
        }
        out.push(b'}');
        // The next output of this mapping is likely about as long.
        self.size_hint.set(out.len() + out.len() / 8 + 16);
        out.into_bump_slice()
    }

    /// Evaluates the mapping as a query (a `check:` condition): the value of its single
    /// expression, or the root it builds.
    pub fn query<'a>(
        &self,
        arena: &'a Bump,
        batch: &[Message<'a>],
        index: usize,
    ) -> Result<Value<'a>, ExecError> {
        let out =
            eval::run(&self.prog, arena, batch, index, eval::Mode::Mapping).map_err(exec_error)?;
        match out.root {
            eval::RootState::Val(v) => Ok(v),
            eval::RootState::Deleted => Err(ExecError("query resulted in a deleted value".into())),
            eval::RootState::Unset => Err(ExecError("query resulted in nothing".into())),
        }
    }
}

/// Payload bytes of a result: strings and bytes raw, anything else compact JSON.
pub fn serialise<'a>(arena: &'a Bump, v: &Value<'a>) -> &'a [u8] {
    match *v {
        Value::Str(s) => s.as_bytes(),
        Value::Bytes(b) => b,
        _ => {
            let mut out = BVec::with_capacity_in(64, arena);
            crate::message::write_json(v, &mut out);
            out.into_bump_slice()
        }
    }
}

/// Test helper: runs `mapping` on one `input` message; the payload text, `<deleted>`,
/// or `ERR <error>`.
#[cfg(test)]
pub(crate) fn test_eval(mapping: &str, input: &str) -> String {
    let m = Mapping::parse(mapping).unwrap();
    let arena = Bump::new();
    let batch = [Message::new(
        &arena,
        arena.alloc_slice_copy(input.as_bytes()),
    )];
    let out = match m.exec(&arena, &batch, 0) {
        Ok(Some(o)) => String::from_utf8_lossy(o.payload).into_owned(),
        Ok(None) => "<deleted>".into(),
        Err(e) => format!("ERR {e}"),
    };
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(mapping: &str, input: &str) -> Result<Option<String>, String> {
        let m = Mapping::parse(mapping).map_err(|e| e.to_string())?;
        let arena = Bump::new();
        let batch = [Message::new(
            &arena,
            arena.alloc_slice_copy(input.as_bytes()),
        )];
        m.exec(&arena, &batch, 0)
            .map(|o| o.map(|m| String::from_utf8_lossy(m.payload).into_owned()))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn weather_mapping() {
        let m = "root.city = this.location\nroot.forecast = \"Clear skies with light winds\"\nroot.temperature_c = 22";
        assert_eq!(
            run(m, r#"{"location":"Berlin"}"#).unwrap().unwrap(),
            r#"{"city":"Berlin","forecast":"Clear skies with light winds","temperature_c":22}"#
        );
    }

    #[test]
    fn field_plan_matches_generic_root_building() {
        // With input `{}`, `mutation` (generic object building from `{}`) and `mapping`
        // (the planned fields) must agree whenever root is not read before it is set.
        let cases = [
            "root.b = 1\nroot.a = \"x\"\nroot.b = 2",
            "root.s = \"q\\\"\\n\"\nroot.f = 12345678.125\nroot.g = null\nroot.h = true\nroot.r = root",
            "root.a = \"s\"\nroot.a.b = 1\nroot.c = -2.5\nroot.c = deleted()\nroot.d = 0.1",
            "root.a.b = 1\nroot.a.c = [1, 2]\nroot.z = root.a.c.length()",
            "root.a.b = 1\nroot.a.b = deleted()\nroot.c = root",
            "root.a = deleted()",
            "root.a = 1\nroot.a = deleted()\nroot.b = if false { 1 }",
            "root.a = 5\nroot.a.b = 1\nroot.x.y = deleted()",
            "root.\"q\\\"k\" = 1\nroot.\"\" = 2\nroot.0 = 3",
            "meta m = 1\nlet v = 2\nif true { root.v = $v } else { root.w = 0 }\nroot.m = @m",
            "root.k = 1\nroot.l = [this].map_each(x -> root)",
            "map inner {\n root.in = this\n}\nroot.a = 1.apply(\"inner\")\nroot.b = root.a.in",
        ];
        for m in cases {
            let mapping = Mapping::parse(m).unwrap();
            assert!(mapping.prog.fields.is_some(), "{m}");
            let arena = Bump::new();
            let batch = [Message::new(&arena, b"{}")];
            let plan = mapping.exec(&arena, &batch, 0).unwrap().unwrap().payload;
            let generic = mapping
                .exec_mutation(&arena, &batch, 0)
                .unwrap()
                .unwrap()
                .payload;
            assert_eq!(
                String::from_utf8_lossy(plan),
                String::from_utf8_lossy(generic),
                "{m}"
            );
            assert_eq!(
                mapping
                    .query(&arena, &batch, 0)
                    .unwrap()
                    .to_text(&arena)
                    .as_bytes(),
                generic,
                "{m}"
            );
        }
        assert_eq!(
            run("root.b = 1\nroot.a = root", "{}").unwrap().unwrap(),
            r#"{"a":{"b":1},"b":1}"#
        );
        assert_eq!(
            run("root.a = root", "{}").unwrap().unwrap(),
            r#"{"a":null}"#
        );
        assert_eq!(
            run("root.a = if false { 1 }", "raw").unwrap().unwrap(),
            "raw"
        );
        assert_eq!(run("root.a = deleted()", "raw").unwrap().unwrap(), "{}");
        assert!(Mapping::parse("root.a = 1\nroot = {}")
            .unwrap()
            .prog
            .fields
            .is_none());
    }

    #[test]
    fn unassigned_root_keeps_payload_and_meta_flows() {
        let m = Mapping::parse("meta foo = \"bar\"\nmeta baz = deleted()").unwrap();
        let arena = Bump::new();
        let mut msg = Message::new(&arena, b"raw text");
        msg.meta.set("baz", Value::Int(1));
        let out = m.exec(&arena, &[msg], 0).unwrap().unwrap();
        assert_eq!(out.payload, b"raw text");
        assert_eq!(out.meta.get("foo"), Some(Value::Str("bar")));
        assert_eq!(out.meta.get("baz"), None);
    }

    #[test]
    fn deletion_errors_and_mutation() {
        assert_eq!(run("root = deleted()", "{}").unwrap(), None);
        assert_eq!(
            run("root.a = this.b.not_null()", "{}").unwrap_err(),
            "failed assignment (line 1): field `this.b`: value is null"
        );
        let m = Mapping::parse("root.b = 2").unwrap();
        let arena = Bump::new();
        let batch = [Message::new(&arena, br#"{"a":1}"#)];
        let out = m.exec_mutation(&arena, &batch, 0).unwrap().unwrap();
        assert_eq!(out.payload, br#"{"a":1,"b":2}"#);
    }

    #[test]
    fn query_and_parse_error_display() {
        let m = Mapping::parse("this.n > 3").unwrap();
        let arena = Bump::new();
        let batch = [Message::new(&arena, br#"{"n":5}"#)];
        assert_eq!(m.query(&arena, &batch, 0).unwrap(), Value::Bool(true));
        let e = Mapping::parse("root = ][").unwrap_err();
        assert_eq!(
            e.to_string(),
            "line 1 char 8: expected query\nroot = ][\n       ^"
        );
    }

    /// Counts global-heap allocations made by the current thread (tests run in parallel,
    /// so a process-wide count would be noisy).
    struct CountingAlloc;

    thread_local! {
        static ALLOCS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    }

    // SAFETY: defers to the system allocator; only bumps a thread-local counter.
    unsafe impl std::alloc::GlobalAlloc for CountingAlloc {
        unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
            let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
            // SAFETY: same contract as the caller's.
            unsafe { std::alloc::System.alloc(layout) }
        }
        unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
            // SAFETY: same contract as the caller's.
            unsafe { std::alloc::System.dealloc(ptr, layout) }
        }
        unsafe fn realloc(&self, ptr: *mut u8, layout: std::alloc::Layout, new: usize) -> *mut u8 {
            let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
            // SAFETY: same contract as the caller's.
            unsafe { std::alloc::System.realloc(ptr, layout, new) }
        }
    }

    #[global_allocator]
    static GLOBAL: CountingAlloc = CountingAlloc;

    #[test]
    fn weather_mapping_makes_no_heap_allocations_in_steady_state() {
        let m = Mapping::parse(
            "root.city = this.location\nroot.forecast = \"Clear skies with light winds\"\nroot.temperature_c = 22",
        )
        .unwrap();
        let mut arena = Bump::with_capacity(64 * 1024);
        let input = br#"{"location":"Berlin","extra":[1,2.5,{"x":null}]}"#;
        let run = |arena: &mut Bump| {
            arena.reset();
            let batch = [Message::new(arena, input)];
            let out = m.exec(arena, &batch, 0).unwrap().unwrap();
            out.payload.len()
        };
        run(&mut arena);
        let before = ALLOCS.with(|c| c.get());
        for _ in 0..100 {
            run(&mut arena);
        }
        assert_eq!(ALLOCS.with(|c| c.get()) - before, 0);

        // Interpolation and `check:` queries are allocation-free too.
        let interp = Interpolated::parse("${! @code }-${! this.location }").unwrap();
        let check = Mapping::parse("this.location == \"Berlin\" && @code == \"200\"").unwrap();
        let both = |arena: &mut Bump| {
            arena.reset();
            let mut msg = Message::new(arena, input);
            msg.meta.set("code", Value::Str("200"));
            let batch = [msg];
            let text = interp.render(arena, &batch, 0).unwrap();
            assert_eq!(text, "200-Berlin");
            assert_eq!(check.query(arena, &batch, 0).unwrap(), Value::Bool(true));
        };
        both(&mut arena);
        let before = ALLOCS.with(|c| c.get());
        for _ in 0..100 {
            both(&mut arena);
        }
        assert_eq!(ALLOCS.with(|c| c.get()) - before, 0);
    }

    #[test]
    fn hostile_inputs_error_instead_of_panicking() {
        let cases = [
            "root = \"é\".ts_parse(\"Jan\")",
            "root = \"%99999999999d\".format(1)",
            "root = range(0, 9223372036854775807)",
            "root = \"2020-01-01T00:00:00Z\".ts_add_iso8601(\"P99999999999999999D\")",
            "root = \"x\".repeat(9223372036854775807)",
            "root = -9223372036854775807 - 1",
            "root = (-9223372036854775807 - 1).abs()",
            "root = [3, 1, 2].sort(x -> true)",
            "root = [1, \"a\", 2].sort()",
            "root = \"ééééééééééééééééééééééééééééééééééééééééééé\" + 1",
        ];
        for m in cases {
            let _ = test_eval(m, "{}");
        }
    }

    #[test]
    fn import_and_from_files() {
        let dir = std::env::temp_dir().join(format!("blobl-import-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("lib.blobl"),
            "map shout {\n let t = this.uppercase()\n root = $t + \"!\"\n}\n",
        )
        .unwrap();
        std::fs::write(dir.join("whole.blobl"), "root.v = this.v * 2\n").unwrap();
        let m = Mapping::parse_in(
            "let t = \"mine\"\nimport \"lib.blobl\"\nroot.a = this.s.apply(\"shout\")\nroot.t = $t",
            &dir,
        )
        .unwrap();
        let arena = Bump::new();
        let batch = [Message::new(&arena, br#"{"s":"hi"}"#)];
        let out = m.exec(&arena, &batch, 0).unwrap().unwrap();
        assert_eq!(out.payload, br#"{"a":"HI!","t":"mine"}"#);
        let m = Mapping::parse_in("from \"whole.blobl\"", &dir).unwrap();
        let batch = [Message::new(&arena, br#"{"v":4}"#)];
        assert_eq!(
            m.exec(&arena, &batch, 0).unwrap().unwrap().payload,
            br#"{"v":8}"#
        );
        assert!(Mapping::parse_in("import \"missing.blobl\"", &dir).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn mapping_is_send_and_clone() {
        fn check<T: Send + Clone>() {}
        check::<Mapping>();
        check::<Interpolated>();
    }
}
