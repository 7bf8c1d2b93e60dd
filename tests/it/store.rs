//! The store conformance suite: every `Store` method, a restart, and concurrent writers, written
//! once against the trait and run against every backend (SQLite now).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::json;
use toggled::release::record::ReleaseData;
use toggled::store::{
    Action, Change, NewAudit, OverrideKind, Refusal, ReleasePage, ReleaseRecord, Store, release_subject,
};

type Opened = Pin<Box<dyn Future<Output = Box<dyn Store>> + Send>>;

/// How the suite reaches a backend: `open()` opens (or reopens) the same database.
trait Backend: Sync {
    fn open(&self) -> Opened;
}

struct Sqlite(String);

impl Backend for Sqlite {
    fn open(&self) -> Opened {
        let url = self.0.clone();
        Box::pin(async move { toggled::store::open(&url).await.expect("the store opens") })
    }
}

fn at(seconds: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_700_000_000 + seconds, 0).expect("a time")
}

fn change(flag: &str, actor: &str, seconds: i64, action: Action) -> Change {
    Change { flag: flag.into(), actor: actor.into(), reason: format!("{actor} at {seconds}"), at: at(seconds), action }
}

fn release(service: &str, version: &str, seconds: i64) -> ReleaseRecord {
    ReleaseRecord {
        id: 0,
        service: service.into(),
        version: version.into(),
        kind: "minor".into(),
        status: "planned".into(),
        scheduled_at: None,
        created_at: at(seconds),
        status_at: at(seconds),
        deployed_at: None,
        first_commit_at: at(seconds - 60),
        data: ReleaseData { notes: version.into(), flags: vec!["checkout".into()], ..ReleaseData::default() },
    }
}

async fn conformance(backend: &dyn Backend) {
    let store = backend.open().await;
    let fresh = store.load().await.expect("load");
    assert_eq!((fresh.version, fresh.overrides.len(), fresh.pauses.len()), (0, 0, 0));
    assert_eq!(store.version().await.expect("version"), 0);

    // First-seen times are insert-if-absent.
    store.record_first_seen(&["a".into(), "b".into()], at(1)).await.expect("first seen");
    store.record_first_seen(&["b".into(), "c".into()], at(2)).await.expect("first seen");
    let seen = store.load().await.expect("load").first_seen;
    assert_eq!((seen["a"], seen["b"], seen["c"]), (at(1), at(1), at(2)));

    // An override: written with its audit row and a version bump.
    let set = change("a", "ops", 10, Action::SetOverride(OverrideKind::Variant("blue".into())));
    let row = store.apply(&set).await.expect("apply").expect("written");
    assert_eq!((row.action.as_str(), row.before.is_none()), ("override_set", true));
    let state = store.load().await.expect("load");
    assert_eq!(state.version, 1);
    assert_eq!(state.overrides["a"].kind, OverrideKind::Variant("blue".into()));
    assert_eq!(state.overrides["a"].actor, "ops");

    // A rollback never replaces an override; nothing is written.
    let rollback = change("a", "auto-rollback", 11, Action::Rollback { trigger: "monitor".into() });
    assert_eq!(store.apply(&rollback).await.expect("apply"), Err(Refusal::AlreadyOverridden));
    assert_eq!(store.version().await.expect("version"), 1);

    // Replacing an override records what it replaced; clearing twice clears once.
    let kill = change("a", "ops", 12, Action::SetOverride(OverrideKind::Kill));
    let row = store.apply(&kill).await.expect("apply").expect("written");
    assert_eq!(row.before.as_ref().and_then(|b| b.get("kind")), Some(&json!("variant")));
    let clear = change("a", "ops", 13, Action::ClearOverride);
    assert!(store.apply(&clear).await.expect("apply").is_ok());
    assert_eq!(store.apply(&clear).await.expect("apply"), Err(Refusal::NoOverride));
    assert_eq!(store.version().await.expect("version"), 3);

    // Pauses accumulate paused time; conditional resumes respect who paused.
    let pause = change("g", "auto-pause", 20, Action::Pause);
    assert!(store.apply(&pause).await.expect("apply").is_ok());
    assert_eq!(store.apply(&pause).await.expect("apply"), Err(Refusal::AlreadyPaused));
    let not_mine = change("g", "alertmanager", 25, Action::Resume { only_paused_by: Some("alertmanager".into()) });
    assert_eq!(store.apply(&not_mine).await.expect("apply"), Err(Refusal::PausedBySomeoneElse));
    let resume = change("g", "ops", 50, Action::Resume { only_paused_by: None });
    assert!(store.apply(&resume).await.expect("apply").is_ok());
    let pauses = store.load().await.expect("load").pauses;
    assert_eq!((pauses["g"].paused_total_ms, pauses["g"].paused_since), (30_000, None));

    // Audit-only changes write a row and leave the version alone.
    let version = store.version().await.expect("version");
    let alert = change("g", "auto-alert", 60, Action::AlertTeam(json!({"alert": "x"})));
    assert_eq!(store.apply(&alert).await.expect("apply").map(|r| r.action), Ok("alert_team".to_owned()));
    assert_eq!(store.version().await.expect("version"), version);

    // The audit log: newest first, filtered by flag, limited.
    let all = store.audit(None, None, 100).await.expect("audit");
    assert_eq!(all.len(), 6, "{all:?}");
    assert!(all.windows(2).all(|w| w[0].id > w[1].id), "newest first");
    let g = store.audit(Some("g"), None, 2).await.expect("audit");
    let by_prefix = store.audit(None, Some("auto-"), 100).await.expect("audit");
    assert!(!by_prefix.is_empty() && by_prefix.iter().all(|e| e.entry.actor.starts_with("auto-")), "{by_prefix:?}");
    assert!(store.audit(Some("g"), Some("nobody"), 100).await.expect("audit").is_empty());
    assert_eq!(g.iter().map(|e| e.entry.action.as_str()).collect::<Vec<_>>(), ["alert_team", "rollout_resumed"]);

    // Last-evaluated times keep the later of old and new.
    let ms = |s: i64| at(s).timestamp_millis();
    store.touch_evaluated(&[("a".into(), ms(100)), ("b".into(), ms(50))]).await.expect("touch");
    store.touch_evaluated(&[("a".into(), ms(90)), ("b".into(), ms(60))]).await.expect("touch");
    let last = store.last_evaluated().await.expect("last");
    assert_eq!((last["a"], last["b"]), (at(100), at(60)));

    // Releases: ids assigned, newest first, per service, updated in place; each write carries
    // its audit row (the release's subject is filled in on creation).
    let planned = NewAudit {
        at: at(200),
        actor: "ops".into(),
        flag: String::new(),
        action: "release_planned".into(),
        before: None,
        after: None,
        reason: "planned".into(),
    };
    let last = store.last_audit_id().await.expect("last id");
    let one = store.create_release(&release("shop", "1.0.0", 200), &planned).await.expect("create");
    let two = store.create_release(&release("shop", "1.1.0", 300), &planned).await.expect("create");
    store.create_release(&release("cart", "0.1.0", 400), &planned).await.expect("create");
    assert!(two > one);
    let shop = store.releases(Some("shop")).await.expect("releases");
    assert_eq!(shop.iter().map(|r| r.version.as_str()).collect::<Vec<_>>(), ["1.1.0", "1.0.0"]);
    let mut r = store.release(one).await.expect("release").expect("found");
    assert_eq!((r.data.notes.as_str(), r.data.flags.as_slice()), ("1.0.0", ["checkout".to_owned()].as_slice()));
    r.status = "deployed".into();
    r.deployed_at = Some(at(500));
    let deployed = NewAudit { flag: release_subject(one), action: "release_status".into(), ..planned.clone() };
    store.update_release(&r, &deployed).await.expect("update");
    store
        .record(&NewAudit { flag: "release:web@1.0.0".into(), action: "release_conflict".into(), ..planned })
        .await
        .expect("record");
    // The outbox view: rows after an id, oldest first; cursors only move forward.
    let outbox = store.audit_after(last, 100).await.expect("audit after");
    let subjects: Vec<(&str, &str)> = outbox.iter().map(|e| (e.entry.flag.as_str(), e.entry.action.as_str())).collect();
    let (s1, s2, s3) = (release_subject(one), release_subject(two), release_subject(two + 1));
    assert_eq!(
        subjects,
        [
            (s1.as_str(), "release_planned"),
            (s2.as_str(), "release_planned"),
            (s3.as_str(), "release_planned"),
            (s1.as_str(), "release_status"),
            ("release:web@1.0.0", "release_conflict")
        ]
    );
    assert_eq!(store.last_audit_id().await.expect("last"), outbox[4].id);
    assert_eq!(store.count_audit("release_conflict", "release:web@", at(0)).await.expect("count"), 1);
    assert_eq!(store.count_audit("release_conflict", "release:shop@", at(0)).await.expect("count"), 0);
    assert_eq!(store.count_audit("release_planned", "release:", at(201)).await.expect("count"), 0);
    assert_eq!(store.notify_cursor("http://a").await.expect("cursor"), None);
    store.set_notify_cursor("http://a", outbox[3].id).await.expect("set");
    store.set_notify_cursor("http://a", outbox[1].id).await.expect("set");
    assert_eq!(store.notify_cursor("http://a").await.expect("cursor"), Some(outbox[3].id));
    // Leases: one holder at a time, renewed by its holder, taken over once expired.
    let ttl = chrono::Duration::seconds(3);
    assert!(store.try_lease("notify", "a", at(1000), ttl).await.expect("lease"));
    assert!(!store.try_lease("notify", "b", at(1001), ttl).await.expect("lease"), "a holds it");
    assert!(store.try_lease("notify", "a", at(1002), ttl).await.expect("lease"), "renewed to 1005");
    assert!(!store.try_lease("notify", "b", at(1004), ttl).await.expect("lease"));
    assert!(store.try_lease("notify", "b", at(1006), ttl).await.expect("lease"), "expired: taken over");
    assert!(!store.try_lease("notify", "a", at(1007), ttl).await.expect("lease"));
    assert!(store.try_lease("other", "a", at(1007), ttl).await.expect("lease"), "leases are per name");
    assert_eq!(store.release(one).await.expect("release").expect("found").deployed_at, Some(at(500)));
    assert!(store.release(9_999).await.expect("release").is_none());
    assert_eq!(store.releases(None).await.expect("releases").len(), 3);

    // A restart loses nothing, and the store is the same one (its identity is kept).
    let identity = store.identity().await.expect("identity");
    assert_eq!(identity.id.len(), 16, "{identity:?}");
    store.probe_write().await.expect("a write commits");
    drop(store);
    let store = backend.open().await;
    assert_eq!(store.identity().await.expect("identity"), identity);
    let state = store.load().await.expect("load");
    assert_eq!((state.version, state.overrides.len(), state.first_seen.len()), (version, 0, 3));
    assert_eq!(state.pauses["g"].paused_total_ms, 30_000);
    assert_eq!(store.audit(None, None, 100).await.expect("audit").len(), 11);
    assert_eq!(store.notify_cursor("http://a").await.expect("cursor"), Some(outbox[3].id));
    assert_eq!(store.releases(None).await.expect("releases").len(), 3);
    // Summaries: what lists and reports read, kept in step with every release write.
    let summaries = store.release_summaries(ReleasePage::default()).await.expect("summaries");
    let full = store.releases(None).await.expect("releases");
    assert_eq!(summaries.len(), full.len());
    for (s, r) in summaries.iter().zip(&full) {
        assert_eq!((s.id, &s.status, s.deployed_at, &s.brief), (r.id, &r.status, r.deployed_at, &r.data.brief()));
    }
    let page = store.release_summaries(ReleasePage { service: None, before: Some(full[0].id), limit: Some(1) }).await;
    assert_eq!(page.expect("a page").iter().map(|s| s.id).collect::<Vec<_>>(), [full[1].id]);
}

/// Two handles on one database (as two replicas) race 16 automatic rollbacks of one flag and 16
/// first-seen records: one rollback and one audit row win, first-seen keeps the first time.
async fn concurrent_writers(backend: &dyn Backend) {
    let stores: Vec<Arc<dyn Store>> = vec![Arc::from(backend.open().await), Arc::from(backend.open().await)];
    let mut tasks = Vec::new();
    for i in 0..16 {
        let store = stores[i % 2].clone();
        tasks.push(tokio::spawn(async move {
            let rollback = change("hot", "auto-rollback", i as i64, Action::Rollback { trigger: "monitor".into() });
            store.record_first_seen(&["hot".into()], at(1_000 + i as i64)).await.expect("first seen");
            store.apply(&rollback).await.expect("no store error under contention")
        }));
    }
    let mut written = 0;
    for t in tasks {
        match t.await.expect("task") {
            Ok(_) => written += 1,
            Err(r) => assert_eq!(r, Refusal::AlreadyOverridden),
        }
    }
    assert_eq!(written, 1, "one rollback");
    assert_eq!(stores[0].audit(Some("hot"), None, 100).await.expect("audit").len(), 1, "one audit row");
    let first = stores[1].load().await.expect("load").first_seen["hot"];
    assert!(first >= at(1_000) && first < at(1_016));
    assert_eq!(stores[1].load().await.expect("load").first_seen["hot"], first, "never moves");
}

#[test]
fn sqlite_conforms() {
    let dir = tempfile::tempdir().expect("temp dir");
    let backend = Sqlite(format!("sqlite://{}", dir.path().join("store.db").display()));
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    runtime.block_on(conformance(&backend));
    let backend = Sqlite(format!("sqlite://{}", dir.path().join("contended.db").display()));
    runtime.block_on(concurrent_writers(&backend));
}

struct Pg(String);

impl Backend for Pg {
    fn open(&self) -> Opened {
        let url = self.0.clone();
        Box::pin(async move { toggled::store::open(&url).await.expect("the store opens") })
    }
}

#[test]
fn postgres_conforms() {
    let cluster = crate::support::Postgres::start();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    runtime.block_on(conformance(&Pg(cluster.database("conformance"))));
    runtime.block_on(concurrent_writers(&Pg(cluster.database("contended"))));
}

/// The schema as the store's own runner left it before migrations were sqlx's: every file of
/// `migrations/<dialect>/` applied, recorded in `schema_migrations`, plus a kill switch.
fn old_runner_sql(dialect: &str) -> (String, usize) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations").join(dialect);
    let mut files: Vec<_> = std::fs::read_dir(&dir).expect("migrations").map(|e| e.expect("entry").path()).collect();
    files.sort();
    let mut sql =
        "CREATE TABLE schema_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL);\n".to_owned();
    for (i, file) in files.iter().enumerate() {
        sql += &std::fs::read_to_string(file).expect("a migration");
        sql += &format!(";\nINSERT INTO schema_migrations (version, applied_at) VALUES ({}, 1);\n", i + 1);
    }
    sql += "INSERT INTO overrides (flag, kind, value, reason, actor, created_at) VALUES ('checkout', 'kill', NULL, 'old', 'ops', 1);
            UPDATE state_version SET version = 7 WHERE id = 1;";
    (sql, files.len())
}

/// A store migrated by the old runner opens with its data, its migrations recorded as applied
/// (not run again), and takes changes; it opens again after that.
async fn old_store_opens(url: &str) {
    for _ in 0..2 {
        let store = toggled::store::open(url).await.expect("the old store opens");
        let state = store.load().await.expect("load");
        assert!(state.version >= 7, "the old change counter is kept: {}", state.version);
        assert_eq!(state.overrides["checkout"].kind, OverrideKind::Kill, "the old kill switch is kept");
        let done = store.apply(&change("search", "ops", 10, Action::SetOverride(OverrideKind::Enable))).await;
        assert!(done.expect("apply").is_ok());
    }
}

#[test]
fn a_store_the_old_migration_runner_made_opens_with_its_data() {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("old.db").display());
    let (sql, files) = old_runner_sql("sqlite");
    runtime.block_on(async {
        let options: sqlx::sqlite::SqliteConnectOptions = url.parse().expect("url");
        let pool = sqlx::SqlitePool::connect_with(options.create_if_missing(true)).await.expect("connect");
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(&pool).await.expect("old schema");
        old_store_opens(&url).await;
        let recorded: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations").fetch_one(&pool).await.expect("count");
        assert_eq!(recorded, i64::try_from(files).expect("count"), "every old migration recorded once");
    });

    let cluster = crate::support::Postgres::start();
    let url = cluster.database("old");
    let (sql, files) = old_runner_sql("postgres");
    runtime.block_on(async {
        let pool = sqlx::PgPool::connect(&url).await.expect("connect");
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(&pool).await.expect("old schema");
        old_store_opens(&url).await;
        let recorded: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations").fetch_one(&pool).await.expect("count");
        assert_eq!(recorded, i64::try_from(files).expect("count"), "every old migration recorded once");
    });
}
