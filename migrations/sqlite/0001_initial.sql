CREATE TABLE overrides (
    flag TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    value TEXT,
    reason TEXT NOT NULL,
    actor TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE TABLE audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at INTEGER NOT NULL,
    actor TEXT NOT NULL,
    flag TEXT NOT NULL,
    action TEXT NOT NULL,
    before TEXT,
    after TEXT,
    reason TEXT NOT NULL
);
CREATE INDEX audit_by_flag ON audit (flag, id);
CREATE TABLE flag_first_seen (flag TEXT PRIMARY KEY, first_seen INTEGER NOT NULL);
CREATE TABLE rollout_pauses (
    flag TEXT PRIMARY KEY,
    paused_total_ms INTEGER NOT NULL,
    paused_since INTEGER
);
CREATE TABLE last_evaluated (flag TEXT PRIMARY KEY, at INTEGER NOT NULL);
CREATE TABLE state_version (id INTEGER PRIMARY KEY CHECK (id = 1), version INTEGER NOT NULL);
INSERT INTO state_version (id, version) VALUES (1, 0);
