//! `monitoring`: alerts over named metrics, and the condition grammar.

use super::*;

impl Compiler {
    pub(super) fn monitoring(&mut self, k: &str, m: &Spanned<MonitoringEntry>) -> Option<Monitoring> {
        let path = format!("{k}.monitoring");
        let errors_before = self.errors.len();
        let e = &m.value;
        for (i, name) in e.metrics.iter().flatten().enumerate() {
            self.metric_ref(name, &format!("{path}.metrics[{i}]"));
        }
        let interval = match &e.interval {
            None => DEFAULT_INTERVAL,
            Some(d) => match parse_duration(&d.value) {
                Ok(dur) if dur >= Duration::seconds(1) => dur,
                Ok(_) => {
                    self.error(d.into(), format!("{path}.interval"), "the interval must be at least 1s");
                    DEFAULT_INTERVAL
                }
                Err(msg) => {
                    self.error(d.into(), format!("{path}.interval"), msg);
                    DEFAULT_INTERVAL
                }
            },
        };
        let mut alerts = Vec::new();
        for (i, a) in e.alerts.iter().flatten().enumerate() {
            let apath = format!("{path}.alerts[{i}]");
            let condition = match parse_condition(&a.value.condition.value) {
                Ok(c) => {
                    let name = Spanned::new(c.metric.clone(), a.value.condition.referenced);
                    self.metric_ref(&name, &format!("{apath}.condition"));
                    Some(c)
                }
                Err(msg) => {
                    self.error((&a.value.condition).into(), format!("{apath}.condition"), msg);
                    None
                }
            };
            let for_samples = match &a.value.for_samples {
                None => Some(1),
                Some(f) => {
                    let n = f.value.as_u64().filter(|n| (1..=10_000).contains(n));
                    if n.is_none() {
                        self.error(
                            f.into(),
                            format!("{apath}.for"),
                            "`for` counts consecutive samples: a whole number from 1",
                        );
                    }
                    n.map(|n| n as u32)
                }
            };
            let action = match a.value.action.value.as_str() {
                "rollback" => Some(AlertAction::Rollback),
                "pause" => Some(AlertAction::Pause),
                "alert_team" => Some(AlertAction::AlertTeam),
                other => {
                    self.error(
                        (&a.value.action).into(),
                        format!("{apath}.action"),
                        format!("unknown action {other:?}; expected rollback, pause or alert_team"),
                    );
                    None
                }
            };
            if let (Some(condition), Some(for_samples), Some(action)) = (condition, for_samples, action) {
                alerts.push(Alert { condition, for_samples, action });
            }
        }
        if self.errors.len() > errors_before {
            return None;
        }
        Some(Monitoring { metrics: e.metrics.iter().flatten().map(|m| m.value.clone()).collect(), interval, alerts })
    }
}

/// Parses `<metric> <op> <number>[ms|s|%]`.
pub fn parse_condition(text: &str) -> Result<Condition, String> {
    let bad = |why: &str| {
        format!("invalid condition {text:?}: {why} (expected `<metric> <op> <number>[ms|s|%]`, like `error_rate > 2%`)")
    };
    let t = text.trim();
    let name_end = t.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(t.len());
    let (metric, rest) = t.split_at(name_end);
    if !is_identifier(metric) {
        return Err(bad("it must start with a metric name"));
    }
    let rest = rest.trim_start();
    let ops = [
        ("<=", CondOp::Lte),
        (">=", CondOp::Gte),
        ("==", CondOp::Eq),
        ("!=", CondOp::Ne),
        ("<", CondOp::Lt),
        (">", CondOp::Gt),
    ];
    let Some((sym, op)) = ops.into_iter().find(|(sym, _)| rest.starts_with(sym)) else {
        return Err(bad("the operator must be one of < <= > >= == !="));
    };
    let rest = rest[sym.len()..].trim();
    let (number, scale) = if let Some(n) = rest.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = rest.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = rest.strip_suffix('%') {
        (n, 0.01)
    } else {
        (rest, 1.0)
    };
    let value: f64 = number.trim().parse().map_err(|_| bad("the threshold must be a number"))?;
    if !value.is_finite() {
        return Err(bad("the threshold must be finite"));
    }
    Ok(Condition { metric: metric.to_owned(), op, threshold: value * scale, text: t.to_owned() })
}
