//! The git repository a release is cut in: reading tags and commits, writing version files and
//! CHANGELOG.md, committing and tagging (never pushing). The decisions (next version, notes,
//! file edits) are the pure `release` module's; this one only does the IO.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, anyhow, bail};
use chrono::Utc;
use serde::Serialize;

use crate::release::{files, notes};

/// Runs `git` in `repo` and returns its standard output.
pub fn git(repo: &Path, args: &[&str]) -> anyhow::Result<String> {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(args)
        .output()
        .context("cannot run git (is it installed?)")?;
    if !out.status.success() {
        bail!("git {} failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Fails with a sentence (not git's text) unless `repo` is a git repository with a commit.
fn with_commits(repo: &Path) -> anyhow::Result<()> {
    if git(repo, &["rev-parse", "--git-dir"]).is_err() {
        bail!("{} is not a git repository (run this in one, or give --repo)", repo.display());
    }
    if git(repo, &["rev-parse", "--verify", "-q", "HEAD"]).is_err() {
        bail!("{} has no commits yet: there is nothing to version or release", repo.display());
    }
    Ok(())
}

/// The latest SemVer tag reachable from HEAD (by precedence) and the commits since it.
pub fn analysis(
    repo: &Path,
    pre_major: crate::release::PreMajor,
    pre_release: Option<&str>,
) -> anyhow::Result<crate::release::Analysis> {
    let (current, commits) = commits_since_last_tag(repo)?;
    crate::release::next_version(&current, &commits, pre_major, pre_release).map_err(|e| anyhow!("{e}"))
}

/// The last SemVer tag reachable from HEAD (`0.0.0` without one) and the commits since it.
pub fn commits_since_last_tag(repo: &Path) -> anyhow::Result<(String, Vec<crate::release::CommitInput>)> {
    use crate::release::version::{CommitInput, split_tag};
    with_commits(repo)?;
    let tags = git(repo, &["tag", "--merged", "HEAD"])?;
    let latest = tags
        .lines()
        .filter_map(|t| split_tag(t).ok().map(|(_, v)| (t.trim().to_owned(), v)))
        .max_by(|a, b| a.1.cmp_precedence(&b.1));
    let range = latest.as_ref().map_or_else(|| "HEAD".to_owned(), |(t, _)| format!("{t}..HEAD"));
    let log = git(repo, &["log", &range, "--format=%H%x1f%B%x1e"])?;
    let commits: Vec<CommitInput> = log
        .split('\u{1e}')
        .filter_map(|entry| {
            let (sha, message) = entry.trim_start_matches('\n').split_once('\u{1f}')?;
            Some(CommitInput { message: message.trim().to_owned(), sha: Some(sha.trim().to_owned()) })
        })
        .collect();
    let current = latest.map_or_else(|| "0.0.0".to_owned(), |(t, _)| t);
    Ok((current, commits))
}

/// The Keep a Changelog file's header.
const CHANGELOG_HEADER: &str =
    "# Changelog\n\nAll notable changes to this project are documented here (Keep a Changelog, SemVer).\n\n";

/// `relative` inside `repo`, refused unless it is missing or a regular file there: a committed
/// symlink (`CHANGELOG.md -> ~/.bashrc`) or a path leading out of the repository is never
/// written through (commit messages, which end up in the file, are anyone's text).
pub fn file_inside(repo: &Path, relative: &Path) -> anyhow::Result<PathBuf> {
    use std::path::Component;
    if relative.components().any(|c| !matches!(c, Component::Normal(_) | Component::CurDir)) {
        bail!("{} is not a path inside the repository", relative.display());
    }
    let path = repo.join(relative);
    // Every directory on the way must be a real directory of the repository too.
    let root = repo.canonicalize().with_context(|| format!("cannot open {}", repo.display()))?;
    if let Some(parent) = path.parent()
        && let Ok(real) = parent.canonicalize()
        && !real.starts_with(&root)
    {
        bail!("{} leads out of the repository (through a symlink); refusing to write it", relative.display());
    }
    match std::fs::symlink_metadata(&path) {
        Ok(meta) if meta.file_type().is_symlink() => {
            bail!("{} is a symlink; refusing to write through it (make it a regular file)", relative.display())
        }
        Ok(meta) if !meta.is_file() => bail!("{} is not a regular file", relative.display()),
        _ => Ok(path),
    }
}

/// Prepends `section` to the repository's CHANGELOG.md (created when missing).
pub fn prepend_changelog(repo: &Path, section: &str) -> anyhow::Result<PathBuf> {
    let path = file_inside(repo, Path::new("CHANGELOG.md"))?;
    let old = std::fs::read_to_string(&path).unwrap_or_default();
    let rest = old.strip_prefix(CHANGELOG_HEADER).unwrap_or(&old);
    std::fs::write(&path, format!("{CHANGELOG_HEADER}{section}\n{rest}"))
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}

/// How `toggled release` runs.
#[derive(Debug, Clone, Default)]
pub struct CutOptions {
    /// Change nothing; say what would be done.
    pub dry_run: bool,
    /// Create the annotated tag.
    pub tag: bool,
    /// Version files besides the known ones (paths relative to the repository).
    pub extra_files: Vec<PathBuf>,
}

/// What a release did (`--json`): `{released, version, previous, tag, notes, files}`.
#[derive(Debug, Clone, Serialize)]
pub struct Cut {
    pub released: bool,
    pub version: String,
    pub previous: String,
    pub tag: Option<String>,
    pub notes: String,
    pub files: Vec<String>,
}

/// Cuts the next release: version files, CHANGELOG.md, a `chore(release)` commit and an
/// annotated tag keeping the tag prefix in use. A dirty work tree is refused; no bump is no
/// release.
pub fn cut(repo: &Path, options: &CutOptions) -> anyhow::Result<Cut> {
    with_commits(repo)?;
    if !git(repo, &["status", "--porcelain"])?.trim().is_empty() {
        bail!("the work tree of {} has uncommitted changes: commit or stash them first", repo.display());
    }
    let analysis = analysis(repo, crate::release::PreMajor::Major, None)?;
    let (prefix, previous) = match crate::release::version::split_tag(&analysis.current) {
        Ok((prefix, v)) => (prefix, v.to_string()),
        Err(_) => (String::new(), analysis.current.clone()),
    };
    let version = crate::release::version::split_tag(&analysis.next)
        .map(|(_, v)| v.to_string())
        .map_err(|e| anyhow!("the next version {:?}: {e}", analysis.next))?;
    let notes_md = notes::markdown(&analysis, &format!("Release {version}"));
    if version == previous {
        return Ok(Cut { released: false, version, previous, tag: None, notes: notes_md, files: Vec::new() });
    }
    // A repository without tags uses the `v` prefix most do.
    let prefix = if analysis.current == "0.0.0" { "v".to_owned() } else { prefix };
    let tag = options.tag.then(|| format!("{prefix}{version}"));
    let mut edits = Vec::new();
    let candidates = files::KNOWN.iter().map(PathBuf::from).chain(options.extra_files.iter().cloned());
    file_inside(repo, Path::new("CHANGELOG.md"))?;
    for relative in candidates {
        if std::fs::symlink_metadata(repo.join(&relative)).is_err() {
            continue;
        }
        let path = file_inside(repo, &relative)?;
        let Ok(text) = std::fs::read_to_string(&path) else { continue };
        let name = relative.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        let extra = options.extra_files.contains(&relative);
        let updated = files::set_version(name, &text, &version)
            .or_else(|| extra.then(|| files::replace_version(&text, &previous, &version)).flatten());
        match updated {
            Some(updated) => edits.push((relative, path, updated)),
            None if extra => bail!("{} does not mention the version {previous}", relative.display()),
            None => {}
        }
    }
    let mut changed: Vec<String> = edits.iter().map(|(r, _, _)| r.display().to_string()).collect();
    changed.push("CHANGELOG.md".to_owned());
    let cut =
        Cut { released: true, version: version.clone(), previous, tag: tag.clone(), notes: notes_md, files: changed };
    if options.dry_run {
        return Ok(cut);
    }
    for (_, path, updated) in &edits {
        std::fs::write(path, updated).with_context(|| format!("cannot write {}", path.display()))?;
    }
    let today = Utc::now().format("%Y-%m-%d").to_string();
    prepend_changelog(repo, &notes::keep_a_changelog(&analysis, Some(&version), Some(&today)))?;
    let mut add = vec!["add", "--"];
    add.extend(cut.files.iter().map(String::as_str));
    git(repo, &add)?;
    git(repo, &["commit", "-q", "-m", &format!("chore(release): version {version}")])?;
    if let Some(tag) = &tag {
        git(repo, &["tag", "-a", tag, "-m", &format!("Release {version}")])?;
    }
    Ok(cut)
}
