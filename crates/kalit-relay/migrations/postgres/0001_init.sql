-- Kalit relay schema, PostgreSQL. Times are Unix milliseconds; binary values are BYTEA.
CREATE TABLE logins (
    login       TEXT PRIMARY KEY NOT NULL,
    created_ms  BIGINT NOT NULL
);
CREATE TABLE certificates (
    login       TEXT NOT NULL REFERENCES logins(login) ON DELETE CASCADE,
    fingerprint TEXT NOT NULL,
    subject     TEXT NOT NULL,
    cert_der    BYTEA NOT NULL,
    created_ms  BIGINT NOT NULL,
    PRIMARY KEY (login, fingerprint)
);
CREATE TABLE devices (
    device_id        TEXT PRIMARY KEY NOT NULL,
    login            TEXT NOT NULL REFERENCES logins(login) ON DELETE CASCADE,
    device_key       BYTEA NOT NULL,
    name             TEXT NOT NULL,
    cert_fingerprint TEXT NOT NULL,
    created_ms       BIGINT NOT NULL
);
CREATE INDEX devices_by_login ON devices(login);
CREATE TABLE nonces (
    nonce       BYTEA PRIMARY KEY NOT NULL,
    expires_ms  BIGINT NOT NULL
);
CREATE INDEX nonces_by_expiry ON nonces(expires_ms);
CREATE TABLE audit (
    id      BIGSERIAL PRIMARY KEY,
    at_ms   BIGINT NOT NULL,
    event   TEXT NOT NULL,
    login   TEXT NOT NULL,
    detail  TEXT NOT NULL
);
