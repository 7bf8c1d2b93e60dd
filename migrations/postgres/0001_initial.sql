CREATE TABLE overrides (
    flag TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    value TEXT,
    reason TEXT NOT NULL,
    actor TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE TABLE audit (
    id BIGSERIAL PRIMARY KEY,
    at BIGINT NOT NULL,
    actor TEXT NOT NULL,
    flag TEXT NOT NULL,
    action TEXT NOT NULL,
    before TEXT,
    after TEXT,
    reason TEXT NOT NULL
);
CREATE INDEX audit_by_flag ON audit (flag, id);
CREATE TABLE flag_first_seen (flag TEXT PRIMARY KEY, first_seen BIGINT NOT NULL);
CREATE TABLE rollout_pauses (
    flag TEXT PRIMARY KEY,
    paused_total_ms BIGINT NOT NULL,
    paused_since BIGINT,
    paused_by TEXT
);
CREATE TABLE last_evaluated (flag TEXT PRIMARY KEY, at BIGINT NOT NULL);
CREATE TABLE state_version (id INTEGER PRIMARY KEY CHECK (id = 1), version BIGINT NOT NULL);
INSERT INTO state_version (id, version) VALUES (1, 0);
CREATE TABLE releases (
    id BIGSERIAL PRIMARY KEY,
    service TEXT NOT NULL,
    version TEXT NOT NULL,
    kind TEXT NOT NULL,
    status TEXT NOT NULL,
    scheduled_at BIGINT,
    created_at BIGINT NOT NULL,
    status_at BIGINT NOT NULL,
    deployed_at BIGINT,
    first_commit_at BIGINT NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX releases_by_service ON releases (service, id);
