//! What Elasticsearch rejects after parsing and before it searches, as far as the query text
//! decides it: function names and arities (`EqlFunctionRegistry`: names case-insensitive,
//! the `~` form only where the function has one), and comparisons whose both sides read
//! fields (`Comparisons against fields are not (currently) supported`, raised when the
//! comparison is translated; a literal on the left is moved to the right first). Whether a
//! field is mapped depends on the data searched and is decided when the query is compiled.

use super::{Expr, Pos, Query, SyntaxError};

/// A function of Elasticsearch's EQL: its lower-case name, the argument counts it accepts,
/// the message for another count, and whether it has a `~` (case-insensitive) form.
pub struct Function {
    pub name: &'static str,
    pub min_args: usize,
    pub max_args: Option<usize>,
    pub arity_message: &'static str,
    pub insensitive_form: bool,
}

const fn function(
    name: &'static str,
    min_args: usize,
    max_args: Option<usize>,
    arity_message: &'static str,
    insensitive_form: bool,
) -> Function {
    Function {
        name,
        min_args,
        max_args,
        arity_message,
        insensitive_form,
    }
}

const TWO: &str = "expects exactly two arguments";

/// The functions `EqlFunctionRegistry` registers.
pub const FUNCTIONS: &[Function] = &[
    function("add", 2, Some(2), TWO, false),
    function(
        "between",
        3,
        Some(4),
        "expects three or four arguments",
        true,
    ),
    function(
        "cidrmatch",
        2,
        None,
        "expects at least two arguments",
        false,
    ),
    function("concat", 0, None, "", false),
    function("divide", 2, Some(2), TWO, false),
    function("endswith", 2, Some(2), TWO, true),
    function(
        "indexof",
        2,
        Some(3),
        "expects two or three arguments",
        true,
    ),
    function("length", 1, Some(1), "expects exactly one argument", false),
    function("modulo", 2, Some(2), TWO, false),
    function("multiply", 2, Some(2), TWO, false),
    function("number", 1, Some(2), "expects one or two arguments", false),
    function("startswith", 2, Some(2), TWO, true),
    function("string", 1, Some(1), "expects exactly one argument", false),
    function("stringcontains", 2, Some(2), TWO, true),
    function(
        "substring",
        2,
        Some(3),
        "expects two or three arguments",
        false,
    ),
    function("subtract", 2, Some(2), TWO, false),
];

/// The first reason Elasticsearch would refuse to run `query`, parsed from `source`, if any.
pub fn check(query: &Query, source: &str) -> Result<(), SyntaxError> {
    checked(query).map_err(|e| SyntaxError::at(source, e.line, e.column, e.message))
}

fn checked(query: &Query) -> Result<(), SyntaxError> {
    query.expressions().into_iter().try_for_each(expr)
}

fn expr(e: &Expr) -> Result<(), SyntaxError> {
    match e {
        Expr::Call {
            name,
            insensitive,
            args,
            at,
        } => {
            call(name, *insensitive, args.len(), *at)?;
            args.iter().try_for_each(expr)
        }
        Expr::Compare(op, a, b) => {
            let (left, right) = if a.is_foldable() { (b, a) } else { (a, b) };
            if !right.is_foldable() && !left.is_foldable() {
                let at = right.start().unwrap_or_default();
                return Err(error(
                    at,
                    format!(
                        "Comparisons against fields are not (currently) supported; offender [{}] in [{}]",
                        super::print::expr(right),
                        op.symbol()
                    ),
                ));
            }
            expr(a)?;
            expr(b)
        }
        Expr::In { value, list, .. } => {
            if let Some(field) = list.iter().find(|x| !x.is_foldable()) {
                let at = field.start().unwrap_or_default();
                return Err(error(
                    at,
                    format!(
                        "Comparisons against fields are not (currently) supported; offender [{}] in [{}]",
                        super::print::expr(field),
                        super::print::expr(e)
                    ),
                ));
            }
            expr(value)
        }
        Expr::Match { value, .. } => expr(value),
        Expr::Not(a) | Expr::Neg(a) => expr(a),
        Expr::And(a, b) | Expr::Or(a, b) | Expr::Arith(_, a, b) => {
            expr(a)?;
            expr(b)
        }
        Expr::Null
        | Expr::Bool(_)
        | Expr::Int(_)
        | Expr::Float(_)
        | Expr::Str(_)
        | Expr::Field(_) => Ok(()),
    }
}

fn call(name: &str, insensitive: bool, args: usize, at: Pos) -> Result<(), SyntaxError> {
    let lower = name.to_ascii_lowercase();
    let Some(f) = FUNCTIONS.iter().find(|f| f.name == lower) else {
        return Err(error(at, format!("Unknown function [{name}]")));
    };
    let fits = args >= f.min_args && f.max_args.is_none_or(|max| args <= max);
    if !fits {
        // Raised while building the function: one column right, as builder errors are.
        let at = Pos {
            line: at.line,
            column: at.column + 1,
        };
        return Err(error(
            at,
            format!("error building [{lower}]: {}", f.arity_message),
        ));
    }
    if insensitive && !f.insensitive_form {
        return Err(error(
            at,
            format!("Function [{lower}] does not support case-insensitivity"),
        ));
    }
    Ok(())
}

fn error(at: Pos, message: String) -> SyntaxError {
    SyntaxError {
        line: at.line,
        column: at.column,
        message,
        source_line: String::new(),
    }
}

impl Expr {
    /// Whether the expression is a constant Elasticsearch folds (no field in it).
    pub fn is_foldable(&self) -> bool {
        match self {
            Expr::Field(_) => false,
            Expr::Null | Expr::Bool(_) | Expr::Int(_) | Expr::Float(_) | Expr::Str(_) => true,
            Expr::Not(a) | Expr::Neg(a) => a.is_foldable(),
            Expr::And(a, b) | Expr::Or(a, b) | Expr::Compare(_, a, b) | Expr::Arith(_, a, b) => {
                a.is_foldable() && b.is_foldable()
            }
            Expr::In { value, list, .. } => {
                value.is_foldable() && list.iter().all(Expr::is_foldable)
            }
            Expr::Match {
                value, patterns, ..
            } => value.is_foldable() && patterns.iter().all(Expr::is_foldable),
            Expr::Call { args, .. } => args.iter().all(Expr::is_foldable),
        }
    }

    /// Where the expression starts, when it holds a field or a call.
    pub fn start(&self) -> Option<Pos> {
        match self {
            Expr::Field(f) => Some(f.at),
            Expr::Call { at, .. } => Some(*at),
            Expr::Not(a) | Expr::Neg(a) => a.start(),
            Expr::And(a, b) | Expr::Or(a, b) | Expr::Compare(_, a, b) | Expr::Arith(_, a, b) => {
                a.start().or_else(|| b.start())
            }
            Expr::In { value, .. } | Expr::Match { value, .. } => value.start(),
            Expr::Null | Expr::Bool(_) | Expr::Int(_) | Expr::Float(_) | Expr::Str(_) => None,
        }
    }
}
