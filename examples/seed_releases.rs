//! Seeds a store with N deployed releases of C commits each, for `benches/releases.sh`
//! (`cargo run --release --example seed_releases sqlite://PATH N C`).

use toggled::release::record::{ReleaseData, StoredCommit};
use toggled::store::{NewAudit, ReleaseRecord};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, url, n, c] = args.as_slice() else {
        eprintln!("usage: seed_releases DATABASE_URL RELEASES COMMITS");
        std::process::exit(2);
    };
    let (n, c): (u32, u32) = (n.parse().expect("a number of releases"), c.parse().expect("a number of commits"));
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
    runtime.block_on(async {
        let store = toggled::store::open(url).await.expect("the store opens");
        let at = chrono::Utc::now() - chrono::Duration::days(1);
        for i in 0..n {
            // About 1 KB a commit, as a commit with a body and a footer is.
            let commits = (0..c)
                .map(|k| StoredCommit {
                    message: format!(
                        "feat(area-{k}): change {k} of release {i}\n\n{}\n\nRefs #{k}",
                        "body ".repeat(190)
                    ),
                    sha: Some(format!("{i:08x}{k:08x}")),
                    date: Some(at),
                })
                .collect();
            let data = ReleaseData { commits, flags: vec!["new_payment_flow".into()], ..ReleaseData::default() };
            let record = ReleaseRecord {
                id: 0,
                service: format!("svc-{}", i % 100),
                version: format!("1.{}.0", i / 100),
                kind: "minor".into(),
                status: "deployed".into(),
                scheduled_at: None,
                created_at: at,
                status_at: at,
                deployed_at: Some(at),
                first_commit_at: at,
                data,
            };
            let audit = NewAudit {
                at,
                actor: "seed".into(),
                flag: String::new(),
                action: "release_planned".into(),
                before: None,
                after: None,
                reason: String::new(),
            };
            store.create_release(&record, &audit).await.expect("stored");
        }
    });
}
