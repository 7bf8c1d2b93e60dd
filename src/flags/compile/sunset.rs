//! `sunset_plan`: phases in order, their actions and what they need.

use super::*;

impl Compiler {
    pub(super) fn sunset(
        &mut self,
        k: &str,
        kind: FlagKind,
        variants: &[VariantDef],
        default: VariantIdx,
        plan: &Spanned<SunsetPlanEntry>,
    ) -> Option<SunsetPlan> {
        let path = format!("{k}.sunset_plan");
        let entries = [
            (PhaseKind::Warning, "warning_phase", &plan.value.warning_phase),
            (PhaseKind::Restricted, "restricted_phase", &plan.value.restricted_phase),
            (PhaseKind::Shutdown, "shutdown_phase", &plan.value.shutdown_phase),
        ];
        if entries.iter().all(|(_, _, e)| e.is_none()) {
            self.error(plan.into(), &path, "a sunset plan needs at least one phase");
            return None;
        }
        let shutdown_date = plan.value.shutdown_phase.as_ref().and_then(|p| parse_date(&p.value.start_date.value).ok());
        let mut phases: Vec<Phase> = Vec::new();
        let mut ok = true;
        for (phase_kind, field, entry) in entries {
            let Some(entry) = entry else { continue };
            let ppath = format!("{path}.{field}");
            match self.phase(k, kind, variants, default, phase_kind, &ppath, &entry.value, shutdown_date) {
                Some(phase) => {
                    if let Some(prev) = phases.last()
                        && phase.start <= prev.start
                    {
                        self.error(
                            (&entry.value.start_date).into(),
                            format!("{ppath}.start_date"),
                            format!(
                                "the {} phase must start after the {} phase",
                                phase_kind.as_str(),
                                prev.kind.as_str()
                            ),
                        );
                        ok = false;
                    }
                    phases.push(phase);
                }
                None => ok = false,
            }
        }
        if !ok {
            return None;
        }
        let deprecation_header = phases.first().map(|p| format!("@{}", p.start.timestamp()));
        let shutdown_at = phases.iter().find(|p| p.kind == PhaseKind::Shutdown).map(|p| p.start);
        let sunset_header = shutdown_at.map(|t| t.format("%a, %d %b %Y %H:%M:%S GMT").to_string());
        Some(SunsetPlan { phases, deprecation_header, sunset_header, shutdown_at })
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn phase(
        &mut self,
        k: &str,
        kind: FlagKind,
        variants: &[VariantDef],
        default: VariantIdx,
        phase_kind: PhaseKind,
        path: &str,
        e: &PhaseEntry,
        shutdown_date: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Option<Phase> {
        let errors_before = self.errors.len();
        let start = parse_date(&e.start_date.value)
            .map_err(|msg| self.error((&e.start_date).into(), format!("{path}.start_date"), msg))
            .ok();
        let duration = match &e.duration {
            None => None,
            Some(d) => match parse_span(&d.value) {
                Ok(Span::Finite(dur)) => Some(dur),
                Ok(Span::Permanent) => None,
                Err(msg) => {
                    self.error(d.into(), format!("{path}.duration"), msg);
                    None
                }
            },
        };
        let mut actions = Vec::with_capacity(e.actions.len());
        for (i, a) in e.actions.iter().enumerate() {
            match SunsetAction::parse(&a.value) {
                Some(action) if !actions.contains(&action) => actions.push(action),
                Some(_) => {}
                None => {
                    let known = SunsetAction::ALL.map(SunsetAction::as_str).join(", ");
                    self.error(
                        a.into(),
                        format!("{path}.actions[{i}]"),
                        format!("unknown action {:?}; expected one of {known}", a.value),
                    );
                }
            }
        }
        let rate_limit = match &e.rate_limit {
            None => DEFAULT_RATE_LIMIT,
            Some(rl) => {
                let requests = rl.value.requests.value.as_u64().filter(|n| (1..=u64::from(u32::MAX)).contains(n));
                if requests.is_none() {
                    self.error(
                        (&rl.value.requests).into(),
                        format!("{path}.rate_limit.requests"),
                        "requests is a positive whole number",
                    );
                }
                let per = match parse_duration(&rl.value.per.value) {
                    Ok(d) if d > Duration::zero() => Some(d),
                    Ok(_) => {
                        self.error((&rl.value.per).into(), format!("{path}.rate_limit.per"), "per must be positive");
                        None
                    }
                    Err(msg) => {
                        self.error((&rl.value.per).into(), format!("{path}.rate_limit.per"), msg);
                        None
                    }
                };
                RateLimit { requests: requests.unwrap_or(1) as u32, per: per.unwrap_or(Duration::minutes(1)) }
            }
        };
        let shutdown = match (&e.shutdown_value, kind) {
            (None, FlagKind::Boolean) => 0,
            (None, FlagKind::Variant) => default,
            (Some(v), FlagKind::Boolean) => match v.value {
                Value::Bool(b) => usize::from(b),
                _ => {
                    self.error(
                        v.into(),
                        format!("{path}.shutdown_value"),
                        "a boolean flag's shutdown_value is true or false",
                    );
                    0
                }
            },
            (Some(v), FlagKind::Variant) => {
                let name = Spanned::new(v.value.as_str().unwrap_or_default().to_owned(), v.referenced);
                self.variant_ref(&name, variants, &format!("{path}.shutdown_value")).unwrap_or(default)
            }
        };
        for (field, url) in [("redirect", &e.redirect), ("link", &e.link)] {
            if let Some(u) = url
                && !is_header_url(&u.value)
            {
                self.error(
                    u.into(),
                    format!("{path}.{field}"),
                    "expected an absolute http(s) URL or a path starting with /, without spaces, control characters, <, >, \" or \\",
                );
            }
        }
        if self.errors.len() > errors_before {
            return None;
        }
        let notice = e.notice.clone().unwrap_or_else(|| match shutdown_date {
            Some(d) => format!("Flag '{k}' is deprecated and will be shut down on {}.", d.format("%Y-%m-%d")),
            None => format!("Flag '{k}' is deprecated."),
        });
        Some(Phase {
            kind: phase_kind,
            start: start?,
            duration,
            actions,
            notice,
            redirect: e.redirect.as_ref().map(|r| r.value.clone()),
            link_header: e.link.as_ref().map(|l| format!("<{}>; rel=\"deprecation\"", l.value)),
            rate_limit,
            shutdown,
        })
    }
}
