-- Scheduled changes: an override set or cleared, a pause or resume, to run at `at` (ms). The
-- change runs in the same transaction that marks its row `done`, so it runs once whichever
-- replica gets there first.
CREATE TABLE schedules (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    flag TEXT NOT NULL,
    at INTEGER NOT NULL,
    kind TEXT NOT NULL,
    value TEXT,
    reason TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    status TEXT NOT NULL,
    result TEXT,
    ran_at INTEGER
);
CREATE INDEX schedules_due ON schedules (status, at);
