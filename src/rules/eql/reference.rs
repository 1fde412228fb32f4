//! The EQL reference evaluator: whether Elasticsearch returns a document for an EQL event
//! filter, read straight off the syntax tree, one document at a time, with no lowering, no
//! plan and no shared matcher (wildcards and case folding are matched here by their own
//! loops). It is slow and literal on purpose: the fast path ([`super::lower`], the plan and
//! the scan) is tested against it.
//!
//! The reading, from Elasticsearch's EQL planner: a field mapped nowhere is an error unless it
//! is optional, and then it is `null`; parts without fields fold by three-valued logic, with
//! the optimizer's rules for a null beside a query (`x and null` is null, `x or null` is `x`,
//! and a null or false filter returns nothing); a field compared with a constant holds when
//! one of its indexed values does, and a negation is the complement (`must_not`), so a
//! document without the field passes `f != "x"`; a function or arithmetic over fields is a
//! script, tried over every combination of the values of the fields it reads (a field
//! without values reads as null) and true when one combination gives true. Numbers, dates
//! and addresses are compared as their field type stores them
//! ([`crate::cond::eval::value_matches`]); scripts evaluate with [`crate::cond::script`].

use super::lower::{eql_wildcard, Mapping, EVENT_CATEGORY};
use super::{CompareOp, EventFilter, Expr, Field, MatchKind};
use crate::cond::eval::{self, Document};
use crate::cond::fields::{FieldType, KEYWORD_IGNORE_ABOVE};
use crate::cond::glob::WildToken;
use crate::cond::regexp::LuceneRegex;
use crate::cond::script;
use crate::cond::{RangeOp, Test};

/// Whether Elasticsearch returns `doc` for `filter` over indices mapped as `mapping`; an
/// error where it would refuse to run the query.
pub fn matches(filter: &EventFilter, doc: &Document, mapping: &Mapping) -> Result<bool, String> {
    let r = Reader { doc, mapping };
    let condition = r.truth(&filter.condition)?;
    let category = match &filter.category {
        None => (Some(true), true),
        Some(c) => {
            if !(mapping.is_mapped)(EVENT_CATEGORY) {
                return Err(format!("Unknown column [{EVENT_CATEGORY}]"));
            }
            let here = r.keyword_values(EVENT_CATEGORY).iter().any(|v| v == c);
            (Some(here), false)
        }
    };
    Ok(fold_and(category, condition).0 == Some(true))
}

struct Reader<'a, 'm> {
    doc: &'a Document,
    mapping: &'a Mapping<'m>,
}

/// A condition's truth for the document, and whether the optimizer folds it to a constant
/// (a part without mapped fields, or one a constant beside it decides: `x and null` is
/// null, `x or true` true, whatever `x` is).
type Truth = (Option<bool>, bool);

/// `a and b` as the optimizer folds it: two constants by three-valued logic, a constant
/// beside a query decides (false, null) or drops out (true).
fn fold_and((a, ac): Truth, (b, bc): Truth) -> Truth {
    match (ac, bc) {
        (true, true) => (
            match (a, b) {
                (Some(false), _) | (_, Some(false)) => Some(false),
                (Some(true), Some(true)) => Some(true),
                _ => None,
            },
            true,
        ),
        (true, false) => match a {
            Some(true) => (b, bc),
            other => (other, true),
        },
        (false, true) => match b {
            Some(true) => (a, ac),
            other => (other, true),
        },
        (false, false) => (Some(a == Some(true) && b == Some(true)), false),
    }
}

/// `a or b`: two constants by three-valued logic, a true constant decides, a false or null
/// one drops out.
fn fold_or((a, ac): Truth, (b, bc): Truth) -> Truth {
    match (ac, bc) {
        (true, true) => (
            match (a, b) {
                (Some(true), _) | (_, Some(true)) => Some(true),
                (Some(false), Some(false)) => Some(false),
                _ => None,
            },
            true,
        ),
        (true, false) => match a {
            Some(true) => (Some(true), true),
            _ => (b, bc),
        },
        (false, true) => match b {
            Some(true) => (Some(true), true),
            _ => (a, ac),
        },
        (false, false) => (Some(a == Some(true) || b == Some(true)), false),
    }
}

impl Reader<'_, '_> {
    fn truth(&self, e: &Expr) -> Result<Truth, String> {
        if self.is_constant(e)? {
            return Ok((self.constant(e)?, true));
        }
        let t = match e {
            Expr::And(a, b) => return Ok(fold_and(self.truth(a)?, self.truth(b)?)),
            Expr::Or(a, b) => return Ok(fold_or(self.truth(a)?, self.truth(b)?)),
            Expr::Not(a) => {
                let (v, constant) = self.truth(a)?;
                return Ok((v.map(|b| !b), constant));
            }
            Expr::Compare(op, a, b) => Some(self.compare(*op, a, b)?),
            Expr::In {
                value,
                list,
                insensitive,
                negated,
            } => {
                let hit = match &**value {
                    Expr::Field(f) => self.field_in(f, list, *insensitive)?,
                    _ => self.script(e)?,
                };
                Some(hit != *negated)
            }
            Expr::Match {
                value,
                kind,
                insensitive,
                patterns,
            } => Some(match &**value {
                Expr::Field(f) => self.field_matches(f, *kind, *insensitive, patterns)?,
                _ => self.script(e)?,
            }),
            Expr::Call { .. } => Some(self.call(e)?),
            other => {
                return Err(format!(
                    "[{}] is not a condition",
                    super::print::expr(other)
                ))
            }
        };
        Ok((t, false))
    }

    /// Whether the expression holds no mapped field: unmapped optional fields are null.
    fn is_constant(&self, e: &Expr) -> Result<bool, String> {
        let mut fields = Vec::new();
        e.each_field(&mut |f| fields.push(f));
        let mut constant = true;
        for f in fields {
            if (self.mapping.is_mapped)(&f.path) {
                constant = false;
            } else if !f.optional {
                return Err(format!("Unknown column [{}]", f.path));
            }
        }
        Ok(constant)
    }

    /// A constant condition, unmapped optional fields read as null (a null beside `==` or
    /// `!=` is a null check).
    fn constant(&self, e: &Expr) -> Result<Option<bool>, String> {
        let value = match e {
            Expr::Compare(op @ (CompareOp::Eq | CompareOp::Neq), a, b)
                if self.reads_null(a) || self.reads_null(b) =>
            {
                let other = if self.reads_null(a) { b } else { a };
                let is_null = self.constant_value(other)? == script::Value::Null;
                script::Value::Bool(is_null == (*op == CompareOp::Eq))
            }
            Expr::And(a, b) => {
                let (x, y) = (self.constant(a)?, self.constant(b)?);
                return Ok(fold_and((x, true), (y, true)).0);
            }
            Expr::Or(a, b) => {
                let (x, y) = (self.constant(a)?, self.constant(b)?);
                return Ok(fold_or((x, true), (y, true)).0);
            }
            Expr::Not(a) => return Ok(self.constant(a)?.map(|b| !b)),
            other => self.constant_value(other)?,
        };
        match value {
            script::Value::Bool(b) => Ok(Some(b)),
            script::Value::Null => Ok(None),
            other => Err(format!("{other:?} is not a condition")),
        }
    }

    /// A field-free expression's value (unmapped optional fields read as null).
    fn constant_value(&self, e: &Expr) -> Result<script::Value, String> {
        let closed = substitute(e, &mut |_| script::Value::Null);
        let script = super::lower::to_script(&closed).map_err(|e| e.0)?;
        script.eval(&script::Value::Null).map_err(|e| e.0)
    }

    /// `null`, or a field that reads as null (optional and mapped nowhere): either side of
    /// `==`/`!=` makes the comparison a null check of the other side.
    fn reads_null(&self, e: &Expr) -> bool {
        match e {
            Expr::Null => true,
            Expr::Field(f) => f.optional && !(self.mapping.is_mapped)(&f.path),
            _ => false,
        }
    }

    fn field_type(&self, f: &str) -> FieldType {
        self.mapping.types.type_of(f)
    }

    fn exact(&self, f: &Field) -> Result<(), String> {
        match self.field_type(&f.path) {
            FieldType::Text(_) => Err(format!("[{}] is a text field", f.path)),
            _ => Ok(()),
        }
    }

    /// The indexed values of a keyword-like field (none over `ignore_above` for keywords).
    fn keyword_values(&self, f: &str) -> Vec<String> {
        let ty = self.field_type(f);
        self.doc
            .fields
            .get(f)
            .into_iter()
            .flatten()
            .filter(|v| ty != FieldType::Keyword || v.chars().count() <= KEYWORD_IGNORE_ABOVE)
            .cloned()
            .collect()
    }

    fn all_values(&self, f: &str) -> &[String] {
        self.doc.fields.get(f).map_or(&[], Vec::as_slice)
    }

    /// Whether a value of `f` is `value` (a keyword exactly; numbers, dates and addresses
    /// as their type compares them).
    fn any_equal(&self, f: &str, value: &str, insensitive: bool) -> bool {
        match self.field_type(f) {
            FieldType::Keyword | FieldType::Wildcard => {
                self.keyword_values(f).iter().any(|v| match insensitive {
                    true => ascii_fold(v) == ascii_fold(value),
                    false => v == value,
                })
            }
            ty => self.typed(
                f,
                ty,
                Test::Term {
                    value: value.to_string(),
                    case_insensitive: insensitive,
                },
            ),
        }
    }

    fn typed(&self, f: &str, ty: FieldType, test: Test) -> bool {
        self.all_values(f)
            .iter()
            .any(|v| eval::value_matches(&test, ty, v))
    }

    fn compare(&self, op: CompareOp, a: &Expr, b: &Expr) -> Result<bool, String> {
        if matches!(op, CompareOp::Eq | CompareOp::Neq)
            && (self.reads_null(a) || self.reads_null(b))
        {
            let other = if self.reads_null(a) { b } else { a };
            let Expr::Field(f) = other else {
                return Err("a null check of an expression".into());
            };
            let present = self.present(&f.path);
            return Ok(present == (op == CompareOp::Neq));
        }
        let (op, field, lit) = match (a, b) {
            (Expr::Field(f), lit) if lit.is_foldable() => (op, f, lit),
            (lit, Expr::Field(f)) if lit.is_foldable() => (op.mirrored(), f, lit),
            _ => return self.script(&Expr::Compare(op, Box::new(a.clone()), Box::new(b.clone()))),
        };
        self.exact(field)?;
        let value = match self.constant_value(lit)? {
            script::Value::Null => return Err("null in a comparison that does not fold".into()),
            v => text_of(&v),
        };
        let f = field.path.as_str();
        Ok(match op {
            CompareOp::Eq => self.any_equal(f, &value, false),
            CompareOp::Neq => !self.any_equal(f, &value, false),
            range => {
                let op = super::lower::range_op(range);
                match self.field_type(f) {
                    FieldType::Keyword | FieldType::Wildcard => {
                        self.keyword_values(f).iter().any(|v| {
                            let o = v.as_str().cmp(value.as_str());
                            match op {
                                RangeOp::Lt => o.is_lt(),
                                RangeOp::Lte => o.is_le(),
                                RangeOp::Gt => o.is_gt(),
                                RangeOp::Gte => o.is_ge(),
                            }
                        })
                    }
                    ty => self.typed(f, ty, Test::Range { op, bound: value }),
                }
            }
        })
    }

    /// Whether the field has an indexed value.
    fn present(&self, f: &str) -> bool {
        match self.field_type(f) {
            FieldType::Keyword | FieldType::Wildcard => !self.keyword_values(f).is_empty(),
            ty => self.typed(f, ty, Test::Exists),
        }
    }

    fn field_in(&self, f: &Field, list: &[Expr], insensitive: bool) -> Result<bool, String> {
        self.exact(f)?;
        for item in list {
            let v = self.constant_value(item)?;
            if v != script::Value::Null && self.any_equal(&f.path, &text_of(&v), insensitive) {
                return Ok(true);
            }
        }
        Ok(false)
    }

    fn field_matches(
        &self,
        f: &Field,
        kind: MatchKind,
        insensitive: bool,
        patterns: &[Expr],
    ) -> Result<bool, String> {
        self.exact(f)?;
        let texts: Vec<String> = patterns
            .iter()
            .map(|p| match p {
                Expr::Str(s) => Ok(s.clone()),
                _ => Err("a pattern that is not a string".to_string()),
            })
            .collect::<Result<_, _>>()?;
        let keyword = matches!(
            self.field_type(&f.path),
            FieldType::Keyword | FieldType::Wildcard
        );
        let values = self.keyword_values(&f.path);
        if kind == MatchKind::Regex {
            let re =
                LuceneRegex::parse(&texts.join("|"), insensitive).map_err(|e| e.to_string())?;
            return Ok(keyword && values.iter().any(|v| re.is_match(v)));
        }
        Ok(texts.iter().any(|t| {
            let tokens = eql_wildcard(t);
            if tokens.iter().all(|w| matches!(w, WildToken::Char(_))) {
                return self.any_equal(&f.path, t, insensitive);
            }
            keyword && values.iter().any(|v| wildcard(&tokens, v, insensitive))
        }))
    }

    /// A function as a condition: the Lucene forms where a field stands first and the rest
    /// are constants, a script otherwise.
    fn call(&self, e: &Expr) -> Result<bool, String> {
        let Expr::Call {
            name,
            insensitive,
            args,
            ..
        } = e
        else {
            return Err("not a call".into());
        };
        let (Some(Expr::Field(f)), rest) = (args.first(), &args[1..]) else {
            return self.script(e);
        };
        if !rest.iter().all(Expr::is_foldable) {
            return self.script(e);
        }
        let consts: Vec<script::Value> = rest
            .iter()
            .map(|a| self.constant_value(a))
            .collect::<Result<_, _>>()?;
        let text = |i: usize| consts.get(i).map(text_of).unwrap_or_default();
        let lucene = |pattern: String| -> Result<bool, String> {
            self.exact(f)?;
            let tokens = lucene_wildcard(&pattern);
            Ok(self
                .keyword_values(&f.path)
                .iter()
                .any(|v| wildcard(&tokens, v, *insensitive)))
        };
        match name.to_ascii_lowercase().as_str() {
            "startswith" => {
                self.exact(f)?;
                let p = text(0);
                Ok(self
                    .keyword_values(&f.path)
                    .iter()
                    .any(|v| match insensitive {
                        true => ascii_fold(v).starts_with(&ascii_fold(&p)),
                        false => v.starts_with(&p),
                    }))
            }
            "endswith" => lucene(format!("*{}", text(0))),
            "stringcontains" => lucene(format!("*{}*", text(0))),
            "cidrmatch" => {
                if self.field_type(&f.path) != FieldType::Ip {
                    return Err("cidrMatch needs an ip field".into());
                }
                Ok(self.all_values(&f.path).iter().any(|v| {
                    v.trim().parse().is_ok_and(|addr| {
                        consts.iter().any(|c| eval::ip_matches(&text_of(c), addr))
                    })
                }))
            }
            _ => self.script(e),
        }
    }

    /// A script: true when some combination of the values of its field occurrences (each
    /// occurrence its own, as Elasticsearch's multi-value rewrite binds them; a field
    /// without values reads as null) makes it true.
    fn script(&self, e: &Expr) -> Result<bool, String> {
        let mut occurrences = Vec::new();
        e.each_field(&mut |f| occurrences.push(f));
        let mut choices: Vec<Vec<script::Value>> = Vec::new();
        for f in occurrences {
            let values: Vec<script::Value> = if (self.mapping.is_mapped)(&f.path) {
                self.exact(f)?;
                let ty = self.field_type(&f.path);
                self.all_values(&f.path)
                    .iter()
                    .filter_map(|v| eval::script_value(ty, v))
                    .collect()
            } else if f.optional {
                Vec::new()
            } else {
                return Err(format!("Unknown column [{}]", f.path));
            };
            choices.push(if values.is_empty() {
                vec![script::Value::Null]
            } else {
                values
            });
        }
        let mut pick = vec![0usize; choices.len()];
        loop {
            let mut next = 0;
            let closed = substitute(e, &mut |_| {
                let v = choices[next][pick[next]].clone();
                next += 1;
                v
            });
            let script = super::lower::to_script(&closed).map_err(|e| e.0)?;
            if script.holds(None) {
                return Ok(true);
            }
            // The next combination, odometer style.
            let mut i = 0;
            loop {
                if i == pick.len() {
                    return Ok(false);
                }
                pick[i] += 1;
                if pick[i] < choices[i].len() {
                    break;
                }
                pick[i] = 0;
                i += 1;
            }
        }
    }
}

/// The expression with each field occurrence replaced, in order, by the value `value_of`
/// gives it.
fn substitute(e: &Expr, value_of: &mut dyn FnMut(&Field) -> script::Value) -> Expr {
    let closed: Result<Expr, std::convert::Infallible> = e.map_fields(&mut |f| {
        Ok(match value_of(f) {
            script::Value::Null => Expr::Null,
            script::Value::Bool(b) => Expr::Bool(b),
            script::Value::Int(n) => Expr::Int(n),
            script::Value::Float(x) => Expr::Float(x),
            script::Value::Str(t) => Expr::Str(t),
        })
    });
    match closed {
        Ok(e) => e,
        Err(never) => match never {},
    }
}

fn text_of(v: &script::Value) -> String {
    script::java_string(v)
}

fn ascii_fold(s: &str) -> String {
    s.chars().map(|c| c.to_ascii_lowercase()).collect()
}

/// Lucene's wildcard syntax: `*`, `?`, and `\` escaping the next character.
fn lucene_wildcard(p: &str) -> Vec<WildToken> {
    let mut out = Vec::new();
    let mut chars = p.chars();
    while let Some(c) = chars.next() {
        out.push(match c {
            '*' => WildToken::AnyRun,
            '?' => WildToken::Any,
            '\\' => WildToken::Char(chars.next().unwrap_or('\\')),
            c => WildToken::Char(c),
        });
    }
    out
}

/// A whole-value wildcard match by recursion over characters, ASCII-folded when asked.
fn wildcard(p: &[WildToken], v: &str, insensitive: bool) -> bool {
    let fold = |c: char| {
        if insensitive {
            c.to_ascii_lowercase()
        } else {
            c
        }
    };
    let text: Vec<char> = v.chars().map(fold).collect();
    let pattern: Vec<WildToken> = p
        .iter()
        .map(|t| match t {
            WildToken::Char(c) => WildToken::Char(fold(*c)),
            other => *other,
        })
        .collect();
    fn go(p: &[WildToken], t: &[char], memo: &mut Vec<Vec<Option<bool>>>) -> bool {
        if let Some(known) = memo[p.len()][t.len()] {
            return known;
        }
        let result = match p.first() {
            None => t.is_empty(),
            Some(WildToken::AnyRun) => {
                go(&p[1..], t, memo) || (!t.is_empty() && go(p, &t[1..], memo))
            }
            Some(WildToken::Any) => !t.is_empty() && go(&p[1..], &t[1..], memo),
            Some(WildToken::Char(c)) => t.first() == Some(c) && go(&p[1..], &t[1..], memo),
        };
        memo[p.len()][t.len()] = Some(result);
        result
    }
    let mut memo = vec![vec![None; text.len() + 1]; pattern.len() + 1];
    go(&pattern, &text, &mut memo)
}
