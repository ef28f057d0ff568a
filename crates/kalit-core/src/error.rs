//! Errors of the core crate.

use kalit_proto::ErrorCode;

/// What can go wrong in the core. Messages never contain secret material.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CoreError {
    /// Input bytes or text could not be parsed or are not acceptable.
    #[error("{0}")]
    InvalidInput(String),
    /// The key or signature algorithm is not supported.
    #[error("unsupported algorithm: {0}")]
    Unsupported(String),
    /// A certificate's public key is not the key it was paired with.
    #[error("{0}")]
    KeyMismatch(String),
    /// A signature does not verify.
    #[error("{0}")]
    InvalidSignature(String),
    /// A certificate is expired, not yet valid, has the wrong usage or does not chain to a trust anchor.
    #[error("{0}")]
    Untrusted(String),
    /// Stored data failed an integrity check or carries impossible parameters.
    #[error("{0}")]
    Corrupt(String),
    /// A QR or session is past its lifetime.
    #[error("{0}")]
    Expired(String),
    /// The end-to-end channel failed (handshake mismatch, tampered or out-of-order frame).
    #[error("{0}")]
    Channel(String),
    /// The input is well-formed but Kalit will not sign or accept it (a document that is a protocol
    /// statement or a structure whose signature means something elsewhere).
    #[error("{0}")]
    Refused(String),
    /// Data the operation needs cannot be had (a certificate that names no CRL for long-term validation).
    #[error("{0}")]
    Unavailable(String),
    /// A library failed in a way that input cannot explain.
    #[error("internal error: {0}")]
    Internal(String),
    /// The cryptographic library reported a failure that input cannot explain.
    #[error("cryptographic operation failed: {0}")]
    Crypto(&'static str),
}

impl CoreError {
    /// The stable code of this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            CoreError::InvalidInput(_) | CoreError::Unsupported(_) => ErrorCode::InvalidInput,
            CoreError::KeyMismatch(_) => ErrorCode::KeyMismatch,
            CoreError::InvalidSignature(_) => ErrorCode::InvalidSignature,
            CoreError::Untrusted(_) => ErrorCode::UntrustedCertificate,
            CoreError::Corrupt(_) => ErrorCode::Corrupt,
            CoreError::Expired(_) => ErrorCode::Expired,
            CoreError::Channel(_) => ErrorCode::Channel,
            CoreError::Refused(_) => ErrorCode::RefusedByPolicy,
            CoreError::Unavailable(_) => ErrorCode::Unavailable,
            CoreError::Crypto(_) | CoreError::Internal(_) => ErrorCode::Internal,
        }
    }

    pub(crate) fn invalid(msg: impl Into<String>) -> Self {
        CoreError::InvalidInput(msg.into())
    }
}

/// Why a session (or one request in it) failed: a stable code and a message for people. Messages never
/// hold secrets; strings that came from the other side are escaped by the display rules before they get
/// here.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Failure {
    /// Stable code.
    pub code: ErrorCode,
    /// For people.
    pub message: String,
}

impl Failure {
    /// A failure with `code`.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Failure {
        Failure { code, message: message.into() }
    }

    #[cfg(feature = "session")]
    pub(crate) fn channel(message: impl Into<String>) -> Failure {
        Failure::new(ErrorCode::Channel, message)
    }
}

impl From<CoreError> for Failure {
    fn from(e: CoreError) -> Failure {
        Failure { code: e.code(), message: e.to_string() }
    }
}
