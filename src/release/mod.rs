//! Releases and versions: Conventional Commits -> the next SemVer version ([`version`]) and
//! release notes ([`notes`]). Pure; HTTP and the CLI (which reads git) call these.

pub mod notes;
pub mod plan;
pub mod quality;
pub mod version;

pub use version::{Analysis, Bump, CommitInput, PreMajor, VersionError, next_version};
