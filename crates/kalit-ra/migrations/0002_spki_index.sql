-- Issuance refuses a key certified to another subject: look keys up by their SPKI hash.
CREATE INDEX issued_by_spki ON issued(spki_sha256);
