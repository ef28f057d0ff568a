//! Stable error codes. The string form and the process exit code of each code never change meaning;
//! new codes may be added.

use serde::{Deserialize, Serialize};

/// A stable, machine-readable error code.
///
/// Every failure that a user or a script can act on has its own code and exit status. Internal failures
/// map to [`ErrorCode::Internal`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorCode {
    /// Something unexpected failed inside Kalit; the message says what.
    Internal,
    /// The command line was malformed (clap reports these itself with exit status 2).
    Usage,
    /// The PIN was wrong; the attempt was counted.
    WrongPin,
    /// Too many wrong PINs: the vault refuses every PIN operation until restored or reset.
    Locked,
    /// A PFX password or backup passphrase was wrong (or the file was damaged in a way that looks the same).
    WrongPassword,
    /// No such key, file or vault.
    NotFound,
    /// The key's policy forbids the operation (for example exporting a `--no-export` key).
    RefusedByPolicy,
    /// The input (file, certificate, subject, PFX, signature encoding...) is malformed or unsupported.
    InvalidInput,
    /// A signature or certificate chain did not verify.
    InvalidSignature,
    /// The person declined the request at the approval prompt.
    Declined,
    /// A stored vault file failed its integrity check or is from an unknown format version.
    Corrupt,
    /// The thing to create already exists (a vault, a label).
    AlreadyExists,
    /// The certificate does not belong to the key.
    KeyMismatch,
    /// A new PIN or passphrase does not meet the policy, or the two entries differ.
    WeakSecret,
    /// A reading or writing error of the operating system.
    Io,
    /// The PIN may not be tried yet: wait for the delay that follows failed attempts.
    TryLater,
    /// The certificate is outside its validity period, has the wrong key usage, or does not chain to a trusted CA.
    UntrustedCertificate,
    /// The login is registered to another person's certificate; prove possession of one of its certificates.
    LoginTaken,
    /// Too many requests from this address or for this login; retry after the delay the answer names.
    RateLimited,
    /// A nonce, enrolment code or QR is unknown, already used or expired; start again.
    Expired,
    /// A service (relay, RA) could not be reached or answered something that is not Kalit's API.
    Unavailable,
    /// The request's proof does not match a registered device or certificate.
    Unauthorized,
    /// The request or input is larger than the limit.
    TooLarge,
    /// The end-to-end channel between agent and phone failed: a handshake that did not match (altered QR,
    /// wrong key) or a tampered, replayed, reordered or dropped frame. Nothing was shown or signed; start a
    /// new session.
    Channel,
    /// Another request is already waiting (one pending session or signature at a time).
    Busy,
    /// A code this version of Kalit does not know, received from a newer peer (never sent; it reads as
    /// an internal failure of the peer, exit status 1).
    #[serde(other)]
    Unknown,
}

impl ErrorCode {
    /// Every code, in exit-status order (for documentation and tests).
    pub const ALL: [ErrorCode; 25] = [
        ErrorCode::Internal,
        ErrorCode::Usage,
        ErrorCode::WrongPin,
        ErrorCode::Locked,
        ErrorCode::WrongPassword,
        ErrorCode::NotFound,
        ErrorCode::RefusedByPolicy,
        ErrorCode::InvalidInput,
        ErrorCode::InvalidSignature,
        ErrorCode::Declined,
        ErrorCode::Corrupt,
        ErrorCode::AlreadyExists,
        ErrorCode::KeyMismatch,
        ErrorCode::WeakSecret,
        ErrorCode::Io,
        ErrorCode::TryLater,
        ErrorCode::UntrustedCertificate,
        ErrorCode::LoginTaken,
        ErrorCode::RateLimited,
        ErrorCode::Expired,
        ErrorCode::Unavailable,
        ErrorCode::Unauthorized,
        ErrorCode::TooLarge,
        ErrorCode::Channel,
        ErrorCode::Busy,
    ];

    /// The stable string form, as printed in `error[CODE]` and in JSON.
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorCode::Internal => "internal",
            ErrorCode::Usage => "usage",
            ErrorCode::WrongPin => "wrong_pin",
            ErrorCode::Locked => "locked",
            ErrorCode::WrongPassword => "wrong_password",
            ErrorCode::NotFound => "not_found",
            ErrorCode::RefusedByPolicy => "refused_by_policy",
            ErrorCode::InvalidInput => "invalid_input",
            ErrorCode::InvalidSignature => "invalid_signature",
            ErrorCode::Declined => "declined",
            ErrorCode::Corrupt => "corrupt",
            ErrorCode::AlreadyExists => "already_exists",
            ErrorCode::KeyMismatch => "key_mismatch",
            ErrorCode::WeakSecret => "weak_secret",
            ErrorCode::Io => "io",
            ErrorCode::TryLater => "try_later",
            ErrorCode::UntrustedCertificate => "untrusted_certificate",
            ErrorCode::LoginTaken => "login_taken",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::Expired => "expired",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::TooLarge => "too_large",
            ErrorCode::Channel => "channel",
            ErrorCode::Busy => "busy",
            ErrorCode::Unknown => "unknown",
        }
    }

    /// The process exit status of `kalit` for this code. 0 is success; 2 is clap's usage error.
    pub const fn exit_code(self) -> i32 {
        match self {
            ErrorCode::Internal => 1,
            ErrorCode::Usage => 2,
            ErrorCode::WrongPin => 3,
            ErrorCode::Locked => 4,
            ErrorCode::WrongPassword => 5,
            ErrorCode::NotFound => 6,
            ErrorCode::RefusedByPolicy => 7,
            ErrorCode::InvalidInput => 8,
            ErrorCode::InvalidSignature => 9,
            ErrorCode::Declined => 10,
            ErrorCode::Corrupt => 11,
            ErrorCode::AlreadyExists => 12,
            ErrorCode::KeyMismatch => 13,
            ErrorCode::WeakSecret => 14,
            ErrorCode::Io => 15,
            ErrorCode::TryLater => 16,
            ErrorCode::UntrustedCertificate => 17,
            ErrorCode::LoginTaken => 18,
            ErrorCode::RateLimited => 19,
            ErrorCode::Expired => 20,
            ErrorCode::Unavailable => 21,
            ErrorCode::Unauthorized => 22,
            ErrorCode::TooLarge => 23,
            ErrorCode::Channel => 24,
            ErrorCode::Busy => 25,
            ErrorCode::Unknown => 1,
        }
    }

    /// The HTTP status the relay and the RA answer with for this code.
    pub const fn http_status(self) -> u16 {
        match self {
            ErrorCode::Internal | ErrorCode::Io | ErrorCode::Corrupt | ErrorCode::Unknown => 500,
            ErrorCode::Usage
            | ErrorCode::InvalidInput
            | ErrorCode::WeakSecret
            | ErrorCode::KeyMismatch
            | ErrorCode::InvalidSignature => 400,
            ErrorCode::WrongPin | ErrorCode::WrongPassword | ErrorCode::Unauthorized => 403,
            ErrorCode::UntrustedCertificate | ErrorCode::RefusedByPolicy | ErrorCode::Declined => 403,
            ErrorCode::Locked => 423,
            ErrorCode::NotFound => 404,
            ErrorCode::AlreadyExists | ErrorCode::LoginTaken | ErrorCode::Busy => 409,
            ErrorCode::TryLater | ErrorCode::RateLimited => 429,
            ErrorCode::Expired => 410,
            ErrorCode::Unavailable => 503,
            ErrorCode::Channel => 502,
            ErrorCode::TooLarge => 413,
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The JSON body of every error answer of the relay, the RA and the agent: `{"error": {"code": ..., "message": ...}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ApiError {
    /// The error.
    pub error: ErrorBody,
}

/// The JSON shape of an error printed by `kalit ... --json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ErrorBody {
    /// Stable code.
    pub code: ErrorCode,
    /// Human-readable message; never contains secrets.
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn codes_and_exit_statuses_are_distinct_and_round_trip() {
        let strs: HashSet<_> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
        let exits: HashSet<_> = ErrorCode::ALL.iter().map(|c| c.exit_code()).collect();
        assert_eq!(strs.len(), ErrorCode::ALL.len());
        assert_eq!(exits.len(), ErrorCode::ALL.len());
        assert!(!exits.contains(&0));
        for c in ErrorCode::ALL {
            let json = serde_json::to_string(&c).unwrap();
            assert_eq!(json, format!("\"{}\"", c.as_str()));
            let back: ErrorCode = serde_json::from_str(&json).unwrap();
            assert_eq!(back, c);
        }
    }
}
