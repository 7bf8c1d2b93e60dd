-- What lists and reports read of a release (flags, dependencies, feature counts, status
-- reason), in a table of its own so that reading it never walks a release's data (commits,
-- notes, plan). Releases written before have none: readers derive it from `data` then.
CREATE TABLE release_summaries (id BIGINT PRIMARY KEY, summary TEXT NOT NULL);
