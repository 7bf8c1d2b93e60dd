//! Conventional Commits 1.0.0 -> the next SemVer 2.0.0 version. Pure.
//!
//! Rules (the documented choices are marked *):
//! - breaking (`!` right before `:`, or a `BREAKING CHANGE:` / `BREAKING-CHANGE:` footer written in
//!   upper case) -> major; `feat` -> minor; `fix`, `perf` -> patch; anything else -> none. The
//!   bump is the highest over the commits. Types are case-insensitive.
//! - *0.y.z: breaking -> 1.0.0, feat -> 0.(y+1).0, fix -> 0.y.(z+1); with `pre_major: minor`,
//!   breaking -> 0.(y+1).0 and feat -> 0.y.(z+1).
//! - *A current pre-release whose base already covers the bump increments its last numeric
//!   identifier (`1.0.0-rc.1` + fix -> `1.0.0-rc.2`); otherwise the base is bumped, and
//!   `pre_release: "<id>"` starts `-<id>.1` (without it, the bumped base is released).
//! - A `Release-As: x.y.z` footer forces the version. Tag prefixes (`v`, `api/v`) are kept.
//! - A `revert:` commit whose body says `This reverts commit <sha>` (or whose description is
//!   another commit's header) cancels that commit, and is itself not counted.
//! - Messages that are not Conventional Commits are listed as `ignored`, never fatal.

use std::cmp::Ordering;

use git_conventional::Commit;
use semver::{Prerelease, Version};
use serde::Serialize;

/// One input commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitInput {
    pub message: String,
    pub sha: Option<String>,
}

impl From<&str> for CommitInput {
    fn from(message: &str) -> Self {
        Self { message: message.to_owned(), sha: None }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Bump {
    None,
    Patch,
    Minor,
    Major,
}

/// How breaking changes bump a 0.y.z version.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum PreMajor {
    /// Breaking -> 1.0.0 (the default).
    #[default]
    Major,
    /// Breaking -> 0.(y+1).0, feat -> 0.y.(z+1).
    Minor,
}

/// A commit that counts, as release notes show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Change {
    #[serde(rename = "type")]
    pub kind: String,
    pub scope: Option<String>,
    pub description: String,
    pub breaking: bool,
    /// The breaking-change footer (the migration note), if any.
    pub breaking_note: Option<String>,
    pub issues: Vec<String>,
    pub sha: Option<String>,
}

/// A message that was not counted, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Ignored {
    pub message: String,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Analysis {
    pub current: String,
    pub next: String,
    pub bump: Bump,
    pub release_as: Option<String>,
    pub breaking: Vec<Change>,
    pub features: Vec<Change>,
    pub fixes: Vec<Change>,
    pub performance: Vec<Change>,
    pub other: Vec<Change>,
    pub ignored: Vec<Ignored>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VersionError {
    #[error("{0:?} is not a SemVer 2.0.0 version (optionally prefixed, like v1.2.3 or api/v1.2.3)")]
    NotSemver(String),
}

/// Splits `api/v1.2.3` into (`api/v`, 1.2.3).
pub fn split_tag(tag: &str) -> Result<(String, Version), VersionError> {
    let t = tag.trim();
    for (i, _) in t.char_indices() {
        let before = t[..i].chars().last();
        if before.is_some_and(|c| c.is_ascii_digit() || c == '.') {
            continue;
        }
        if let Ok(v) = Version::parse(&t[i..]) {
            return Ok((t[..i].to_owned(), v));
        }
    }
    Err(VersionError::NotSemver(tag.to_owned()))
}

fn is_breaking_footer(token: &str) -> bool {
    token == "BREAKING CHANGE" || token == "BREAKING-CHANGE"
}

fn issues_of(description: &str, commit: &Commit<'_>) -> Vec<String> {
    let mut found = Vec::new();
    let mut scan = |text: &str| {
        let bytes = text.as_bytes();
        for (i, _) in text.match_indices('#') {
            let digits: String = text[i + 1..].chars().take_while(char::is_ascii_digit).collect();
            let boundary = i == 0 || !bytes[i - 1].is_ascii_alphanumeric();
            if !digits.is_empty() && boundary && !found.contains(&format!("#{digits}")) {
                found.push(format!("#{digits}"));
            }
        }
    };
    scan(description);
    for f in commit.footers() {
        let token = f.token().as_str().to_ascii_lowercase();
        if matches!(token.as_str(), "closes" | "fixes" | "resolves" | "refs" | "ref" | "see") {
            if f.separator().as_str().contains('#') {
                // `Closes #34`: the separator carries the `#`.
                scan(&format!("#{}", f.value().trim()));
            } else {
                scan(f.value());
            }
        }
    }
    found
}

struct Parsed {
    change: Change,
    header: String,
    release_as: Option<String>,
    reverts: Option<String>,
}

fn parse(input: &CommitInput) -> Result<Parsed, String> {
    let normalised = input.message.replace("\r\n", "\n");
    let text = normalised.trim();
    let commit = Commit::parse(text).map_err(|e| e.to_string())?;
    let header = text.lines().next().unwrap_or_default().to_owned();
    let bang = header.split_once(':').is_some_and(|(prefix, _)| prefix.ends_with('!'));
    let footer = commit.footers().iter().find(|f| is_breaking_footer(f.token().as_str()));
    let breaking = bang || footer.is_some();
    let release_as = commit
        .footers()
        .iter()
        .find(|f| f.token().as_str().eq_ignore_ascii_case("release-as"))
        .map(|f| f.value().trim().to_owned());
    let kind = commit.type_().as_str().to_ascii_lowercase();
    let reverts = (kind == "revert").then(|| {
        let body = commit.body().unwrap_or_default();
        body.split("This reverts commit ")
            .nth(1)
            .map(|rest| {
                rest.trim_end_matches(|c: char| !c.is_ascii_alphanumeric())
                    .split_whitespace()
                    .next()
                    .unwrap_or_default()
            })
            .map(|s| s.trim_end_matches('.').to_owned())
            .unwrap_or_else(|| commit.description().to_owned())
    });
    let change = Change {
        kind,
        scope: commit.scope().map(|s| s.as_str().to_owned()),
        description: commit.description().to_owned(),
        breaking,
        breaking_note: footer.map(|f| f.value().trim().to_owned()),
        issues: issues_of(commit.description(), &commit),
        sha: input.sha.clone(),
    };
    Ok(Parsed { change, header, release_as, reverts })
}

fn bump_of(c: &Change) -> Bump {
    if c.breaking {
        Bump::Major
    } else {
        match c.kind.as_str() {
            "feat" => Bump::Minor,
            "fix" | "perf" => Bump::Patch,
            _ => Bump::None,
        }
    }
}

fn bump_release(v: &Version, bump: Bump, pre_major: PreMajor) -> Version {
    let (major, minor, patch) = (v.major, v.minor, v.patch);
    let (major, minor, patch) = match (bump, major, pre_major) {
        (Bump::None, ..) => (major, minor, patch),
        (Bump::Major, 0, PreMajor::Major) => (1, 0, 0),
        (Bump::Major, 0, PreMajor::Minor) => (0, minor + 1, 0),
        (Bump::Minor, 0, PreMajor::Minor) => (0, minor, patch + 1),
        (Bump::Major, ..) => (major + 1, 0, 0),
        (Bump::Minor, ..) => (major, minor + 1, 0),
        (Bump::Patch, ..) => (major, minor, patch + 1),
    };
    Version::new(major, minor, patch)
}

/// Increments the last numeric identifier of a pre-release (`rc.1` -> `rc.2`, `beta` -> `beta.1`).
fn next_prerelease(pre: &Prerelease) -> Prerelease {
    let mut parts: Vec<String> = pre.as_str().split('.').map(str::to_owned).collect();
    match parts.iter().rposition(|p| p.parse::<u64>().is_ok()) {
        Some(i) => {
            let n: u64 = parts[i].parse().unwrap_or(0);
            parts[i] = (n + 1).to_string();
        }
        None => parts.push("1".to_owned()),
    }
    Prerelease::new(&parts.join(".")).unwrap_or(Prerelease::EMPTY)
}

/// Whether a pre-release's base version already includes `bump` over the last release.
fn base_covers(base: &Version, bump: Bump) -> bool {
    match bump {
        Bump::Major => base.minor == 0 && base.patch == 0,
        Bump::Minor => base.patch == 0,
        Bump::Patch | Bump::None => true,
    }
}

/// The next version for `commits` after `current`.
pub fn next_version(
    current: &str,
    commits: &[CommitInput],
    pre_major: PreMajor,
    pre_release: Option<&str>,
) -> Result<Analysis, VersionError> {
    let (prefix, version) = split_tag(current)?;
    let mut parsed = Vec::new();
    let mut ignored = Vec::new();
    for c in commits {
        match parse(c) {
            Ok(p) => parsed.push(p),
            Err(reason) => {
                ignored.push(Ignored { message: c.message.lines().next().unwrap_or_default().to_owned(), reason });
            }
        }
    }
    // Reverts cancel the commit they name (by sha prefix or header) and are not counted.
    let mut cancelled = vec![false; parsed.len()];
    for i in 0..parsed.len() {
        let Some(target) = parsed[i].reverts.clone() else { continue };
        let hit = parsed.iter().enumerate().position(|(j, p)| {
            j != i
                && !cancelled[j]
                && (p.change.sha.as_deref().is_some_and(|s| target.len() >= 7 && s.starts_with(&target))
                    || p.header == target)
        });
        if let Some(j) = hit {
            cancelled[i] = true;
            cancelled[j] = true;
        }
    }
    let counted: Vec<&Parsed> = parsed.iter().zip(&cancelled).filter(|(_, c)| !**c).map(|(p, _)| p).collect();
    let bump = counted.iter().map(|p| bump_of(&p.change)).max().unwrap_or(Bump::None);
    let release_as = counted.iter().rev().find_map(|p| p.release_as.clone());
    let next = if let Some(forced) = &release_as {
        let (_, v) = split_tag(forced)?;
        v
    } else if bump == Bump::None {
        version.clone()
    } else if !version.pre.is_empty() {
        let base = Version::new(version.major, version.minor, version.patch);
        if base_covers(&base, bump) {
            Version { pre: next_prerelease(&version.pre), ..base }
        } else {
            let mut v = bump_release(&base, bump, pre_major);
            if let Some(id) = pre_release {
                v.pre = Prerelease::new(&format!("{id}.1")).map_err(|_| VersionError::NotSemver(id.to_owned()))?;
            }
            v
        }
    } else {
        let mut v = bump_release(&version, bump, pre_major);
        if let Some(id) = pre_release {
            v.pre = Prerelease::new(&format!("{id}.1")).map_err(|_| VersionError::NotSemver(id.to_owned()))?;
        }
        v
    };
    let mut analysis = Analysis {
        current: current.trim().to_owned(),
        next: format!("{prefix}{next}"),
        bump,
        release_as,
        breaking: Vec::new(),
        features: Vec::new(),
        fixes: Vec::new(),
        performance: Vec::new(),
        other: Vec::new(),
        ignored,
    };
    for p in counted {
        let c = p.change.clone();
        if c.breaking {
            analysis.breaking.push(c.clone());
        }
        match c.kind.as_str() {
            "feat" => analysis.features.push(c),
            "fix" => analysis.fixes.push(c),
            "perf" => analysis.performance.push(c),
            _ if c.breaking => {}
            _ => analysis.other.push(c),
        }
    }
    Ok(analysis)
}

/// SemVer 2.0.0 precedence (build metadata ignored), for sorting tags and releases.
pub fn precedence(a: &Version, b: &Version) -> Ordering {
    a.cmp_precedence(b)
}
