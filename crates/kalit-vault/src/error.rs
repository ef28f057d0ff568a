//! Vault errors, each with a stable [`ErrorCode`].

use kalit_core::CoreError;
use kalit_proto::ErrorCode;

/// What can go wrong in the vault. Messages never contain a PIN, password or key bytes.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VaultError {
    /// The PIN was wrong. The attempt was counted.
    #[error("wrong PIN; {remaining} attempt(s) left before the vault locks")]
    WrongPin {
        /// Attempts left before lockout.
        remaining: u32,
    },
    /// Too many wrong PINs.
    #[error(
        "the vault is locked after {failures} wrong PINs; restore it from a backup (kalit vault restore) or reset it (kalit vault reset, which destroys the keys)"
    )]
    Locked {
        /// Failed attempts recorded.
        failures: u32,
    },
    /// The PIN may not be tried yet.
    #[error("too many wrong PINs: wait {wait_secs} s before the next attempt")]
    TryLater {
        /// Seconds to wait.
        wait_secs: u64,
    },
    /// Wrong PFX password or backup passphrase.
    #[error("{0}")]
    WrongPassword(String),
    /// No such vault, key or file.
    #[error("{0}")]
    NotFound(String),
    /// The key's policy forbids this.
    #[error("{0}")]
    Policy(String),
    /// A vault already exists, or a label is taken.
    #[error("{0}")]
    AlreadyExists(String),
    /// A new PIN or passphrase is too weak, or the two entries differ.
    #[error("{0}")]
    WeakSecret(String),
    /// A stored file failed its integrity check or has an unknown format.
    #[error("{0}")]
    Corrupt(String),
    /// Errors from the core (bad input, key mismatch, bad signature...).
    #[error(transparent)]
    Core(#[from] CoreError),
    /// Operating-system I/O.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// Something that should not happen.
    #[error("internal error: {0}")]
    Internal(String),
}

impl VaultError {
    /// The stable code.
    pub fn code(&self) -> ErrorCode {
        match self {
            VaultError::WrongPin { .. } => ErrorCode::WrongPin,
            VaultError::Locked { .. } => ErrorCode::Locked,
            VaultError::TryLater { .. } => ErrorCode::TryLater,
            VaultError::WrongPassword(_) => ErrorCode::WrongPassword,
            VaultError::NotFound(_) => ErrorCode::NotFound,
            VaultError::Policy(_) => ErrorCode::RefusedByPolicy,
            VaultError::AlreadyExists(_) => ErrorCode::AlreadyExists,
            VaultError::WeakSecret(_) => ErrorCode::WeakSecret,
            VaultError::Corrupt(_) => ErrorCode::Corrupt,
            VaultError::Core(e) => e.code(),
            VaultError::Io { .. } => ErrorCode::Io,
            VaultError::Internal(_) => ErrorCode::Internal,
        }
    }

    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> VaultError {
        let context = context.into();
        move |source| VaultError::Io { context, source }
    }

    pub(crate) fn corrupt(msg: impl Into<String>) -> Self {
        VaultError::Corrupt(msg.into())
    }
}
