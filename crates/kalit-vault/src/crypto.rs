//! Key derivation and encryption at rest: Argon2id for PIN and passphrases, AES-256-GCM with the file
//! header as associated data, and the [`KeyWrap`] trait behind which a hardware keystore can replace the
//! software master key.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use kalit_core::SecretBytes;
pub use kalit_core::seal::{KdfParams, SealedBox, open, random, seal};

use crate::VaultError;

/// The key-encryption step for stored private keys.
///
/// The software implementation holds a random master key that is itself encrypted under the
/// Argon2id-derived PIN key. A phone build can implement this trait over Android Keystore or the iOS
/// Secure Enclave so the wrapping key never leaves hardware; nothing else in the vault changes.
pub trait KeyWrap: std::fmt::Debug {
    /// A short stable name stored in key files (`software-aes256gcm`).
    fn id(&self) -> &'static str;
    /// Encrypts `plaintext`, binding `aad`.
    fn wrap(&self, aad: &[u8], plaintext: &[u8]) -> Result<SealedBox, VaultError>;
    /// Decrypts; `None` when the box or its associated data was changed.
    fn unwrap(&self, aad: &[u8], sealed: &SealedBox) -> Result<Option<SecretBytes>, VaultError>;
}

/// The software [`KeyWrap`]: AES-256-GCM under the vault's master key.
pub struct SoftwareKeyWrap {
    master: SecretBytes,
}

impl std::fmt::Debug for SoftwareKeyWrap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SoftwareKeyWrap(<redacted>)")
    }
}

impl SoftwareKeyWrap {
    pub(crate) fn new(master: SecretBytes) -> Self {
        SoftwareKeyWrap { master }
    }
    pub(crate) fn master(&self) -> &SecretBytes {
        &self.master
    }
}

impl KeyWrap for SoftwareKeyWrap {
    fn id(&self) -> &'static str {
        "software-aes256gcm"
    }
    fn wrap(&self, aad: &[u8], plaintext: &[u8]) -> Result<SealedBox, VaultError> {
        Ok(seal(&self.master, aad, plaintext)?)
    }
    fn unwrap(&self, aad: &[u8], sealed: &SealedBox) -> Result<Option<SecretBytes>, VaultError> {
        Ok(open(&self.master, aad, sealed)?)
    }
}

/// The conformance suite every [`KeyWrap`] implementation must pass (the software one in this crate's
/// tests; a hardware-backed one in its own). Returns what failed.
pub fn check_key_wrap(w: &dyn KeyWrap) -> Result<(), String> {
    if w.id().is_empty() {
        return Err("empty id".into());
    }
    let secret = b"a PKCS#8 private key would be here";
    let a = w.wrap(b"header-1", secret).map_err(|e| e.to_string())?;
    let b = w.wrap(b"header-1", secret).map_err(|e| e.to_string())?;
    if a == b {
        return Err("two wraps of the same plaintext are identical (nonce reuse?)".into());
    }
    match w.unwrap(b"header-1", &a).map_err(|e| e.to_string())? {
        Some(p) if p.expose_secret() == secret => {}
        _ => return Err("round trip failed".into()),
    }
    if w.unwrap(b"header-2", &a).map_err(|e| e.to_string())?.is_some() {
        return Err("other associated data accepted".into());
    }
    let mut ct = B64.decode(&a.ciphertext).map_err(|e| e.to_string())?;
    for i in [0, ct.len() / 2, ct.len() - 1] {
        ct[i] ^= 0x80;
        let t = SealedBox { nonce: a.nonce.clone(), ciphertext: B64.encode(&ct) };
        if w.unwrap(b"header-1", &t).map_err(|e| e.to_string())?.is_some() {
            return Err(format!("a changed ciphertext byte {i} was accepted"));
        }
        ct[i] ^= 0x80;
    }
    let garbage = SealedBox { nonce: "!!".into(), ciphertext: "%%".into() };
    if w.unwrap(b"header-1", &garbage).map_err(|e| e.to_string())?.is_some() {
        return Err("garbage accepted".into());
    }
    if format!("{w:?}").contains("a PKCS#8") {
        return Err("Debug shows secrets".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn software_key_wrap_passes_the_conformance_suite() {
        let w = SoftwareKeyWrap::new(SecretBytes::new(random::<32>().unwrap().to_vec()));
        check_key_wrap(&w).unwrap();
    }
}
