//! The Registration Authority's HTTP API.

use serde::{Deserialize, Serialize};

/// `POST /v1/certificates`: a CSR and the enrolment code the operator handed to the person.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct IssueRequest {
    /// The one-time enrolment code (dashes and case do not matter).
    pub code: String,
    /// The PKCS#10 request, PEM. Only its public key and signature are used: the subject comes from the
    /// RA's record and the profile is fixed.
    pub csr: String,
}

/// The issued certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct IssueResponse {
    /// Serial number, hex.
    pub serial: String,
    /// Subject from the enrolment record.
    pub subject: String,
    /// Leaf, then the CA chain up to the root, PEM.
    pub chain: String,
    /// Unix time (seconds) the certificate expires.
    pub not_after: i64,
}

/// `kalit ra enrol --json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct EnrolmentCode {
    /// The code.
    pub code: String,
}
