//! toggled: a feature-flag evaluation and release server.
//!
//! Data flows one way. The flag file (`flags/feature-flags.yaml`) is read as text, parsed into a
//! lax serde mirror and compiled ([`flags`]) into an immutable [`flags::Snapshot`], in which every
//! name is resolved and every value validated. The pure evaluator ([`eval`]) answers "what does
//! this context get from this flag at this time, given this persisted state" without IO, clock
//! or allocation. The command line ([`cli`], [`app`]) validates files and evaluates flags; the
//! HTTP server, store, reload and monitor tasks build on the same two modules.
//!
//! ```
//! use toggled::eval::{self, FlagState, Reason};
//!
//! let snapshot = toggled::flags::compile(
//!     "feature_flags:\n  dark_mode:\n    rollout_strategy: {type: percentage, percentage: 10, group_id: Feature.flexibleRollout.10}\n",
//! )?;
//! let flag = snapshot.get("dark_mode").expect("compiled");
//! let context: eval::Context = serde_json::from_str(r#"{"targetingKey": "174"}"#).expect("an object");
//! let now = chrono::Utc::now();
//! let answer = eval::evaluate(flag, &context, now, &FlagState::default());
//! assert_eq!((answer.value, answer.reason), (&serde_json::json!(true), Reason::TargetingMatch));
//! # Ok::<(), toggled::flags::CompileErrors>(())
//! ```

pub mod access;
pub mod app;
pub mod changes;
pub mod cli;
pub mod config;
pub mod eval;
pub mod events;
pub mod export;
pub mod flags;
pub mod http;
pub mod import;
pub mod metrics;
pub mod monitor;
pub mod notify;
pub mod outbound;
pub mod release;
pub mod releasing;
pub mod reload;
pub mod repo;
pub mod reports;
pub mod schedules;
pub mod sdks;
pub mod serving;
pub mod store;
pub mod sync;
pub mod tasks;
pub mod upstream;
