//! toggled: a feature-flag evaluation and release server.
//!
//! Data flows one way. The flag file (`flags/feature-flags.yaml`) is read as text, parsed into a
//! lax serde mirror and compiled ([`flags`]) into an immutable [`flags::Snapshot`], in which every
//! name is resolved and every value validated. The pure evaluator ([`eval`]) answers "what does
//! this context get from this flag at this time, given this persisted state" without IO, clock
//! or allocation. The command line ([`cli`], [`app`]) validates files and evaluates flags; the
//! HTTP server, store, reload and monitor tasks build on the same two modules.

pub mod app;
pub mod cli;
pub mod eval;
pub mod flags;
