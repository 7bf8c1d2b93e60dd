//! Releases and versions: Conventional Commits -> the next SemVer version ([`version`]) and
//! release notes ([`notes`]). Pure; HTTP and the CLI (which reads git) call these.

pub mod files;
pub mod notes;
pub mod order;
pub mod plan;
pub mod proposal;
pub mod quality;
pub mod record;
pub mod version;

pub use version::{Analysis, Bump, CommitInput, PreMajor, VersionError, next_version};

/// Release settings loaded at start.
#[derive(Debug, Clone)]
pub struct ReleaseSettings {
    pub strategy: self::plan::ReleaseStrategy,
    pub windows: Vec<self::plan::MaintenanceWindow>,
    /// The service of flags that do not name one (for stale-flag checks).
    pub default_service: Option<String>,
    /// Quality gates (the standards' format).
    pub gates: Vec<(String, self::quality::GateConfig)>,
}

impl Default for ReleaseSettings {
    fn default() -> Self {
        Self {
            strategy: self::plan::default_strategy(),
            windows: Vec::new(),
            default_service: None,
            gates: self::quality::default_gates(),
        }
    }
}
