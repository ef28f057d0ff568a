//! PKCS#12 (PFX) import and export through the pure-Rust `p12-keystore`.

use kalit_core::keys::PrivateKey;
use kalit_core::{CoreError, SecretBytes, SecretString, x509};
use kalit_proto::vault::KeyInfo;
use p12_keystore::{Certificate, KeyStore, KeyStoreEntry, Pkcs12Archive, PrivateKeyChain};

use crate::VaultError;
use crate::backup::check_new_password;
use crate::vault::Unlocked;

/// Largest PFX accepted.
pub const MAX_PFX_LEN: usize = 1 << 20;
/// PBKDF2 iterations for exported files (OpenSSL 3 itself writes 2048).
pub const EXPORT_ITERATIONS: u32 = 100_000;

fn invalid(msg: impl Into<String>) -> VaultError {
    VaultError::Core(CoreError::InvalidInput(msg.into()))
}

/// Orders `pool` into a chain above `leaf` by issuer/subject names.
fn chain_above(leaf: &[u8], pool: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let mut chain = Vec::new();
    let mut current = leaf.to_vec();
    while chain.len() < x509::MAX_CHAIN_DEPTH {
        let Ok(c) = x509::parse(&current) else { break };
        if c.subject().as_raw() == c.issuer().as_raw() {
            break;
        }
        let issuer_raw = c.issuer().as_raw().to_vec();
        let next = pool.iter().find(|p| {
            p.as_slice() != current.as_slice()
                && !chain.contains(*p)
                && x509::parse(p).is_ok_and(|pc| pc.subject().as_raw() == issuer_raw.as_slice())
        });
        match next {
            Some(n) => {
                chain.push(n.clone());
                current = n.clone();
            }
            None => break,
        }
    }
    chain
}

impl Unlocked<'_> {
    /// Imports the one private key of a PFX with its certificate and chain.
    pub fn import_pfx(&self, pfx: &[u8], password: &SecretString, label: &str) -> Result<KeyInfo, VaultError> {
        if pfx.len() > MAX_PFX_LEN {
            return Err(invalid("the PFX file is larger than 1 MiB; that is not a key file"));
        }
        let archive = Pkcs12Archive::from_pkcs12(pfx, password.expose_secret()).map_err(|e| match e {
            p12_keystore::error::Error::MacError(_) | p12_keystore::error::Error::UnpadError => {
                VaultError::WrongPassword("wrong PFX password (or the file is damaged)".into())
            }
            p12_keystore::error::Error::Pkcs5Error(_) => {
                VaultError::WrongPassword("wrong PFX password (or the file is damaged)".into())
            }
            other => invalid(format!("not a readable PFX/PKCS#12 file: {other}")),
        })?;
        let key_bag = match archive.keys.as_slice() {
            [] => return Err(invalid("the PFX holds no private key")),
            [one] => one,
            many => {
                return Err(invalid(format!(
                    "the PFX holds {} private keys; Kalit imports files with exactly one",
                    many.len()
                )));
            }
        };
        let pkcs8 = SecretBytes::from_slice(key_bag.key.as_der());
        let key = PrivateKey::from_pkcs8(&pkcs8)?;
        let spki = key.spki_der();
        let certs: Vec<Vec<u8>> = archive.certs.iter().map(|c| c.cert.as_der().to_vec()).collect();
        let leaf = certs.iter().find(|c| x509::cert_spki(c).is_ok_and(|s| s == spki));
        let chain = match leaf {
            Some(leaf) => {
                let mut chain = vec![leaf.clone()];
                chain.extend(chain_above(leaf, &certs));
                chain
            }
            None if certs.is_empty() => Vec::new(),
            None => {
                return Err(VaultError::Core(CoreError::KeyMismatch(
                    "no certificate in the PFX belongs to its private key".into(),
                )));
            }
        };
        self.store_key(&pkcs8, label, false, "imported", &chain, None)
    }

    /// Exports a key with its certificate chain as a PFX (PBES2, AES-256-CBC, PBKDF2-HMAC-SHA-256,
    /// HMAC-SHA-256 MAC) that OpenSSL reads. Refused for `--no-export` keys.
    pub fn export_pfx(&self, label: &str, password: &SecretString) -> Result<Vec<u8>, VaultError> {
        check_new_password(password, "PFX password")?;
        let k = self.vault().find(label)?;
        // Decrypt first: the AEAD authenticates the header, so the no_export flag below is genuine.
        let pkcs8 = self.decrypt(&k)?;
        if k.header.no_export {
            return Err(VaultError::Policy(format!(
                "key {label:?} was created with --no-export: it can never leave this vault"
            )));
        }
        // Re-encode as PKCS#8 v1 whatever form the key was imported in: OpenSSL 3.0 cannot read v2 in a PFX.
        let pkcs8 = PrivateKey::from_pkcs8(&pkcs8)?.to_pkcs8_v1()?;
        let key = p12_keystore::PrivateKey::from_der(pkcs8.expose_secret())
            .map_err(|e| VaultError::Internal(e.to_string()))?;
        let certs: Vec<Certificate> = self
            .verified_certs(&k)?
            .iter()
            .map(|c| Certificate::from_der(c).map_err(|e| VaultError::corrupt(format!("stored certificate: {e}"))))
            .collect::<Result<_, _>>()?;
        let spki = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, &k.header.spki)
            .map_err(|_| VaultError::corrupt("key header public key is not base64"))?;
        let local_key_id = kalit_core::digest::HashAlg::Sha256.digest(&spki)[..20].to_vec();
        let mut store = KeyStore::new();
        store.add_entry(label, KeyStoreEntry::PrivateKeyChain(PrivateKeyChain::new(local_key_id, key, certs)));
        store
            .writer(password.expose_secret())
            .encryption_iterations(EXPORT_ITERATIONS)
            .mac_iterations(EXPORT_ITERATIONS)
            .write()
            .map_err(|e| VaultError::Internal(format!("cannot write the PFX: {e}")))
    }
}
