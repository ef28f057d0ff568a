//! What `kalit verify --json` prints.

use serde::{Deserialize, Serialize};

use crate::vault::CertInfo;

/// Result of verifying a signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct VerifyReport {
    /// True only if the signature (and, when asked, the chain) verified.
    pub valid: bool,
    /// `raw` or `cms`.
    pub format: String,
    /// The signature scheme that verified, e.g. `rsa-pkcs1-sha256`, `ecdsa-p256-sha256`, `ed25519`.
    pub scheme: Option<String>,
    /// The signer's certificate, when known.
    pub signer: Option<CertInfo>,
    /// Signing time from the CMS signed attributes, RFC 3339.
    pub signing_time: Option<String>,
    /// Whether the chain to a trusted CA was checked, and its result.
    pub chain: Option<ChainReport>,
    /// Why verification failed, when it did.
    pub reason: Option<String>,
}

/// Result of checking a certificate chain against trust anchors.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ChainReport {
    /// True when a path to an anchor was found and every certificate on it is valid now.
    pub trusted: bool,
    /// Subjects from the signer up to the anchor.
    pub path: Vec<String>,
}
