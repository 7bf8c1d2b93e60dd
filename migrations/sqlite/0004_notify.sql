-- Where each notification URL's delivery stands: the last audit row it acknowledged.
CREATE TABLE notify_cursors (url TEXT PRIMARY KEY, last_id INTEGER NOT NULL);
