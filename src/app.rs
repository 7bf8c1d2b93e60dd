//! Runs the commands: file IO and the clock live here, around the pure `flags` and `eval`.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context as _, anyhow, bail};
use chrono::Utc;

use crate::cli::{Cli, Command};
use crate::eval::{self, Context, FlagState};
use crate::flags::{self, compile::MAX_FILE_BYTES};

/// Runs one command; `Ok(ExitCode::FAILURE)` means the command ran and found problems.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Validate { files } => Ok(validate(&files)),
        Command::Evaluate { file, flag, context, at, first_seen } => {
            evaluate(&file, &flag, &context, at.as_deref(), first_seen.as_deref())
        }
    }
}

/// Reads a flag file as UTF-8 text, refusing files over the size limit.
pub fn read_flag_file(path: &Path) -> anyhow::Result<String> {
    let meta = std::fs::metadata(path).with_context(|| format!("failed to read flag file {}", path.display()))?;
    if meta.len() > MAX_FILE_BYTES as u64 {
        bail!("flag file {} is {} bytes; the limit is {MAX_FILE_BYTES}", path.display(), meta.len());
    }
    std::fs::read_to_string(path).with_context(|| format!("failed to read flag file {}", path.display()))
}

fn validate(files: &[std::path::PathBuf]) -> ExitCode {
    let mut failed = false;
    for path in files {
        let shown = path.display().to_string();
        match read_flag_file(path) {
            Err(err) => {
                failed = true;
                eprintln!("{shown}: {err:#}");
            }
            Ok(text) => match flags::compile(&text) {
                Ok(snapshot) => println!("{shown}: ok: {} flags", snapshot.flags.len()),
                Err(errors) => {
                    failed = true;
                    eprint!("{}", errors.render(&shown));
                }
            },
        }
    }
    if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS }
}

fn evaluate(
    path: &Path,
    key: &str,
    context: &str,
    at: Option<&str>,
    first_seen: Option<&str>,
) -> anyhow::Result<ExitCode> {
    let text = read_flag_file(path)?;
    let snapshot = flags::compile(&text).map_err(|e| anyhow!("{}", e.render(&path.display().to_string())))?;
    let flag = snapshot.get(key).ok_or_else(|| anyhow!("no flag {key:?} in {}", path.display()))?;
    let ctx: Context = serde_json::from_str(context).context("--context must be a JSON object")?;
    let time = |t: Option<&str>, what: &str| -> anyhow::Result<Option<chrono::DateTime<Utc>>> {
        t.map(|t| flags::duration::parse_timestamp(t).map_err(|e| anyhow!("--{what}: {e}"))).transpose()
    };
    let now = time(at, "at")?.unwrap_or_else(Utc::now);
    let state = FlagState { first_seen: time(first_seen, "first-seen")?, ..FlagState::default() };
    let evaluation = eval::evaluate(flag, &ctx, now, &state);
    let body = evaluation.body(&flag.key, &snapshot.revision);
    println!("{}", serde_json::to_string_pretty(&body).context("failed to render the evaluation")?);
    Ok(ExitCode::SUCCESS)
}
