//! The relay's own Ed25519 key: it signs registration attestations. Kept in the data directory (0600),
//! created on first start; relay nodes that share a database must share this file too.

use std::path::Path;

use kalit_core::keys::{self, PrivateKey};
use kalit_core::statement::{self, Statement};
use kalit_core::{KeyAlgorithm, SecretBytes};
use kalit_proto::ErrorCode;
use kalit_proto::relay::{API_VERSION, Attestation, RelayIdentity, SignedAttestation};
use kalit_proto::session::{OriginAttestation, SignedOriginAttestation};
use kalit_service::ServiceError;

/// File name of the key in the data directory.
pub const KEY_FILE: &str = "relay-identity.pk8";

/// The relay's signing identity.
#[derive(Debug)]
pub struct Identity {
    key: PrivateKey,
    /// Public identity as published.
    pub public: RelayIdentity,
}

impl Identity {
    /// Loads the key from `dir`, creating it (atomically, 0600) on first start.
    pub fn load_or_create(dir: &Path, name: &str) -> Result<Identity, ServiceError> {
        let path = dir.join(KEY_FILE);
        let io =
            |what: &str, e: std::io::Error| ServiceError::new(ErrorCode::Io, format!("{what} {}: {e}", path.display()));
        let pkcs8 = match std::fs::read(&path) {
            Ok(b) => SecretBytes::new(b),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir_all(dir).map_err(|e| io("cannot create the directory of", e))?;
                let k = keys::generate(KeyAlgorithm::Ed25519)?;
                kalit_service::files::atomic_write(&path, k.expose_secret()).map_err(|e| io("cannot write", e))?;
                k
            }
            Err(e) => return Err(io("cannot read", e)),
        };
        let key = PrivateKey::from_pkcs8(&pkcs8).map_err(|e| {
            ServiceError::new(ErrorCode::Corrupt, format!("{} is not a relay key: {e}", path.display()))
        })?;
        if key.algorithm() != KeyAlgorithm::Ed25519 {
            return Err(ServiceError::new(ErrorCode::Corrupt, format!("{} is not an Ed25519 key", path.display())));
        }
        let raw = key.public_key_raw().to_vec();
        let public = RelayIdentity {
            version: API_VERSION,
            relay_id: statement::key_id(&raw).into(),
            public_key: raw.as_slice().into(),
            name: name.to_string(),
        };
        Ok(Identity { key, public })
    }

    /// The relay id.
    pub fn id(&self) -> &str {
        &self.public.relay_id
    }

    /// Signs an attestation.
    pub fn attest(&self, a: Attestation) -> Result<SignedAttestation, ServiceError> {
        let sig = Statement::attestation(&a).sign(&self.key)?;
        Ok(SignedAttestation { attestation: a, signature: sig.into() })
    }

    /// Signs the statement of a page's origin for a tunnel (direct mode).
    pub fn attest_origin(&self, a: OriginAttestation) -> Result<SignedOriginAttestation, ServiceError> {
        let sig = Statement::origin(&a).sign(&self.key)?;
        Ok(SignedOriginAttestation { attestation: a, signature: sig.into() })
    }
}
