-- What lists and reports read of a release: its columns and a small JSON summary (flags,
-- dependencies, feature counts, status reason), in a table of its own so that reading 10,000 of
-- them never touches a release's data (commits, notes, plan). Releases stored before are
-- summarised when the store opens.
CREATE TABLE release_summaries (
    id INTEGER PRIMARY KEY,
    service TEXT NOT NULL,
    version TEXT NOT NULL,
    kind TEXT NOT NULL,
    status TEXT NOT NULL,
    scheduled_at INTEGER,
    created_at INTEGER NOT NULL,
    status_at INTEGER NOT NULL,
    deployed_at INTEGER,
    first_commit_at INTEGER NOT NULL,
    summary TEXT NOT NULL
);
CREATE INDEX release_summaries_by_service ON release_summaries (service, id);
