-- Certificates a device of the login asked to detach; they leave the login (with their devices) at
-- effective_ms unless a device of that certificate cancels first.
CREATE TABLE detachments (
    login        TEXT NOT NULL REFERENCES logins(login) ON DELETE CASCADE,
    fingerprint  TEXT NOT NULL,
    requested_by TEXT NOT NULL,
    requested_ms BIGINT NOT NULL,
    effective_ms BIGINT NOT NULL,
    PRIMARY KEY (login, fingerprint)
);
