//! Files of a vault directory and how they are written.
//!
//! ```text
//! DIR/vault.json       format header (Argon2id parameters, salt, PIN policy) + master key sealed under the PIN
//! DIR/pin-state.json   the PIN attempt counter (written before every attempt)
//! DIR/keys/ID.json     one file per key: authenticated header + private key sealed under the master key,
//!                      and the (public) certificate chain
//! DIR/devices/ID.json one file per relay registration: authenticated header (relay, login, attestation)
//!                      + the Ed25519 device key sealed under the master key
//! DIR/history.jsonl    one line per signature, appended and fsynced
//! DIR/.lock            advisory lock held by the process using the vault
//! ```

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};

use crate::VaultError;
use crate::crypto::{KdfParams, SealedBox, random};

/// Format tag of `vault.json`.
pub const VAULT_FORMAT: &str = "kalit-vault/1";
/// Format tag of key files.
pub const KEY_FORMAT: &str = "kalit-key/1";
/// Largest stored file we read (a key file with a long chain stays far below).
pub const MAX_FILE_LEN: u64 = 4 << 20;

/// Policy for PIN attempts; authenticated as part of the vault header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PinPolicyFile {
    pub max_attempts: u32,
    pub delay_base_ms: u64,
}

/// The authenticated header of `vault.json` (its exact bytes are the AEAD associated data).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VaultHeader {
    pub format: String,
    pub vault_id: String,
    pub kdf: KdfParams,
    pub salt: String,
    pub policy: PinPolicyFile,
    pub created: String,
}

/// `vault.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VaultFile {
    /// Base64 of the header JSON, so the associated data is byte-exact.
    pub header: String,
    pub master_key: SealedBox,
    /// SHA-256 over the other fields. Not a security measure (the AEAD is): it tells accidental damage
    /// apart from a wrong PIN, so a damaged file is reported as such and costs no PIN attempt.
    pub checksum: String,
}

/// `pin-state.json`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PinState {
    pub failures: u32,
    /// Unix milliseconds before which no attempt is allowed.
    pub not_before_ms: u64,
}

/// The authenticated header of a key file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyHeader {
    pub format: String,
    pub key_id: String,
    pub label: String,
    pub algorithm: String,
    /// Base64 DER SubjectPublicKeyInfo.
    pub spki: String,
    pub no_export: bool,
    pub origin: String,
    pub created: String,
    pub wrap: String,
}

/// A key file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyFile {
    pub header: String,
    pub private_key: SealedBox,
    /// Base64 DER certificates, leaf first. Public; checked against the header's key when read.
    #[serde(default)]
    pub certificates: Vec<String>,
    /// An AEAD tag under the master key over the header and these certificates (empty plaintext), so
    /// that no one can swap the chain a signature or registration carries without the PIN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificates_seal: Option<SealedBox>,
}

/// The associated data that [`KeyFile::certificates_seal`] authenticates.
pub fn certificates_aad(header_b64: &str, certificates: &[String]) -> Vec<u8> {
    let mut aad = format!("kalit-key-certificates|{header_b64}").into_bytes();
    for c in certificates {
        aad.push(b'|');
        aad.extend_from_slice(c.as_bytes());
    }
    aad
}

impl KeyFile {
    pub fn header_bytes(&self) -> Result<Vec<u8>, VaultError> {
        B64.decode(&self.header).map_err(|_| VaultError::corrupt("key file header is not base64"))
    }
    pub fn parse_header(&self) -> Result<KeyHeader, VaultError> {
        let h: KeyHeader = serde_json::from_slice(&self.header_bytes()?)
            .map_err(|e| VaultError::corrupt(format!("key file header: {e}")))?;
        if h.format != KEY_FORMAT {
            return Err(VaultError::corrupt(format!(
                "key file format {:?} is not {KEY_FORMAT} (written by a newer Kalit?)",
                h.format
            )));
        }
        Ok(h)
    }
    pub fn cert_ders(&self) -> Result<Vec<Vec<u8>>, VaultError> {
        self.certificates
            .iter()
            .map(|c| B64.decode(c).map_err(|_| VaultError::corrupt("stored certificate is not base64")))
            .collect()
    }
}

impl VaultFile {
    pub fn new(header: String, master_key: SealedBox) -> Self {
        let checksum = Self::compute_checksum(&header, &master_key);
        VaultFile { header, master_key, checksum }
    }
    fn compute_checksum(header: &str, sealed: &SealedBox) -> String {
        let text = format!("{header}\n{}\n{}", sealed.nonce, sealed.ciphertext);
        hex::encode(kalit_core::digest::HashAlg::Sha256.digest(text.as_bytes()))
    }
    pub fn header_bytes(&self) -> Result<Vec<u8>, VaultError> {
        B64.decode(&self.header).map_err(|_| VaultError::corrupt("vault.json header is not base64"))
    }
    pub fn parse_header(&self) -> Result<VaultHeader, VaultError> {
        if Self::compute_checksum(&self.header, &self.master_key) != self.checksum {
            return Err(VaultError::corrupt(
                "vault.json is damaged (its checksum does not match); no PIN attempt was used. Restore the vault from a backup",
            ));
        }
        let h: VaultHeader = serde_json::from_slice(&self.header_bytes()?)
            .map_err(|e| VaultError::corrupt(format!("vault.json header: {e}")))?;
        if h.format != VAULT_FORMAT {
            return Err(VaultError::corrupt(format!(
                "vault format {:?} is not {VAULT_FORMAT} (written by a newer Kalit?)",
                h.format
            )));
        }
        h.kdf.check()?;
        Ok(h)
    }
}

/// Paths inside a vault directory.
#[derive(Debug, Clone)]
pub struct Layout {
    pub dir: PathBuf,
}

impl Layout {
    pub fn vault_file(&self) -> PathBuf {
        self.dir.join("vault.json")
    }
    pub fn pin_state(&self) -> PathBuf {
        self.dir.join("pin-state.json")
    }
    pub fn keys_dir(&self) -> PathBuf {
        self.dir.join("keys")
    }
    pub fn key_file(&self, id: &str) -> PathBuf {
        self.keys_dir().join(format!("{id}.json"))
    }
    pub fn devices_dir(&self) -> PathBuf {
        self.dir.join("devices")
    }
    pub fn device_file(&self, id: &str) -> PathBuf {
        self.devices_dir().join(format!("{id}.json"))
    }
    pub fn history(&self) -> PathBuf {
        self.dir.join("history.jsonl")
    }
    pub fn lock(&self) -> PathBuf {
        self.dir.join(".lock")
    }
}

/// Creates a directory (and parents) with mode 0700.
pub fn create_private_dir(dir: &Path) -> Result<(), VaultError> {
    fs::create_dir_all(dir).map_err(VaultError::io(format!("cannot create {}", dir.display())))?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
        .map_err(VaultError::io(format!("cannot set permissions of {}", dir.display())))
}

/// fsync a directory so a rename or unlink in it is durable.
pub fn sync_dir(dir: &Path) -> Result<(), VaultError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(VaultError::io(format!("cannot sync directory {}", dir.display())))
}

/// Writes `bytes` to `path` atomically: a 0600 temp file in the same directory, fsync, rename, fsync dir.
pub fn atomic_write(path: &Path, bytes: &[u8]) -> Result<(), VaultError> {
    let dir = path.parent().ok_or_else(|| VaultError::Internal("path without parent".into()))?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = dir.join(format!(".{name}.tmp-{}", hex::encode(random::<6>()?)));
    let write = || -> std::io::Result<()> {
        let mut f = OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    };
    if let Err(e) = write() {
        let _ = fs::remove_file(&tmp);
        return Err(VaultError::Io { context: format!("cannot write {}", path.display()), source: e });
    }
    sync_dir(dir)
}

/// Serialises as pretty JSON and writes atomically.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), VaultError> {
    let bytes = serde_json::to_vec_pretty(value).map_err(|e| VaultError::Internal(format!("json: {e}")))?;
    atomic_write(path, &bytes)
}

/// Reads a file with a size limit.
pub fn read_limited(path: &Path) -> Result<Vec<u8>, VaultError> {
    let meta = fs::metadata(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => VaultError::NotFound(format!("{} does not exist", path.display())),
        _ => VaultError::Io { context: format!("cannot read {}", path.display()), source: e },
    })?;
    if meta.len() > MAX_FILE_LEN {
        return Err(VaultError::corrupt(format!("{} is implausibly large", path.display())));
    }
    fs::read(path).map_err(VaultError::io(format!("cannot read {}", path.display())))
}

/// Reads and parses a JSON file; a parse failure is [`VaultError::Corrupt`].
pub fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T, VaultError> {
    let bytes = read_limited(path)?;
    serde_json::from_slice(&bytes)
        .map_err(|e| VaultError::corrupt(format!("{} is damaged or not a Kalit file: {e}", path.display())))
}

/// Removes temp files left by a process killed mid-write.
pub fn remove_stale_temps(dir: &Path) {
    if let Ok(rd) = fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_name().to_str().is_some_and(|n| n.starts_with('.') && n.contains(".tmp-")) {
                let _ = fs::remove_file(e.path());
            }
        }
    }
}

/// Appends one line to a file and fsyncs it (creating it 0600).
pub fn append_line(path: &Path, line: &str) -> Result<(), VaultError> {
    let mut f = OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(path)
        .map_err(VaultError::io(format!("cannot open {}", path.display())))?;
    let mut buf = line.as_bytes().to_vec();
    buf.push(b'\n');
    f.write_all(&buf)
        .and_then(|_| f.sync_data())
        .map_err(VaultError::io(format!("cannot append to {}", path.display())))
}
