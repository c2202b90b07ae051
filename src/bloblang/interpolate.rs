//! Interpolated config strings: `${! expr }` segments evaluated per message, `${{! ... }}`
//! kept as a literal `${! ... }`; a string without expressions costs nothing to render.

use bumpalo::Bump;

use super::ast::Program;
use super::eval::{self, RootState};
use super::{exec_error, parser, ExecError, ParseError};
use crate::message::Message;

#[derive(Clone, Debug)]
enum Segment {
    Text(String),
    Expr(Box<Program>),
}

/// A parsed interpolated string. `Clone + Send`.
#[derive(Clone, Debug)]
pub struct Interpolated {
    /// Literal text and expressions, in order.
    segments: Vec<Segment>,
    /// The whole text when there is no expression.
    fixed: Option<String>,
}

/// Index of the `}` closing an expression that starts at `from`, skipping strings and
/// nested braces.
fn closing_brace(s: &str, from: usize) -> Option<usize> {
    let b = s.as_bytes();
    let mut depth = 0usize;
    let mut i = from;
    while i < b.len() {
        match b[i] {
            b'"' => {
                if s[i..].starts_with("\"\"\"") {
                    i = i + 3 + s[i + 3..].find("\"\"\"")? + 2;
                } else {
                    i += 1;
                    while i < b.len() && b[i] != b'"' {
                        if b[i] == b'\\' {
                            i += 1;
                        }
                        i += 1;
                    }
                }
            }
            b'{' => depth += 1,
            b'}' if depth == 0 => return Some(i),
            b'}' => depth -= 1,
            _ => {}
        }
        i += 1;
    }
    None
}

impl Interpolated {
    pub fn parse(s: &str) -> Result<Interpolated, ParseError> {
        let mut segments = Vec::new();
        let mut text = String::new();
        let mut rest = 0;
        while let Some(off) = s[rest..].find("${") {
            let at = rest + off;
            text.push_str(&s[rest..at]);
            if s[at..].starts_with("${{!") {
                // Escaped: `${{! x }}` is the literal `${! x }`.
                match s[at..].find("}}") {
                    Some(end) => {
                        text.push_str("${");
                        text.push_str(&s[at + 3..at + end]);
                        text.push('}');
                        rest = at + end + 2;
                    }
                    None => {
                        text.push_str(&s[at..]);
                        rest = s.len();
                    }
                }
                continue;
            }
            if !s[at..].starts_with("${!") {
                text.push_str("${");
                rest = at + 2;
                continue;
            }
            let start = at + 3;
            let Some(end) = closing_brace(s, start) else {
                return Err(ParseError::new(s, 1, (at + 1) as u32, "required: }"));
            };
            let prog = parser::parse_expression(&s[start..end]).map_err(|mut e| {
                e.col += s[..start].chars().count() as u32;
                e.line_text = s.to_string();
                e
            })?;
            if !text.is_empty() {
                segments.push(Segment::Text(std::mem::take(&mut text)));
            }
            segments.push(Segment::Expr(Box::new(prog)));
            rest = end + 1;
        }
        text.push_str(&s[rest..]);
        let fixed = if segments.is_empty() {
            Some(text.clone())
        } else {
            None
        };
        if !text.is_empty() {
            segments.push(Segment::Text(text));
        }
        Ok(Interpolated { segments, fixed })
    }

    /// The text when the string has no expression.
    pub fn as_static(&self) -> Option<&str> {
        self.fixed.as_deref()
    }

    /// Renders against message `index` of `batch`: strings raw, other values as JSON.
    pub fn render<'a>(
        &self,
        arena: &'a Bump,
        batch: &[Message<'a>],
        index: usize,
    ) -> Result<&'a str, ExecError> {
        if let Some(f) = &self.fixed {
            return Ok(arena.alloc_str(f));
        }
        let mut out = bumpalo::collections::String::new_in(arena);
        for seg in &self.segments {
            match seg {
                Segment::Text(t) => out.push_str(t),
                Segment::Expr(p) => {
                    let o = eval::run(p, arena, batch, index, eval::Mode::Mapping)
                        .map_err(exec_error)?;
                    match o.root {
                        RootState::Val(v) => out.push_str(eval::to_text(arena, &v)),
                        _ => out.push_str("null"),
                    }
                }
            }
        }
        Ok(out.into_bump_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_and_escaped() {
        let i = Interpolated::parse("plain ${{! not_evaluated }} text").unwrap();
        assert_eq!(i.as_static(), Some("plain ${! not_evaluated } text"));
    }

    #[test]
    fn renders_expressions() {
        let i = Interpolated::parse("id=${! this.id } n=${!this.n + 1} m=${! @k }").unwrap();
        assert!(i.as_static().is_none());
        let arena = Bump::new();
        let mut msg = Message::new(&arena, br#"{"id":"x","n":1.5}"#);
        msg.meta.set("k", crate::message::Value::Str("v"));
        assert_eq!(i.render(&arena, &[msg], 0).unwrap(), "id=x n=2.5 m=v");
    }

    #[test]
    fn object_literal_inside() {
        let i = Interpolated::parse("${! {\"a\": 1} }").unwrap();
        let arena = Bump::new();
        let msg = Message::new(&arena, b"");
        assert_eq!(i.render(&arena, &[msg], 0).unwrap(), r#"{"a":1}"#);
        assert!(Interpolated::parse("${! this.a ").is_err());
    }
}
