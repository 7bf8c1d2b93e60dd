//! Guarded rollouts: query Prometheus for each monitored flag, decide with pure functions, act
//! through the store.
//!
//! [`verdict`] turns one sample and one condition into breach / clear / inconclusive; [`step`]
//! carries an alert's streaks and says when to act (after `for` consecutive breaches) and, for
//! `pause`, when to resume (after `for` consecutive clears). The loop only samples and acts:
//! `rollback` writes a persisted override (actor `auto-rollback`), `pause` freezes the gradual
//! schedule (actor `auto-pause`, resumed automatically), `alert_team` posts a signed webhook.
//! An empty result, NaN or a query error is inconclusive: no action, counted, logged once per
//! streak.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde::Serialize;
use serde_json::{Value, json};
use sha2::Sha256;

use crate::flags::snapshot::{AlertAction, Condition, Flag, Strategy};
use crate::metrics::FlagLabels;
use crate::serving::{FlagRuntime, Serving};
use crate::store::{Action, Change, Refusal};

pub const ROLLBACK_ACTOR: &str = "auto-rollback";
pub const PAUSE_ACTOR: &str = "auto-pause";
pub const ALERT_ACTOR: &str = "auto-alert";

/// One sample of a metric.
#[derive(Debug, Clone, PartialEq)]
pub enum Sample {
    Value(f64),
    Empty,
    Error(String),
}

/// What one sample says about one condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Breach,
    Clear,
    Inconclusive,
}

/// Pure: does `sample` breach `condition`? NaN, empty results and errors are inconclusive.
pub fn verdict(sample: &Sample, condition: &Condition) -> Verdict {
    match sample {
        Sample::Value(v) if v.is_finite() => {
            if condition.op.holds(*v, condition.threshold) {
                Verdict::Breach
            } else {
                Verdict::Clear
            }
        }
        _ => Verdict::Inconclusive,
    }
}

/// An alert's streaks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Streak {
    pub breaches: u32,
    pub clears: u32,
    /// True from acting until the condition has cleared `for` times.
    pub firing: bool,
    /// True while the current run of samples is inconclusive (logged once per run).
    pub inconclusive: bool,
}

/// What to do after a sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Nothing,
    /// `for` consecutive breaches: act.
    Fire,
    /// A firing alert has cleared `for` consecutive times.
    Resolve,
    /// The first inconclusive sample of a run: count and log it.
    Inconclusive,
}

/// Pure: the next streak state and what to do. Inconclusive samples neither advance nor
/// reset a streak.
pub fn step(streak: Streak, v: Verdict, for_samples: u32) -> (Streak, Step) {
    let need = for_samples.max(1);
    match v {
        Verdict::Inconclusive => {
            let first = !streak.inconclusive;
            (Streak { inconclusive: true, ..streak }, if first { Step::Inconclusive } else { Step::Nothing })
        }
        Verdict::Breach => {
            let breaches = streak.breaches.saturating_add(1);
            let fire = !streak.firing && breaches >= need;
            let next = Streak { breaches, clears: 0, firing: streak.firing || fire, inconclusive: false };
            (next, if fire { Step::Fire } else { Step::Nothing })
        }
        Verdict::Clear => {
            let clears = streak.clears.saturating_add(1);
            let resolve = streak.firing && clears >= need;
            let next = Streak { breaches: 0, clears, firing: streak.firing && !resolve, inconclusive: false };
            (next, if resolve { Step::Resolve } else { Step::Nothing })
        }
    }
}

/// Whether a flag is under rollout now (so its alerts are watched).
pub fn under_rollout(flag: &Flag, rt: &FlagRuntime, now: DateTime<Utc>) -> bool {
    match &flag.strategy {
        Some(Strategy::Gradual { stages, start, .. }) => {
            let start = crate::eval::rollout::schedule_start(*start, rt.first_seen, now);
            crate::eval::rollout::gradual_progress(stages, start, now, rt.pause)
                .is_none_or(|p| stages[p.stage].percentage < 100)
        }
        Some(Strategy::AbTest { duration, start, .. }) => {
            let start = crate::eval::rollout::schedule_start(*start, rt.first_seen, now);
            now >= start && !crate::eval::rollout::window_over(start, *duration, now)
        }
        Some(Strategy::Percentage { percentage, .. }) => *percentage < 100,
        Some(Strategy::Scheduled { steps, .. }) => crate::eval::rollout::scheduled_percentage(steps, now) < 100,
        None => false,
    }
}

/// The last verdict of one alert, shown on `GET /flags/{key}`.
#[derive(Debug, Clone, Serialize)]
pub struct AlertStatus {
    pub condition: String,
    pub action: &'static str,
    pub verdict: Verdict,
    pub observed: Option<f64>,
    pub at: DateTime<Utc>,
    pub streak: Streak,
}

/// Monitor settings.
#[derive(Debug, Clone)]
pub struct MonitorConfig {
    pub prometheus_url: String,
    pub webhook_url: Option<String>,
    pub webhook_secret: Option<String>,
    /// Watch every flag with alerts, not only flags under rollout.
    pub all_flags: bool,
}

/// Shared view of alert states, by flag then alert index.
pub type AlertBoard = Arc<Mutex<HashMap<String, Vec<AlertStatus>>>>;

/// Queries Prometheus' `/api/v1/query` for an instant value.
pub async fn query(client: &reqwest::Client, base: &str, promql: &str) -> Sample {
    let url = format!("{}/api/v1/query", base.trim_end_matches('/'));
    let url = match reqwest::Url::parse_with_params(&url, &[("query", promql)]) {
        Ok(u) => u,
        Err(e) => return Sample::Error(format!("bad Prometheus URL {}: {e}", crate::outbound::redact(&url))),
    };
    let response = match client.get(url).send().await {
        Ok(r) => r,
        Err(e) => return Sample::Error(format!("query failed: {}", crate::outbound::error_text(e))),
    };
    let status = response.status();
    let body: Value = match response.json().await {
        Ok(b) => b,
        Err(e) => {
            return Sample::Error(format!("HTTP {status}: unreadable answer: {}", crate::outbound::error_text(e)));
        }
    };
    if body["status"] != "success" {
        return Sample::Error(format!("HTTP {status}: {}", body["error"].as_str().unwrap_or("query failed")));
    }
    let value = match body["data"]["resultType"].as_str() {
        Some("vector") => body["data"]["result"].get(0).map(|r| &r["value"][1]),
        Some("scalar") => Some(&body["data"]["result"][1]),
        _ => None,
    };
    match value.and_then(Value::as_str) {
        None => Sample::Empty,
        Some(text) => {
            text.parse::<f64>().map_or_else(|_| Sample::Error(format!("not a number: {text}")), Sample::Value)
        }
    }
}

/// Signs a webhook body: `sha256=<hex HMAC-SHA256>`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(body);
    let bytes = mac.finalize().into_bytes();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

/// Posts a notification, retrying with backoff (3 attempts).
async fn notify(client: reqwest::Client, url: String, secret: Option<String>, payload: Value) {
    let body = payload.to_string();
    let mut delay = Duration::from_millis(200);
    for attempt in 1..=3 {
        let mut req = client.post(&url).header("content-type", "application/json").body(body.clone());
        if let Some(secret) = &secret {
            req = req.header("x-signature-256", signature(secret, body.as_bytes()));
        }
        match req.send().await {
            Ok(r) if r.status().is_success() => return,
            Ok(r) => tracing::warn!(attempt, status = %r.status(), "alert_team webhook refused"),
            Err(e) => tracing::warn!(attempt, "alert_team webhook failed: {}", crate::outbound::error_text(e)),
        }
        tokio::time::sleep(delay).await;
        delay *= 4;
    }
    tracing::error!(url = %crate::outbound::redact(&url), "alert_team webhook gave up after 3 attempts");
}

/// The monitor loop: every flag's alerts are sampled once per its `interval`.
pub async fn run(
    serving: Arc<Serving>,
    config: MonitorConfig,
    board: AlertBoard,
    mut stopped: tokio::sync::watch::Receiver<bool>,
) {
    let client = match crate::outbound::client().timeout(Duration::from_secs(5)).build() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("monitor disabled: cannot build an HTTP client: {e}");
            return;
        }
    };
    let mut streaks: HashMap<(String, usize), Streak> = HashMap::new();
    let mut due: HashMap<String, DateTime<Utc>> = HashMap::new();
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    loop {
        tokio::select! {
            _ = stopped.changed() => return,
            _ = tick.tick() => {}
        }
        let now = Utc::now();
        let served = serving.load_full();
        for (flag, rt) in served.snapshot.flags.iter().zip(&served.flags) {
            let Some(monitoring) = &flag.monitoring else { continue };
            if monitoring.alerts.is_empty() || !(config.all_flags || under_rollout(flag, rt, now)) {
                continue;
            }
            if due.get(&flag.key).is_some_and(|d| now < *d) {
                continue;
            }
            due.insert(flag.key.clone(), now + monitoring.interval);
            let mut samples: HashMap<&str, Sample> = HashMap::new();
            for alert in &monitoring.alerts {
                let metric = alert.condition.metric.as_str();
                if samples.contains_key(metric) {
                    continue;
                }
                let promql = served.snapshot.metric(metric).map_or(metric, |m| m.query.as_str());
                samples.insert(metric, query(&client, &config.prometheus_url, promql).await);
            }
            let mut statuses = Vec::with_capacity(monitoring.alerts.len());
            for (i, alert) in monitoring.alerts.iter().enumerate() {
                let sample = &samples[alert.condition.metric.as_str()];
                let v = verdict(sample, &alert.condition);
                let key = (flag.key.clone(), i);
                let (next, what) = step(streaks.get(&key).copied().unwrap_or_default(), v, alert.for_samples);
                streaks.insert(key, next);
                let observed = match sample {
                    Sample::Value(x) => Some(*x),
                    _ => None,
                };
                statuses.push(AlertStatus {
                    condition: alert.condition.text.clone(),
                    action: alert.action.as_str(),
                    verdict: v,
                    observed,
                    at: now,
                    streak: next,
                });
                match what {
                    Step::Nothing => {}
                    Step::Inconclusive => {
                        serving
                            .metrics
                            .monitor_inconclusive
                            .get_or_create(&FlagLabels { flag: flag.key.clone() })
                            .inc();
                        tracing::warn!(flag = %flag.key, condition = %alert.condition.text, sample = ?sample, "inconclusive sample: no action");
                    }
                    Step::Fire => {
                        let why = format!(
                            "{} (observed {})",
                            alert.condition.text,
                            observed.map_or("?".into(), |o| o.to_string())
                        );
                        fire(&serving, &client, &config, flag, alert.action, &why, "monitor").await;
                    }
                    Step::Resolve if alert.action == AlertAction::Pause => {
                        resume_if_paused_by(
                            &serving,
                            &flag.key,
                            &format!("{} cleared", alert.condition.text),
                            PAUSE_ACTOR,
                        )
                        .await;
                    }
                    Step::Resolve => {}
                }
            }
            board.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(flag.key.clone(), statuses);
        }
    }
}

/// Acts on a firing alert (from the monitor or Alertmanager). Idempotent: a flag already rolled
/// back (or overridden by an operator) is not rolled back again; a paused rollout is not paused
/// again.
pub async fn fire(
    serving: &Serving,
    client: &reqwest::Client,
    config: &MonitorConfig,
    flag: &Flag,
    action: AlertAction,
    why: &str,
    trigger: &str,
) -> &'static str {
    match action {
        AlertAction::Rollback => rollback(serving, &flag.key, why, trigger).await,
        AlertAction::Pause => pause(serving, flag, why, PAUSE_ACTOR).await,
        AlertAction::AlertTeam => {
            let at = Utc::now();
            let payload = json!({"flag": flag.key, "owner": flag.owner, "alert": why, "action": "alert_team", "at": at, "trigger": trigger});
            let change = Change {
                flag: flag.key.clone(),
                actor: ALERT_ACTOR.to_owned(),
                reason: why.to_owned(),
                at,
                action: Action::AlertTeam(payload.clone()),
            };
            if let Err(e) = crate::changes::apply(serving, change).await {
                tracing::error!("could not audit an alert_team decision: {e}");
            }
            match &config.webhook_url {
                Some(url) => {
                    tokio::spawn(notify(client.clone(), url.clone(), config.webhook_secret.clone(), payload));
                    "notified"
                }
                None => {
                    tracing::warn!(flag = %flag.key, "alert_team fired but no --webhook-url is set: {why:?}");
                    "no_webhook"
                }
            }
        }
    }
}

/// A persisted rollback override (safe value, reason `ROLLED_BACK`), unless one is in force.
/// The store decides that inside its transaction, so replicas that see the same breach write one
/// rollback and one audit row.
pub async fn rollback(serving: &Serving, key: &str, why: &str, trigger: &str) -> &'static str {
    let action = Action::Rollback { trigger: trigger.to_owned() };
    outcome(serving, key, why, ROLLBACK_ACTOR, action, "rolled_back").await
}

/// Pauses a gradual rollout on behalf of `actor` (`auto-pause`, `alertmanager`).
pub async fn pause(serving: &Serving, flag: &Flag, why: &str, actor: &str) -> &'static str {
    if !matches!(flag.strategy, Some(Strategy::Gradual { .. })) {
        return "not_gradual";
    }
    outcome(serving, &flag.key, why, actor, Action::Pause, "paused").await
}

/// Resumes a rollout that `actor` paused (the monitor, Alertmanager); anyone else's pause is
/// left alone.
pub async fn resume_if_paused_by(serving: &Serving, key: &str, why: &str, actor: &str) -> &'static str {
    let action = Action::Resume { only_paused_by: Some(actor.to_owned()) };
    outcome(serving, key, why, actor, action, "resumed").await
}

/// Applies an automatic change and names what happened.
async fn outcome(
    serving: &Serving,
    key: &str,
    why: &str,
    actor: &str,
    action: Action,
    done: &'static str,
) -> &'static str {
    let change =
        Change { flag: key.to_owned(), actor: actor.to_owned(), reason: why.to_owned(), at: Utc::now(), action };
    match crate::changes::apply(serving, change).await {
        Ok(Ok(_)) => done,
        Ok(Err(Refusal::AlreadyOverridden)) => "already_overridden",
        Ok(Err(Refusal::AlreadyPaused)) => "already_paused",
        Ok(Err(Refusal::NotPaused | Refusal::NoOverride)) => "not_paused",
        Ok(Err(Refusal::PausedBySomeoneElse)) => "paused_by_someone_else",
        Ok(Err(Refusal::NotPending)) => "not_pending",
        Err(e) => {
            tracing::error!(flag = %key, "{done}: the change could not be persisted: {e}");
            STORE_FAILED
        }
    }
}

/// The outcome of an action whose change could not be stored.
pub const STORE_FAILED: &str = "store_failed";

/// Pure: Prometheus alerting rules (`groups:` YAML) equivalent to every flag's alerts, labelled
/// `flag` and `action`. `for` is `(for - 1) * interval`: the first breaching evaluation counts.
pub fn alerting_rules(snapshot: &crate::flags::Snapshot) -> String {
    let q = |s: &str| serde_json::to_string(s).expect("a string serialises");
    let mut out = format!(
        "# Generated by `toggled rules` from flag file revision {}: every `monitoring` alert as a\n\
         # Prometheus alerting rule. Route `rollback` and `pause` alerts to toggled's POST /alerts.\n\
         groups:\n  - name: toggled\n    rules:\n",
        snapshot.revision
    );
    let mut any = false;
    for flag in &snapshot.flags {
        let Some(m) = &flag.monitoring else { continue };
        let camel: String = flag
            .key
            .split(|c: char| !c.is_ascii_alphanumeric())
            .filter(|p| !p.is_empty())
            .map(|p| {
                let mut cs = p.chars();
                cs.next().map(|c| c.to_ascii_uppercase().to_string() + cs.as_str()).unwrap_or_default()
            })
            .collect();
        for (i, alert) in m.alerts.iter().enumerate() {
            any = true;
            let c = &alert.condition;
            let query = snapshot.metric(&c.metric).map_or(c.metric.as_str(), |x| x.query.as_str());
            let expr = format!("({query}) {} {}", c.op.as_str(), c.threshold);
            let wait = m.interval * (alert.for_samples.saturating_sub(1) as i32);
            let action = alert.action.as_str();
            let action_camel: String = action.split('_').map(|p| p[..1].to_ascii_uppercase() + &p[1..]).collect();
            out += &format!("      - alert: {}\n", q(&format!("Toggled{camel}{action_camel}{}", i + 1)));
            out += &format!("        expr: {}\n", q(&expr));
            out += &format!("        for: {}\n", q(&format!("{}s", wait.num_seconds())));
            out += &format!("        labels:\n          flag: {}\n          action: {}\n", q(&flag.key), q(action));
            out += &format!(
                "        annotations:\n          summary: {}\n          condition: {}\n",
                q(&format!("{}: {}", flag.key, c.text)),
                q(&c.text)
            );
        }
    }
    if !any {
        out = out.replace("    rules:\n", "    rules: []\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flags::compile::parse_condition;

    #[test]
    fn verdicts() {
        let c = parse_condition("success_rate < 0.95").expect("valid");
        assert_eq!(verdict(&Sample::Value(0.9), &c), Verdict::Breach);
        assert_eq!(verdict(&Sample::Value(0.95), &c), Verdict::Clear);
        assert_eq!(verdict(&Sample::Value(f64::NAN), &c), Verdict::Inconclusive);
        assert_eq!(verdict(&Sample::Value(f64::INFINITY), &c), Verdict::Inconclusive);
        assert_eq!(verdict(&Sample::Empty, &c), Verdict::Inconclusive);
        assert_eq!(verdict(&Sample::Error("down".into()), &c), Verdict::Inconclusive);
        let ms = parse_condition("latency > 300ms").expect("valid");
        assert_eq!(verdict(&Sample::Value(0.31), &ms), Verdict::Breach);
        assert_eq!(verdict(&Sample::Value(0.29), &ms), Verdict::Clear);
    }

    #[test]
    fn fires_after_for_consecutive_breaches_once_and_resolves_after_for_clears() {
        let run = |verdicts: &[Verdict], n: u32| {
            let mut s = Streak::default();
            verdicts
                .iter()
                .map(|v| {
                    let (next, what) = step(s, *v, n);
                    s = next;
                    what
                })
                .collect::<Vec<_>>()
        };
        use Step::{Fire, Inconclusive as I, Nothing, Resolve};
        use Verdict::{Breach as B, Clear as C, Inconclusive as X};
        assert_eq!(run(&[B], 1), [Fire]);
        assert_eq!(run(&[B, C, B, B], 2), [Nothing, Nothing, Nothing, Fire]);
        assert_eq!(run(&[B, B, B, B], 2), [Nothing, Fire, Nothing, Nothing], "fires once");
        assert_eq!(run(&[B, X, X, B], 2), [Nothing, I, Nothing, Fire], "inconclusive neither resets nor counts");
        assert_eq!(run(&[B, B, C, B, C, C, C], 2), [Nothing, Fire, Nothing, Nothing, Nothing, Resolve, Nothing]);
        assert_eq!(run(&[X, X, C, X], 1), [I, Nothing, Nothing, I], "one log per inconclusive run");
    }

    #[test]
    fn webhook_signature_is_hmac_sha256_hex() {
        // RFC 4231 test case 2.
        assert_eq!(
            signature("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
