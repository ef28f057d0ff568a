//! The phone's key vault (the paper's module 2, C_m): key generation, storage encrypted under a PIN,
//! PFX import/export, CSR and certificate install, backup/restore, destroy, PIN attempt counting and
//! lockout, and the history of every signature.
//!
//! Architecture invariants:
//! - Private keys leave this crate only inside an encrypted PFX or backup the person asked for; callers
//!   get [`KeyInfo`](kalit_proto::vault::KeyInfo) and labels (handles), never key bytes.
//! - Every write is atomic (temp file, fsync, rename, fsync directory) so a crash leaves the old or the
//!   new state; files are 0600, directories 0700.
//! - The PIN attempt counter is written to disk *before* each attempt.
//! - No PIN, password, key or document bytes in any error message or log line.

mod backup;
mod computers;
mod crypto;
mod devices;
mod error;
mod pfx;
mod storage;
mod vault;

pub use backup::{BACKUP_FORMAT, BackupSummary};
pub use computers::{KnownComputer, MAX_COMPUTER_NAME, check_computer_name};
pub use crypto::{KdfParams, KeyWrap, SealedBox, SoftwareKeyWrap, check_key_wrap};
pub use devices::{DeviceRecord, PendingDevice};
pub use error::VaultError;
pub use vault::{
    DamagedKey, Digested, DocumentToSign, PinPolicy, PinStatus, SignFormat, SignOutcome, Unlocked, Vault,
    check_new_pin, restore,
};

/// Minimum PIN length (characters).
pub const MIN_PIN_LEN: usize = 6;
/// Minimum PFX export password and backup passphrase length (characters).
pub const MIN_PASSWORD_LEN: usize = 8;
