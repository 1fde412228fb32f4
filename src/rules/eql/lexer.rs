//! EQL's tokens, as Elasticsearch's lexer (`EqlBase.g4`) cuts them: keywords are
//! lower-case only (`AND` is an identifier), `in~`, `like~` and `regex~` are single tokens,
//! a function name may end in `~`, identifiers start with a letter, `_` or `@`, backquoted
//! identifiers double a backquote to write one, and comments (`//`, nested `/* */`) and
//! whitespace separate tokens. Strings are double-quoted with backslash escapes, or raw
//! between `"""`; single-quoted and `?"` strings are lexed so the parser can say what to
//! write instead, as Elasticsearch does.

use super::SyntaxError;

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Tok {
    Ident(String),
    /// A backquoted identifier, unescaped.
    Quoted(String),
    /// An identifier ending in `~` (a case-insensitive function name), without the `~`.
    TildeIdent(String),
    /// A string, decoded.
    Str(String),
    /// A string in a form Elasticsearch refuses (`'...'`, `?"..."`): the message.
    BadStr(String),
    Int(String),
    Decimal(String),
    /// A keyword or operator, as written.
    Sym(&'static str),
    Eof,
}

/// A token and where it starts (1-based line and column, in characters).
#[derive(Debug, Clone)]
pub(super) struct Token {
    pub tok: Tok,
    pub line: usize,
    pub column: usize,
    /// The text as written, for messages.
    pub text: String,
}

const KEYWORDS: &[&str] = &[
    "and", "any", "by", "false", "in", "join", "like", "maxspan", "not", "null", "of", "or",
    "regex", "sample", "sequence", "true", "until", "where", "with",
];

/// Operators, longest first.
const OPERATORS: &[&str] = &[
    "![", "==", "!=", "<=", ">=", ":", "=", "<", ">", "+", "-", "*", "/", "%", ".", ",", "[", "]",
    "(", ")", "|", "?",
];

struct Lexer<'a> {
    chars: Vec<char>,
    pos: usize,
    line: usize,
    column: usize,
    source: &'a str,
}

/// Cuts `source` into tokens, ending with [`Tok::Eof`].
pub(super) fn tokens(source: &str) -> Result<Vec<Token>, SyntaxError> {
    let mut lx = Lexer {
        chars: source.chars().collect(),
        pos: 0,
        line: 1,
        column: 1,
        source,
    };
    let mut out = Vec::new();
    loop {
        lx.skip_trivia()?;
        let (line, column, start) = (lx.line, lx.column, lx.pos);
        let Some(c) = lx.peek(0) else {
            out.push(Token {
                tok: Tok::Eof,
                line,
                column,
                text: "<EOF>".into(),
            });
            return Ok(out);
        };
        let tok = lx.token(c)?;
        let text: String = lx.chars[start..lx.pos].iter().collect();
        out.push(Token {
            tok,
            line,
            column,
            text,
        });
    }
}

impl Lexer<'_> {
    fn peek(&self, ahead: usize) -> Option<char> {
        self.chars.get(self.pos + ahead).copied()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek(0)?;
        self.pos += 1;
        if c == '\n' {
            self.line += 1;
            self.column = 1;
        } else {
            self.column += 1;
        }
        Some(c)
    }

    fn starts_with(&self, s: &str) -> bool {
        s.chars().enumerate().all(|(i, c)| self.peek(i) == Some(c))
    }

    fn error(&self, message: String) -> SyntaxError {
        SyntaxError::at(self.source, self.line, self.column, message)
    }

    fn skip_trivia(&mut self) -> Result<(), SyntaxError> {
        loop {
            match self.peek(0) {
                Some(' ' | '\t' | '\r' | '\n') => {
                    self.bump();
                }
                Some('/') if self.peek(1) == Some('/') => {
                    while self.peek(0).is_some_and(|c| c != '\n') {
                        self.bump();
                    }
                }
                Some('/') if self.peek(1) == Some('*') => self.block_comment()?,
                _ => return Ok(()),
            }
        }
    }

    /// A `/* */` comment; they nest.
    fn block_comment(&mut self) -> Result<(), SyntaxError> {
        let (line, column) = (self.line, self.column);
        let mut depth = 0usize;
        loop {
            if self.starts_with("/*") {
                self.bump();
                self.bump();
                depth += 1;
            } else if self.starts_with("*/") {
                self.bump();
                self.bump();
                depth -= 1;
                if depth == 0 {
                    return Ok(());
                }
            } else if self.bump().is_none() {
                return Err(SyntaxError::at(
                    self.source,
                    line,
                    column,
                    "unterminated comment".into(),
                ));
            }
        }
    }

    fn token(&mut self, c: char) -> Result<Tok, SyntaxError> {
        if c.is_ascii_alphabetic() || c == '_' || c == '@' {
            return Ok(self.word());
        }
        if c.is_ascii_digit() || (c == '.' && self.peek(1).is_some_and(|d| d.is_ascii_digit())) {
            return Ok(self.number());
        }
        match c {
            '"' if self.starts_with("\"\"\"") => self.raw_string(),
            '"' => self.string('"').map(Tok::Str),
            '\'' => {
                self.string('\'')?;
                Ok(Tok::BadStr(
                    "Use double quotes [\"] to define string literals, not single quotes [']"
                        .into(),
                ))
            }
            '?' if matches!(self.peek(1), Some('"' | '\'')) => {
                self.bump();
                let quote = self.peek(0).unwrap_or('"');
                self.string(quote)?;
                Ok(Tok::BadStr(format!(
                    "Use triple double quotes [\"\"\"] to define unescaped string literals, not [?{quote}]"
                )))
            }
            '`' => self.quoted_identifier(),
            _ => self.operator(c),
        }
    }

    fn word(&mut self) -> Tok {
        let mut w = String::new();
        while let Some(c) = self
            .peek(0)
            .filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '@')
        {
            if c == '@' && !w.is_empty() {
                break;
            }
            w.push(c);
            self.bump();
        }
        if self.peek(0) == Some('~') && w.starts_with(|c: char| c.is_ascii_alphabetic()) {
            self.bump();
            return match w.as_str() {
                "in" => Tok::Sym("in~"),
                "like" => Tok::Sym("like~"),
                "regex" => Tok::Sym("regex~"),
                _ => Tok::TildeIdent(w),
            };
        }
        match KEYWORDS.iter().find(|k| **k == w) {
            Some(k) => Tok::Sym(k),
            None => Tok::Ident(w),
        }
    }

    fn number(&mut self) -> Tok {
        let mut text = String::new();
        let mut decimal = false;
        while let Some(c) = self.peek(0).filter(char::is_ascii_digit) {
            text.push(c);
            self.bump();
        }
        if self.peek(0) == Some('.') {
            decimal = true;
            text.push('.');
            self.bump();
            while let Some(c) = self.peek(0).filter(char::is_ascii_digit) {
                text.push(c);
                self.bump();
            }
        }
        if matches!(self.peek(0), Some('e' | 'E')) {
            let sign = usize::from(matches!(self.peek(1), Some('+' | '-')));
            if self.peek(1 + sign).is_some_and(|c| c.is_ascii_digit()) {
                decimal = true;
                for _ in 0..=sign {
                    text.extend(self.bump());
                }
                while let Some(c) = self.peek(0).filter(char::is_ascii_digit) {
                    text.push(c);
                    self.bump();
                }
            }
        }
        if decimal {
            Tok::Decimal(text)
        } else {
            Tok::Int(text)
        }
    }

    /// A quoted string with backslash escapes (`\b \t \n \f \r \" \' \\` and `\u{hex}`).
    /// Anything else, a line break or the end of the query inside it is the lexer's
    /// `token recognition error` for the text read so far.
    fn string(&mut self, quote: char) -> Result<String, SyntaxError> {
        let (line, column, start) = (self.line, self.column, self.pos);
        let fail = |lx: &Lexer| {
            let text: String = lx.chars[start..lx.pos].iter().collect();
            SyntaxError::at(
                lx.source,
                line,
                column,
                format!("token recognition error at: '{text}'"),
            )
        };
        self.bump();
        let mut out = String::new();
        loop {
            match self.peek(0) {
                None | Some('\r' | '\n') => return Err(fail(self)),
                Some(c) if c == quote => {
                    self.bump();
                    return Ok(out);
                }
                Some('\\') => {
                    self.bump();
                    match self.escape(line, column)? {
                        Some(c) => out.push(c),
                        None => return Err(fail(self)),
                    }
                }
                Some(c) => {
                    self.bump();
                    out.push(c);
                }
            }
        }
    }

    /// The character an escape stands for; `None` for one the lexer does not accept. A
    /// `\u{...}` the lexer accepts but the builder refuses is that builder's error (one
    /// column right of the string, as its messages are placed).
    fn escape(&mut self, line: usize, column: usize) -> Result<Option<char>, SyntaxError> {
        let simple = match self.peek(0) {
            Some('b') => Some('\u{8}'),
            Some('t') => Some('\t'),
            Some('n') => Some('\n'),
            Some('f') => Some('\u{c}'),
            Some('r') => Some('\r'),
            Some('"') => Some('"'),
            Some('\'') => Some('\''),
            Some('\\') => Some('\\'),
            _ => None,
        };
        if let Some(c) = simple {
            self.bump();
            return Ok(Some(c));
        }
        if self.peek(0) != Some('u') || self.peek(1) != Some('{') {
            if self.peek(0).is_some() {
                self.bump();
            }
            return Ok(None);
        }
        self.bump();
        self.bump();
        let mut hex = String::new();
        while let Some(h) = self.peek(0).filter(char::is_ascii_hexdigit) {
            hex.push(h);
            self.bump();
        }
        if hex.is_empty() || self.peek(0) != Some('}') {
            if self.peek(0).is_some() {
                self.bump();
            }
            return Ok(None);
        }
        self.bump();
        let builder = |message: String| SyntaxError::at(self.source, line, column + 1, message);
        if !(2..=8).contains(&hex.len()) {
            return Err(builder(format!(
                "Unicode sequence should use [2-8] hex digits, [\\u{{{hex}}}] has [{}]",
                hex.len()
            )));
        }
        let code = u32::from_str_radix(&hex, 16)
            .ok()
            .filter(|c| *c <= 0x10FFFF);
        match code {
            Some(c @ 0xD800..=0xDFFF) => Err(builder(format!(
                "Invalid unicode character code, [{c:x}] is a surrogate code"
            ))),
            Some(c) => Ok(char::from_u32(c)),
            None => Err(builder(format!("Invalid unicode character code [{hex}]"))),
        }
    }

    /// `"""..."""`: no escapes; the text ends at the first `"""` (quotes right after it
    /// belong to the text, as the lexer's greedy rule reads them).
    fn raw_string(&mut self) -> Result<Tok, SyntaxError> {
        let (line, column) = (self.line, self.column);
        for _ in 0..3 {
            self.bump();
        }
        let mut out = String::new();
        loop {
            if self.starts_with("\"\"\"") {
                let mut extra = 0;
                while self.peek(3 + extra) == Some('"') && extra < 2 {
                    extra += 1;
                }
                for _ in 0..extra {
                    out.push('"');
                    self.bump();
                }
                for _ in 0..3 {
                    self.bump();
                }
                return Ok(Tok::Str(out));
            }
            match self.peek(0) {
                Some(c) if c != '\r' && c != '\n' => {
                    self.bump();
                    out.push(c);
                }
                _ => {
                    return Err(SyntaxError::at(
                        self.source,
                        line,
                        column,
                        "token recognition error at: '\"\"\"'".into(),
                    ))
                }
            }
        }
    }

    fn quoted_identifier(&mut self) -> Result<Tok, SyntaxError> {
        let (line, column) = (self.line, self.column);
        self.bump();
        let mut out = String::new();
        loop {
            match self.bump() {
                Some('`') if self.peek(0) == Some('`') => {
                    self.bump();
                    out.push('`');
                }
                Some('`') => return Ok(Tok::Quoted(out)),
                Some(c) => out.push(c),
                None => {
                    return Err(SyntaxError::at(
                        self.source,
                        line,
                        column,
                        "unterminated quoted identifier".into(),
                    ))
                }
            }
        }
    }

    fn operator(&mut self, c: char) -> Result<Tok, SyntaxError> {
        let Some(op) = OPERATORS.iter().find(|op| self.starts_with(op)) else {
            return Err(self.error(format!("token recognition error at: '{c}'")));
        };
        for _ in 0..op.chars().count() {
            self.bump();
        }
        Ok(Tok::Sym(op))
    }
}
