//! Constraint operators over an evaluation context.
//!
//! Context values are read without allocating: numbers and booleans are rendered into a small
//! inline buffer ([`Scalar`]) when a string operator needs their JSON text. The one path that
//! may allocate is a case-insensitive substring test on non-ASCII text.

use std::fmt::Write as _;

use super::context::{Attr, Context, lookup};
use crate::flags::snapshot::{Constraint, NumOp, Operator};
use chrono::{DateTime, Utc};

/// The text of a scalar context value: strings as they are, numbers and booleans by their JSON
/// text. Objects and arrays have no text.
#[derive(Debug)]
pub enum Scalar<'c> {
    Str(&'c str),
    Inline { buf: [u8; 40], len: usize },
}

impl<'c> Scalar<'c> {
    pub fn of(v: &'c Attr<'_>) -> Option<Self> {
        match v {
            Attr::Str(s) => Some(Scalar::Str(s)),
            Attr::Bool(true) => Some(Scalar::Str("true")),
            Attr::Bool(false) => Some(Scalar::Str("false")),
            Attr::Number(n) => {
                let mut w = InlineWriter { buf: [0; 40], len: 0 };
                write!(w, "{n}").ok()?;
                Some(Scalar::Inline { buf: w.buf, len: w.len })
            }
            _ => None,
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Scalar::Str(s) => s,
            Scalar::Inline { buf, len } => std::str::from_utf8(&buf[..*len]).unwrap_or_default(),
        }
    }
}

struct InlineWriter {
    buf: [u8; 40],
    len: usize,
}

impl std::fmt::Write for InlineWriter {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let end = self.len + s.len();
        if end > self.buf.len() {
            return Err(std::fmt::Error);
        }
        self.buf[self.len..end].copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// Whether every constraint holds.
pub fn all_hold(constraints: &[Constraint], ctx: &Context, now: DateTime<Utc>) -> bool {
    constraints.iter().all(|c| holds(c, ctx, now))
}

/// Whether one constraint holds (after `inverted`).
pub fn holds(c: &Constraint, ctx: &Context, now: DateTime<Utc>) -> bool {
    test(c, ctx, now) != c.inverted
}

fn test(c: &Constraint, ctx: &Context, now: DateTime<Utc>) -> bool {
    let value = lookup(ctx, &c.attribute);
    if value.is_none() && c.attribute.name == "currentTime" {
        return match &c.operator {
            Operator::DateAfter(d) => now > *d,
            Operator::DateBefore(d) => now < *d,
            Operator::NotIn(_) => true,
            _ => false,
        };
    }
    let Some(value) = value else {
        return matches!(c.operator, Operator::NotIn(_));
    };
    match &c.operator {
        Operator::In(list) => text_matches(value, c.case_insensitive, list, eq),
        Operator::NotIn(list) => !text_matches(value, c.case_insensitive, list, eq),
        Operator::StrContains(list) => text_matches(value, c.case_insensitive, list, contains),
        Operator::StrStartsWith(list) => text_matches(value, c.case_insensitive, list, starts_with),
        Operator::StrEndsWith(list) => text_matches(value, c.case_insensitive, list, ends_with),
        Operator::Regex(re) => Scalar::of(value).is_some_and(|s| re.is_match(s.as_str())),
        Operator::Num(op, n) => number(value).is_some_and(|v| compare(*op, v.partial_cmp(n))),
        Operator::DateAfter(d) => date(value).is_some_and(|t| t > *d),
        Operator::DateBefore(d) => date(value).is_some_and(|t| t < *d),
        Operator::InCidr(nets) => value
            .as_str()
            .and_then(|s| s.trim().parse::<std::net::IpAddr>().ok())
            .is_some_and(|ip| nets.iter().any(|n| n.contains(&ip))),
        Operator::Semver(op, v) => value
            .as_str()
            .and_then(|s| semver::Version::parse(s.trim()).ok())
            .is_some_and(|ctx_v| compare(*op, Some(ctx_v.cmp_precedence(v)))),
    }
}

fn text_matches(value: &Attr<'_>, ci: bool, list: &[String], f: impl Fn(&str, &str, bool) -> bool) -> bool {
    Scalar::of(value).is_some_and(|s| list.iter().any(|x| f(s.as_str(), x, ci)))
}

fn compare(op: NumOp, ord: Option<std::cmp::Ordering>) -> bool {
    use std::cmp::Ordering::{Equal, Greater, Less};
    match (op, ord) {
        (_, None) => false,
        (NumOp::Eq, Some(o)) => o == Equal,
        (NumOp::Gt, Some(o)) => o == Greater,
        (NumOp::Gte, Some(o)) => o != Less,
        (NumOp::Lt, Some(o)) => o == Less,
        (NumOp::Lte, Some(o)) => o != Greater,
    }
}

fn number(v: &Attr<'_>) -> Option<f64> {
    match v {
        Attr::Number(n) => n.as_f64(),
        Attr::Str(s) => s.trim().parse::<f64>().ok().filter(|f| f.is_finite()),
        _ => None,
    }
}

fn date(v: &Attr<'_>) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(v.as_str()?.trim()).ok().map(|d| d.with_timezone(&Utc))
}

/// `text` equals `wanted`; with `ci`, `wanted` is already lower-case.
fn eq(text: &str, wanted: &str, ci: bool) -> bool {
    if !ci {
        text == wanted
    } else if text.is_ascii() {
        text.eq_ignore_ascii_case(wanted)
    } else {
        text.chars().flat_map(char::to_lowercase).eq(wanted.chars())
    }
}

fn starts_with(text: &str, wanted: &str, ci: bool) -> bool {
    if !ci {
        text.starts_with(wanted)
    } else if text.is_ascii() {
        text.len() >= wanted.len() && text.as_bytes()[..wanted.len()].eq_ignore_ascii_case(wanted.as_bytes())
    } else {
        text.to_lowercase().starts_with(wanted)
    }
}

fn ends_with(text: &str, wanted: &str, ci: bool) -> bool {
    if !ci {
        text.ends_with(wanted)
    } else if text.is_ascii() {
        text.len() >= wanted.len()
            && text.as_bytes()[text.len() - wanted.len()..].eq_ignore_ascii_case(wanted.as_bytes())
    } else {
        text.to_lowercase().ends_with(wanted)
    }
}

fn contains(text: &str, wanted: &str, ci: bool) -> bool {
    if !ci {
        text.contains(wanted)
    } else if text.is_ascii() {
        wanted.is_empty() || text.as_bytes().windows(wanted.len()).any(|w| w.eq_ignore_ascii_case(wanted.as_bytes()))
    } else {
        text.to_lowercase().contains(wanted)
    }
}
