//! Encryption at rest, shared by the vault (keys under a PIN) and the RA (the CA key under a passphrase):
//! Argon2id with a floor and a ceiling on its parameters, and AES-256-GCM with associated data.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};

use crate::{CoreError, SecretBytes, SecretString};

/// Argon2id parameters, stored in file headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct KdfParams {
    /// Memory in KiB.
    pub m_kib: u32,
    /// Passes.
    pub t: u32,
    /// Lanes.
    pub p: u32,
}

impl KdfParams {
    /// RFC 9106-style default for phones: 64 MiB, 3 passes, 1 lane.
    pub const DEFAULT: KdfParams = KdfParams { m_kib: 64 * 1024, t: 3, p: 1 };
    /// The floor enforced when reading any file: nothing weaker than the default is accepted, so a
    /// downgraded header is refused instead of making the PIN cheaper to guess.
    pub const FLOOR: KdfParams = KdfParams::DEFAULT;
    /// The ceiling enforced when reading: a hostile header cannot make us allocate or spin without bound.
    pub const CEILING: KdfParams = KdfParams { m_kib: 4 * 1024 * 1024, t: 64, p: 16 };

    /// Refuses parameters below the floor or above the ceiling.
    pub fn check(&self) -> Result<(), CoreError> {
        let (f, c) = (Self::FLOOR, Self::CEILING);
        if self.m_kib < f.m_kib || self.t < f.t || self.p < f.p {
            return Err(CoreError::Corrupt(format!(
                "Argon2id parameters m={} KiB t={} p={} are below the floor m={} KiB t={} p={} (downgraded or damaged header)",
                self.m_kib, self.t, self.p, f.m_kib, f.t, f.p
            )));
        }
        if self.m_kib > c.m_kib || self.t > c.t || self.p > c.p {
            return Err(CoreError::Corrupt("Argon2id parameters are absurdly large (damaged header)".into()));
        }
        Ok(())
    }

    /// Derives a 32-byte key from `secret` and `salt`.
    pub fn derive(&self, secret: &SecretString, salt: &[u8]) -> Result<SecretBytes, CoreError> {
        self.check()?;
        let params = argon2::Params::new(self.m_kib, self.t, self.p, Some(32))
            .map_err(|e| CoreError::Internal(format!("argon2 parameters: {e}")))?;
        let a2 = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
        let mut out = vec![0u8; 32];
        a2.hash_password_into(secret.expose_secret().as_bytes(), salt, &mut out)
            .map_err(|e| CoreError::Internal(format!("argon2: {e}")))?;
        Ok(SecretBytes::new(out))
    }
}

/// Random bytes from the system RNG.
pub fn random<const N: usize>() -> Result<[u8; N], CoreError> {
    let mut b = [0u8; N];
    SystemRandom::new().fill(&mut b).map_err(|_| CoreError::Crypto("system RNG failed"))?;
    Ok(b)
}

/// An AEAD ciphertext with its nonce, base64 in files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedBox {
    /// 96-bit nonce, base64.
    pub nonce: String,
    /// Ciphertext followed by the 128-bit tag, base64.
    pub ciphertext: String,
}

/// AES-256-GCM with a 32-byte key.
pub fn seal(key: &SecretBytes, aad: &[u8], plaintext: &[u8]) -> Result<SealedBox, CoreError> {
    let k = LessSafeKey::new(
        UnboundKey::new(&AES_256_GCM, key.expose_secret()).map_err(|_| CoreError::Crypto("AEAD key"))?,
    );
    seal_with_nonce(&k, random::<NONCE_LEN>()?, aad, plaintext)
}

fn seal_with_nonce(
    k: &LessSafeKey,
    nonce: [u8; NONCE_LEN],
    aad: &[u8],
    plaintext: &[u8],
) -> Result<SealedBox, CoreError> {
    let mut buf = zeroize::Zeroizing::new(plaintext.to_vec());
    k.seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(aad), &mut *buf)
        .map_err(|_| CoreError::Crypto("AEAD seal"))?;
    Ok(SealedBox { nonce: B64.encode(nonce), ciphertext: B64.encode(&*buf) })
}

/// Sealing with a given nonce, for conformance vectors (`crates/kalit-core/vectors/vault-v1.json`) only.
/// **Never outside tests**: AES-GCM with a repeated nonce under one key loses both confidentiality and
/// integrity; [`seal`] draws a fresh nonce every time.
pub mod hazmat {
    use super::*;

    /// [`seal`] with a fixed nonce.
    pub fn danger_seal_with_nonce(
        key: &SecretBytes,
        nonce: [u8; NONCE_LEN],
        aad: &[u8],
        plaintext: &[u8],
    ) -> Result<SealedBox, CoreError> {
        let k = LessSafeKey::new(
            UnboundKey::new(&AES_256_GCM, key.expose_secret()).map_err(|_| CoreError::Crypto("AEAD key"))?,
        );
        seal_with_nonce(&k, nonce, aad, plaintext)
    }
}

/// Opens a [`SealedBox`]; `None` when the key is wrong or anything (ciphertext, tag, nonce, associated
/// data) was changed.
pub fn open(key: &SecretBytes, aad: &[u8], sealed: &SealedBox) -> Result<Option<SecretBytes>, CoreError> {
    let k = LessSafeKey::new(
        UnboundKey::new(&AES_256_GCM, key.expose_secret()).map_err(|_| CoreError::Crypto("AEAD key"))?,
    );
    let (Ok(nonce), Ok(ct)) = (B64.decode(&sealed.nonce), B64.decode(&sealed.ciphertext)) else {
        return Ok(None);
    };
    let Ok(nonce) = <[u8; NONCE_LEN]>::try_from(nonce.as_slice()) else {
        return Ok(None);
    };
    let mut buf = zeroize::Zeroizing::new(ct);
    match k.open_in_place(Nonce::assume_unique_for_key(nonce), Aad::from(aad), &mut buf) {
        Ok(pt) => Ok(Some(SecretBytes::from_slice(pt))),
        Err(_) => Ok(None),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// RFC 9106 section 5.3 (Argon2id test vector): a check that our parameter plumbing drives the
    /// argon2 crate exactly as the RFC specifies, including secret and associated data.
    #[test]
    fn rfc9106_argon2id_vector() {
        let params = argon2::Params::new(32, 3, 4, Some(32)).unwrap();
        let a2 = argon2::Argon2::new_with_secret(&[3u8; 8], argon2::Algorithm::Argon2id, argon2::Version::V0x13, {
            let mut b = argon2::ParamsBuilder::new();
            b.m_cost(params.m_cost()).t_cost(params.t_cost()).p_cost(params.p_cost()).output_len(32);
            b.data(argon2::AssociatedData::new(&[4u8; 12]).unwrap());
            b.build().unwrap()
        })
        .unwrap();
        let mut out = [0u8; 32];
        a2.hash_password_into(&[1u8; 32], &[2u8; 16], &mut out).unwrap();
        assert_eq!(hex::encode(out), "0d640df58d78766c08c037a34a8b53c9d01ef0452d75b65eb52520e96b01e659");
    }

    #[test]
    fn floor_and_ceiling() {
        assert!(KdfParams::DEFAULT.check().is_ok());
        assert!(KdfParams { m_kib: 8, ..KdfParams::DEFAULT }.check().is_err());
        assert!(KdfParams { t: 1, ..KdfParams::DEFAULT }.check().is_err());
        assert!(KdfParams { p: 0, ..KdfParams::DEFAULT }.check().is_err());
        assert!(KdfParams { m_kib: u32::MAX, ..KdfParams::DEFAULT }.check().is_err());
    }

    #[test]
    fn aead_detects_every_change() {
        let key = SecretBytes::new(random::<32>().unwrap().to_vec());
        let sealed = seal(&key, b"header", b"secret").unwrap();
        assert_eq!(open(&key, b"header", &sealed).unwrap().unwrap().expose_secret(), b"secret");
        assert!(open(&key, b"headeR", &sealed).unwrap().is_none());
        let other = SecretBytes::new(random::<32>().unwrap().to_vec());
        assert!(open(&other, b"header", &sealed).unwrap().is_none());
        let mut ct = B64.decode(&sealed.ciphertext).unwrap();
        for i in 0..ct.len() {
            ct[i] ^= 0x10;
            let t = SealedBox { nonce: sealed.nonce.clone(), ciphertext: B64.encode(&ct) };
            assert!(open(&key, b"header", &t).unwrap().is_none());
            ct[i] ^= 0x10;
        }
    }
}
