//! Encrypted backups: one file with every exportable key, its certificates, the PIN policy and the
//! signature history, sealed with AES-256-GCM under an Argon2id key from a backup passphrase.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use kalit_core::{SecretBytes, SecretString};
use kalit_proto::vault::HistoryEntry;
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::crypto::{self, KdfParams, SealedBox, random};
use crate::storage::PinPolicyFile;
use crate::vault::{Unlocked, now_rfc3339};
use crate::{MIN_PASSWORD_LEN, VaultError};

/// Format tag of backup files.
pub const BACKUP_FORMAT: &str = "kalit-backup/1";
/// Largest backup accepted.
pub const MAX_BACKUP_LEN: usize = 64 << 20;

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct BackupHeader {
    format: String,
    kdf: KdfParams,
    salt: String,
    created: String,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct BackupFile {
    header: String,
    payload: SealedBox,
}

#[derive(Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
#[serde(deny_unknown_fields)]
pub(crate) struct BackupKey {
    label: String,
    no_export: bool,
    origin: String,
    created: String,
    pkcs8: String,
    certificates: Vec<String>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BackupContents {
    pub policy: PinPolicyFile,
    keys: Vec<BackupKey>,
    history: Vec<HistoryEntry>,
}

/// What a backup or restore covered.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BackupSummary {
    /// Labels of the keys in the backup.
    pub keys: Vec<String>,
    /// `--no-export` keys left out (they never leave the vault).
    pub skipped_no_export: Vec<String>,
    /// Key files that failed their integrity check and were left out.
    pub skipped_damaged: Vec<String>,
    /// History entries carried.
    pub history_entries: usize,
}

/// Checks a new backup passphrase or PFX password.
pub fn check_new_password(p: &SecretString, what: &str) -> Result<(), VaultError> {
    if p.char_count() < MIN_PASSWORD_LEN {
        return Err(VaultError::WeakSecret(format!("the {what} must have at least {MIN_PASSWORD_LEN} characters")));
    }
    Ok(())
}

impl Unlocked<'_> {
    /// Makes an encrypted backup of every exportable key.
    pub fn backup(&self, passphrase: &SecretString) -> Result<(Vec<u8>, BackupSummary), VaultError> {
        check_new_password(passphrase, "backup passphrase")?;
        let vault = self.vault();
        let mut summary = BackupSummary::default();
        let mut keys = Vec::new();
        for k in vault.stored_keys()? {
            let k = match k {
                Ok(k) => k,
                Err((path, _)) => {
                    summary.skipped_damaged.push(path.display().to_string());
                    continue;
                }
            };
            if k.header.no_export {
                summary.skipped_no_export.push(k.header.label.clone());
                continue;
            }
            let pkcs8 = match self.decrypt(&k) {
                Ok(p) => p,
                Err(_) => {
                    summary.skipped_damaged.push(k.header.label.clone());
                    continue;
                }
            };
            summary.keys.push(k.header.label.clone());
            keys.push(BackupKey {
                label: k.header.label.clone(),
                no_export: false,
                origin: k.header.origin.clone(),
                created: k.header.created.clone(),
                pkcs8: B64.encode(pkcs8.expose_secret()),
                certificates: k.file.certificates.clone(),
            });
        }
        let history = vault.history()?;
        summary.history_entries = history.len();
        let policy = vault.policy();
        let contents = BackupContents {
            policy: PinPolicyFile { max_attempts: policy.max_attempts, delay_base_ms: policy.delay_base_ms },
            keys,
            history,
        };
        let plaintext = Zeroizing::new(serde_json::to_vec(&contents).map_err(|e| VaultError::Internal(e.to_string()))?);
        let header = BackupHeader {
            format: BACKUP_FORMAT.into(),
            kdf: KdfParams::DEFAULT,
            salt: B64.encode(random::<16>()?),
            created: now_rfc3339(),
        };
        let header_json = serde_json::to_vec(&header).map_err(|e| VaultError::Internal(e.to_string()))?;
        let key = header
            .kdf
            .derive(passphrase, &B64.decode(&header.salt).map_err(|_| VaultError::Internal("salt".into()))?)?;
        let payload = crypto::seal(&key, &header_json, &plaintext)?;
        let file = BackupFile { header: B64.encode(header_json), payload };
        let bytes = serde_json::to_vec_pretty(&file).map_err(|e| VaultError::Internal(e.to_string()))?;
        Ok((bytes, summary))
    }
}

/// Decrypts and parses a backup.
pub(crate) fn open_backup(bytes: &[u8], passphrase: &SecretString) -> Result<BackupContents, VaultError> {
    if bytes.len() > MAX_BACKUP_LEN {
        return Err(VaultError::Core(kalit_core::CoreError::InvalidInput("backup file is implausibly large".into())));
    }
    let not_backup =
        |e: String| VaultError::Core(kalit_core::CoreError::InvalidInput(format!("not a Kalit backup: {e}")));
    let file: BackupFile = serde_json::from_slice(bytes).map_err(|e| not_backup(e.to_string()))?;
    let header_json = B64.decode(&file.header).map_err(|e| not_backup(e.to_string()))?;
    let header: BackupHeader = serde_json::from_slice(&header_json).map_err(|e| not_backup(e.to_string()))?;
    if header.format != BACKUP_FORMAT {
        return Err(not_backup(format!("format {:?} (written by a newer Kalit?)", header.format)));
    }
    header.kdf.check()?;
    let salt = B64.decode(&header.salt).map_err(|e| not_backup(e.to_string()))?;
    let key = header.kdf.derive(passphrase, &salt)?;
    let plaintext = crypto::open(&key, &header_json, &file.payload)?
        .ok_or_else(|| VaultError::WrongPassword("wrong backup passphrase, or the backup file was damaged".into()))?;
    serde_json::from_slice(plaintext.expose_secret()).map_err(|e| VaultError::corrupt(format!("backup contents: {e}")))
}

/// Writes a backup's keys and history into a freshly initialised vault.
pub(crate) fn apply(u: &Unlocked<'_>, contents: &BackupContents) -> Result<BackupSummary, VaultError> {
    let mut summary = BackupSummary::default();
    for k in &contents.keys {
        let pkcs8 = SecretBytes::new(B64.decode(&k.pkcs8).map_err(|_| VaultError::corrupt("backup key encoding"))?);
        let certs: Vec<Vec<u8>> = k
            .certificates
            .iter()
            .map(|c| B64.decode(c).map_err(|_| VaultError::corrupt("backup certificate encoding")))
            .collect::<Result<_, _>>()?;
        u.store_key(&pkcs8, &k.label, k.no_export, &k.origin, &certs, Some(k.created.clone()))?;
        summary.keys.push(k.label.clone());
    }
    for h in &contents.history {
        u.vault().append_history(h)?;
    }
    summary.history_entries = contents.history.len();
    Ok(summary)
}
