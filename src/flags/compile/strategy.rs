//! `rollout_strategy`: percentage, gradual stages, A/B tests, scheduled steps.

use super::*;

impl Compiler {
    /// A positive duration, or `None` for `permanent` where `permanent_ok`; errors are recorded.
    pub(super) fn positive_span(
        &mut self,
        d: &Spanned<String>,
        path: &str,
        permanent_ok: bool,
        what: &str,
    ) -> Result<Option<Duration>, ()> {
        match parse_span(&d.value) {
            Ok(Span::Permanent) if permanent_ok => Ok(None),
            Ok(Span::Permanent) => {
                self.error(d.into(), path, "only the last stage can be permanent");
                Err(())
            }
            Ok(Span::Finite(dur)) if dur > Duration::zero() => Ok(Some(dur)),
            Ok(Span::Finite(_)) => {
                self.error(d.into(), path, format!("{what} must be positive"));
                Err(())
            }
            Err(msg) => {
                self.error(d.into(), path, msg);
                Err(())
            }
        }
    }

    pub(super) fn percentage(&mut self, v: &Spanned<Value>, path: &str) -> Option<u32> {
        let p = v.value.as_u64().filter(|p| *p <= 100);
        if p.is_none() {
            self.error(v.into(), path, format!("percentage must be a whole number from 0 to 100, not {}", v.value));
        }
        p.map(|p| p as u32)
    }

    pub(super) fn strategy(
        &mut self,
        k: &str,
        kind: FlagKind,
        variants: &[VariantDef],
        s: &Spanned<StrategyEntry>,
    ) -> Option<Strategy> {
        self.strategy_at(k, &format!("{k}.rollout_strategy"), kind, variants, s)
    }

    /// A rollout strategy written at `path` (a flag's, or a rule's).
    pub(super) fn strategy_at(
        &mut self,
        k: &str,
        path: &str,
        kind: FlagKind,
        variants: &[VariantDef],
        s: &Spanned<StrategyEntry>,
    ) -> Option<Strategy> {
        let e = &s.value;
        let path = path.to_owned();
        let strategy_kind = e.kind.value.as_str();
        let applies: &[&str] = match strategy_kind {
            "percentage" => &["percentage"],
            "gradual" => &["stages", "start"],
            "ab_test" => &["traffic_split", "duration", "start", "winner", "hashing"],
            "scheduled" => &["steps"],
            other => {
                self.error(
                    (&e.kind).into(),
                    format!("{path}.type"),
                    format!("unknown strategy type {other:?}; expected percentage, gradual, ab_test or scheduled"),
                );
                return None;
            }
        };
        let fields: [(&str, Option<At>); 8] = [
            ("percentage", e.percentage.as_ref().map(At::from)),
            ("stages", e.stages.as_ref().map(|_| At::from(s))),
            ("start", e.start.as_ref().map(At::from)),
            ("traffic_split", e.traffic_split.as_ref().map(|_| At::from(s))),
            ("duration", e.duration.as_ref().map(At::from)),
            ("winner", e.winner.as_ref().map(At::from)),
            ("steps", e.steps.as_ref().map(|_| At::from(s))),
            ("hashing", e.hashing.as_ref().map(At::from)),
        ];
        let mut ok = true;
        for (field, at) in fields {
            if let Some(at) = at
                && !applies.contains(&field)
            {
                self.error(
                    at,
                    format!("{path}.{field}"),
                    format!("`{field}` does not apply to a {strategy_kind} rollout"),
                );
                ok = false;
            }
        }
        // A bad stickiness or group is reported, and the rest of the strategy still checked.
        // flagd's hashing may take an empty group: flagd then hashes the stickiness value alone
        // (a `fractional` bucketing on an attribute).
        let flagd_bare = e.hashing.as_ref().is_some_and(|h| h.value == "flagd")
            && e.group_id.as_ref().is_some_and(|g| g.value.is_empty());
        let group_id = e.group_id.as_ref().filter(|_| !flagd_bare);
        let mut hash = self.hash_spec(k, &path, e.stickiness.as_ref(), group_id).unwrap_or_else(|| {
            ok = false;
            HashSpec { stickiness: Stickiness::Default, group: k.to_owned() }
        });
        if flagd_bare {
            hash.group.clear();
        }
        let start = match &e.start {
            Some(st) => match parse_timestamp(&st.value) {
                Ok(t) => Some(t),
                Err(msg) => {
                    self.error(st.into(), format!("{path}.start"), msg);
                    ok = false;
                    None
                }
            },
            None => None,
        };
        let strategy = match strategy_kind {
            "percentage" => {
                let Some(p) = &e.percentage else {
                    self.error(s.into(), &path, "a percentage rollout needs `percentage`");
                    return None;
                };
                Strategy::Percentage { percentage: self.percentage(p, &format!("{path}.percentage"))?, hash }
            }
            "gradual" => Strategy::Gradual { stages: self.stages(&path, s)?, start, hash },
            "ab_test" => self.ab_test(&path, kind, variants, s, start, hash)?,
            _ => Strategy::Scheduled { steps: self.steps(&path, s)?, hash },
        };
        ok.then_some(strategy)
    }

    /// How a strategy or rule hashes: its `stickiness` (default: targetingKey, userId,
    /// sessionId) and `group_id` (default: the flag key).
    pub(super) fn hash_spec(
        &mut self,
        k: &str,
        path: &str,
        stickiness: Option<&Spanned<String>>,
        group_id: Option<&Spanned<String>>,
    ) -> Option<HashSpec> {
        let mut ok = true;
        let stickiness = match stickiness {
            None => Stickiness::Default,
            Some(st) if st.value == "default" => Stickiness::Default,
            Some(st) if st.value.trim().is_empty() => {
                self.error(st.into(), format!("{path}.stickiness"), "stickiness names a context attribute");
                ok = false;
                Stickiness::Default
            }
            Some(st) => Stickiness::Attribute(AttrPath::new(st.value.trim())),
        };
        let group = match group_id {
            None => k.to_owned(),
            Some(g) if g.value.is_empty() => {
                self.error(g.into(), format!("{path}.group_id"), "group_id cannot be empty");
                ok = false;
                k.to_owned()
            }
            Some(g) => g.value.clone(),
        };
        ok.then_some(HashSpec { stickiness, group })
    }

    pub(super) fn stages(&mut self, path: &str, s: &Spanned<StrategyEntry>) -> Option<Vec<Stage>> {
        let Some(entries) = s.value.stages.as_ref().filter(|st| !st.is_empty()) else {
            self.error(s.into(), path, "a gradual rollout needs at least one stage");
            return None;
        };
        let mut stages = Vec::with_capacity(entries.len());
        let mut ok = true;
        let mut previous = 0;
        for (i, st) in entries.iter().enumerate() {
            let spath = format!("{path}.stages[{i}]");
            let last = i + 1 == entries.len();
            let percentage = self.percentage(&st.value.percentage, &format!("{spath}.percentage"));
            if let Some(p) = percentage {
                if p < previous {
                    self.error(
                        (&st.value.percentage).into(),
                        format!("{spath}.percentage"),
                        format!("stages must not decrease: {p}% follows {previous}%"),
                    );
                    ok = false;
                }
                previous = previous.max(p);
            }
            let duration = match &st.value.duration {
                None if last => None,
                None => {
                    self.error(st.into(), format!("{spath}.duration"), "every stage but the last needs a duration");
                    ok = false;
                    None
                }
                Some(d) => {
                    self.positive_span(d, &format!("{spath}.duration"), last, "a stage duration").unwrap_or_else(|()| {
                        ok = false;
                        None
                    })
                }
            };
            let (criteria, constraints) = match &st.value.criteria {
                None => (None, Vec::new()),
                Some(c) => match self.segment(c, &format!("{spath}.criteria")) {
                    Some(cs) => (Some(c.value.clone()), cs),
                    None => {
                        ok = false;
                        (None, Vec::new())
                    }
                },
            };
            if let Some(percentage) = percentage {
                stages.push(Stage { percentage, duration, criteria, constraints });
            } else {
                ok = false;
            }
        }
        ok.then_some(stages)
    }

    pub(super) fn ab_test(
        &mut self,
        path: &str,
        kind: FlagKind,
        variants: &[VariantDef],
        s: &Spanned<StrategyEntry>,
        start: Option<chrono::DateTime<chrono::Utc>>,
        hash: HashSpec,
    ) -> Option<Strategy> {
        let e = &s.value;
        if kind == FlagKind::Boolean {
            self.error(s.into(), path, "an ab_test splits between variants; add `type: variant` and `variants`");
            return None;
        }
        let Some(split_entries) = e.traffic_split.as_ref().filter(|t| !t.is_empty()) else {
            self.error(s.into(), path, "an ab_test needs `traffic_split: {variant: weight, ...}`");
            return None;
        };
        let mut split = Vec::with_capacity(split_entries.len());
        let mut total: u64 = 0;
        let mut ok = true;
        for (name, weight) in split_entries.iter() {
            let wpath = format!("{path}.traffic_split.{}", name.value);
            let idx = self.variant_ref(name, variants, &wpath);
            let w = weight.value.as_u64().filter(|w| *w > 0);
            match (idx, w) {
                (Some(i), Some(w)) => {
                    total += w;
                    split.push((i, w as u32));
                }
                (_, None) => {
                    self.error(
                        weight.into(),
                        &wpath,
                        format!("a weight is a positive whole number, not {}", weight.value),
                    );
                    ok = false;
                }
                (None, _) => ok = false,
            }
        }
        if total > MAX_TOTAL_WEIGHT {
            self.error(
                s.into(),
                format!("{path}.traffic_split"),
                format!("weights sum to {total}; the limit is {MAX_TOTAL_WEIGHT}"),
            );
            ok = false;
        }
        let duration = match &e.duration {
            None => None,
            Some(d) => {
                self.positive_span(d, &format!("{path}.duration"), true, "the test's duration").unwrap_or_else(|()| {
                    ok = false;
                    None
                })
            }
        };
        let winner = match &e.winner {
            None => None,
            Some(w) => {
                let idx = self.variant_ref(w, variants, &format!("{path}.winner"));
                ok &= idx.is_some();
                idx
            }
        };
        let hashing = match e.hashing.as_ref().map(|h| h.value.as_str()) {
            None | Some("unleash") => Hashing::Unleash,
            Some("flagd") => Hashing::Flagd,
            Some(other) => {
                let at = e.hashing.as_ref().expect("matched Some");
                self.error(
                    at.into(),
                    format!("{path}.hashing"),
                    format!("hashing {other:?}: expected unleash or flagd"),
                );
                ok = false;
                Hashing::Unleash
            }
        };
        ok.then_some(Strategy::AbTest { split, hashing, total_weight: total as u32, duration, start, winner, hash })
    }

    pub(super) fn steps(
        &mut self,
        path: &str,
        s: &Spanned<StrategyEntry>,
    ) -> Option<Vec<(chrono::DateTime<chrono::Utc>, u32)>> {
        let Some(entries) = s.value.steps.as_ref().filter(|st| !st.is_empty()) else {
            self.error(s.into(), path, "a scheduled rollout needs at least one step");
            return None;
        };
        let mut steps = Vec::with_capacity(entries.len());
        let mut ok = true;
        for (i, st) in entries.iter().enumerate() {
            let spath = format!("{path}.steps[{i}]");
            let pct = self.percentage(&st.value.percentage, &format!("{spath}.percentage"));
            let at = match parse_timestamp(&st.value.at.value) {
                Ok(t) => Some(t),
                Err(msg) => {
                    self.error((&st.value.at).into(), format!("{spath}.at"), msg);
                    None
                }
            };
            match (at, pct) {
                (Some(at), Some(p)) => {
                    if let Some((prev, _)) = steps.last()
                        && at <= *prev
                    {
                        self.error(
                            (&st.value.at).into(),
                            format!("{spath}.at"),
                            "steps must be in chronological order",
                        );
                        ok = false;
                    }
                    steps.push((at, p));
                }
                _ => ok = false,
            }
        }
        ok.then_some(steps)
    }
}
