//! The flag file: YAML text -> validated, immutable [`Snapshot`]. No IO, no async, no clock.
//!
//! [`mod@file`] mirrors the YAML with serde (shape only); [`mod@compile`] checks meaning and builds the
//! [`snapshot`] types the evaluator reads.

pub mod compile;
pub mod duration;
pub mod file;
pub mod snapshot;

pub use compile::{CompileError, CompileErrors, compile, revision_of};
pub use snapshot::{Flag, FlagKind, Snapshot};
