//! The compiled, validated, immutable form of a flag file.
//!
//! Everything the evaluator needs is resolved here once: segments are inlined into
//! constraints, regexes are compiled, dates and versions are parsed, variant names are turned
//! into indices. A `Snapshot` is never mutated after [`compile()`](super::compile()) returns it.

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};
use regex::Regex;
use semver::Version;
use serde_json::Value;

/// All flags of one file, plus what they reference.
#[derive(Debug)]
pub struct Snapshot {
    /// Flags in file order.
    pub flags: Vec<Flag>,
    index: HashMap<String, usize>,
    /// Named PromQL queries (`metrics:`), in file order.
    pub metrics: Vec<Metric>,
    /// Segment names in file order (their constraints are inlined where used).
    pub segments: Vec<String>,
    /// Identifies the file content: the same bytes give the same revision on every replica.
    pub revision: String,
}

impl Snapshot {
    pub(crate) fn new(flags: Vec<Flag>, metrics: Vec<Metric>, segments: Vec<String>, revision: String) -> Self {
        let index = flags.iter().enumerate().map(|(i, f)| (f.key.clone(), i)).collect();
        Self { flags, index, metrics, segments, revision }
    }

    pub fn get(&self, key: &str) -> Option<&Flag> {
        self.index.get(key).map(|&i| &self.flags[i])
    }

    /// Position of a flag in [`Snapshot::flags`].
    pub fn index_of(&self, key: &str) -> Option<usize> {
        self.index.get(key).copied()
    }

    pub fn metric(&self, name: &str) -> Option<&Metric> {
        self.metrics.iter().find(|m| m.name == name)
    }
}

#[derive(Debug, Clone)]
pub struct Metric {
    pub name: String,
    pub query: String,
    pub description: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlagKind {
    Boolean,
    Variant,
}

impl FlagKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FlagKind::Boolean => "boolean",
            FlagKind::Variant => "variant",
        }
    }
}

/// A named value a flag can serve. Boolean flags have exactly two: `off` (false) and `on` (true).
#[derive(Debug, Clone)]
pub struct VariantDef {
    pub name: String,
    pub value: Value,
}

/// Index into [`Flag::variants`].
pub type VariantIdx = usize;

#[derive(Debug)]
pub struct Flag {
    pub key: String,
    pub kind: FlagKind,
    pub description: Option<String>,
    pub owner: Option<String>,
    pub service: Option<String>,
    pub metadata: serde_json::Map<String, Value>,
    pub enabled: bool,
    pub variants: Vec<VariantDef>,
    /// The safe value: served when off, killed, outside the rollout, rolled back.
    pub default: VariantIdx,
    /// What a context inside the targeting gets when no split picks a variant.
    pub rollout: VariantIdx,
    pub constraints: Vec<Constraint>,
    /// Variant pins: stickiness value -> variant, checked before hashing.
    pub overrides: HashMap<String, VariantIdx>,
    /// Which context attribute the pins (and, without a strategy, nothing else) are matched on.
    pub override_stickiness: Stickiness,
    pub strategy: Option<Strategy>,
    pub sunset: Option<SunsetPlan>,
    pub monitoring: Option<Monitoring>,
    pub success_metrics: Option<SuccessMetrics>,
    pub deprecated_in: Option<Version>,
    pub introduced_in: Option<Version>,
    /// `fallback: caller`: off or unmatched, OFREP answers without a value (the caller's default).
    pub caller_fallback: bool,
    /// `change_control: approval`: operators' changes wait for a second person.
    pub needs_approval: bool,
    /// Ordered targeting rules: the first that matches decides (after pins, before the strategy).
    pub rules: Vec<Rule>,
    /// Prerequisite flags, all of which must give what they expect.
    pub requires: Vec<Requirement>,
}

/// One targeting rule: when its constraints hold (and, for a percentage, the context is inside),
/// it decides the answer.
#[derive(Debug)]
pub struct Rule {
    pub name: String,
    pub constraints: Vec<Constraint>,
    pub action: RuleAction,
}

/// What a matching rule serves.
#[derive(Debug)]
pub enum RuleAction {
    /// This variant to everyone the constraints admit (`serve` / `variant`).
    Serve(VariantIdx),
    /// This variant to the share of them inside `percentage` (Unleash's flexible rollout).
    Percentage { percentage: u32, serve: VariantIdx, hash: HashSpec },
    /// A rollout strategy of its own; a context it leaves out falls through to the next rule.
    /// With a gate (an A/B split only), a context outside the gate's percentage falls through
    /// too (Unleash's flexible rollout with strategy variants).
    Strategy(Strategy, Option<Gate>),
}

/// A rule's share: the contexts whose bucket is within `percentage`.
#[derive(Debug)]
pub struct Gate {
    pub percentage: u32,
    pub hash: HashSpec,
}

/// A prerequisite: flag `index` (in the snapshot) must give what `expect` says.
#[derive(Debug)]
pub struct Requirement {
    pub key: String,
    pub index: usize,
    pub expect: Expect,
}

#[derive(Debug, PartialEq)]
pub enum Expect {
    /// Its `enabled` (got the rollout value) is this.
    Enabled(bool),
    /// It serves this variant.
    Variant(String),
    /// It serves one of these variants.
    AnyVariant(Vec<String>),
    /// It serves this value.
    Value(Value),
}

impl Flag {
    /// True when nothing targets: everyone gets the default value (reason `STATIC`).
    pub fn is_static(&self) -> bool {
        self.constraints.is_empty()
            && self.overrides.is_empty()
            && self.strategy.is_none()
            && self.rules.is_empty()
            && self.requires.is_empty()
    }

    pub fn variant_index(&self, name: &str) -> Option<VariantIdx> {
        self.variants.iter().position(|v| v.name == name)
    }
}

/// Where the stickiness value comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stickiness {
    /// `targetingKey`, then `userId`, then `sessionId`.
    Default,
    Attribute(AttrPath),
}

/// How an A/B split computes a context's bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Hashing {
    /// Unleash's variant pick (the contract, section 1.1): murmur3 of `"{group}:{stickiness}"`, seed 86028157,
    /// `% total + 1`.
    #[default]
    Unleash,
    /// flagd's `fractional`: murmur3 x86 32-bit, seed 0, of `"{group}{stickiness}"` (the group
    /// defaults to the flag key: flagd's `flagKey + targetingKey`), as unsigned; bucket
    /// `(hash * total) >> 32`, walked in file order.
    Flagd,
}

/// How a strategy hashes: the stickiness value and the group (default the flag key).
#[derive(Debug, Clone)]
pub struct HashSpec {
    pub stickiness: Stickiness,
    pub group: String,
}

#[derive(Debug)]
pub enum Strategy {
    Percentage {
        percentage: u32,
        hash: HashSpec,
    },
    Gradual {
        stages: Vec<Stage>,
        start: Option<DateTime<Utc>>,
        hash: HashSpec,
    },
    AbTest {
        /// (variant, weight) in the order written in `traffic_split`.
        split: Vec<(VariantIdx, u32)>,
        /// How a context's split bucket is computed (`hashing:`).
        hashing: Hashing,
        total_weight: u32,
        duration: Option<Duration>,
        start: Option<DateTime<Utc>>,
        winner: Option<VariantIdx>,
        hash: HashSpec,
    },
    Scheduled {
        /// Sorted by time.
        steps: Vec<(DateTime<Utc>, u32)>,
        hash: HashSpec,
    },
}

impl Strategy {
    pub fn kind(&self) -> &'static str {
        match self {
            Strategy::Percentage { .. } => "percentage",
            Strategy::Gradual { .. } => "gradual",
            Strategy::AbTest { .. } => "ab_test",
            Strategy::Scheduled { .. } => "scheduled",
        }
    }

    pub fn hash(&self) -> &HashSpec {
        match self {
            Strategy::Percentage { hash, .. }
            | Strategy::Gradual { hash, .. }
            | Strategy::AbTest { hash, .. }
            | Strategy::Scheduled { hash, .. } => hash,
        }
    }
}

#[derive(Debug)]
pub struct Stage {
    pub percentage: u32,
    /// `None` = permanent (last stage only).
    pub duration: Option<Duration>,
    /// The segment named by `criteria`, if any.
    pub criteria: Option<String>,
    /// That segment's constraints, inlined (empty = everyone).
    pub constraints: Vec<Constraint>,
}

/// A context attribute, possibly a dotted path into nested objects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttrPath {
    pub name: String,
    /// True when `name` contains a dot: a flat key of that name is tried first, then the path.
    pub dotted: bool,
}

impl AttrPath {
    pub fn new(name: &str) -> Self {
        Self { name: name.to_owned(), dotted: name.contains('.') }
    }
}

#[derive(Debug, Clone)]
pub struct Constraint {
    pub attribute: AttrPath,
    pub operator: Operator,
    pub inverted: bool,
    pub case_insensitive: bool,
    /// The segment this constraint was inlined from, if any (for `explain`).
    pub segment: Option<String>,
}

impl Operator {
    /// The operator as the file writes it.
    pub fn name(&self) -> &'static str {
        const NUM: [&str; 5] = ["NUM_EQ", "NUM_GT", "NUM_GTE", "NUM_LT", "NUM_LTE"];
        const SEMVER: [&str; 5] = ["SEMVER_EQ", "SEMVER_GT", "SEMVER_GTE", "SEMVER_LT", "SEMVER_LTE"];
        let index = |op: &NumOp| match op {
            NumOp::Eq => 0,
            NumOp::Gt => 1,
            NumOp::Gte => 2,
            NumOp::Lt => 3,
            NumOp::Lte => 4,
        };
        match self {
            Operator::In(_) => "IN",
            Operator::NotIn(_) => "NOT_IN",
            Operator::StrContains(_) => "STR_CONTAINS",
            Operator::StrStartsWith(_) => "STR_STARTS_WITH",
            Operator::StrEndsWith(_) => "STR_ENDS_WITH",
            Operator::Regex(_) => "REGEX",
            Operator::Num(op, _) => NUM[index(op)],
            Operator::DateAfter(_) => "DATE_AFTER",
            Operator::DateBefore(_) => "DATE_BEFORE",
            Operator::Semver(op, _) => SEMVER[index(op)],
            Operator::InCidr(_) => "IN_CIDR",
        }
    }
}

#[derive(Debug, Clone)]
pub enum Operator {
    In(Vec<String>),
    NotIn(Vec<String>),
    StrContains(Vec<String>),
    StrStartsWith(Vec<String>),
    StrEndsWith(Vec<String>),
    Regex(Regex),
    Num(NumOp, f64),
    DateAfter(DateTime<Utc>),
    DateBefore(DateTime<Utc>),
    Semver(CmpOp, Version),
    /// The attribute is an IP address inside one of these networks (IPv4 or IPv6).
    InCidr(Vec<ipnet::IpNet>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NumOp {
    Eq,
    Gt,
    Gte,
    Lt,
    Lte,
}

/// Comparison for SemVer operators (same five as numbers).
pub type CmpOp = NumOp;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum PhaseKind {
    Warning,
    Restricted,
    Shutdown,
}

impl PhaseKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PhaseKind::Warning => "warning",
            PhaseKind::Restricted => "restricted",
            PhaseKind::Shutdown => "shutdown",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SunsetAction {
    DeprecationHeaders,
    WarningLogs,
    RateLimiting,
    ForcedMigrationNotices,
    ApiDisabled,
    RedirectToNewEndpoints,
}

impl SunsetAction {
    pub const ALL: [SunsetAction; 6] = [
        SunsetAction::DeprecationHeaders,
        SunsetAction::WarningLogs,
        SunsetAction::RateLimiting,
        SunsetAction::ForcedMigrationNotices,
        SunsetAction::ApiDisabled,
        SunsetAction::RedirectToNewEndpoints,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SunsetAction::DeprecationHeaders => "deprecation_headers",
            SunsetAction::WarningLogs => "warning_logs",
            SunsetAction::RateLimiting => "rate_limiting",
            SunsetAction::ForcedMigrationNotices => "forced_migration_notices",
            SunsetAction::ApiDisabled => "api_disabled",
            SunsetAction::RedirectToNewEndpoints => "redirect_to_new_endpoints",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == s)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub requests: u32,
    pub per: Duration,
}

#[derive(Debug)]
pub struct Phase {
    pub kind: PhaseKind,
    pub start: DateTime<Utc>,
    pub duration: Option<Duration>,
    pub actions: Vec<SunsetAction>,
    /// Text for `forced_migration_notices` (a generated one when the file has none).
    pub notice: String,
    pub redirect: Option<String>,
    /// Value of the `Link` header (`<url>; rel="deprecation"`), when a link is set.
    pub link_header: Option<String>,
    pub rate_limit: RateLimit,
    /// Served by `api_disabled`.
    pub shutdown: VariantIdx,
}

impl Phase {
    pub fn has(&self, action: SunsetAction) -> bool {
        self.actions.contains(&action)
    }
}

#[derive(Debug)]
pub struct SunsetPlan {
    /// Phases present in the file, in chronological (and warning < restricted < shutdown) order.
    pub phases: Vec<Phase>,
    /// `Deprecation` header value: `@<unix seconds of warning start>`.
    pub deprecation_header: Option<String>,
    /// `Sunset` header value: HTTP-date of the shutdown start.
    pub sunset_header: Option<String>,
    pub shutdown_at: Option<DateTime<Utc>>,
}

impl SunsetPlan {
    /// The phase in force at `now`: the latest one started.
    pub fn phase_at(&self, now: DateTime<Utc>) -> Option<&Phase> {
        self.phases.iter().rev().find(|p| p.start <= now)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertAction {
    Rollback,
    Pause,
    AlertTeam,
}

impl AlertAction {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertAction::Rollback => "rollback",
            AlertAction::Pause => "pause",
            AlertAction::AlertTeam => "alert_team",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CondOp {
    Lt,
    Lte,
    Gt,
    Gte,
    Eq,
    Ne,
}

impl CondOp {
    pub fn as_str(self) -> &'static str {
        match self {
            CondOp::Lt => "<",
            CondOp::Lte => "<=",
            CondOp::Gt => ">",
            CondOp::Gte => ">=",
            CondOp::Eq => "==",
            CondOp::Ne => "!=",
        }
    }

    pub fn holds(self, observed: f64, threshold: f64) -> bool {
        match self {
            CondOp::Lt => observed < threshold,
            CondOp::Lte => observed <= threshold,
            CondOp::Gt => observed > threshold,
            CondOp::Gte => observed >= threshold,
            CondOp::Eq => observed == threshold,
            CondOp::Ne => observed != threshold,
        }
    }
}

/// `<metric> <op> <number>[ms|s|%]`, with the threshold normalised to the PromQL result's unit
/// (seconds for `ms`/`s`, a ratio for `%`).
#[derive(Debug, Clone)]
pub struct Condition {
    pub metric: String,
    pub op: CondOp,
    pub threshold: f64,
    /// The condition as written.
    pub text: String,
}

#[derive(Debug, Clone)]
pub struct Alert {
    pub condition: Condition,
    pub for_samples: u32,
    pub action: AlertAction,
}

#[derive(Debug, Clone)]
pub struct Monitoring {
    pub metrics: Vec<String>,
    pub interval: Duration,
    pub alerts: Vec<Alert>,
}

#[derive(Debug, Clone)]
pub struct SuccessMetrics {
    pub primary: Option<String>,
    pub secondary: Vec<String>,
}
