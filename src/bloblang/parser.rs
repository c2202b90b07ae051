//! Bloblang parser: tokens to a `Program` (statements, named maps, variable slots), with
//! upstream's operator precedence; functions and methods are resolved here, so an
//! unknown name is a parse error.

use std::path::{Path, PathBuf};

use super::ast::{describe, Arg, BinOp, Call, Expr, Lit, Pat, Program, Stmt, NO_FIELD};
use super::lexer::{lex, Tok, Token};
use super::{functions, methods, ParseError};

/// Parser state over one token stream.
pub struct Parser<'s> {
    /// The source, for error lines.
    src: &'s str,
    /// All tokens, ending with `Eof`.
    toks: Vec<Token>,
    /// Index of the next token (backtracking saves and restores it).
    pos: usize,
    /// `let` variable names and their slots.
    vars: Vec<(String, usize)>,
    /// Lambda parameters in scope, innermost last.
    params: Vec<(String, usize)>,
    /// Slots handed out so far (variables and lambda parameters share one space).
    nvars: usize,
    /// Named maps, including imported ones.
    maps: Vec<(String, Vec<Stmt>)>,
    /// Directory `import`/`from` paths are relative to.
    base: PathBuf,
}

type PResult<T> = Result<T, ParseError>;

/// Parses a whole mapping.
pub fn parse_program(src: &str, base: &Path) -> PResult<Program> {
    let mut prog = parse_program_at(src, base, 0)?;
    prog.plan_fields();
    Ok(prog)
}

/// Parses a mapping whose variable slots start at `first_slot` (imports share the
/// importing mapping's slot space, so their slots must not collide with its own).
fn parse_program_at(src: &str, base: &Path, first_slot: usize) -> PResult<Program> {
    let mut p = Parser::new(src, base)?;
    p.nvars = first_slot;
    let stmts = p.program()?;
    Ok(Program {
        stmts,
        maps: p.maps,
        nvars: p.nvars,
        fields: None,
    })
}

/// Parses a single expression (an interpolation or a query); the whole text must be used.
pub fn parse_expression(src: &str) -> PResult<Program> {
    let mut p = Parser::new(src, Path::new("."))?;
    p.skip_nl();
    let (line, _) = p.here();
    let expr = p.expr()?;
    p.skip_nl();
    if p.peek() != &Tok::Eof {
        return Err(p.error("expected end of expression"));
    }
    Ok(Program {
        stmts: vec![Stmt::Assign {
            path: Vec::new(),
            expr,
            line,
            field: NO_FIELD,
        }],
        maps: p.maps,
        nvars: p.nvars,
        fields: None,
    })
}

/// Whether `e` is a call that yields a timestamp (`now()`, `.ts_parse()`, ...).
fn produces_timestamp(e: &Expr) -> bool {
    match e {
        Expr::Func(_, call) => &*call.name == "now",
        Expr::Method { call, .. } => matches!(
            &*call.name,
            "ts_parse"
                | "ts_strptime"
                | "ts_tz"
                | "ts_round"
                | "ts_add_iso8601"
                | "ts_sub_iso8601"
                | "parse_timestamp"
                | "parse_timestamp_strptime"
        ),
        _ => false,
    }
}

fn is_keyword(s: &str) -> bool {
    matches!(
        s,
        "if" | "else"
            | "match"
            | "let"
            | "meta"
            | "map"
            | "import"
            | "from"
            | "true"
            | "false"
            | "null"
    )
}

impl<'s> Parser<'s> {
    fn new(src: &'s str, base: &Path) -> PResult<Self> {
        Ok(Parser {
            src,
            toks: lex(src)?,
            pos: 0,
            vars: Vec::new(),
            params: Vec::new(),
            nvars: 0,
            maps: Vec::new(),
            base: base.to_path_buf(),
        })
    }

    fn peek(&self) -> &Tok {
        &self.toks[self.pos].tok
    }

    fn peek_at(&self, n: usize) -> &Tok {
        let i = (self.pos + n).min(self.toks.len() - 1);
        &self.toks[i].tok
    }

    fn here(&self) -> (u32, u32) {
        let t = &self.toks[self.pos];
        (t.line, t.col)
    }

    fn next(&mut self) -> Tok {
        let t = self.toks[self.pos].tok.clone();
        if self.pos < self.toks.len() - 1 {
            self.pos += 1;
        }
        t
    }

    fn error(&self, msg: impl Into<String>) -> ParseError {
        let (l, c) = self.here();
        ParseError::new(self.src, l, c, msg)
    }

    fn expect(&mut self, t: Tok, what: &str) -> PResult<()> {
        if *self.peek() == t {
            self.next();
            Ok(())
        } else {
            Err(self.error(format!("expected {what}")))
        }
    }

    fn skip_nl(&mut self) {
        while *self.peek() == Tok::Newline {
            self.next();
        }
    }

    /// True (and newlines consumed) when the next non-newline token is `else`.
    fn else_follows(&mut self) -> bool {
        let mut i = self.pos;
        while self.toks[i].tok == Tok::Newline {
            i += 1;
        }
        if self.toks[i].tok == Tok::Ident("else".into()) {
            self.pos = i;
            true
        } else {
            false
        }
    }

    fn var_slot(&mut self, name: &str) -> usize {
        if let Some((_, s)) = self.vars.iter().find(|(n, _)| n == name) {
            return *s;
        }
        let s = self.nvars;
        self.nvars += 1;
        self.vars.push((name.to_string(), s));
        s
    }

    fn new_slot(&mut self) -> usize {
        self.nvars += 1;
        self.nvars - 1
    }

    // ----- statements -----

    fn program(&mut self) -> PResult<Vec<Stmt>> {
        let mut stmts = Vec::new();
        let mut bare = false;
        loop {
            self.skip_nl();
            if *self.peek() == Tok::Eof {
                break;
            }
            if bare {
                return Err(self.error("expected end of input"));
            }
            let (stmt, was_bare) = self.statement(stmts.is_empty())?;
            bare = was_bare;
            if was_bare && !stmts.is_empty() {
                return Err(self.error("expected assignment"));
            }
            stmts.extend(stmt);
            match self.peek() {
                Tok::Newline | Tok::Eof => {}
                _ => return Err(self.error("expected end of statement")),
            }
        }
        Ok(stmts)
    }

    fn block(&mut self) -> PResult<Vec<Stmt>> {
        self.expect(Tok::LBrace, "{")?;
        let mut stmts = Vec::new();
        loop {
            self.skip_nl();
            if *self.peek() == Tok::RBrace {
                self.next();
                return Ok(stmts);
            }
            let (stmt, bare) = self.statement(false)?;
            if bare {
                return Err(self.error("expected assignment"));
            }
            stmts.extend(stmt);
            match self.peek() {
                Tok::Newline | Tok::RBrace => {}
                _ => return Err(self.error("expected end of statement")),
            }
        }
    }

    /// One statement; returns `(stmt, true)` for a bare expression (`root = expr`).
    fn statement(&mut self, first: bool) -> PResult<(Option<Stmt>, bool)> {
        let (line, _) = self.here();
        if let Tok::Ident(id) = self.peek().clone() {
            match id.as_str() {
                "let" => {
                    self.next();
                    let name = match self.next() {
                        Tok::Ident(n) => n,
                        Tok::Str(s) => s,
                        _ => return Err(self.error("expected variable name")),
                    };
                    self.expect(Tok::Assign, "=")?;
                    self.skip_nl();
                    let expr = self.expr()?;
                    let slot = self.var_slot(&name);
                    return Ok((Some(Stmt::Let { slot, expr, line }), false));
                }
                "meta" if *self.peek_at(1) != Tok::LParen => {
                    self.next();
                    let key = match self.peek().clone() {
                        Tok::Assign => None,
                        Tok::Ident(n) => {
                            self.next();
                            Some(n.into_boxed_str())
                        }
                        Tok::Str(s) => {
                            self.next();
                            Some(s.into_boxed_str())
                        }
                        _ => return Err(self.error("expected metadata key")),
                    };
                    self.expect(Tok::Assign, "=")?;
                    self.skip_nl();
                    let expr = self.expr()?;
                    return Ok((Some(Stmt::Meta { key, expr, line }), false));
                }
                "map" => {
                    self.next();
                    let name = match self.next() {
                        Tok::Ident(n) => n,
                        Tok::Str(s) => s,
                        _ => return Err(self.error("expected map name")),
                    };
                    let body = self.block()?;
                    self.maps.push((name, body));
                    return Ok((None, false));
                }
                "import" | "from" => {
                    self.next();
                    let Tok::Str(path) = self.next() else {
                        return Err(self.error("expected file path string"));
                    };
                    let full = self.base.join(&path);
                    let text = std::fs::read_to_string(&full)
                        .map_err(|e| self.error(format!("failed to read {path}: {e}")))?;
                    let dir = full.parent().unwrap_or(Path::new("."));
                    let prog = parse_program_at(&text, dir, self.nvars)
                        .map_err(|e| self.error(format!("in {path}: {e}")))?;
                    self.maps.extend(prog.maps);
                    self.nvars = prog.nvars;
                    if id == "from" {
                        if !first {
                            return Err(self.error("from must be the only statement"));
                        }
                        return Ok((
                            Some(Stmt::If {
                                branches: vec![(Expr::Lit(Lit::Bool(true)), prog.stmts)],
                                otherwise: None,
                                line,
                            }),
                            false,
                        ));
                    }
                    return Ok((None, false));
                }
                "if" => {
                    let save = self.pos;
                    match self.if_statement(line) {
                        Ok(s) => return Ok((Some(s), false)),
                        Err(e) => {
                            if !first {
                                return Err(e);
                            }
                            self.pos = save;
                            let expr = self.expr().map_err(|_| e)?;
                            return Ok((
                                Some(Stmt::Assign {
                                    path: Vec::new(),
                                    expr,
                                    line,
                                    field: NO_FIELD,
                                }),
                                true,
                            ));
                        }
                    }
                }
                _ => {}
            }
        }
        let save = self.pos;
        if let Some(path) = self.try_target() {
            if *self.peek() == Tok::Assign {
                self.next();
                self.skip_nl();
                let expr = self.expr()?;
                return Ok((
                    Some(Stmt::Assign {
                        path,
                        expr,
                        line,
                        field: NO_FIELD,
                    }),
                    false,
                ));
            }
        }
        self.pos = save;
        let expr = self.expr()?;
        if *self.peek() == Tok::Assign {
            return Err(self.error("invalid assignment target"));
        }
        if !first {
            return Err(self.error("expected assignment"));
        }
        Ok((
            Some(Stmt::Assign {
                path: Vec::new(),
                expr,
                line,
                field: NO_FIELD,
            }),
            true,
        ))
    }

    fn if_statement(&mut self, line: u32) -> PResult<Stmt> {
        let mut branches = Vec::new();
        let mut otherwise = None;
        self.next(); // if
        loop {
            let cond = self.expr()?;
            let body = self.block()?;
            branches.push((cond, body));
            if self.else_follows() {
                self.next();
                if *self.peek() == Tok::Ident("if".into()) {
                    self.next();
                    continue;
                }
                otherwise = Some(self.block()?);
            }
            break;
        }
        Ok(Stmt::If {
            branches,
            otherwise,
            line,
        })
    }

    /// `root.a."b".0`, `this.a`, `a.b`: an assignment target path, or None.
    fn try_target(&mut self) -> Option<Vec<Box<str>>> {
        let mut path = Vec::new();
        match self.next() {
            Tok::Ident(id) if id == "root" || id == "this" => {}
            Tok::Ident(id) if !is_keyword(&id) => path.push(id.into_boxed_str()),
            Tok::Str(s) if *self.peek() == Tok::Dot || *self.peek() == Tok::Assign => {
                path.push(s.into_boxed_str())
            }
            _ => return None,
        }
        while *self.peek() == Tok::Dot {
            self.next();
            match self.next() {
                Tok::Ident(id) => path.push(id.into_boxed_str()),
                Tok::Str(s) => path.push(s.into_boxed_str()),
                Tok::Int(i) => path.push(i.to_string().into_boxed_str()),
                _ => return None,
            }
        }
        Some(path)
    }

    // ----- expressions -----

    pub fn expr(&mut self) -> PResult<Expr> {
        self.binary(4)
    }

    fn op_at(&self, level: u8) -> Option<BinOp> {
        let op = match (level, self.peek()) {
            (1, Tok::Star) => BinOp::Mul,
            (1, Tok::Slash) => BinOp::Div,
            (1, Tok::Percent) => BinOp::Mod,
            (1, Tok::Pipe) => BinOp::Coalesce,
            (2, Tok::Plus) => BinOp::Add,
            (2, Tok::Minus) => BinOp::Sub,
            (3, Tok::Eq) => BinOp::Eq,
            (3, Tok::Ne) => BinOp::Ne,
            (3, Tok::Lt) => BinOp::Lt,
            (3, Tok::Le) => BinOp::Le,
            (3, Tok::Gt) => BinOp::Gt,
            (3, Tok::Ge) => BinOp::Ge,
            (4, Tok::And) => BinOp::And,
            (4, Tok::Or) => BinOp::Or,
            _ => return None,
        };
        Some(op)
    }

    fn binary(&mut self, level: u8) -> PResult<Expr> {
        if level == 0 {
            return self.unary();
        }
        let mut left = self.binary(level - 1)?;
        while let Some(op) = self.op_at(level) {
            self.next();
            self.skip_nl();
            let right = self.binary(level - 1)?;
            left = Expr::Bin(op, Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn unary(&mut self) -> PResult<Expr> {
        match self.peek() {
            Tok::Not => {
                self.next();
                Ok(Expr::Not(Box::new(self.unary()?)))
            }
            Tok::Minus => {
                self.next();
                match self.peek().clone() {
                    Tok::Int(i) if !matches!(self.peek_at(1), Tok::Dot) => {
                        self.next();
                        Ok(Expr::Lit(Lit::Int(-i)))
                    }
                    Tok::Float(f) if !matches!(self.peek_at(1), Tok::Dot) => {
                        self.next();
                        Ok(Expr::Lit(Lit::Float(-f)))
                    }
                    _ => Ok(Expr::Neg(Box::new(self.unary()?))),
                }
            }
            _ => self.postfix(),
        }
    }

    fn postfix(&mut self) -> PResult<Expr> {
        let mut e = self.primary()?;
        loop {
            if *self.peek() == Tok::Newline {
                // A method chain may continue on the next line: `\n  .foo()`.
                let mut i = self.pos;
                while self.toks[i].tok == Tok::Newline {
                    i += 1;
                }
                if self.toks[i].tok == Tok::Dot {
                    self.pos = i;
                } else {
                    break;
                }
            }
            if *self.peek() != Tok::Dot {
                break;
            }
            self.next();
            match self.peek().clone() {
                Tok::Ident(name) if *self.peek_at(1) == Tok::LParen => {
                    let (l, c) = self.here();
                    self.next();
                    let args = self.args()?;
                    e = match name.as_str() {
                        "from" => {
                            let a = args.into_iter().next().map(|a| a.expr).ok_or_else(|| {
                                ParseError::new(self.src, l, c, "expected one argument to from")
                            })?;
                            Expr::From(Box::new(e), Box::new(a))
                        }
                        "from_all" => Expr::FromAll(Box::new(e)),
                        "catch" | "or" => {
                            let a = args.into_iter().next().map(|a| a.expr).ok_or_else(|| {
                                ParseError::new(
                                    self.src,
                                    l,
                                    c,
                                    format!("expected one argument to {name}"),
                                )
                            })?;
                            if name == "catch" {
                                Expr::Catch(Box::new(e), Box::new(a))
                            } else {
                                Expr::Or(Box::new(e), Box::new(a))
                            }
                        }
                        "type" if produces_timestamp(&e) => {
                            // Timestamps are RFC 3339 strings here; a value straight out of
                            // a timestamp method still reports upstream's type name.
                            Expr::Method {
                                target: Box::new(e),
                                f: |_, _, _| Ok(crate::message::Value::Str("timestamp")),
                                call: Box::new(Call::new(&name, args)),
                                desc: None,
                            }
                        }
                        _ => {
                            let f = methods::lookup(&name).ok_or_else(|| {
                                ParseError::new(
                                    self.src,
                                    l,
                                    c,
                                    format!("unrecognised method '{name}'"),
                                )
                            })?;
                            let desc = describe(&e).map(String::into_boxed_str);
                            Expr::Method {
                                target: Box::new(e),
                                f,
                                call: Box::new(Call::new(&name, args)),
                                desc,
                            }
                        }
                    };
                }
                Tok::Ident(name) => {
                    self.next();
                    e = Expr::Get(Box::new(e), name.into_boxed_str());
                }
                Tok::Str(s) => {
                    self.next();
                    e = Expr::Get(Box::new(e), s.into_boxed_str());
                }
                Tok::Int(i) => {
                    self.next();
                    e = Expr::Get(Box::new(e), i.to_string().into_boxed_str());
                }
                Tok::LParen => {
                    self.next();
                    self.skip_nl();
                    let inner = self.expr()?;
                    self.skip_nl();
                    self.expect(Tok::RParen, ")")?;
                    e = Expr::WithCtx(Box::new(e), Box::new(inner));
                }
                _ => return Err(self.error("expected field, method or (")),
            }
        }
        Ok(e)
    }

    fn args(&mut self) -> PResult<Vec<Arg>> {
        self.expect(Tok::LParen, "(")?;
        let mut args = Vec::new();
        loop {
            self.skip_nl();
            if *self.peek() == Tok::RParen {
                self.next();
                return Ok(args);
            }
            let name = match (self.peek().clone(), self.peek_at(1)) {
                (Tok::Ident(n), Tok::Colon) => {
                    self.next();
                    self.next();
                    self.skip_nl();
                    Some(n.into_boxed_str())
                }
                _ => None,
            };
            let expr = self.expr()?;
            args.push(Arg { name, expr });
            self.skip_nl();
            match self.peek() {
                Tok::Comma => {
                    self.next();
                }
                Tok::RParen => {}
                _ => return Err(self.error("expected , or )")),
            }
        }
    }

    fn lambda(&mut self, name: String) -> PResult<Expr> {
        self.next(); // ->
        self.skip_nl();
        if name == "_" {
            let body = self.expr()?;
            return Ok(Expr::Lambda(None, Box::new(body)));
        }
        let slot = self.new_slot();
        self.params.push((name, slot));
        let body = self.expr();
        self.params.pop();
        Ok(Expr::Lambda(Some(slot), Box::new(body?)))
    }

    fn primary(&mut self) -> PResult<Expr> {
        let (l, c) = self.here();
        match self.peek().clone() {
            Tok::Int(i) => {
                self.next();
                Ok(Expr::Lit(Lit::Int(i)))
            }
            Tok::Float(f) => {
                self.next();
                Ok(Expr::Lit(Lit::Float(f)))
            }
            Tok::Str(s) => {
                self.next();
                Ok(Expr::Lit(Lit::Str(s.into_boxed_str())))
            }
            Tok::Var(n) => {
                self.next();
                let slot = self.var_slot(&n);
                Ok(Expr::Var(slot, n.into_boxed_str()))
            }
            Tok::Meta(k) => {
                self.next();
                Ok(Expr::Meta(k.map(String::into_boxed_str)))
            }
            Tok::LParen => {
                self.next();
                self.skip_nl();
                let e = self.expr()?;
                self.skip_nl();
                self.expect(Tok::RParen, ")")?;
                Ok(e)
            }
            Tok::LBracket => {
                self.next();
                let mut items = Vec::new();
                loop {
                    self.skip_nl();
                    if *self.peek() == Tok::RBracket {
                        self.next();
                        break;
                    }
                    items.push(self.expr()?);
                    self.skip_nl();
                    match self.peek() {
                        Tok::Comma => {
                            self.next();
                        }
                        Tok::RBracket => {}
                        _ => return Err(self.error("expected , or ]")),
                    }
                }
                Ok(Expr::Array(items))
            }
            Tok::LBrace => {
                self.next();
                let mut items = Vec::new();
                loop {
                    self.skip_nl();
                    if *self.peek() == Tok::RBrace {
                        self.next();
                        break;
                    }
                    let key = match (self.peek().clone(), self.peek_at(1)) {
                        (Tok::Str(s), Tok::Colon) => {
                            self.next();
                            Expr::Lit(Lit::Str(s.into_boxed_str()))
                        }
                        _ => self.expr()?,
                    };
                    self.skip_nl();
                    self.expect(Tok::Colon, ":")?;
                    self.skip_nl();
                    let val = self.expr()?;
                    items.push((key, val));
                    self.skip_nl();
                    match self.peek() {
                        Tok::Comma => {
                            self.next();
                        }
                        Tok::RBrace => {}
                        _ => return Err(self.error("expected , or }")),
                    }
                }
                Ok(Expr::Object(items))
            }
            Tok::Ident(id) => {
                if *self.peek_at(1) == Tok::Arrow && !is_keyword(&id) {
                    self.next();
                    return self.lambda(id);
                }
                match id.as_str() {
                    "true" | "false" => {
                        self.next();
                        Ok(Expr::Lit(Lit::Bool(id == "true")))
                    }
                    "null" => {
                        self.next();
                        Ok(Expr::Lit(Lit::Null))
                    }
                    "this" => {
                        self.next();
                        Ok(Expr::This)
                    }
                    "root" => {
                        self.next();
                        Ok(Expr::Root)
                    }
                    "if" => self.if_expr(),
                    "match" => self.match_expr(),
                    _ if *self.peek_at(1) == Tok::LParen => {
                        self.next();
                        let args = self.args()?;
                        let f = functions::lookup(&id).ok_or_else(|| {
                            ParseError::new(self.src, l, c, format!("unrecognised function '{id}'"))
                        })?;
                        Ok(Expr::Func(f, Box::new(Call::new(&id, args))))
                    }
                    _ if is_keyword(&id) => Err(self.error(format!("unexpected keyword '{id}'"))),
                    _ => {
                        self.next();
                        if let Some((_, slot)) = self.params.iter().rev().find(|(n, _)| *n == id) {
                            return Ok(Expr::Var(*slot, id.into_boxed_str()));
                        }
                        // A bare name is a field of the context (upstream's legacy form).
                        Ok(Expr::Get(Box::new(Expr::This), id.into_boxed_str()))
                    }
                }
            }
            Tok::Eof => Err(self.error("expected query, got end of input")),
            _ => Err(self.error("expected query")),
        }
    }

    fn if_expr(&mut self) -> PResult<Expr> {
        self.next(); // if
        let mut branches = Vec::new();
        let mut otherwise = None;
        loop {
            let cond = self.expr()?;
            let body = self.braced_expr()?;
            branches.push((cond, body));
            if self.else_follows() {
                self.next();
                if *self.peek() == Tok::Ident("if".into()) {
                    self.next();
                    continue;
                }
                otherwise = Some(Box::new(self.braced_expr()?));
            }
            break;
        }
        Ok(Expr::If(branches, otherwise))
    }

    fn braced_expr(&mut self) -> PResult<Expr> {
        self.expect(Tok::LBrace, "{")?;
        self.skip_nl();
        let e = self.expr()?;
        self.skip_nl();
        self.expect(Tok::RBrace, "}")?;
        Ok(e)
    }

    fn match_expr(&mut self) -> PResult<Expr> {
        self.next(); // match
        let subject = if *self.peek() == Tok::LBrace {
            None
        } else {
            Some(Box::new(self.expr()?))
        };
        self.expect(Tok::LBrace, "{")?;
        let mut cases = Vec::new();
        loop {
            self.skip_nl();
            if *self.peek() == Tok::RBrace {
                self.next();
                break;
            }
            let pat = match (self.peek().clone(), self.peek_at(1)) {
                (Tok::Ident(u), Tok::FatArrow) if u == "_" => {
                    self.next();
                    Pat::Any
                }
                (Tok::Str(s), Tok::FatArrow) => {
                    self.next();
                    Pat::Lit(Lit::Str(s.into_boxed_str()))
                }
                (Tok::Int(i), Tok::FatArrow) => {
                    self.next();
                    Pat::Lit(Lit::Int(i))
                }
                (Tok::Float(f), Tok::FatArrow) => {
                    self.next();
                    Pat::Lit(Lit::Float(f))
                }
                _ => {
                    let e = self.expr()?;
                    match e {
                        Expr::Lit(l) if subject.is_some() => Pat::Lit(l),
                        e => Pat::Cond(e),
                    }
                }
            };
            self.skip_nl();
            self.expect(Tok::FatArrow, "=>")?;
            self.skip_nl();
            let val = self.expr()?;
            cases.push((pat, val));
            match self.peek() {
                Tok::Comma | Tok::Newline => {
                    self.next();
                }
                Tok::RBrace => {}
                _ => return Err(self.error("expected , or newline between match cases")),
            }
        }
        Ok(Expr::Match(subject, cases))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prog(s: &str) -> Program {
        parse_program(s, Path::new(".")).unwrap()
    }

    #[test]
    fn assignments_and_paths() {
        let p = prog("root.a.\"b.c\" = 1\nfoo = this.x.0\nroot = this");
        assert_eq!(p.stmts.len(), 3);
        match &p.stmts[0] {
            Stmt::Assign { path, .. } => assert_eq!(path, &vec!["a".into(), "b.c".into()]),
            _ => panic!(),
        }
        match &p.stmts[1] {
            Stmt::Assign { path, line, .. } => {
                assert_eq!(path, &vec![Box::<str>::from("foo")]);
                assert_eq!(*line, 2);
            }
            _ => panic!(),
        }
    }

    #[test]
    fn precedence() {
        let p = prog("root = 1 + 2 * 3 == 7 && true");
        let Stmt::Assign { expr, .. } = &p.stmts[0] else {
            panic!()
        };
        let Expr::Bin(BinOp::And, l, _) = expr else {
            panic!("{expr:?}")
        };
        let Expr::Bin(BinOp::Eq, l, _) = &**l else {
            panic!()
        };
        let Expr::Bin(BinOp::Add, _, r) = &**l else {
            panic!()
        };
        assert!(matches!(&**r, Expr::Bin(BinOp::Mul, _, _)));
    }

    #[test]
    fn bare_expression_and_lambdas() {
        let p = prog("this.xs.map_each(x -> x + 1)");
        assert_eq!(p.stmts.len(), 1);
        assert_eq!(p.nvars, 1);
        let p = prog("let a = 1\nmap m {\n root.b = $a\n}\nroot = if true { 1 } else { 2 }");
        assert_eq!(p.maps.len(), 1);
    }

    #[test]
    fn statement_if_and_match() {
        let p = prog("if this.a > 1 {\n root.x = 1\n} else if false {\n root.y = 2\n} else {\n root.z = 3\n}");
        assert!(
            matches!(&p.stmts[0], Stmt::If { branches, otherwise: Some(_), .. } if branches.len() == 2)
        );
        prog("root = match this.v {\n \"a\" => 1,\n this > 3 => 2\n _ => 3\n}");
        prog("root = match {\n this.a == 1 => \"x\"\n}");
    }

    #[test]
    fn else_on_next_line_comments_and_raw_strings() {
        let p = prog("# leading comment\nroot.a = if false { 1 }\nelse { 2 } # trailing\nroot.b = \"\"\"x\ny\"\"\"\n");
        assert_eq!(p.stmts.len(), 2);
        let p = prog("if true {\n root.a = 1\n}\nelse {\n root.a = 2\n}");
        assert!(matches!(
            &p.stmts[0],
            Stmt::If {
                otherwise: Some(_),
                ..
            }
        ));
    }

    #[test]
    fn method_chains_across_lines_and_named_args() {
        let p = prog(
            "root = this.a\n  .uppercase()\n  .trim()\nroot.b = this.c.slice(low: 1, high: 2)",
        );
        assert_eq!(p.stmts.len(), 2);
        assert!(parse_program("root = this.a.nope()", Path::new(".")).is_err());
    }

    #[test]
    fn bare_expressions_only_alone() {
        assert!(parse_program("root.a = 1\nthis.b", Path::new(".")).is_err());
        assert!(parse_program("this.b\nroot.a = 1", Path::new(".")).is_err());
        let p = parse_expression("this.a + 1").unwrap();
        assert_eq!(p.stmts.len(), 1);
        assert!(parse_expression("this.a +").is_err());
    }

    #[test]
    fn errors_have_positions() {
        let e = parse_program("root = this.foo(", Path::new(".")).unwrap_err();
        assert_eq!(e.line, 1);
        let e = parse_program("root.a = 1\nroot.b = nope()", Path::new(".")).unwrap_err();
        assert_eq!((e.line, e.col), (2, 10));
        assert_eq!(
            e.to_string(),
            "line 2 char 10: unrecognised function 'nope'\nroot.b = nope()\n         ^"
        );
    }
}
