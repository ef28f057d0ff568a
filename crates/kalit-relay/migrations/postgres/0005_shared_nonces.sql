-- Nonces prove themselves (an HMAC tag under a key every node reads from relay_secrets), so issuing one
-- writes nothing; a nonce becomes a row of used_nonces when a request consumes it, until it expires.
-- The nonces table of 0001 is no longer written; it stays for nodes of the previous version during a
-- rolling upgrade, and may be dropped once every node runs this one.
CREATE TABLE relay_secrets (
    name TEXT PRIMARY KEY,
    secret BYTEA NOT NULL
);

CREATE TABLE used_nonces (
    nonce BYTEA PRIMARY KEY,
    expires_ms BIGINT NOT NULL
);

CREATE INDEX used_nonces_expires ON used_nonces (expires_ms);
