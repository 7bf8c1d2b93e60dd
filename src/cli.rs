//! Command-line definitions (clap). Parsing only; [`crate::app`] runs the commands.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// toggled: feature flags with staged rollouts, kill switches and sunset phases.
#[derive(Debug, Parser)]
#[command(name = "toggled", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check flag files; prints `ok: N flags` or every error as `file:line:col: path: message`.
    /// Exits 1 when any file has an error.
    Validate {
        /// Flag files to check.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Evaluate one flag for one context and print the result as JSON.
    Evaluate {
        /// The flag file.
        file: PathBuf,
        /// The flag key.
        flag: String,
        /// The evaluation context, a JSON object (e.g. '{"targetingKey":"u1"}').
        #[arg(long, default_value = "{}")]
        context: String,
        /// Evaluate as of this time (RFC 3339); default now.
        #[arg(long)]
        at: Option<String>,
        /// When the rollout started, for gradual/ab_test flags without `start` (RFC 3339);
        /// default: the evaluation time (the first stage).
        #[arg(long)]
        first_seen: Option<String>,
    },
}
