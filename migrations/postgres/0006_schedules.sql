-- Scheduled changes: an override set or cleared, a pause or resume, to run at `at` (ms). The
-- change runs in the same transaction that marks its row `done`, so it runs once whichever
-- replica gets there first.
CREATE TABLE schedules (
    id BIGSERIAL PRIMARY KEY,
    flag TEXT NOT NULL,
    at BIGINT NOT NULL,
    kind TEXT NOT NULL,
    value TEXT,
    reason TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    status TEXT NOT NULL,
    result TEXT,
    ran_at BIGINT
);
CREATE INDEX schedules_due ON schedules (status, at);
