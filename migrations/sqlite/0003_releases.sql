CREATE TABLE releases (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    service TEXT NOT NULL,
    version TEXT NOT NULL,
    kind TEXT NOT NULL,
    status TEXT NOT NULL,
    scheduled_at INTEGER,
    created_at INTEGER NOT NULL,
    status_at INTEGER NOT NULL,
    deployed_at INTEGER,
    first_commit_at INTEGER NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX releases_by_service ON releases (service, id);
