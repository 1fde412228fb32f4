//! Filter scripts: the Painless predicates Elasticsearch's query languages (EQL today) run
//! where a test cannot be a Lucene query, because a function or arithmetic stands on the
//! left of a comparison (`length(f) > 3`, `substring(f, 0, -1) : "x"`).
//!
//! A [`Script`] is an expression over one field's value, evaluated as the QL/EQL processors
//! evaluate it (`InternalEqlScriptUtils`, `Arithmetics`, `Comparisons`, the `*Processor`
//! classes): Java semantics, UTF-16 lengths and indices, `toLowerCase(Locale.ROOT)` for the
//! `~` functions and `compareToIgnoreCase` for `:`, three-valued results where a null makes
//! the filter false. Elasticsearch runs the script once per value of a multi-valued field
//! (it holds when one value passes) and once with null when the field has none; a runtime
//! error (a division by zero, a type mismatch) fails the search there, and is a non-match
//! here.

use std::net::IpAddr;

/// A value inside a script.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
}

/// A function the scripts call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Func {
    Length,
    Substring,
    ToString,
    Concat,
    StartsWith { insensitive: bool },
    EndsWith { insensitive: bool },
    StringContains { insensitive: bool },
    IndexOf { insensitive: bool },
    Between { insensitive: bool },
    Number,
    CidrMatch,
}

/// Arithmetic and comparison operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Eq,
    Neq,
    Lt,
    Lte,
    Gt,
    Gte,
    /// `:` without wildcards: `compareToIgnoreCase`.
    InsensitiveEq,
}

/// An expression of a filter script over the value of its field.
#[derive(Debug, Clone, PartialEq)]
pub enum Script {
    /// The field's value (null when the field has none).
    Value,
    Const(Value),
    Call(Func, Vec<Script>),
    Binary(Op, Box<Script>, Box<Script>),
    Neg(Box<Script>),
    /// `x in (...)`: any equal (Comparisons.eq).
    In(Box<Script>, Vec<Value>),
    /// `x like p` / `x : "p*"` / `x regex p`: a Java regular expression matched whole, with
    /// `Pattern.CASE_INSENSITIVE` (ASCII only) when asked.
    Regex {
        value: Box<Script>,
        pattern: String,
        insensitive: bool,
    },
    Not(Box<Script>),
    And(Box<Script>, Box<Script>),
    Or(Box<Script>, Box<Script>),
}

/// A failed evaluation (Elasticsearch raises a `script_exception`).
#[derive(Debug, Clone, PartialEq)]
pub struct ScriptError(pub String);

type Eval = Result<Value, ScriptError>;

fn err<T>(m: &str) -> Result<T, ScriptError> {
    Err(ScriptError(m.to_string()))
}

impl Script {
    /// Whether the filter holds for one value of the field (`None`: the field has none).
    pub fn holds(&self, value: Option<&Value>) -> bool {
        matches!(
            self.eval(value.unwrap_or(&Value::Null)),
            Ok(Value::Bool(true))
        )
    }

    /// The script's result for a value.
    pub fn eval(&self, v: &Value) -> Eval {
        match self {
            Script::Value => Ok(v.clone()),
            Script::Const(c) => Ok(c.clone()),
            Script::Call(f, args) => {
                let args: Vec<Value> = args.iter().map(|a| a.eval(v)).collect::<Result<_, _>>()?;
                call(*f, &args)
            }
            Script::Binary(op, a, b) => binary(*op, &a.eval(v)?, &b.eval(v)?),
            Script::Neg(a) => match a.eval(v)? {
                Value::Null => Ok(Value::Null),
                Value::Int(n) => n
                    .checked_neg()
                    .map(Value::Int)
                    .ok_or(ScriptError("long overflow".into())),
                Value::Float(f) => Ok(Value::Float(-f)),
                _ => err("A number is required"),
            },
            Script::In(a, list) => {
                let x = a.eval(v)?;
                let mut result = Value::Bool(false);
                for item in list {
                    match compare(&x, item) {
                        None => result = Value::Null,
                        Some(std::cmp::Ordering::Equal) => return Ok(Value::Bool(true)),
                        Some(_) => {}
                    }
                }
                Ok(result)
            }
            Script::Regex {
                value,
                pattern,
                insensitive,
            } => match value.eval(v)? {
                Value::Null => Ok(Value::Null),
                x => {
                    let re = java_regex(pattern, *insensitive)?;
                    Ok(Value::Bool(re.is_match(&java_string(&x))))
                }
            },
            Script::Not(a) => Ok(match a.eval(v)? {
                Value::Bool(b) => Value::Bool(!b),
                _ => Value::Null,
            }),
            Script::And(a, b) => logic(a.eval(v)?, b.eval(v)?, false),
            Script::Or(a, b) => logic(a.eval(v)?, b.eval(v)?, true),
        }
    }
}

/// Three-valued `and` (`or` when `is_or`).
fn logic(a: Value, b: Value, is_or: bool) -> Eval {
    let truth = |x: &Value| match x {
        Value::Bool(b) => Some(*b),
        _ => None,
    };
    Ok(match (truth(&a), truth(&b)) {
        (Some(x), _) | (_, Some(x)) if x == is_or => Value::Bool(is_or),
        (Some(_), Some(_)) => Value::Bool(!is_or),
        _ => Value::Null,
    })
}

/// `Comparisons.compare`: numbers as numbers, strings by UTF-16 units, booleans; a null or
/// strings against numbers compare as nothing.
fn compare(a: &Value, b: &Value) -> Option<std::cmp::Ordering> {
    match (a, b) {
        (Value::Int(x), Value::Int(y)) => Some(x.cmp(y)),
        (Value::Int(x), Value::Float(y)) => Some(java_double_compare(*x as f64, *y)),
        (Value::Float(x), Value::Int(y)) => Some(java_double_compare(*x, *y as f64)),
        (Value::Float(x), Value::Float(y)) => Some(java_double_compare(*x, *y)),
        (Value::Str(x), Value::Str(y)) => Some(x.encode_utf16().cmp(y.encode_utf16())),
        (Value::Bool(x), Value::Bool(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

/// `Double.compare`: NaN equals NaN and is above everything, -0.0 is below 0.0.
fn java_double_compare(x: f64, y: f64) -> std::cmp::Ordering {
    use std::cmp::Ordering::*;
    match (x.is_nan(), y.is_nan()) {
        (true, true) => Equal,
        (true, false) => Greater,
        (false, true) => Less,
        (false, false) => x.total_cmp(&y),
    }
}

fn binary(op: Op, a: &Value, b: &Value) -> Eval {
    use std::cmp::Ordering::*;
    if matches!(a, Value::Null) || matches!(b, Value::Null) {
        return Ok(Value::Null);
    }
    let ordered = |want: &dyn Fn(std::cmp::Ordering) -> bool| {
        Ok(compare(a, b).map_or(Value::Null, |o| Value::Bool(want(o))))
    };
    match op {
        Op::Eq => ordered(&|o| o == Equal),
        Op::Neq => ordered(&|o| o != Equal),
        Op::Lt => ordered(&|o| o == Less),
        Op::Lte => ordered(&|o| o != Greater),
        Op::Gt => ordered(&|o| o == Greater),
        Op::Gte => ordered(&|o| o != Less),
        Op::InsensitiveEq => match (a, b) {
            (Value::Str(x), Value::Str(y)) => Ok(Value::Bool(compare_ignore_case(x, y))),
            _ => err("Insensitive comparison can be applied only on strings"),
        },
        Op::Add | Op::Sub | Op::Mul | Op::Div | Op::Mod => arithmetic(op, a, b),
    }
}

fn arithmetic(op: Op, a: &Value, b: &Value) -> Eval {
    match (a, b) {
        (Value::Int(x), Value::Int(y)) => {
            let (x, y) = (*x, *y);
            let r = match op {
                Op::Add => x.checked_add(y),
                Op::Sub => x.checked_sub(y),
                Op::Mul => x.checked_mul(y),
                Op::Div if y == 0 => return err("/ by zero"),
                Op::Div => Some(x.wrapping_div(y)),
                Op::Mod if y == 0 => return err("/ by zero"),
                _ => Some(x.wrapping_rem(y)),
            };
            r.map(Value::Int)
                .ok_or(ScriptError("long overflow".to_string()))
        }
        (Value::Int(_) | Value::Float(_), Value::Int(_) | Value::Float(_)) => {
            let (x, y) = (number(a), number(b));
            Ok(Value::Float(match op {
                Op::Add => x + y,
                Op::Sub => x - y,
                Op::Mul => x * y,
                Op::Div => x / y,
                _ => x % y,
            }))
        }
        _ => err("A number is required"),
    }
}

fn number(v: &Value) -> f64 {
    match v {
        Value::Int(n) => *n as f64,
        Value::Float(f) => *f,
        _ => f64::NAN,
    }
}

/// Java's `String.compareToIgnoreCase`: char by char, upper-cased then lower-cased.
fn compare_ignore_case(a: &str, b: &str) -> bool {
    let fold = |u: u16| -> u32 {
        let c = char::from_u32(u32::from(u)).unwrap_or('\u{FFFD}');
        let upper = single(c.to_uppercase()).unwrap_or(c);
        single(upper.to_lowercase()).unwrap_or(upper) as u32
    };
    let (a, b): (Vec<u16>, Vec<u16>) = (a.encode_utf16().collect(), b.encode_utf16().collect());
    a.len() == b.len()
        && a.iter()
            .zip(&b)
            .all(|(&x, &y)| x == y || fold(x) == fold(y))
}

/// The one character a case mapping gives, when it gives one (Java's char mappings are 1:1).
fn single(mut it: impl Iterator<Item = char>) -> Option<char> {
    let c = it.next()?;
    it.next().is_none().then_some(c)
}

/// `toString()` of a value, as Java prints it.
pub fn java_string(v: &Value) -> String {
    match v {
        Value::Null => "null".to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Int(n) => n.to_string(),
        Value::Float(f) => java_double(*f),
        Value::Str(s) => s.clone(),
    }
}

/// `Double.toString`: `1.0`, `0.001`, `1.0E7`, `1.0E-4`.
fn java_double(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    let a = f.abs();
    if a == 0.0 || (1e-3..1e7).contains(&a) {
        let s = format!("{f}");
        return if s.contains('.') { s } else { format!("{s}.0") };
    }
    let s = format!("{f:e}");
    let (m, e) = s.split_once('e').unwrap_or((&s, "0"));
    let m = if m.contains('.') {
        m.to_string()
    } else {
        format!("{m}.0")
    };
    format!("{m}E{e}")
}

fn string_arg(v: &Value) -> Result<&str, ScriptError> {
    match v {
        Value::Str(s) => Ok(s),
        _ => err("A string/char is required"),
    }
}

fn utf16(s: &str) -> Vec<u16> {
    s.encode_utf16().collect()
}

fn lower(s: &str) -> String {
    s.to_lowercase()
}

fn call(f: Func, args: &[Value]) -> Eval {
    let arg = |i: usize| args.get(i).unwrap_or(&Value::Null);
    if matches!(arg(0), Value::Null) {
        return Ok(Value::Null);
    }
    match f {
        Func::Length => Ok(Value::Int(utf16(string_arg(arg(0))?).len() as i64)),
        Func::Substring => substring(string_arg(arg(0))?, arg(1), arg(2)),
        Func::ToString => Ok(Value::Str(java_string(arg(0)))),
        Func::Concat => match args.iter().any(|a| matches!(a, Value::Null)) {
            true => Ok(Value::Null),
            false => Ok(Value::Str(args.iter().map(java_string).collect())),
        },
        Func::StartsWith { insensitive }
        | Func::EndsWith { insensitive }
        | Func::StringContains { insensitive } => {
            if matches!(arg(1), Value::Null) && !matches!(f, Func::StringContains { .. }) {
                return Ok(Value::Null);
            }
            let (s, p) = (string_arg(arg(0))?, string_arg(arg(1))?);
            let (s, p) = match insensitive {
                true => (lower(s), lower(p)),
                false => (s.to_string(), p.to_string()),
            };
            Ok(Value::Bool(match f {
                Func::StartsWith { .. } => s.starts_with(&p),
                Func::EndsWith { .. } => s.ends_with(&p),
                _ => !s.is_empty() && !p.is_empty() && s.contains(&p),
            }))
        }
        Func::IndexOf { insensitive } => index_of(args, insensitive),
        Func::Between { insensitive } => between(args, insensitive),
        Func::Number => to_number(string_arg(arg(0))?, arg(1)),
        Func::CidrMatch => cidr_match(args),
    }
}

/// Python-slice `substring` over UTF-16 units.
fn substring(s: &str, start: &Value, end: &Value) -> Eval {
    let units = utf16(s);
    let len = units.len() as i64;
    let int = |v: &Value, default: i64| match v {
        Value::Null => Ok(default),
        Value::Int(n) => Ok(*n),
        Value::Float(f) => Ok(*f as i64),
        _ => err("A number is required"),
    };
    if matches!(start, Value::Null) {
        return Ok(Value::Str(s.to_string()));
    }
    let (mut start, mut end) = (int(start, 0)?, int(end, len)?);
    if start < 0 {
        start = (start + len).max(0);
    }
    if end < 0 {
        end = (end + len).max(0);
    }
    end = end.min(len);
    if start >= end {
        return Ok(Value::Str(String::new()));
    }
    Ok(Value::Str(String::from_utf16_lossy(
        &units[start as usize..end as usize],
    )))
}

fn index_of(args: &[Value], insensitive: bool) -> Eval {
    let (Some(s), Some(sub)) = (args.first(), args.get(1)) else {
        return Ok(Value::Null);
    };
    if matches!(sub, Value::Null) {
        return Ok(Value::Null);
    }
    let (s, sub) = (string_arg(s)?, string_arg(sub)?);
    let start = match args.get(2).unwrap_or(&Value::Null) {
        Value::Null => 0,
        Value::Int(n) => *n,
        Value::Float(f) => *f as i64,
        _ => return err("A number is required"),
    };
    let (s, sub) = match insensitive {
        true => (lower(s), lower(sub)),
        false => (s.to_string(), sub.to_string()),
    };
    let (s, sub) = (utf16(&s), utf16(&sub));
    let start = start.clamp(0, s.len() as i64) as usize;
    if sub.is_empty() {
        return Ok(Value::Int(start as i64));
    }
    Ok((start..=s.len().saturating_sub(sub.len()))
        .find(|&i| s[i..].starts_with(&sub))
        .map_or(Value::Null, |i| Value::Int(i as i64)))
}

fn between(args: &[Value], insensitive: bool) -> Eval {
    let get = |i: usize| args.get(i).unwrap_or(&Value::Null);
    let s = string_arg(get(0))?;
    let (left, right) = (string_arg(get(1))?, string_arg(get(2))?);
    let greedy = match get(3) {
        Value::Bool(b) => *b,
        Value::Null if args.len() < 4 => false,
        _ => return err("A boolean is required"),
    };
    if s.is_empty() || left.is_empty() || right.is_empty() {
        return Ok(Value::Str(s.to_string()));
    }
    let folded = |x: &str| if insensitive { lower(x) } else { x.to_string() };
    let (hay, l, r) = (
        utf16(&folded(s)),
        utf16(&folded(left)),
        utf16(&folded(right)),
    );
    let find = |from: usize, needle: &[u16]| {
        (from..=hay.len().saturating_sub(needle.len())).find(|&i| hay[i..].starts_with(needle))
    };
    let Some(idx) = find(0, &l) else {
        return Ok(Value::Str(String::new()));
    };
    let start = idx + l.len();
    let end = match greedy {
        true => (0..=hay.len().saturating_sub(r.len()))
            .rev()
            .find(|&i| hay[i..].starts_with(&r)),
        false => find(start, &r),
    };
    let original = utf16(s);
    match end {
        None => Ok(Value::Str(String::new())),
        Some(end) if end < start || end > original.len() => err("begin > end"),
        Some(end) => Ok(Value::Str(String::from_utf16_lossy(&original[start..end]))),
    }
}

fn to_number(s: &str, base: &Value) -> Eval {
    let radix = match base {
        Value::Null if s.starts_with("0x") => 16,
        Value::Null => 10,
        Value::Int(n) if (2..=36).contains(n) => *n as u32,
        _ => return err("An integer base is required"),
    };
    let fail = || {
        ScriptError(format!(
            "Unable to convert [{s}] to number of base [{radix}]"
        ))
    };
    if radix == 10 {
        if let Ok(n) = s.parse::<i64>() {
            return Ok(Value::Int(n));
        }
        return java_parse_double(s).map(Value::Float).ok_or_else(fail);
    }
    let digits = if radix == 16 {
        s.strip_prefix("0x").unwrap_or(s)
    } else {
        s
    };
    i64::from_str_radix(digits, radix)
        .map(Value::Int)
        .map_err(|_| fail())
}

/// `Double.valueOf`: trimmed, with Java's `d`/`f` suffixes and names.
fn java_parse_double(s: &str) -> Option<f64> {
    let t = s.trim_matches(|c: char| c <= ' ');
    let t = t
        .strip_suffix(['d', 'D', 'f', 'F'])
        .filter(|r| !r.is_empty())
        .unwrap_or(t);
    let negative = t.starts_with('-');
    match t.strip_prefix(['+', '-']).unwrap_or(t) {
        "NaN" => Some(f64::NAN),
        "Infinity" if negative => Some(f64::NEG_INFINITY),
        "Infinity" => Some(f64::INFINITY),
        body if body
            .chars()
            .all(|c| c.is_ascii_digit() || ".eE+-".contains(c)) =>
        {
            t.parse().ok()
        }
        _ => None,
    }
}

fn cidr_match(args: &[Value]) -> Eval {
    let addr: IpAddr = string_arg(&args[0])?
        .parse()
        .map_err(|_| ScriptError("not an IP string literal".into()))?;
    let v4 = mapped_v4(addr);
    for block in &args[1..] {
        let block = string_arg(block)?;
        if super::eval::ip_matches(block, addr)
            || v4.is_some_and(|a| super::eval::ip_matches(block, a))
        {
            return Ok(Value::Bool(true));
        }
    }
    Ok(Value::Bool(false))
}
/// An IPv4-mapped IPv6 address as IPv4 (CIDRUtils compares across families that way).
fn mapped_v4(addr: IpAddr) -> Option<IpAddr> {
    match addr {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4),
        IpAddr::V4(_) => None,
    }
}

/// A Java pattern as the `regex` crate reads it: matched whole; `CASE_INSENSITIVE` without
/// `UNICODE_CASE` folds ASCII only; `.` stops at line terminators.
fn java_regex(pattern: &str, insensitive: bool) -> Result<regex::Regex, ScriptError> {
    let flags = if insensitive { "(?i-u)" } else { "" };
    regex::Regex::new(&format!("^(?:{flags}{pattern})$"))
        .or_else(|_| regex::Regex::new(&format!("^(?:{pattern})$")))
        .map_err(|e| ScriptError(format!("bad pattern: {e}")))
}

/// The pattern `like` compiles to for a script: `*` any run, `?` one character, the rest
/// literal (`LikePattern.asJavaRegex`).
pub fn like_to_java_regex(tokens: &[super::glob::WildToken]) -> String {
    use super::glob::WildToken;
    tokens
        .iter()
        .map(|t| match t {
            WildToken::AnyRun => ".*".to_string(),
            WildToken::Any => ".".to_string(),
            WildToken::Char(c) => regex::escape(c.encode_utf8(&mut [0; 4])),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(x: &str) -> Value {
        Value::Str(x.into())
    }

    fn run(f: Func, args: &[Value]) -> Value {
        call(f, args).unwrap_or(Value::Null)
    }

    #[test]
    fn strings_count_utf16_units_and_slice_like_python() {
        assert_eq!(run(Func::Length, &[s("a😀")]), Value::Int(3));
        assert_eq!(
            run(
                Func::Substring,
                &[s("ADMIN$"), Value::Int(0), Value::Int(-1)]
            ),
            s("ADMIN")
        );
        assert_eq!(run(Func::Substring, &[s("abc"), Value::Int(5)]), s(""));
        assert_eq!(run(Func::Substring, &[s("abc"), Value::Int(-2)]), s("bc"));
        assert_eq!(run(Func::Length, &[Value::Null]), Value::Null);
    }

    #[test]
    fn functions_follow_their_processors() {
        let ci = Func::StringContains { insensitive: true };
        assert_eq!(
            run(ci, &[s("Regsvr32.exe"), s("REGSVR")]),
            Value::Bool(true)
        );
        assert_eq!(run(ci, &[s("abc"), s("")]), Value::Bool(false));
        let idx = Func::IndexOf { insensitive: true };
        assert_eq!(
            run(idx, &[s("subdomain.example.com"), s("D")]),
            Value::Int(3)
        );
        assert_eq!(run(idx, &[s("abc"), s("x")]), Value::Null);
        let b = Func::Between { insensitive: false };
        assert_eq!(run(b, &[s("a[x]b"), s("["), s("]")]), s("x"));
        assert_eq!(run(b, &[s("abc"), s(""), s("c")]), s("abc"));
        assert_eq!(run(Func::Number, &[s("0x10")]), Value::Int(16));
        assert_eq!(run(Func::Number, &[s(" 1337 ")]), Value::Float(1337.0));
        assert_eq!(
            run(Func::Concat, &[s("a"), Value::Int(4), Value::Float(2.5)]),
            s("a42.5")
        );
        assert_eq!(run(Func::Concat, &[s("a"), Value::Null]), Value::Null);
        assert_eq!(run(Func::ToString, &[Value::Float(1e7)]), s("1.0E7"));
        assert_eq!(
            run(Func::CidrMatch, &[s("10.1.2.3"), s("10.0.0.0/8")]),
            Value::Bool(true)
        );
    }

    #[test]
    fn arithmetic_and_comparisons_are_javas() {
        let b = |op, x, y| binary(op, &x, &y);
        assert_eq!(
            b(Op::Div, Value::Int(-7), Value::Int(2)),
            Ok(Value::Int(-3))
        );
        assert!(b(Op::Div, Value::Int(1), Value::Int(0)).is_err());
        assert_eq!(
            b(Op::Mod, Value::Int(-10), Value::Int(-6)),
            Ok(Value::Int(-4))
        );
        assert_eq!(
            b(Op::Eq, Value::Int(1), Value::Float(1.0)),
            Ok(Value::Bool(true))
        );
        assert_eq!(b(Op::Eq, s("1"), Value::Int(1)), Ok(Value::Null));
        assert_eq!(b(Op::Lt, Value::Null, Value::Int(1)), Ok(Value::Null));
        assert_eq!(
            b(Op::InsensitiveEq, s("ÉCOLE"), s("école")),
            Ok(Value::Bool(true))
        );
    }

    #[test]
    fn a_null_makes_the_filter_false() {
        let script = Script::Binary(
            Op::Gt,
            Box::new(Script::Call(Func::Length, vec![Script::Value])),
            Box::new(Script::Const(Value::Int(3))),
        );
        assert!(script.holds(Some(&s("abcd"))));
        assert!(!script.holds(Some(&s("abc"))));
        assert!(!script.holds(None));
        assert!(Script::Not(Box::new(script.clone())).holds(Some(&s("ab"))));
        assert!(!Script::Not(Box::new(script)).holds(None));
    }
}
