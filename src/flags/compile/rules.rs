//! `rules` (ordered targeting, Unleash's OR of strategies) and `requires` (prerequisite flags,
//! resolved against the whole file once every flag is compiled: unknown flags and cycles are
//! errors naming the chain).

use super::*;
use crate::flags::file::{RequirementEntry, RuleEntry};
use crate::flags::snapshot::{Expect, Gate, Requirement, Rule, RuleAction, Strategy};

/// The longest chain of prerequisites (a requires b requires c ...).
const MAX_PREREQUISITE_DEPTH: usize = 10;

/// A prerequisite as written, kept until every flag is known.
pub(super) struct Pending {
    flag: usize,
    requirement: usize,
    name: Spanned<String>,
    variants: Vec<Spanned<String>>,
    path: String,
}

impl Compiler {
    pub(super) fn rules(
        &mut self,
        k: &str,
        kind: FlagKind,
        variants: &[VariantDef],
        rollout: VariantIdx,
        list: &[Spanned<RuleEntry>],
    ) -> Vec<Rule> {
        let mut rules = Vec::with_capacity(list.len());
        let mut names = HashSet::new();
        for (i, entry) in list.iter().enumerate() {
            let path = format!("{k}.rules[{i}]");
            let e = &entry.value;
            let name = e.name.value.trim();
            if name.is_empty() || !names.insert(name.to_owned()) {
                self.error((&e.name).into(), format!("{path}.name"), "every rule needs a name of its own");
            }
            let mut constraints = match &e.segment {
                Some(seg) => self.segment(seg, &format!("{path}.segment")).unwrap_or_default(),
                None => Vec::new(),
            };
            if let Some(list) = &e.constraints {
                constraints.extend(self.constraints(list, &format!("{path}.constraints")));
            }
            if let Some(action) = self.rule_action(k, &path, kind, variants, rollout, entry) {
                rules.push(Rule { name: name.to_owned(), constraints, action });
            }
        }
        rules
    }

    fn rule_action(
        &mut self,
        k: &str,
        path: &str,
        kind: FlagKind,
        variants: &[VariantDef],
        rollout: VariantIdx,
        entry: &Spanned<RuleEntry>,
    ) -> Option<RuleAction> {
        let e = &entry.value;
        if let Some(s) = &e.rollout_strategy {
            let others = [("serve", e.serve.as_ref().map(At::from)), ("variant", e.variant.as_ref().map(At::from))];
            if let Some((field, at)) = others.into_iter().find_map(|(f, at)| at.map(|at| (f, at))) {
                self.error(at, format!("{path}.{field}"), "a rule with a `rollout_strategy` serves what it decides");
                return None;
            }
            let strategy = self.strategy_at(k, &format!("{path}.rollout_strategy"), kind, variants, s)?;
            let gate = match &e.percentage {
                None => {
                    for (field, at) in [("stickiness", &e.stickiness), ("group_id", &e.group_id)] {
                        if let Some(at) = at {
                            self.error(
                                at.into(),
                                format!("{path}.{field}"),
                                format!("`{field}` goes with `percentage`"),
                            );
                            return None;
                        }
                    }
                    None
                }
                Some(p) if matches!(strategy, Strategy::AbTest { .. }) => {
                    let percentage = self.percentage(p, &format!("{path}.percentage"))?;
                    let hash = self.hash_spec(k, path, e.stickiness.as_ref(), e.group_id.as_ref())?;
                    Some(Gate { percentage, hash })
                }
                Some(p) => {
                    self.error(
                        p.into(),
                        format!("{path}.percentage"),
                        "a rule's `percentage` goes with an `ab_test` strategy (the split of the share it admits)",
                    );
                    return None;
                }
            };
            return Some(RuleAction::Strategy(strategy, gate));
        }
        let serve = match (&e.serve, &e.variant) {
            (Some(v), Some(_)) => {
                self.error(v.into(), format!("{path}.serve"), "give `serve` (a value) or `variant` (a name), not both");
                return None;
            }
            (Some(v), None) => match variants.iter().position(|d| d.value == v.value) {
                Some(idx) => Some(idx),
                None => {
                    let what =
                        if kind == FlagKind::Boolean { "true or false" } else { "one of the flag's variant values" };
                    self.error(v.into(), format!("{path}.serve"), format!("serve {}: expected {what}", v.value));
                    return None;
                }
            },
            (None, Some(name)) => Some(self.variant_ref(name, variants, &format!("{path}.variant"))?),
            (None, None) => None,
        };
        match &e.percentage {
            Some(p) => {
                let percentage = self.percentage(p, &format!("{path}.percentage"))?;
                let hash = self.hash_spec(k, path, e.stickiness.as_ref(), e.group_id.as_ref())?;
                Some(RuleAction::Percentage { percentage, serve: serve.unwrap_or(rollout), hash })
            }
            None => {
                for (field, at) in [("stickiness", &e.stickiness), ("group_id", &e.group_id)] {
                    if let Some(at) = at {
                        self.error(at.into(), format!("{path}.{field}"), format!("`{field}` goes with `percentage`"));
                        return None;
                    }
                }
                match serve {
                    Some(idx) => Some(RuleAction::Serve(idx)),
                    None => {
                        self.error(
                            entry.into(),
                            path,
                            "a rule serves something: give `serve`, `variant`, `percentage` or `rollout_strategy`",
                        );
                        None
                    }
                }
            }
        }
    }

    /// Prerequisites as written; `flag` is this flag's position among the compiled flags.
    pub(super) fn requires(
        &mut self,
        k: &str,
        flag: usize,
        list: &[Spanned<RequirementEntry>],
        pending: &mut Vec<Pending>,
    ) -> Vec<Requirement> {
        let mut out = Vec::with_capacity(list.len());
        for (i, entry) in list.iter().enumerate() {
            let path = format!("{k}.requires[{i}]");
            let e = &entry.value;
            let expect = match (e.enabled, &e.variant, &e.variants, &e.value) {
                (Some(on), None, None, None) => Expect::Enabled(on),
                (None, Some(v), None, None) => Expect::Variant(v.value.clone()),
                (None, None, Some(vs), None) if !vs.is_empty() => {
                    Expect::AnyVariant(vs.iter().map(|v| v.value.clone()).collect())
                }
                (None, None, None, Some(v)) => Expect::Value(v.value.clone()),
                _ => {
                    self.error(
                        entry.into(),
                        &path,
                        "a prerequisite needs exactly one of `enabled`, `variant`, `variants` (not empty), `value`",
                    );
                    continue;
                }
            };
            if e.flag.value == k {
                self.error((&e.flag).into(), format!("{path}.flag"), format!("{k} cannot require itself"));
                continue;
            }
            pending.push(Pending {
                flag,
                requirement: out.len(),
                name: e.flag.clone(),
                variants: e.variant.iter().chain(e.variants.iter().flatten()).cloned().collect(),
                path: format!("{path}.flag"),
            });
            out.push(Requirement { key: e.flag.value.clone(), index: usize::MAX, expect });
        }
        out
    }

    /// Resolves every prerequisite to its flag's index; unknown flags, unknown variants, cycles
    /// and chains deeper than [`MAX_PREREQUISITE_DEPTH`] are errors.
    pub(super) fn resolve_requires(&mut self, flags: &mut [Flag], pending: Vec<Pending>) {
        let index: HashMap<String, usize> = flags.iter().enumerate().map(|(i, f)| (f.key.clone(), i)).collect();
        for p in &pending {
            match index.get(&p.name.value) {
                None => self.error((&p.name).into(), &p.path, format!("unknown flag {:?}", p.name.value)),
                Some(&target) => {
                    for v in &p.variants {
                        if flags[target].variant_index(&v.value).is_none() {
                            let path = p.path.replace(".flag", ".variant");
                            self.error(v.into(), path, format!("{:?} is not a variant of {}", v.value, p.name.value));
                        }
                    }
                    flags[p.flag].requires[p.requirement].index = target;
                }
            }
        }
        // Cycles and depth: a walk from every flag along resolved prerequisites.
        for p in &pending {
            if flags[p.flag].requires[p.requirement].index == usize::MAX {
                continue;
            }
            let mut chain = vec![p.flag];
            if let Some(problem) = walk(flags, &mut chain) {
                let names: Vec<&str> = chain.iter().map(|&i| flags[i].key.as_str()).collect();
                self.error((&p.name).into(), &p.path, format!("{problem}: {}", names.join(" -> ")));
            }
        }
    }
}

/// Follows prerequisites depth-first from the last flag of `chain`; on a cycle or a chain too
/// deep, leaves the offending chain in `chain` and says which.
fn walk(flags: &[Flag], chain: &mut Vec<usize>) -> Option<&'static str> {
    let at = *chain.last().expect("a chain starts with a flag");
    for r in &flags[at].requires {
        if r.index == usize::MAX {
            continue;
        }
        chain.push(r.index);
        if chain[..chain.len() - 1].contains(&r.index) {
            return Some("prerequisites form a cycle");
        }
        if chain.len() > MAX_PREREQUISITE_DEPTH + 1 {
            return Some("prerequisites nest deeper than 10");
        }
        if let Some(problem) = walk(flags, chain) {
            return Some(problem);
        }
        chain.pop();
    }
    None
}
