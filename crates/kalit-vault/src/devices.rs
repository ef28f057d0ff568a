//! Relay registrations: the device key the phone uses to speak for itself to a relay, and the
//! certificate-key signatures over registration statements.
//!
//! Architecture invariant: a certificate key signs only documents (see [`Unlocked::sign`]) and the
//! registration statements here, which [`Statement`]'s constructors build from checked fields; a device
//! key signs only device statements. Neither accepts bytes chosen by the relay.

use std::fs;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use kalit_core::keys::{self, PrivateKey};
use kalit_core::statement::{self, Statement};
use kalit_core::{KeyAlgorithm, SecretBytes};
use kalit_proto::namespace;
use kalit_proto::relay::SignedAttestation;
use serde::{Deserialize, Serialize};

use crate::storage::{self, create_private_dir};
use crate::vault::now_rfc3339;
use crate::{Unlocked, Vault, VaultError};

/// Format tag of device files.
pub const DEVICE_FORMAT: &str = "kalit-device/1";

/// A registration of this phone at a relay (public facts only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceRecord {
    /// Format tag.
    pub format: String,
    /// Device id (hex).
    pub device_id: String,
    /// The relay's base URL.
    pub relay_url: String,
    /// The relay's id.
    pub relay_id: String,
    /// The relay's Ed25519 attestation key, base64.
    pub relay_public_key: String,
    /// The login.
    pub login: String,
    /// Label of the certificate key registered with.
    pub key_label: String,
    /// The relay's signed attestation.
    pub attestation: SignedAttestation,
    /// RFC 3339 time of registration.
    pub created: String,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct DeviceFile {
    /// Base64 of the [`DeviceRecord`] JSON (associated data of the sealed key).
    header: String,
    device_key: crate::SealedBox,
}

/// A device key made for a registration that has not completed yet. Dropped (and wiped) if the relay
/// refuses; saved with [`Unlocked::save_device`] once it accepts.
pub struct PendingDevice {
    pkcs8: SecretBytes,
    key: PrivateKey,
}

impl std::fmt::Debug for PendingDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingDevice").field("device_id", &self.device_id()).finish_non_exhaustive()
    }
}

impl PendingDevice {
    /// The raw Ed25519 public key.
    pub fn public_key_raw(&self) -> &[u8] {
        self.key.public_key_raw()
    }
    /// The device id.
    pub fn device_id(&self) -> String {
        statement::key_id(self.key.public_key_raw())
    }
}

fn check_ns(s: &Statement, allowed: &[&str], who: &str) -> Result<(), VaultError> {
    if allowed.contains(&s.namespace()) {
        Ok(())
    } else {
        Err(VaultError::Policy(format!("a {who} does not sign {} statements", s.namespace())))
    }
}

impl Vault {
    /// The relay registrations of this phone; unreadable files are skipped with their error.
    pub fn devices(&self) -> Result<Vec<DeviceRecord>, VaultError> {
        let dir = self.layout.devices_dir();
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
            Err(e) => return Err(VaultError::Io { context: format!("cannot list {}", dir.display()), source: e }),
        };
        let mut out = vec![];
        for e in entries.flatten() {
            let p = e.path();
            if p.extension().and_then(|x| x.to_str()) != Some("json") {
                continue;
            }
            if let Ok((rec, _)) = read_device(&p) {
                out.push(rec);
            }
        }
        out.sort_by(|a, b| a.created.cmp(&b.created));
        Ok(out)
    }
}

fn read_device(p: &std::path::Path) -> Result<(DeviceRecord, DeviceFile), VaultError> {
    let f: DeviceFile = storage::read_json(p)?;
    let header = B64.decode(&f.header).map_err(|_| VaultError::corrupt(format!("{}: bad header", p.display())))?;
    let rec: DeviceRecord = serde_json::from_slice(&header)
        .map_err(|e| VaultError::corrupt(format!("{}: bad header: {e}", p.display())))?;
    if rec.format != DEVICE_FORMAT {
        return Err(VaultError::corrupt(format!("{}: unknown format {:?}", p.display(), rec.format)));
    }
    Ok((rec, f))
}

impl Unlocked<'_> {
    /// Signs a certificate statement (`kalit/v1/register` or `kalit/v1/device-removal`) with a certificate
    /// key, under the statement scheme that no document signature can match; returns the signature and
    /// the key's certificate chain (leaf first).
    pub fn sign_statement(&self, label: &str, s: &Statement) -> Result<(Vec<u8>, Vec<Vec<u8>>), VaultError> {
        check_ns(s, namespace::CERTIFICATE_STATEMENTS, "certificate key")?;
        let (k, key) = self.load_private(label)?;
        let chain = self.verified_certs(&k)?;
        if chain.is_empty() {
            return Err(VaultError::Policy(format!(
                "key {label:?} has no certificate; enrol it first (kalit vault enrol) or install one (kalit vault install-cert)"
            )));
        }
        Ok((s.sign_as_certificate(&key)?, chain))
    }

    /// A fresh device key for a registration.
    pub fn new_device(&self) -> Result<PendingDevice, VaultError> {
        let pkcs8 = keys::generate(KeyAlgorithm::Ed25519)?;
        let key = PrivateKey::from_pkcs8(&pkcs8)?;
        Ok(PendingDevice { pkcs8, key })
    }

    /// Signs a device statement (`kalit/v1/device-request`) with a pending device key.
    pub fn sign_with_pending(&self, d: &PendingDevice, s: &Statement) -> Result<Vec<u8>, VaultError> {
        check_ns(s, &[namespace::DEVICE_REQUEST], "device key")?;
        Ok(s.sign(&d.key)?)
    }

    /// Saves a device key after the relay accepted it, with the relay's attestation.
    pub fn save_device(&self, d: PendingDevice, mut rec: DeviceRecord) -> Result<DeviceRecord, VaultError> {
        rec.format = DEVICE_FORMAT.into();
        rec.device_id = d.device_id();
        rec.created = now_rfc3339();
        let header = serde_json::to_vec(&rec).map_err(|e| VaultError::Internal(e.to_string()))?;
        let sealed = crate::KeyWrap::wrap(&self.wrap, &header, d.pkcs8.expose_secret())?;
        create_private_dir(&self.vault.layout.devices_dir())?;
        let file = DeviceFile { header: B64.encode(&header), device_key: sealed };
        storage::write_json(&self.vault.layout.device_file(&rec.device_id), &file)?;
        Ok(rec)
    }

    /// Signs a device statement with a saved device key.
    pub fn sign_as_device(&self, device_id: &str, s: &Statement) -> Result<Vec<u8>, VaultError> {
        check_ns(s, &[namespace::DEVICE_REQUEST], "device key")?;
        let (_, key) = self.load_device(device_id)?;
        Ok(s.sign(&key)?)
    }

    fn load_device(&self, device_id: &str) -> Result<(DeviceRecord, PrivateKey), VaultError> {
        if device_id.len() != 32 || !device_id.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(VaultError::NotFound(format!("no device {device_id:?} in this vault")));
        }
        let path = self.vault.layout.device_file(device_id);
        if !path.exists() {
            return Err(VaultError::NotFound(format!("no device {device_id} in this vault")));
        }
        let (rec, f) = read_device(&path)?;
        let header = B64.decode(&f.header).map_err(|_| VaultError::corrupt("device header"))?;
        let pkcs8 = crate::KeyWrap::unwrap(&self.wrap, &header, &f.device_key)?
            .ok_or_else(|| VaultError::corrupt(format!("device file {} failed its integrity check", path.display())))?;
        let key = PrivateKey::from_pkcs8(&pkcs8)?;
        if statement::key_id(key.public_key_raw()) != rec.device_id {
            return Err(VaultError::corrupt(format!("device file {} holds another key", path.display())));
        }
        Ok((rec, key))
    }

    /// Forgets a registration (after the relay removed the device).
    pub fn forget_device(&self, device_id: &str) -> Result<(), VaultError> {
        self.load_device(device_id)?;
        let path = self.vault.layout.device_file(device_id);
        fs::remove_file(&path).map_err(VaultError::io(format!("cannot remove {}", path.display())))?;
        storage::sync_dir(&self.vault.layout.devices_dir())
    }
}
