//! What `kalit vault list|show|history --json` print.

use serde::{Deserialize, Serialize};

/// A key as shown to people and scripts. Public information only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct KeyInfo {
    /// Unique, human-chosen name of the key in this vault.
    pub label: String,
    /// Internal identifier (hex), stable for the life of the key.
    pub id: String,
    /// `rsa-2048`, `rsa-3072`, `rsa-4096`, `p-256` or `ed25519`.
    pub algorithm: String,
    /// SHA-256 of the DER SubjectPublicKeyInfo, lowercase hex.
    pub fingerprint: String,
    /// How the key came to be: `generated`, `imported` or `restored`.
    pub origin: String,
    /// RFC 3339 time of creation.
    pub created: String,
    /// RFC 3339 time of the last signature, if any.
    pub last_used: Option<String>,
    /// Policy flags of the key.
    pub policy: KeyPolicy,
    /// The installed certificate, if any.
    pub certificate: Option<CertInfo>,
    /// Number of further certificates (the chain) stored after the key's own.
    pub chain_len: usize,
}

/// Per-key policy. Flags are fixed when the key is created.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct KeyPolicy {
    /// The key may never leave the vault: export and backup refuse it.
    pub no_export: bool,
}

/// A summary of an X.509 certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct CertInfo {
    /// RFC 4514 subject.
    pub subject: String,
    /// RFC 4514 issuer.
    pub issuer: String,
    /// Serial number, lowercase hex.
    pub serial: String,
    /// RFC 3339 start of validity.
    pub not_before: String,
    /// RFC 3339 end of validity.
    pub not_after: String,
    /// SHA-256 of the certificate DER, lowercase hex.
    pub sha256: String,
}

/// One signature made by the vault.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct HistoryEntry {
    /// RFC 3339 time of signing.
    pub time: String,
    /// Label of the key at the time of signing.
    pub key: String,
    /// Public-key fingerprint of the key.
    pub fingerprint: String,
    /// Name of the signed document as shown to the person.
    pub document: String,
    /// SHA-256 of the document, lowercase hex.
    pub sha256: String,
    /// Size of the document in bytes.
    pub size: u64,
    /// `raw`, `raw-pss` or `cms`.
    pub format: String,
    /// The web origin that asked, when the request came through an agent.
    #[serde(default)]
    pub origin: Option<String>,
}
