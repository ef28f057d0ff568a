-- Kalit RA schema (SQLite). Times are Unix milliseconds.
CREATE TABLE enrolments (
    code_hash   TEXT PRIMARY KEY NOT NULL,
    subject     TEXT NOT NULL,
    created_ms  BIGINT NOT NULL,
    expires_ms  BIGINT NOT NULL,
    used_ms     BIGINT,
    serial      TEXT
);
CREATE TABLE issued (
    serial       TEXT PRIMARY KEY NOT NULL,
    subject      TEXT NOT NULL,
    spki_sha256  TEXT NOT NULL,
    cert_der     BLOB NOT NULL,
    issued_ms    BIGINT NOT NULL,
    not_after_ms BIGINT NOT NULL,
    revoked_ms   BIGINT,
    reason       TEXT
);
