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
    /// The trusted time over the signature (an RFC 3161 signature timestamp: CAdES-T, PAdES-B-T),
    /// when the signature carries one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<TimestampReport>,
}

/// A verified RFC 3161 timestamp.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct TimestampReport {
    /// The time the TSA vouches for, RFC 3339.
    pub time: String,
    /// The TSA's name (its certificate's subject).
    pub tsa: String,
    /// The token's serial number, hex.
    pub serial: String,
    /// The TSA's policy OID.
    pub policy: String,
    /// Whether the TSA's chain was checked (at the token's time), and its result.
    pub chain: Option<ChainReport>,
}

/// Result of checking a certificate chain against trust anchors.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ChainReport {
    /// True when a path to an anchor was found and every certificate on it is valid now.
    pub trusted: bool,
    /// Subjects from the signer up to the anchor.
    pub path: Vec<String>,
    /// What the revocation data said about the signer, when some was given (a CRL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revocation: Option<String>,
}

/// What `kalit verify --file doc.pdf --json` prints: every signature in a PDF.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct PdfVerifyReport {
    /// True only when the PDF has at least one signature and every one is valid.
    pub valid: bool,
    /// Each signature, in the order of the form's fields.
    pub signatures: Vec<PdfSignatureReport>,
}

/// One signature (or document timestamp) of a PDF.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct PdfSignatureReport {
    /// The signature field's name.
    pub field: String,
    /// `signature` or `document-timestamp`.
    pub kind: String,
    /// The PAdES level reached: `B-B`, `B-T` (a signature timestamp); `none` for what is not PAdES.
    pub level: String,
    /// True when the signature verifies over the bytes it covers, the chain is trusted (when anchors
    /// were given), and nothing but signatures and validation data was added after it.
    pub valid: bool,
    /// Why it is not valid.
    pub reason: Option<String>,
    /// The signer's certificate (for a document timestamp: the TSA's).
    pub signer: Option<crate::vault::CertInfo>,
    /// The signature scheme that verified.
    pub scheme: Option<String>,
    /// The signing time the signer's device claimed (`/M`), as written in the PDF.
    pub claimed_time: Option<String>,
    /// `/Reason`, as written in the PDF (text from the signer; show it as text).
    pub signer_reason: Option<String>,
    /// The trusted time over the signature, when there is one.
    pub timestamp: Option<TimestampReport>,
    /// The chain check, when trust anchors were given.
    pub chain: Option<ChainReport>,
    /// Whether the signature covers the whole file.
    pub covers_whole_document: bool,
    /// Bytes added to the file after this signature's revision.
    pub bytes_after: u64,
    /// What the later revisions changed beyond signatures and validation data, when they did.
    pub changed_after: Option<String>,
}
