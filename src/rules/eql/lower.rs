//! EQL conditions lowered to [`Cond`], the way Elasticsearch's EQL planner turns a filter
//! into a query (`optimizer/Optimizer`, `planner/QueryTranslator` and QL's
//! `ExpressionTranslators`).
//!
//! Fields are resolved first against what the searched indices map ([`Mapping`]): a field
//! mapped nowhere is `Unknown column [f]` and the version cannot run, unless it is written
//! `?f`, which then reads as `null` and folds: `?f == null` is true, a comparison with null is
//! null, `not null` is null, `x and null` is null, `x or null` is `x`, and a condition that is
//! null or false returns nothing. What is left becomes Lucene queries where a field stands
//! alone on the left (`==` a case-sensitive `term`, `:` a case-insensitive `term` or
//! `wildcard`, `in` `terms`, `like` `wildcard`, `regex` `regexp`, `startsWith` `prefix`,
//! `endsWith`/`stringContains` `wildcard`s with their argument pasted in unescaped,
//! `cidrMatch` `terms` on an address, `== null` `exists` negated; `!=` and `not` are
//! `must_not`), and filter scripts ([`crate::cond::script`]) where a function or arithmetic
//! is on the left. `<category> where` adds a case-sensitive `term` on `event.category`.

use std::sync::Arc;

use super::{CompareOp, EventFilter, Expr, Field, MatchKind};
use crate::cond::fields::{is_array, FieldType, FieldTypes};
use crate::cond::glob::{self, WildToken};
use crate::cond::regexp::LuceneRegex;
use crate::cond::script::{self, Func, Op, Script};
use crate::cond::{Cond, FieldSel, GlobCase, Pred, RangeOp, Test};

/// The field holding an event's categories.
pub const EVENT_CATEGORY: &str = "event.category";

/// What the searched indices map: which fields exist, and their types.
pub struct Mapping<'a> {
    pub is_mapped: &'a dyn Fn(&str) -> bool,
    pub types: FieldTypes,
}

/// Why a version cannot run against these indices (what Elasticsearch answers instead of
/// hits).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CannotRun(pub String);

impl std::fmt::Display for CannotRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

type Lowered = Result<Folded, CannotRun>;

/// A condition after folding: a constant of three-valued logic, or a query.
#[derive(Debug, Clone, PartialEq)]
enum Folded {
    /// `Some(true)`, `Some(false)`, or `None` for null.
    Const(Option<bool>),
    Query(Cond),
}

/// The query of one event filter (a whole event query, or one step of a sequence).
pub fn lower_filter(filter: &EventFilter, mapping: &Mapping) -> Result<Cond, CannotRun> {
    let lowering = Lowering { mapping };
    let condition = lowering.resolve(&filter.condition)?;
    let folded = lowering.condition(&condition)?;
    let folded = match &filter.category {
        None => folded,
        Some(category) => {
            if !(mapping.is_mapped)(EVENT_CATEGORY) {
                return Err(unknown(EVENT_CATEGORY));
            }
            let term = Folded::Query(Cond::Pred(Pred {
                field: FieldSel::Name(EVENT_CATEGORY.to_string()),
                test: Test::Term {
                    value: category.clone(),
                    case_insensitive: false,
                },
                shown: format!(" == \"{category}\""),
            }));
            and(term, folded)
        }
    };
    Ok(match folded {
        Folded::Const(Some(true)) => Cond::True,
        Folded::Const(_) => Cond::False,
        Folded::Query(c) => c,
    })
}

/// The refusal of a field mapped nowhere.
pub fn unknown(field: &str) -> CannotRun {
    CannotRun(format!(
        "field `{field}` is not mapped in the indices it searches (Elasticsearch: Unknown column [{field}])"
    ))
}

struct Lowering<'a, 'm> {
    mapping: &'a Mapping<'m>,
}

impl Lowering<'_, '_> {
    /// The expression with every unmapped optional field replaced by `null`; an unmapped
    /// field written without `?` is an error.
    fn resolve(&self, e: &Expr) -> Result<Expr, CannotRun> {
        e.map_fields(&mut |f| {
            if (self.mapping.is_mapped)(&f.path) {
                Ok(Expr::Field(f.clone()))
            } else if f.optional {
                Ok(Expr::Null)
            } else {
                Err(unknown(&f.path))
            }
        })
    }

    fn condition(&self, e: &Expr) -> Lowered {
        match e {
            Expr::Bool(b) => Ok(Folded::Const(Some(*b))),
            Expr::Null => Ok(Folded::Const(None)),
            Expr::And(a, b) => Ok(and(self.condition(a)?, self.condition(b)?)),
            Expr::Or(a, b) => Ok(or(self.condition(a)?, self.condition(b)?)),
            Expr::Not(a) => Ok(not(self.condition(a)?)),
            Expr::Compare(op, a, b) => self.compare(e, *op, a, b),
            Expr::In { .. } | Expr::Match { .. } | Expr::Call { .. } => self.predicate(e),
            Expr::Field(f) => Err(CannotRun(format!(
                "the field `{}` stands alone as a condition, which quarry does not run",
                f.path
            ))),
            other => Err(CannotRun(format!(
                "[{}] is not a condition",
                super::print::expr(other)
            ))),
        }
    }

    /// A comparison: null checks, constants, a field against a literal, or a script.
    fn compare(&self, whole: &Expr, op: CompareOp, a: &Expr, b: &Expr) -> Lowered {
        if matches!(op, CompareOp::Eq | CompareOp::Neq) {
            let other = match (a, b) {
                (x, Expr::Null) | (Expr::Null, x) => Some(x),
                _ => None,
            };
            if let Some(x) = other {
                let is_null = self.is_null(x)?;
                return Ok(match op {
                    CompareOp::Eq => is_null,
                    _ => not(is_null),
                });
            }
        }
        if a.is_foldable() && b.is_foldable() {
            return constant(whole);
        }
        // Literals go to the right.
        let (op, a, b) = match (a, b) {
            (x, y) if x.is_foldable() => (op.mirrored(), y, x),
            (x, y) => (op, x, y),
        };
        if matches!(b, Expr::Null) {
            return Ok(Folded::Const(None));
        }
        let Expr::Field(f) = a else {
            return self.script(whole);
        };
        self.exact(f, whole)?;
        let value = literal_text(b);
        let shown = format!(" {} {}", op.symbol(), super::print::expr(b));
        let pred = |test| Folded::Query(pred(f, test, shown.clone()));
        let term = Test::Term {
            value: value.clone(),
            case_insensitive: false,
        };
        Ok(match op {
            CompareOp::Eq => pred(term),
            CompareOp::Neq => not(pred(term)),
            range => pred(Test::Range {
                op: range_op(range),
                bound: value,
            }),
        })
    }

    /// `x == null`: `must_not exists` on a field (as written, sub-fields aside), a constant
    /// for a literal.
    fn is_null(&self, x: &Expr) -> Lowered {
        match x {
            Expr::Null => Ok(Folded::Const(Some(true))),
            Expr::Field(f) => Ok(not(Folded::Query(pred(
                f,
                Test::Exists,
                " != null".to_string(),
            )))),
            x if x.is_foldable() => Ok(Folded::Const(Some(false))),
            x => Err(CannotRun(format!(
                "a null check of [{}] is not run by quarry",
                super::print::expr(x)
            ))),
        }
    }

    /// `in`, `:`, `like`, `regex` and the functions used as conditions.
    fn predicate(&self, e: &Expr) -> Lowered {
        if e.is_foldable() {
            return constant(e);
        }
        match e {
            Expr::In {
                value,
                list,
                insensitive,
                negated,
            } => {
                let folded = match &**value {
                    Expr::Null => Folded::Const(None),
                    Expr::Field(f) => self.in_list(f, list, *insensitive, e)?,
                    _ => return self.script(e),
                };
                Ok(if *negated { not(folded) } else { folded })
            }
            Expr::Match {
                value,
                kind,
                insensitive,
                patterns,
            } => match &**value {
                Expr::Null => Ok(Folded::Const(None)),
                Expr::Field(f) => self.matches(f, *kind, *insensitive, patterns, e),
                _ => self.script(e),
            },
            Expr::Call {
                name,
                insensitive,
                args,
                ..
            } => self.call(e, name, *insensitive, args),
            _ => unreachable_condition(e),
        }
    }

    fn in_list(&self, f: &Field, list: &[Expr], insensitive: bool, whole: &Expr) -> Lowered {
        self.exact(f, whole)?;
        let values: Vec<String> = list
            .iter()
            .filter(|x| !matches!(x, Expr::Null))
            .map(literal_text)
            .collect();
        let shown = |v: &str| format!(" {} \"{v}\"", if insensitive { ":" } else { "==" });
        if insensitive {
            let terms = values
                .iter()
                .map(|v| {
                    pred(
                        f,
                        Test::Term {
                            value: v.clone(),
                            case_insensitive: true,
                        },
                        shown(v),
                    )
                })
                .collect();
            return Ok(Folded::Query(Cond::Or(terms)));
        }
        let written: Vec<String> = list.iter().map(super::print::expr).collect();
        Ok(Folded::Query(pred(
            f,
            Test::Terms { values },
            format!(" in ({})", written.join(", ")),
        )))
    }

    fn matches(
        &self,
        f: &Field,
        kind: MatchKind,
        insensitive: bool,
        patterns: &[Expr],
        whole: &Expr,
    ) -> Lowered {
        self.exact(f, whole)?;
        let strings = patterns
            .iter()
            .map(|p| match p {
                Expr::Str(s) => Ok(s.clone()),
                other => Err(CannotRun(format!(
                    "[{}]: a pattern must be a string, not {}",
                    super::print::expr(whole),
                    super::print::expr(other)
                ))),
            })
            .collect::<Result<Vec<String>, _>>()?;
        if kind == MatchKind::Regex {
            let joined = strings.join("|");
            let re = LuceneRegex::parse(&joined, insensitive).map_err(|e| {
                CannotRun(match e.message.contains("quarry") {
                    true => format!("its regular expression `{joined}`: {e}"),
                    false => format!(
                        "Lucene rejects its regular expression `{joined}`: {e} (Elasticsearch: \
                         failed to create query)"
                    ),
                })
            })?;
            let shown = format!(" regex{} \"{joined}\"", if insensitive { "~" } else { "" });
            return Ok(Folded::Query(pred(f, Test::Regexp(re), shown)));
        }
        let op = if insensitive { ":" } else { "like" };
        let items = strings
            .iter()
            .map(|s| pred(f, wildcard_test(s, insensitive), format!(" {op} \"{s}\"")))
            .collect();
        Ok(Folded::Query(Cond::Or(items)))
    }

    /// A function as a condition: the ones with a Lucene form when their first argument is a
    /// field and the rest are constants, a script otherwise.
    fn call(&self, whole: &Expr, name: &str, insensitive: bool, args: &[Expr]) -> Lowered {
        let lower = name.to_ascii_lowercase();
        let (Some(Expr::Field(f)), rest) = (args.first(), args.get(1..).unwrap_or_default()) else {
            return self.script(whole);
        };
        if !rest.iter().all(Expr::is_foldable) {
            return self.script(whole);
        }
        if rest.iter().any(|a| matches!(a, Expr::Null)) {
            return Ok(Folded::Const(None));
        }
        let text = |i: usize| rest.get(i).map(literal_text).unwrap_or_default();
        let shown = format!(" ({})", super::print::expr(whole));
        let test = match lower.as_str() {
            "startswith" => Test::Prefix {
                value: text(0),
                case_insensitive: insensitive,
            },
            "endswith" | "stringcontains" => {
                let pattern = match lower.as_str() {
                    "endswith" => format!("*{}", text(0)),
                    _ => format!("*{}*", text(0)),
                };
                lucene_wildcard(&pattern, insensitive)
            }
            "cidrmatch" => {
                if self.mapping.types.type_of(&f.path) != FieldType::Ip {
                    return Err(CannotRun(format!(
                        "first argument of [{}] must be [ip], found value [{}]",
                        super::print::expr(whole),
                        f.path
                    )));
                }
                Test::Terms {
                    values: rest.iter().map(literal_text).collect(),
                }
            }
            _ => return self.script(whole),
        };
        self.exact(f, whole)?;
        Ok(Folded::Query(pred(f, test, shown)))
    }

    /// A filter script over one field; constants fold.
    fn script(&self, whole: &Expr) -> Lowered {
        if whole.is_foldable() {
            return constant(whole);
        }
        let mut fields: Vec<&Field> = Vec::new();
        let mut occurrences = 0;
        whole.each_field(&mut |f| {
            occurrences += 1;
            if !fields.contains(&f) {
                fields.push(f);
            }
        });
        let shown = format!(" (script {})", super::print::expr(whole));
        let field = match fields.as_slice() {
            [one] => *one,
            many => {
                let names: Vec<String> = many.iter().map(|f| format!("`{}`", f.path)).collect();
                return Err(CannotRun(format!(
                    "[{}] is a script over several fields ({}), which quarry does not run yet",
                    super::print::expr(whole),
                    names.join(", ")
                )));
            }
        };
        if occurrences > 1 && is_array(&field.path) {
            return Err(CannotRun(format!(
                "[{}] reads the multi-valued field `{}` twice, which quarry does not run yet",
                super::print::expr(whole),
                field.path
            )));
        }
        self.exact(field, whole)?;
        let script = to_script(whole)?;
        let holds_when_missing = script.holds(None);
        let query = pred(field, Test::Script(Arc::new(script)), shown);
        Ok(Folded::Query(match holds_when_missing {
            false => query,
            true => Cond::Or(vec![
                query,
                Cond::Not(Box::new(pred(field, Test::Exists, " != null".into()))),
            ]),
        }))
    }

    /// EQL reads keywords: a text field without a keyword sub-field is refused.
    fn exact(&self, f: &Field, whole: &Expr) -> Result<(), CannotRun> {
        match self.mapping.types.type_of(&f.path) {
            FieldType::Text(_) => Err(CannotRun(format!(
                "[{}] cannot operate on field of data type [text]: No keyword/multi-field \
                 defined exact matches for [{}]; define one or use MATCH/QUERY instead",
                super::print::expr(whole),
                f.path
            ))),
            _ => Ok(()),
        }
    }
}

fn unreachable_condition(e: &Expr) -> Lowered {
    Err(CannotRun(format!(
        "[{}] is not a condition",
        super::print::expr(e)
    )))
}

/// `a and b` as the optimizer folds it: constants by three-valued logic, `false` absorbs,
/// `true` drops out, and a null side makes the whole null (PruneFilters).
fn and(a: Folded, b: Folded) -> Folded {
    match (a, b) {
        (Folded::Const(x), Folded::Const(y)) => Folded::Const(match (x, y) {
            (Some(false), _) | (_, Some(false)) => Some(false),
            (Some(true), Some(true)) => Some(true),
            _ => None,
        }),
        (Folded::Const(Some(false)), _) | (_, Folded::Const(Some(false))) => {
            Folded::Const(Some(false))
        }
        (Folded::Const(Some(true)), q) | (q, Folded::Const(Some(true))) => q,
        (Folded::Const(None), _) | (_, Folded::Const(None)) => Folded::Const(None),
        (Folded::Query(x), Folded::Query(y)) => Folded::Query(Cond::And(vec![x, y])),
    }
}

/// `a or b`: constants by three-valued logic, `true` absorbs, a false or null side drops out.
fn or(a: Folded, b: Folded) -> Folded {
    match (a, b) {
        (Folded::Const(x), Folded::Const(y)) => Folded::Const(match (x, y) {
            (Some(true), _) | (_, Some(true)) => Some(true),
            (Some(false), Some(false)) => Some(false),
            _ => None,
        }),
        (Folded::Const(Some(true)), _) | (_, Folded::Const(Some(true))) => {
            Folded::Const(Some(true))
        }
        (Folded::Const(_), q) | (q, Folded::Const(_)) => q,
        (Folded::Query(x), Folded::Query(y)) => Folded::Query(Cond::Or(vec![x, y])),
    }
}

fn not(a: Folded) -> Folded {
    match a {
        Folded::Const(v) => Folded::Const(v.map(|b| !b)),
        Folded::Query(c) => Folded::Query(Cond::Not(Box::new(c))),
    }
}

/// A condition without fields, evaluated as the optimizer folds it.
fn constant(e: &Expr) -> Lowered {
    let script = to_script(e)?;
    Ok(Folded::Const(match script.eval(&script::Value::Null) {
        Ok(script::Value::Bool(b)) => Some(b),
        Ok(script::Value::Null) => None,
        Ok(other) => {
            return Err(CannotRun(format!(
                "[{}] is {other:?}, not a condition",
                super::print::expr(e)
            )))
        }
        Err(err) => {
            return Err(CannotRun(format!(
                "[{}] fails: {}",
                super::print::expr(e),
                err.0
            )))
        }
    }))
}

/// The range operator of an ordering comparison.
pub(super) fn range_op(op: CompareOp) -> RangeOp {
    match op {
        CompareOp::Lt => RangeOp::Lt,
        CompareOp::Lte => RangeOp::Lte,
        CompareOp::Gt => RangeOp::Gt,
        _ => RangeOp::Gte,
    }
}

fn pred(f: &Field, test: Test, shown: String) -> Cond {
    Cond::Pred(Pred {
        field: FieldSel::Name(f.path.clone()),
        test,
        shown,
    })
}

/// A literal as the query text Elasticsearch sends.
fn literal_text(e: &Expr) -> String {
    match e {
        Expr::Str(s) => s.clone(),
        Expr::Int(n) => n.to_string(),
        Expr::Float(f) => script::java_string(&script::Value::Float(*f)),
        Expr::Bool(b) => b.to_string(),
        other => super::print::expr(other),
    }
}

/// EQL's wildcards (`:`, `like`): `*` any run, `?` one character, nothing escapes.
pub fn eql_wildcard(s: &str) -> Vec<WildToken> {
    s.chars()
        .map(|c| match c {
            '*' => WildToken::AnyRun,
            '?' => WildToken::Any,
            c => WildToken::Char(c),
        })
        .collect()
}

/// `:`/`like` of one pattern: a term when it has no wildcard, else a wildcard query.
fn wildcard_test(s: &str, insensitive: bool) -> Test {
    let tokens = eql_wildcard(s);
    if !glob::has_wildcard(&tokens) {
        return Test::Term {
            value: s.to_string(),
            case_insensitive: insensitive,
        };
    }
    glob_test(tokens, insensitive)
}

/// A pattern in Lucene's wildcard syntax (`\` escapes), as `endsWith`/`stringContains` build.
fn lucene_wildcard(pattern: &str, insensitive: bool) -> Test {
    glob_test(glob::parse_wildcard(pattern), insensitive)
}

fn glob_test(tokens: Vec<WildToken>, insensitive: bool) -> Test {
    match insensitive {
        true => Test::Glob {
            pattern: glob::map_chars(&tokens, |c| c.to_ascii_lowercase()),
            case: GlobCase::Insensitive,
        },
        false => Test::Glob {
            pattern: tokens,
            case: GlobCase::Sensitive,
        },
    }
}

/// The script of an expression over (at most) one field, read as the field's value.
pub(super) fn to_script(e: &Expr) -> Result<Script, CannotRun> {
    let b = |x: &Expr| to_script(x).map(Box::new);
    Ok(match e {
        Expr::Null => Script::Const(script::Value::Null),
        Expr::Bool(v) => Script::Const(script::Value::Bool(*v)),
        Expr::Int(n) => Script::Const(script::Value::Int(*n)),
        Expr::Float(f) => Script::Const(script::Value::Float(*f)),
        Expr::Str(s) => Script::Const(script::Value::Str(s.clone())),
        Expr::Field(_) => Script::Value,
        Expr::Not(a) => Script::Not(b(a)?),
        Expr::Neg(a) => Script::Neg(b(a)?),
        Expr::And(x, y) => Script::And(b(x)?, b(y)?),
        Expr::Or(x, y) => Script::Or(b(x)?, b(y)?),
        Expr::Compare(op, x, y) => {
            let op = match op {
                CompareOp::Eq => Op::Eq,
                CompareOp::Neq => Op::Neq,
                CompareOp::Lt => Op::Lt,
                CompareOp::Lte => Op::Lte,
                CompareOp::Gt => Op::Gt,
                CompareOp::Gte => Op::Gte,
            };
            Script::Binary(op, b(x)?, b(y)?)
        }
        Expr::Arith(op, x, y) => {
            let op = match op {
                super::ArithOp::Add => Op::Add,
                super::ArithOp::Sub => Op::Sub,
                super::ArithOp::Mul => Op::Mul,
                super::ArithOp::Div => Op::Div,
                super::ArithOp::Mod => Op::Mod,
            };
            Script::Binary(op, b(x)?, b(y)?)
        }
        Expr::In {
            value,
            list,
            insensitive,
            negated,
        } => {
            let x = b(value)?;
            let s = match insensitive {
                false => Script::In(x, list.iter().map(constant_value).collect()),
                true => list
                    .iter()
                    .map(|item| {
                        let item = Box::new(Script::Const(constant_value(item)));
                        Script::Binary(Op::InsensitiveEq, x.clone(), item)
                    })
                    .reduce(|p, q| Script::Or(Box::new(p), Box::new(q)))
                    .unwrap_or(Script::Const(script::Value::Bool(false))),
            };
            if *negated {
                Script::Not(Box::new(s))
            } else {
                s
            }
        }
        Expr::Match {
            value,
            kind,
            insensitive,
            patterns,
        } => {
            let x = b(value)?;
            let texts: Vec<String> = patterns.iter().map(literal_text).collect();
            match kind {
                MatchKind::Regex => Script::Regex {
                    value: x,
                    pattern: texts.join("|"),
                    insensitive: *insensitive,
                },
                MatchKind::Wildcard => texts
                    .iter()
                    .map(|t| {
                        let tokens = eql_wildcard(t);
                        if *insensitive && !glob::has_wildcard(&tokens) {
                            Script::Binary(
                                Op::InsensitiveEq,
                                x.clone(),
                                Box::new(Script::Const(script::Value::Str(t.clone()))),
                            )
                        } else {
                            Script::Regex {
                                value: x.clone(),
                                pattern: script::like_to_java_regex(&tokens),
                                insensitive: *insensitive,
                            }
                        }
                    })
                    .reduce(|p, q| Script::Or(Box::new(p), Box::new(q)))
                    .unwrap_or(Script::Const(script::Value::Bool(false))),
            }
        }
        Expr::Call {
            name,
            insensitive,
            args,
            ..
        } => {
            let insensitive = *insensitive;
            let func = match name.to_ascii_lowercase().as_str() {
                "length" => Func::Length,
                "substring" => Func::Substring,
                "string" => Func::ToString,
                "concat" => Func::Concat,
                "startswith" => Func::StartsWith { insensitive },
                "endswith" => Func::EndsWith { insensitive },
                "stringcontains" => Func::StringContains { insensitive },
                "indexof" => Func::IndexOf { insensitive },
                "between" => Func::Between { insensitive },
                "number" => Func::Number,
                "cidrmatch" => Func::CidrMatch,
                arith @ ("add" | "subtract" | "multiply" | "divide" | "modulo") => {
                    let op = match arith {
                        "add" => Op::Add,
                        "subtract" => Op::Sub,
                        "multiply" => Op::Mul,
                        "divide" => Op::Div,
                        _ => Op::Mod,
                    };
                    let (Some(x), Some(y)) = (args.first(), args.get(1)) else {
                        return Err(CannotRun(format!("{name} needs two arguments")));
                    };
                    return Ok(Script::Binary(op, b(x)?, b(y)?));
                }
                other => return Err(CannotRun(format!("unknown function [{other}]"))),
            };
            let args = args.iter().map(to_script).collect::<Result<_, _>>()?;
            Script::Call(func, args)
        }
    })
}

fn constant_value(e: &Expr) -> script::Value {
    match e {
        Expr::Bool(v) => script::Value::Bool(*v),
        Expr::Int(n) => script::Value::Int(*n),
        Expr::Float(f) => script::Value::Float(*f),
        Expr::Str(s) => script::Value::Str(s.clone()),
        _ => script::Value::Null,
    }
}
