-- Short leases: which replica does a singleton job (notification delivery) right now.
CREATE TABLE leases (name TEXT PRIMARY KEY, holder TEXT NOT NULL, until_ms BIGINT NOT NULL);
