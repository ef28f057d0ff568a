-- Token buckets shared by every relay node on this database (per-address and per-login limits).
CREATE TABLE rate_buckets (
    key     TEXT PRIMARY KEY,
    tokens  DOUBLE PRECISION NOT NULL,
    at_ms   BIGINT NOT NULL,
    allowed BOOLEAN NOT NULL
);
CREATE INDEX rate_buckets_at ON rate_buckets (at_ms);
