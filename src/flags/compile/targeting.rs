//! Segments, metrics and constraints: names resolved, operators and values parsed once.

use super::*;

impl Compiler {
    pub(super) fn collect_metrics(&mut self, metrics: &KeyedMap<Spanned<crate::flags::file::MetricEntry>>) {
        for (name, m) in metrics.iter() {
            if !is_identifier(&name.value) {
                self.error(
                    name.into(),
                    format!("metrics.{}", name.value),
                    "metric names are letters, digits and underscores, starting with a letter",
                );
            }
            if m.value.query.value.trim().is_empty() {
                self.error((&m.value.query).into(), format!("metrics.{}.query", name.value), "query is empty");
            }
            self.metrics.insert(name.value.clone());
        }
    }

    pub(super) fn collect_segments(&mut self, segments: &KeyedMap<Vec<Spanned<ConstraintEntry>>>) {
        for (name, list) in segments.iter() {
            let mut compiled = Vec::with_capacity(list.len());
            for (i, entry) in list.iter().enumerate() {
                let path = format!("segments.{}[{i}]", name.value);
                if let Some(seg) = &entry.value.segment {
                    self.error(seg.into(), path, "a segment cannot refer to another segment; list its constraints");
                    continue;
                }
                if let Some(c) = self.constraint(entry, &path) {
                    compiled.push(c);
                }
            }
            self.segments.insert(name.value.clone(), compiled);
        }
    }

    /// A segment's constraints, each marked with the segment's name.
    pub(super) fn segment(&mut self, name: &Spanned<String>, path: &str) -> Option<Vec<Constraint>> {
        let found = self
            .segments
            .get(&name.value)
            .map(|cs| cs.iter().map(|c| Constraint { segment: Some(name.value.clone()), ..c.clone() }).collect());
        if found.is_none() {
            let known = self.known_segments();
            self.error(name.into(), path, format!("unknown segment {:?}; defined segments: {known}", name.value));
        }
        found
    }

    pub(super) fn known_segments(&self) -> String {
        let mut names: Vec<&str> = self.segments.keys().map(String::as_str).collect();
        names.sort_unstable();
        if names.is_empty() { "none".to_owned() } else { names.join(", ") }
    }

    pub(super) fn metric_ref(&mut self, name: &Spanned<String>, path: &str) {
        if !self.metrics.contains(&name.value) {
            let mut names: Vec<&str> = self.metrics.iter().map(String::as_str).collect();
            names.sort_unstable();
            let known = if names.is_empty() { "none".to_owned() } else { names.join(", ") };
            self.error(
                name.into(),
                path,
                format!("unknown metric {:?}; define it under `metrics:` (defined: {known})", name.value),
            );
        }
    }

    /// A constraint list, with `{segment: name}` entries inlined.
    pub(super) fn constraints(&mut self, list: &[Spanned<ConstraintEntry>], path: &str) -> Vec<Constraint> {
        let mut out = Vec::with_capacity(list.len());
        for (i, entry) in list.iter().enumerate() {
            let path = format!("{path}[{i}]");
            let e = &entry.value;
            if let Some(seg) = &e.segment {
                if e.attribute.is_some() || e.operator.is_some() || e.values.is_some() || e.value.is_some() {
                    self.error(
                        entry.into(),
                        &path,
                        "a constraint is either `segment: name` or an attribute test, not both",
                    );
                }
                if let Some(cs) = self.segment(seg, &format!("{path}.segment")) {
                    out.extend(cs);
                }
            } else if let Some(c) = self.constraint(entry, &path) {
                out.push(c);
            }
        }
        out
    }

    pub(super) fn constraint(&mut self, entry: &Spanned<ConstraintEntry>, path: &str) -> Option<Constraint> {
        let e = &entry.value;
        let Some(attribute) = e.attribute.as_ref().filter(|a| !a.value.trim().is_empty()) else {
            self.error(entry.into(), path, "a constraint needs `attribute` (or `segment`)");
            return None;
        };
        let Some(op) = &e.operator else {
            self.error(entry.into(), path, "a constraint needs `operator`");
            return None;
        };
        let raw: Vec<&Spanned<Value>> = match (&e.values, &e.value) {
            (Some(_), Some(v)) => {
                self.error(v.into(), format!("{path}.value"), "give `values` or `value`, not both");
                return None;
            }
            (Some(vs), None) => vs.iter().collect(),
            (None, Some(v)) => vec![v],
            (None, None) => {
                self.error(entry.into(), path, format!("operator {} needs `values` (or `value`)", op.value));
                return None;
            }
        };
        let ci = e.case_insensitive.unwrap_or(false);
        // A pattern is not lowercased (`\S` is not `\s`): the regex itself ignores case.
        let lower = ci && op.value != "REGEX";
        let vpath = format!("{path}.values");
        let mut texts = Vec::with_capacity(raw.len());
        for v in &raw {
            match scalar_text(&v.value) {
                Some(t) => texts.push(if lower { t.to_lowercase() } else { t }),
                None => {
                    self.error((*v).into(), &vpath, "constraint values are strings or numbers");
                    return None;
                }
            }
        }
        // The list operators take an empty list with Unleash's meaning (`IN []` holds for
        // nobody, `NOT_IN []` for everybody); every other operator needs its value.
        let list_operator = matches!(
            op.value.as_str(),
            "IN" | "NOT_IN" | "STR_CONTAINS" | "STR_STARTS_WITH" | "STR_ENDS_WITH" | "IN_CIDR"
        );
        if texts.is_empty() && !list_operator {
            self.error(entry.into(), &vpath, "needs at least one value");
            return None;
        }
        let operator = match op.value.as_str() {
            "IN_CIDR" => {
                let mut nets = Vec::with_capacity(texts.len());
                for (text, v) in texts.iter().zip(&raw) {
                    match parse_network(text) {
                        Some(net) => nets.push(net),
                        None => {
                            self.error(
                                (*v).into(),
                                &vpath,
                                format!("{text:?} is not an IP network (like 10.0.0.0/8 or 2001:db8::/32) or address"),
                            );
                            return None;
                        }
                    }
                }
                Operator::InCidr(nets)
            }
            "IN" => Operator::In(texts),
            "NOT_IN" => Operator::NotIn(texts),
            "STR_CONTAINS" => Operator::StrContains(texts),
            "STR_STARTS_WITH" => Operator::StrStartsWith(texts),
            "STR_ENDS_WITH" => Operator::StrEndsWith(texts),
            other => {
                if texts.len() != 1 {
                    self.error(raw[1].into(), &vpath, format!("operator {other} takes exactly one value"));
                    return None;
                }
                let text = &texts[0];
                let at = At::from(raw[0]);
                let single = match other {
                    "REGEX" => RegexBuilder::new(text)
                        .case_insensitive(ci)
                        .size_limit(REGEX_SIZE_LIMIT)
                        .build()
                        .map(Operator::Regex)
                        .map_err(|e| {
                            format!("invalid regex: {}", e.to_string().split_whitespace().collect::<Vec<_>>().join(" "))
                        }),
                    "NUM_EQ" | "NUM_GT" | "NUM_GTE" | "NUM_LT" | "NUM_LTE" => match text.trim().parse::<f64>() {
                        Ok(n) if n.is_finite() => Ok(Operator::Num(cmp_op(other), n)),
                        _ => Err(format!("{text:?} is not a number")),
                    },
                    "DATE_AFTER" => parse_date(text).map(Operator::DateAfter),
                    "DATE_BEFORE" => parse_date(text).map(Operator::DateBefore),
                    "SEMVER_EQ" | "SEMVER_GT" | "SEMVER_GTE" | "SEMVER_LT" | "SEMVER_LTE" => {
                        semver::Version::parse(text.trim())
                            .map(|v| Operator::Semver(cmp_op(other), v))
                            .map_err(|e| format!("{text:?} is not a SemVer version: {e}"))
                    }
                    _ => {
                        self.error(
                            op.into(),
                            format!("{path}.operator"),
                            format!(
                                "unknown operator {other:?}; expected one of IN, NOT_IN, STR_CONTAINS, STR_STARTS_WITH, \
                                 STR_ENDS_WITH, REGEX, NUM_EQ, NUM_GT, NUM_GTE, NUM_LT, NUM_LTE, DATE_AFTER, \
                                 DATE_BEFORE, SEMVER_EQ, SEMVER_GT, SEMVER_GTE, SEMVER_LT, SEMVER_LTE"
                            ),
                        );
                        return None;
                    }
                };
                match single {
                    Ok(op) => op,
                    Err(msg) => {
                        self.error(at, &vpath, msg);
                        return None;
                    }
                }
            }
        };
        Some(Constraint {
            attribute: AttrPath::new(attribute.value.trim()),
            operator,
            inverted: e.inverted.unwrap_or(false),
            case_insensitive: ci,
            segment: None,
        })
    }
}

pub(super) fn cmp_op(name: &str) -> NumOp {
    match name.rsplit('_').next() {
        Some("GT") => NumOp::Gt,
        Some("GTE") => NumOp::Gte,
        Some("LT") => NumOp::Lt,
        Some("LTE") => NumOp::Lte,
        _ => NumOp::Eq,
    }
}

/// An IPv4 or IPv6 network (`10.0.0.0/8`), or one address (a /32 or /128).
pub(crate) fn parse_network(text: &str) -> Option<ipnet::IpNet> {
    let t = text.trim();
    t.parse::<ipnet::IpNet>().ok().or_else(|| t.parse::<std::net::IpAddr>().ok().map(ipnet::IpNet::from))
}
