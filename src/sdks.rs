//! What Unleash SDKs tell toggled about themselves: their registrations (listed on
//! `GET /sdk-instances`) and the evaluations they made locally (counted in
//! `toggled_sdk_evaluations_total{flag,result,app}` and marking flags as evaluated for stale-flag
//! detection). Bounded whatever SDKs send: unknown flags and variants are dropped, at most
//! [`SDK_APPS`] app names are counted by name (the rest as `other`), at most [`MAX_INSTANCES`]
//! instances are kept (the least recently seen goes).

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::metrics::{SDK_APPS, SdkEvalLabels};
use crate::serving::Serving;

/// Most SDK instances remembered.
pub const MAX_INSTANCES: usize = 1_000;

/// One SDK instance as it registered or last reported.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct Instance {
    pub app: String,
    pub instance: String,
    pub sdk: Option<String>,
    /// `server` (`/api/client/*`) or `frontend` (`/api/frontend/client/*`).
    pub kind: &'static str,
    pub last_seen: DateTime<Utc>,
}

/// What a registration says (Unleash's `/client/register` body).
#[derive(Debug, Deserialize)]
pub struct Registration {
    #[serde(rename = "appName", default)]
    pub app_name: String,
    #[serde(rename = "instanceId", default)]
    pub instance_id: String,
    #[serde(rename = "sdkVersion", default)]
    pub sdk_version: Option<String>,
}

/// What a metrics post says (Unleash's `/client/metrics` body).
#[derive(Debug, Deserialize)]
pub struct Report {
    #[serde(rename = "appName", default)]
    pub app_name: String,
    #[serde(rename = "instanceId", default)]
    pub instance_id: String,
    #[serde(default)]
    pub bucket: Bucket,
}

#[derive(Debug, Default, Deserialize)]
pub struct Bucket {
    #[serde(default)]
    pub toggles: HashMap<String, Counts>,
}

#[derive(Debug, Default, Deserialize)]
pub struct Counts {
    #[serde(default)]
    pub yes: u64,
    #[serde(default)]
    pub no: u64,
    #[serde(default)]
    pub variants: HashMap<String, u64>,
}

/// The instances seen and the app names counted by name.
#[derive(Debug, Default)]
pub struct SdkRegistry {
    instances: Mutex<HashMap<String, Instance>>,
    apps: Mutex<HashSet<String>>,
}

impl SdkRegistry {
    /// Records that an instance registered or reported now.
    pub fn seen(&self, app: &str, instance: &str, sdk: Option<String>, kind: &'static str) {
        let key = format!("{kind}/{app}/{instance}");
        let mut all = self.instances.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if !all.contains_key(&key)
            && all.len() >= MAX_INSTANCES
            && let Some(oldest) = all.iter().min_by_key(|(_, i)| i.last_seen).map(|(k, _)| k.clone())
        {
            all.remove(&oldest);
        }
        let entry = all.entry(key).or_insert_with(|| Instance {
            app: app.to_owned(),
            instance: instance.to_owned(),
            sdk: None,
            kind,
            last_seen: Utc::now(),
        });
        entry.last_seen = Utc::now();
        if sdk.is_some() {
            entry.sdk = sdk;
        }
    }

    /// Every instance, most recently seen first.
    pub fn instances(&self) -> Vec<Instance> {
        let all = self.instances.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut list: Vec<Instance> = all.values().cloned().collect();
        list.sort_by(|a, b| b.last_seen.cmp(&a.last_seen).then_with(|| a.instance.cmp(&b.instance)));
        list
    }

    /// The label an app is counted under: its name while fewer than [`SDK_APPS`] are known.
    fn app_label(&self, app: &str) -> String {
        let mut apps = self.apps.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if apps.contains(app) || (apps.len() < SDK_APPS && apps.insert(app.to_owned())) {
            app.to_owned()
        } else {
            "other".to_owned()
        }
    }

    /// Counts a metrics report against the served flags; returns how many evaluations counted.
    pub fn count(&self, serving: &Serving, report: &Report) -> u64 {
        let served = serving.load();
        let app = self.app_label(&report.app_name);
        let now_ms = Utc::now().timestamp_millis();
        let mut counted = 0;
        for (name, counts) in &report.bucket.toggles {
            let Some(idx) = served.index(name) else { continue };
            let flag = &served.snapshot.flags[idx];
            let mut add = |result: String, n: u64| {
                if n > 0 {
                    let labels = SdkEvalLabels { flag: name.clone(), result, app: app.clone() };
                    serving.metrics.sdk_evaluations.get_or_create(&labels).inc_by(n);
                    counted += n;
                }
            };
            add("yes".to_owned(), counts.yes);
            add("no".to_owned(), counts.no);
            for (variant, n) in &counts.variants {
                if variant == "disabled" || flag.variant_index(variant).is_some() {
                    add(format!("variant:{variant}"), *n);
                }
            }
            if counts.yes + counts.no > 0 {
                served.flags[idx].last_evaluated_ms.fetch_max(now_ms, std::sync::atomic::Ordering::Relaxed);
            }
        }
        counted
    }
}
