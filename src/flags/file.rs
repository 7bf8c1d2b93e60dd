//! The lax serde mirror of `feature-flags.yaml`.
//!
//! These types only describe the *shape* of the file: unknown fields and duplicate keys are
//! rejected here (with line and column), but every semantic check (names, ranges, dates,
//! operators) lives in [`compile()`](super::compile()), which can report all of them at once. Values whose
//! meaning depends on other fields are kept as [`Spanned`] JSON values so that `compile` can
//! point at them.

use std::fmt;
use std::marker::PhantomData;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::Value;
/// Where the file wrote a value: 1-based line and column, or 0 and 0 when not known (a JSON file
/// read without locations). Eight bytes, as every value of a parsed file carries one (the YAML
/// parser's own location, with its span and source, is 28).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Location {
    line: u32,
    column: u32,
}

impl Location {
    pub const UNKNOWN: Self = Self { line: 0, column: 0 };

    pub fn line(&self) -> u64 {
        u64::from(self.line)
    }

    pub fn column(&self) -> u64 {
        u64::from(self.column)
    }
}

impl From<serde_saphyr::Location> for Location {
    fn from(at: serde_saphyr::Location) -> Self {
        let narrow = |n: u64| u32::try_from(n).unwrap_or(u32::MAX);
        Self { line: narrow(at.line()), column: narrow(at.column()) }
    }
}

/// A value with where the file wrote it (where it is used, for a value reached through a YAML
/// alias). Deserialises exactly as the YAML parser's own spanned value; its JSON Schema is the
/// value's.
#[derive(Debug, Clone, PartialEq)]
pub struct Spanned<T> {
    pub value: T,
    pub referenced: Location,
}

impl<T> Spanned<T> {
    pub fn new(value: T, referenced: Location) -> Self {
        Self { value, referenced }
    }
}

thread_local! {
    /// Set while a JSON flag file is read by serde_json ([`without_spans`]): values come without
    /// locations (a file with a problem is read again by the YAML parser, which has them).
    static WITHOUT_SPANS: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `read` with [`Spanned`] values deserialised without locations (by a deserialiser other
/// than the YAML parser's).
pub fn without_spans<R>(read: impl FnOnce() -> R) -> R {
    struct Reset(bool);
    impl Drop for Reset {
        fn drop(&mut self) {
            WITHOUT_SPANS.with(|w| w.set(self.0));
        }
    }
    let _reset = Reset(WITHOUT_SPANS.with(|w| w.replace(true)));
    read()
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Spanned<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        if WITHOUT_SPANS.with(std::cell::Cell::get) {
            let value = T::deserialize(deserializer)?;
            return Ok(Self { value, referenced: Location::UNKNOWN });
        }
        let s = serde_saphyr::Spanned::<T>::deserialize(deserializer)?;
        Ok(Self { value: s.value, referenced: s.referenced.into() })
    }
}

impl<T: JsonSchema> JsonSchema for Spanned<T> {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> std::borrow::Cow<'static, str> {
        T::schema_name()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        generator.subschema_for::<T>()
    }
}

impl<V: JsonSchema> JsonSchema for KeyedMap<V> {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> std::borrow::Cow<'static, str> {
        format!("Map_of_{}", V::schema_name()).into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        json_schema!({"type": "object", "additionalProperties": generator.subschema_for::<V>()})
    }
}

/// A YAML mapping kept in file order, with the location of every key.
#[derive(Debug, Clone)]
pub struct KeyedMap<V>(pub Vec<(Spanned<String>, V)>);

impl<V> Default for KeyedMap<V> {
    fn default() -> Self {
        Self(Vec::new())
    }
}

impl<V> KeyedMap<V> {
    pub fn iter(&self) -> impl Iterator<Item = &(Spanned<String>, V)> {
        self.0.iter()
    }

    pub fn get(&self, key: &str) -> Option<&V> {
        self.0.iter().find(|(k, _)| k.value == key).map(|(_, v)| v)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<'de, V: Deserialize<'de>> Deserialize<'de> for KeyedMap<V> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MapVisitor<V>(PhantomData<V>);
        impl<'de, V: Deserialize<'de>> Visitor<'de> for MapVisitor<V> {
            type Value = KeyedMap<V>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a mapping")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<KeyedMap<V>, A::Error> {
                let mut entries: Vec<(Spanned<String>, V)> = Vec::with_capacity(map.size_hint().unwrap_or(0));
                // The YAML parser refuses a repeated key itself; another deserialiser may not.
                let check = WITHOUT_SPANS.with(std::cell::Cell::get);
                let mut seen = std::collections::HashSet::new();
                while let Some(entry) = map.next_entry::<Spanned<String>, V>()? {
                    if check && !seen.insert(entry.0.value.clone()) {
                        return Err(serde::de::Error::custom(format!("duplicate key {:?}", entry.0.value)));
                    }
                    entries.push(entry);
                }
                Ok(KeyedMap(entries))
            }
        }
        deserializer.deserialize_map(MapVisitor(PhantomData))
    }
}

/// The whole file.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "toggled flag file", description = "flags/feature-flags.yaml: flags, segments and metrics")]
pub struct FlagFile {
    /// The JSON Schema this file follows (for editors); ignored by the loader.
    #[serde(rename = "$schema")]
    pub schema: Option<String>,
    /// Flag key -> flag. `flags:` is accepted as an alias by the loader.
    #[serde(alias = "flags")]
    pub feature_flags: KeyedMap<Box<Spanned<FlagEntry>>>,
    #[serde(default)]
    pub segments: KeyedMap<Vec<Spanned<ConstraintEntry>>>,
    #[serde(default)]
    pub metrics: KeyedMap<Spanned<MetricEntry>>,
}

/// One flag, as written.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FlagEntry {
    pub description: Option<String>,
    pub owner: Option<String>,
    pub service: Option<String>,
    pub metadata: Option<serde_json::Map<String, Value>>,
    #[serde(rename = "type")]
    #[serde(default)]
    #[schemars(schema_with = "flag_type")]
    pub kind: Option<Spanned<String>>,
    pub default_value: Option<Spanned<Value>>,
    pub variants: Option<KeyedMap<Spanned<Value>>>,
    pub default_variant: Option<Spanned<String>>,
    pub enabled: Option<bool>,
    pub rollout_strategy: Option<Box<Spanned<StrategyEntry>>>,
    pub rollout_value: Option<Spanned<Value>>,
    pub rollout_variant: Option<Spanned<String>>,
    pub constraints: Option<Vec<Spanned<ConstraintEntry>>>,
    pub overrides: Option<KeyedMap<Vec<Spanned<Value>>>>,
    pub monitoring: Option<Box<Spanned<MonitoringEntry>>>,
    pub sunset_plan: Option<Box<Spanned<SunsetPlanEntry>>>,
    pub success_metrics: Option<Box<SuccessMetricsEntry>>,
    pub deprecated_in: Option<Spanned<String>>,
    pub introduced_in: Option<Spanned<String>>,
    /// Who supplies the value when the flag is off (`DISABLED`) or no targeting matched
    /// (`DEFAULT`): `default_variant` (the default: the flag's safe value) or `caller` (OFREP
    /// answers without a value, so the provider returns the caller's default, as flagd does).
    #[serde(default)]
    #[schemars(schema_with = "fallback")]
    pub fallback: Option<Spanned<String>>,
    /// `approval`: an operator's change to this flag waits for a second person's approval (the
    /// kill switch and pauses never wait); `none` (the default) applies it at once.
    #[serde(default)]
    #[schemars(schema_with = "change_control")]
    pub change_control: Option<Spanned<String>>,
    /// Ordered targeting rules (the first that matches decides).
    pub rules: Option<Vec<Spanned<RuleEntry>>>,
    /// Prerequisite flags.
    pub requires: Option<Vec<Spanned<RequirementEntry>>>,
}

/// A targeting rule: `name`, `constraints` or `segment`, then one of `serve`, `variant`,
/// `percentage` (with `stickiness`, `group_id`; serves `serve`/`variant` or the rollout value)
/// or `rollout_strategy`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RuleEntry {
    pub name: Spanned<String>,
    pub constraints: Option<Vec<Spanned<ConstraintEntry>>>,
    pub segment: Option<Spanned<String>>,
    pub serve: Option<Spanned<Value>>,
    pub variant: Option<Spanned<String>>,
    #[serde(default)]
    #[schemars(schema_with = "percentage")]
    pub percentage: Option<Spanned<Value>>,
    pub stickiness: Option<Spanned<String>>,
    pub group_id: Option<Spanned<String>>,
    pub rollout_strategy: Option<Spanned<StrategyEntry>>,
}

/// A prerequisite: `flag` and exactly one of `enabled`, `variant`, `variants` (any of them),
/// `value`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RequirementEntry {
    pub flag: Spanned<String>,
    pub enabled: Option<bool>,
    pub variant: Option<Spanned<String>>,
    pub variants: Option<Vec<Spanned<String>>>,
    pub value: Option<Spanned<Value>>,
}

/// `rollout_strategy`: one struct for every `type`; `compile` checks which fields apply.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StrategyEntry {
    #[serde(rename = "type")]
    #[schemars(schema_with = "strategy_type")]
    pub kind: Spanned<String>,
    #[serde(default)]
    #[schemars(schema_with = "percentage")]
    pub percentage: Option<Spanned<Value>>,
    pub stickiness: Option<Spanned<String>>,
    pub group_id: Option<Spanned<String>>,
    pub stages: Option<Vec<Spanned<StageEntry>>>,
    pub start: Option<Spanned<String>>,
    pub traffic_split: Option<KeyedMap<Spanned<Value>>>,
    /// `ab_test` only: `unleash` (the default) or `flagd` (flagd's fractional buckets).
    pub hashing: Option<Spanned<String>>,
    pub duration: Option<Spanned<String>>,
    pub winner: Option<Spanned<String>>,
    pub steps: Option<Vec<Spanned<StepEntry>>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StageEntry {
    #[schemars(schema_with = "percentage")]
    pub percentage: Spanned<Value>,
    pub duration: Option<Spanned<String>>,
    pub criteria: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StepEntry {
    pub at: Spanned<String>,
    #[schemars(schema_with = "percentage")]
    pub percentage: Spanned<Value>,
}

/// A constraint, or a reference to a segment (`{segment: name}`).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConstraintEntry {
    pub segment: Option<Spanned<String>>,
    pub attribute: Option<Spanned<String>>,
    #[serde(default)]
    #[schemars(schema_with = "operator")]
    pub operator: Option<Spanned<String>>,
    pub values: Option<Vec<Spanned<Value>>>,
    pub value: Option<Spanned<Value>>,
    pub case_insensitive: Option<bool>,
    pub inverted: Option<bool>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MetricEntry {
    pub query: Spanned<String>,
    pub description: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MonitoringEntry {
    pub metrics: Option<Vec<Spanned<String>>>,
    pub interval: Option<Spanned<String>>,
    pub alerts: Option<Vec<Spanned<AlertEntry>>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AlertEntry {
    pub condition: Spanned<String>,
    #[serde(rename = "for")]
    pub for_samples: Option<Spanned<Value>>,
    #[schemars(schema_with = "alert_action")]
    pub action: Spanned<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SuccessMetricsEntry {
    pub primary: Option<Spanned<String>>,
    pub secondary: Option<Vec<Spanned<String>>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SunsetPlanEntry {
    pub warning_phase: Option<Box<Spanned<PhaseEntry>>>,
    pub restricted_phase: Option<Box<Spanned<PhaseEntry>>>,
    pub shutdown_phase: Option<Box<Spanned<PhaseEntry>>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PhaseEntry {
    pub start_date: Spanned<String>,
    pub duration: Option<Spanned<String>>,
    #[serde(default)]
    #[schemars(schema_with = "sunset_actions")]
    pub actions: Vec<Spanned<String>>,
    pub notice: Option<String>,
    pub redirect: Option<Spanned<String>>,
    pub link: Option<Spanned<String>>,
    pub rate_limit: Option<Spanned<RateLimitEntry>>,
    pub shutdown_value: Option<Spanned<Value>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RateLimitEntry {
    pub requests: Spanned<Value>,
    pub per: Spanned<String>,
}

// Refinements of the schema where the mirror keeps a lax type so that `compile` can report
// every error with its position. The names are the ones `compile` accepts; a test checks that
// every shipped file validates and that `compile` refuses what these refuse.

fn names(list: &[&str]) -> Schema {
    json_schema!({"type": "string", "enum": list})
}

fn flag_type(_: &mut SchemaGenerator) -> Schema {
    names(&["boolean", "variant"])
}

fn strategy_type(_: &mut SchemaGenerator) -> Schema {
    names(&["percentage", "gradual", "ab_test", "scheduled"])
}

fn fallback(_: &mut SchemaGenerator) -> Schema {
    names(&["default_variant", "caller"])
}

fn change_control(_: &mut SchemaGenerator) -> Schema {
    names(&["none", "approval"])
}

fn percentage(_: &mut SchemaGenerator) -> Schema {
    json_schema!({"type": "integer", "minimum": 0, "maximum": 100})
}

fn operator(_: &mut SchemaGenerator) -> Schema {
    names(&[
        "IN",
        "NOT_IN",
        "STR_CONTAINS",
        "STR_STARTS_WITH",
        "STR_ENDS_WITH",
        "REGEX",
        "NUM_EQ",
        "NUM_GT",
        "NUM_GTE",
        "NUM_LT",
        "NUM_LTE",
        "DATE_AFTER",
        "DATE_BEFORE",
        "SEMVER_EQ",
        "SEMVER_GT",
        "SEMVER_GTE",
        "SEMVER_LT",
        "SEMVER_LTE",
        "IN_CIDR",
    ])
}

fn alert_action(_: &mut SchemaGenerator) -> Schema {
    names(&["rollback", "pause", "alert_team"])
}

fn sunset_actions(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "array",
        "items": names(&[
            "deprecation_headers", "warning_logs", "rate_limiting", "forced_migration_notices", "api_disabled",
            "redirect_to_new_endpoints",
        ]),
    })
}

/// The JSON Schema (2020-12) of the flag file, generated from the types the loader reads.
pub fn schema() -> Schema {
    schemars::generate::SchemaSettings::draft2020_12().into_generator().into_root_schema_for::<FlagFile>()
}
