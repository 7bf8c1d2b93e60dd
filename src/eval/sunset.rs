//! The sunset phase in force and what it asks of a response.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::flags::snapshot::{Phase, RateLimit, SunsetAction, SunsetPlan};

/// A flag's sunset plan as it stands at evaluation time.
#[derive(Debug, Clone, Copy)]
pub struct SunsetStatus<'a> {
    pub plan: &'a SunsetPlan,
    /// The phase in force (the latest started), if any.
    pub phase: Option<&'a Phase>,
}

impl<'a> SunsetStatus<'a> {
    pub fn at(plan: &'a SunsetPlan, now: DateTime<Utc>) -> Self {
        Self { plan, phase: plan.phase_at(now) }
    }

    pub fn has(&self, action: SunsetAction) -> bool {
        self.phase.is_some_and(|p| p.has(action))
    }

    pub fn actions(&self) -> &'a [SunsetAction] {
        self.phase.map_or(&[], |p| &p.actions)
    }

    /// `notice`, when the phase asks for forced migration notices.
    pub fn notice(&self) -> Option<&'a str> {
        self.phase.filter(|p| p.has(SunsetAction::ForcedMigrationNotices)).map(|p| p.notice.as_str())
    }

    /// `redirect`, when the phase asks for it and names a URL.
    pub fn redirect(&self) -> Option<&'a str> {
        self.phase.filter(|p| p.has(SunsetAction::RedirectToNewEndpoints)).and_then(|p| p.redirect.as_deref())
    }

    /// The per-stickiness rate limit, when the phase asks for rate limiting.
    pub fn rate_limit(&self) -> Option<RateLimit> {
        self.phase.filter(|p| p.has(SunsetAction::RateLimiting)).map(|p| p.rate_limit)
    }

    /// `(name, value)` response headers the phase asks for: `Deprecation`, `Sunset`, `Link`.
    pub fn headers(&self) -> impl Iterator<Item = (&'static str, &'a str)> + use<'a> {
        let phase = self.phase.filter(|p| p.has(SunsetAction::DeprecationHeaders));
        let plan = self.plan;
        [
            ("Deprecation", phase.and(plan.deprecation_header.as_deref())),
            ("Sunset", phase.and(plan.sunset_header.as_deref())),
            ("Link", phase.and_then(|p| p.link_header.as_deref())),
        ]
        .into_iter()
        .filter_map(|(name, value)| value.map(|v| (name, v)))
    }

    /// The `sunset` object of an evaluation response.
    pub fn body(&self) -> SunsetBody<'a> {
        SunsetBody {
            phase: self.phase.map(|p| p.kind.as_str()),
            actions: self.actions(),
            shutdown_at: self.plan.shutdown_at,
        }
    }
}

/// `sunset: {phase, actions, shutdown_at}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SunsetBody<'a> {
    pub phase: Option<&'static str>,
    #[schema(value_type = Vec<String>)]
    pub actions: &'a [SunsetAction],
    #[schema(value_type = Option<String>, format = DateTime)]
    pub shutdown_at: Option<DateTime<Utc>>,
}
