-- Token buckets shared by relay nodes on one database. A SQLite relay is one node and keeps its buckets
-- in memory; the table exists so that both backends have the same schema versions.
CREATE TABLE rate_buckets (
    key     TEXT PRIMARY KEY,
    tokens  DOUBLE PRECISION NOT NULL,
    at_ms   BIGINT NOT NULL,
    allowed BOOLEAN NOT NULL
);
CREATE INDEX rate_buckets_at ON rate_buckets (at_ms);
