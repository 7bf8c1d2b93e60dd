-- Which store this is: a random id made when the store was created (notification ids carry it,
-- so a store created anew never repeats an id a receiver has seen) and when.
CREATE TABLE store_identity (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    store_id TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL
);
INSERT INTO store_identity (id, store_id, created_at_ms)
VALUES (1, substr(md5(random()::text || clock_timestamp()::text), 1, 16),
        (extract(epoch FROM clock_timestamp()) * 1000)::bigint);
