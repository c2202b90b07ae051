//! Bloblang lexer: source text to tokens with line/column positions; newlines are tokens
//! because they separate statements, `#` comments are dropped.

use super::ParseError;

/// One lexical token.
#[derive(Clone, Debug, PartialEq)]
pub enum Tok {
    Ident(String),
    Int(i64),
    Float(f64),
    /// A string literal, escapes already decoded (`"..."` or raw `"""..."""`).
    Str(String),
    /// `$name`
    Var(String),
    /// `@name`, `@"name"` or a bare `@` (None).
    Meta(Option<String>),
    Dot,
    Comma,
    Colon,
    LParen,
    RParen,
    LBracket,
    RBracket,
    LBrace,
    RBrace,
    Assign,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Plus,
    Minus,
    Star,
    Slash,
    Percent,
    Not,
    And,
    Or,
    Pipe,
    Arrow,
    FatArrow,
    Newline,
    Eof,
}

/// A token and where it starts (1-based line and column, in characters).
#[derive(Clone, Debug)]
pub struct Token {
    pub tok: Tok,
    pub line: u32,
    pub col: u32,
}

struct Lexer<'s> {
    /// The source, for error lines.
    src: &'s str,
    /// The source as characters, so columns count characters.
    chars: Vec<char>,
    /// Index into `chars` of the next character.
    pos: usize,
    /// Position of the next character (1-based).
    line: u32,
    col: u32,
    /// The previous token was `.`: a number here is a path index (`a.0.1`), never a float.
    after_dot: bool,
}

/// Splits `src` into tokens, ending with `Tok::Eof`.
pub fn lex(src: &str) -> Result<Vec<Token>, ParseError> {
    let mut lx = Lexer {
        src,
        chars: src.chars().collect(),
        pos: 0,
        line: 1,
        col: 1,
        after_dot: false,
    };
    let mut out = Vec::new();
    loop {
        let t = lx.next_token()?;
        lx.after_dot = t.tok == Tok::Dot;
        let eof = t.tok == Tok::Eof;
        out.push(t);
        if eof {
            return Ok(out);
        }
    }
}

fn is_ident_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}

fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

impl Lexer<'_> {
    fn peek(&self, n: usize) -> Option<char> {
        self.chars.get(self.pos + n).copied()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.chars.get(self.pos).copied()?;
        self.pos += 1;
        if c == '\n' {
            self.line += 1;
            self.col = 1;
        } else {
            self.col += 1;
        }
        Some(c)
    }

    fn err(&self, line: u32, col: u32, msg: impl Into<String>) -> ParseError {
        ParseError::new(self.src, line, col, msg)
    }

    fn next_token(&mut self) -> Result<Token, ParseError> {
        // Skip blanks and comments (not newlines).
        loop {
            match self.peek(0) {
                Some(' ' | '\t' | '\r') => {
                    self.bump();
                }
                Some('#') => {
                    while let Some(c) = self.peek(0) {
                        if c == '\n' {
                            break;
                        }
                        self.bump();
                    }
                }
                _ => break,
            }
        }
        let (line, col) = (self.line, self.col);
        let mk = |tok| Ok(Token { tok, line, col });
        let Some(c) = self.peek(0) else {
            return mk(Tok::Eof);
        };
        let two = |lx: &mut Self, t| {
            lx.bump();
            lx.bump();
            Ok(Token { tok: t, line, col })
        };
        let one = |lx: &mut Self, t| {
            lx.bump();
            Ok(Token { tok: t, line, col })
        };
        match c {
            '\n' => one(self, Tok::Newline),
            '.' => one(self, Tok::Dot),
            ',' => one(self, Tok::Comma),
            ':' => one(self, Tok::Colon),
            '(' => one(self, Tok::LParen),
            ')' => one(self, Tok::RParen),
            '[' => one(self, Tok::LBracket),
            ']' => one(self, Tok::RBracket),
            '{' => one(self, Tok::LBrace),
            '}' => one(self, Tok::RBrace),
            '+' => one(self, Tok::Plus),
            '*' => one(self, Tok::Star),
            '/' => one(self, Tok::Slash),
            '%' => one(self, Tok::Percent),
            '-' if self.peek(1) == Some('>') => two(self, Tok::Arrow),
            '-' => one(self, Tok::Minus),
            '=' if self.peek(1) == Some('=') => two(self, Tok::Eq),
            '=' if self.peek(1) == Some('>') => two(self, Tok::FatArrow),
            '=' => one(self, Tok::Assign),
            '!' if self.peek(1) == Some('=') => two(self, Tok::Ne),
            '!' => one(self, Tok::Not),
            '<' if self.peek(1) == Some('=') => two(self, Tok::Le),
            '<' => one(self, Tok::Lt),
            '>' if self.peek(1) == Some('=') => two(self, Tok::Ge),
            '>' => one(self, Tok::Gt),
            '&' if self.peek(1) == Some('&') => two(self, Tok::And),
            '|' if self.peek(1) == Some('|') => two(self, Tok::Or),
            '|' => one(self, Tok::Pipe),
            '"' => {
                let s = self.string()?;
                mk(Tok::Str(s))
            }
            '$' => {
                self.bump();
                let name = self.ident_text();
                if name.is_empty() {
                    return Err(self.err(line, col + 1, "expected variable name"));
                }
                mk(Tok::Var(name))
            }
            '@' => {
                self.bump();
                if self.peek(0) == Some('"') {
                    let s = self.string()?;
                    return mk(Tok::Meta(Some(s)));
                }
                let name = self.ident_text();
                mk(Tok::Meta(if name.is_empty() { None } else { Some(name) }))
            }
            c if c.is_ascii_digit() => self.number(line, col),
            c if is_ident_start(c) => {
                let name = self.ident_text();
                mk(Tok::Ident(name))
            }
            other => Err(self.err(line, col, format!("unexpected character '{other}'"))),
        }
    }

    fn ident_text(&mut self) -> String {
        let mut s = String::new();
        while let Some(c) = self.peek(0) {
            if !is_ident_char(c) {
                break;
            }
            s.push(c);
            self.bump();
        }
        s
    }

    fn number(&mut self, line: u32, col: u32) -> Result<Token, ParseError> {
        let mut s = String::new();
        while let Some(c) = self.peek(0) {
            if c.is_ascii_digit() {
                s.push(c);
                self.bump();
            } else {
                break;
            }
        }
        let mut float = false;
        // `10.pow(2)` is a method call on 10; only `1.5` (digit after dot) is a float.
        if !self.after_dot
            && self.peek(0) == Some('.')
            && self.peek(1).is_some_and(|c| c.is_ascii_digit())
        {
            float = true;
            s.push('.');
            self.bump();
            while let Some(c) = self.peek(0) {
                if c.is_ascii_digit() {
                    s.push(c);
                    self.bump();
                } else {
                    break;
                }
            }
        }
        let tok = if float {
            Tok::Float(
                s.parse()
                    .map_err(|_| self.err(line, col, "invalid number"))?,
            )
        } else {
            match s.parse::<i64>() {
                Ok(i) => Tok::Int(i),
                Err(_) => Tok::Float(
                    s.parse()
                        .map_err(|_| self.err(line, col, "invalid number"))?,
                ),
            }
        };
        Ok(Token { tok, line, col })
    }

    fn string(&mut self) -> Result<String, ParseError> {
        let (line, col) = (self.line, self.col);
        if self.peek(1) == Some('"') && self.peek(2) == Some('"') {
            self.bump();
            self.bump();
            self.bump();
            let mut s = String::new();
            loop {
                match self.peek(0) {
                    None => {
                        return Err(self.err(line, col, "required: \"\"\" to close raw string"))
                    }
                    Some('"') if self.peek(1) == Some('"') && self.peek(2) == Some('"') => {
                        self.bump();
                        self.bump();
                        self.bump();
                        return Ok(s);
                    }
                    Some(c) => {
                        s.push(c);
                        self.bump();
                    }
                }
            }
        }
        self.bump();
        let mut s = String::new();
        loop {
            let Some(c) = self.bump() else {
                return Err(self.err(line, col, "required: \" to close string"));
            };
            match c {
                '"' => return Ok(s),
                '\n' => return Err(self.err(line, col, "required: \" to close string")),
                '\\' => {
                    let (el, ec) = (self.line, self.col);
                    let e = self
                        .bump()
                        .ok_or_else(|| self.err(el, ec, "unterminated escape"))?;
                    match e {
                        'n' => s.push('\n'),
                        't' => s.push('\t'),
                        'r' => s.push('\r'),
                        'b' => s.push('\u{8}'),
                        'f' => s.push('\u{c}'),
                        'a' => s.push('\u{7}'),
                        'v' => s.push('\u{b}'),
                        '0' => s.push('\0'),
                        '\\' => s.push('\\'),
                        '"' => s.push('"'),
                        '\'' => s.push('\''),
                        '/' => s.push('/'),
                        'u' | 'U' | 'x' => {
                            let n = match e {
                                'u' => 4,
                                'U' => 8,
                                _ => 2,
                            };
                            let mut h = String::new();
                            for _ in 0..n {
                                match self.bump() {
                                    Some(d) if d.is_ascii_hexdigit() => h.push(d),
                                    _ => return Err(self.err(el, ec, "invalid escape sequence")),
                                }
                            }
                            let code = u32::from_str_radix(&h, 16).unwrap_or(0xfffd);
                            s.push(char::from_u32(code).unwrap_or('\u{fffd}'));
                        }
                        _ => return Err(self.err(el, ec, "invalid escape sequence")),
                    }
                }
                c => s.push(c),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(s: &str) -> Vec<Tok> {
        lex(s).unwrap().into_iter().map(|t| t.tok).collect()
    }

    #[test]
    fn operators_and_literals() {
        assert_eq!(
            toks("a.b == 3.25 -> $x @y @ != \"q\\n\""),
            vec![
                Tok::Ident("a".into()),
                Tok::Dot,
                Tok::Ident("b".into()),
                Tok::Eq,
                Tok::Float(3.25),
                Tok::Arrow,
                Tok::Var("x".into()),
                Tok::Meta(Some("y".into())),
                Tok::Meta(None),
                Tok::Ne,
                Tok::Str("q\n".into()),
                Tok::Eof
            ]
        );
    }

    #[test]
    fn int_followed_by_method_and_comments() {
        assert_eq!(
            toks("10.pow(2) # comment\n\"\"\"raw \\n\"\"\""),
            vec![
                Tok::Int(10),
                Tok::Dot,
                Tok::Ident("pow".into()),
                Tok::LParen,
                Tok::Int(2),
                Tok::RParen,
                Tok::Newline,
                Tok::Str("raw \\n".into()),
                Tok::Eof
            ]
        );
    }

    #[test]
    fn numbers_after_dots_are_indexes() {
        assert_eq!(
            toks("a.0.10"),
            vec![
                Tok::Ident("a".into()),
                Tok::Dot,
                Tok::Int(0),
                Tok::Dot,
                Tok::Int(10),
                Tok::Eof
            ]
        );
    }

    #[test]
    fn positions_and_errors() {
        let t = lex("a\n  b").unwrap();
        assert_eq!((t[2].line, t[2].col), (2, 3));
        let e = lex("x = \"open").unwrap_err();
        assert_eq!((e.line, e.col), (1, 5));
    }
}
