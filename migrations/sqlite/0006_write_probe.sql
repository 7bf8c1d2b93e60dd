-- Where the store checks that a write can commit again after one failed (a full disk): a row
-- about the size of a large change is written and removed.
CREATE TABLE write_probe (id INTEGER PRIMARY KEY CHECK (id = 1), pad BLOB NOT NULL);
