//! Domain-separated statements: the only non-document bytes a Kalit key ever signs.
//!
//! The paper's registration proof `E(h(L))` is replayable and its challenge `D_Kpu(D_Kow(T'))` is a
//! signing oracle. Here every protocol signature covers `namespace || 0x00 || field...`, each field
//! length-prefixed (u32 big-endian), where the namespace fixes the field layout and the phone builds the
//! bytes itself from values it checked. A [`Statement`] can only be made by the constructors below, so a
//! signing API that takes a `&Statement` cannot be turned into an oracle for caller-chosen bytes.

use aws_lc_rs::signature::{ED25519, UnparsedPublicKey};
use kalit_proto::relay::{Attestation, CertProof, EndorsedRelayKey, MAX_CHAIN_LEN, MAX_LOGIN_LEN};
use kalit_proto::{Base64, namespace};
use time::OffsetDateTime;

use crate::digest::HashAlg;
use crate::keys::PrivateKey;
use crate::{CoreError, x509};

/// Bytes to be signed, always starting with a Kalit namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    namespace: &'static str,
    bytes: Vec<u8>,
}

impl Statement {
    fn new(namespace: &'static str, fields: &[&[u8]]) -> Statement {
        let mut bytes = Vec::with_capacity(namespace.len() + 1 + fields.iter().map(|f| f.len() + 4).sum::<usize>());
        bytes.extend_from_slice(namespace.as_bytes());
        bytes.push(0);
        for f in fields {
            // Fields are bounded far below 4 GiB by the callers' own limits.
            bytes.extend_from_slice(&(f.len() as u32).to_be_bytes());
            bytes.extend_from_slice(f);
        }
        Statement { namespace, bytes }
    }

    /// The exact bytes to sign.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The namespace (one of [`kalit_proto::namespace`]).
    pub fn namespace(&self) -> &'static str {
        self.namespace
    }

    /// `kalit/v1/register`: this certificate (by fingerprint) asks to attach this device key to this
    /// login at this relay, answering this nonce.
    pub fn register(relay_id: &str, nonce: &[u8], login: &str, device_key: &[u8], cert_fingerprint: &str) -> Self {
        Statement::new(
            namespace::REGISTER,
            &[relay_id.as_bytes(), nonce, login.as_bytes(), device_key, cert_fingerprint.as_bytes()],
        )
    }

    /// `kalit/v1/device-removal`: the holder of the certificate a device registered with agrees that the
    /// device `requester` removes device `target` (needed when the two devices registered with different
    /// certificates).
    pub fn device_removal(relay_id: &str, nonce: &[u8], login: &str, requester: &str, target: &str) -> Self {
        Statement::new(
            namespace::DEVICE_REMOVAL,
            &[relay_id.as_bytes(), nonce, login.as_bytes(), requester.as_bytes(), target.as_bytes()],
        )
    }

    /// `kalit/v1/device-request`: a registered device asks to `action` (`list` or `remove`) on `target`.
    pub fn device_request(
        relay_id: &str,
        nonce: &[u8],
        login: &str,
        device_id: &str,
        action: &str,
        target: &str,
    ) -> Self {
        Statement::new(
            namespace::DEVICE_REQUEST,
            &[relay_id.as_bytes(), nonce, login.as_bytes(), device_id.as_bytes(), action.as_bytes(), target.as_bytes()],
        )
    }

    /// `kalit/v2/attestation`: what the relay signs for a registration or a tunnel join.
    pub fn attestation(a: &Attestation) -> Self {
        Statement::new(
            namespace::ATTESTATION,
            &[
                a.relay_id.as_bytes(),
                a.login.as_bytes(),
                a.cert_fingerprint.as_bytes(),
                a.device_id.as_bytes(),
                // The key's base64 text, as the first relays signed it: a typed field re-encodes to the exact
                // text it was read from (kalit_proto::bytes refuses any other spelling of the same bytes).
                a.device_key.encode().as_bytes(),
                &a.issued_at.to_be_bytes(),
                &a.expires_at.to_be_bytes(),
            ],
        )
    }

    /// `kalit/v1/origin`: the relay's statement that the waiting side of a tunnel is a browser page of an
    /// origin (direct mode).
    pub fn origin(a: &kalit_proto::session::OriginAttestation) -> Self {
        Statement::new(
            namespace::ORIGIN,
            &[
                a.relay_id.as_bytes(),
                a.tunnel.as_bytes(),
                a.origin.as_bytes(),
                &a.issued_at.to_be_bytes(),
                &a.expires_at.to_be_bytes(),
            ],
        )
    }

    /// `kalit/v1/relay-key`: the relay's root key lets a signing key sign its attestations for a time.
    pub fn relay_key(k: &kalit_proto::relay::RelayKey) -> Self {
        Statement::new(
            namespace::RELAY_KEY,
            &[k.relay_id.as_bytes(), k.public_key.as_slice(), &k.not_before.to_be_bytes(), &k.not_after.to_be_bytes()],
        )
    }

    /// True for the statements a certificate key signs (the person's document-signing key); the others
    /// are signed by keys that never sign documents (device keys, the relay's key).
    pub fn is_certificate_statement(&self) -> bool {
        namespace::CERTIFICATE_STATEMENTS.contains(&self.namespace)
    }

    /// Signs with a certificate key under the statement scheme (RSA PKCS#1 v1.5 SHA-384, ECDSA P-256
    /// over SHA-384, Ed25519ph with a context), which is disjoint from every scheme a document is
    /// signed with: no document signature of the same key can verify as this statement's signature.
    pub fn sign_as_certificate(&self, key: &PrivateKey) -> Result<Vec<u8>, CoreError> {
        if !self.is_certificate_statement() {
            return Err(CoreError::Refused(format!("{} is not signed by a certificate key", self.namespace)));
        }
        key.sign_statement(&self.bytes)
    }

    /// Signs with a device key or the relay's key (Ed25519 keys that never sign documents).
    pub fn sign(&self, key: &PrivateKey) -> Result<Vec<u8>, CoreError> {
        if self.is_certificate_statement() || key.algorithm() != crate::KeyAlgorithm::Ed25519 {
            return Err(CoreError::Refused(format!(
                "{} is signed by an Ed25519 device or relay key only",
                self.namespace
            )));
        }
        key.sign(crate::SignScheme::Ed25519, &self.bytes)
    }
}

/// Checks a login and returns its canonical (lowercase) form: 3 to 64 bytes of `a-z 0-9 . _ - @`,
/// starting with a letter or digit.
pub fn normalize_login(login: &str) -> Result<String, CoreError> {
    let l = login.trim().to_ascii_lowercase();
    let ok_char = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-' | '@');
    if l.len() < 3
        || l.len() > MAX_LOGIN_LEN
        || !l.chars().all(ok_char)
        || !l.starts_with(|c: char| c.is_ascii_alphanumeric())
    {
        return Err(CoreError::invalid(format!(
            "a login is 3 to {MAX_LOGIN_LEN} characters of a-z, 0-9, '.', '_', '-', '@', starting with a letter or digit"
        )));
    }
    Ok(l)
}

/// The relay id or device id of an Ed25519 public key: the first 16 bytes of its SHA-256, hex.
pub fn key_id(raw_public_key: &[u8]) -> String {
    hex::encode(&HashAlg::Sha256.digest(raw_public_key)[..16])
}

/// SHA-256 of a certificate's DER, hex: the certificate fingerprint of attestations and device lists.
pub fn cert_fingerprint(cert_der: &[u8]) -> String {
    hex::encode(HashAlg::Sha256.digest(cert_der))
}

/// Verifies an Ed25519 signature by a raw 32-byte public key.
pub fn verify_ed25519(raw_public_key: &[u8], msg: &[u8], sig: &[u8]) -> Result<(), CoreError> {
    if raw_public_key.len() != 32 {
        return Err(CoreError::invalid("an Ed25519 public key is 32 bytes"));
    }
    UnparsedPublicKey::new(&ED25519, raw_public_key)
        .verify(msg, sig)
        .map_err(|_| CoreError::InvalidSignature("the Ed25519 signature does not verify".into()))
}

/// The bytes of a wire field, refused with the field's name when longer than `max`.
pub fn bounded<'a>(field: &str, v: &'a Base64, max: usize) -> Result<&'a [u8], CoreError> {
    if v.len() > max {
        return Err(CoreError::invalid(format!("{field} is too long")));
    }
    Ok(v.as_slice())
}

/// A [`CertProof`] whose chain leads to a trust anchor and whose signature verified.
#[derive(Debug, Clone)]
pub struct VerifiedProof {
    /// The leaf certificate, DER.
    pub leaf: Vec<u8>,
    /// [`cert_fingerprint`] of the leaf.
    pub fingerprint: String,
    /// The leaf's subject, for display.
    pub subject: String,
}

/// Decodes a proof's chain (without checking anything yet) and returns the leaf and the rest.
pub fn proof_chain(p: &CertProof) -> Result<(Vec<u8>, Vec<Vec<u8>>), CoreError> {
    if p.chain.is_empty() || p.chain.len() > MAX_CHAIN_LEN {
        return Err(CoreError::invalid(format!("a certificate chain has 1 to {MAX_CHAIN_LEN} certificates")));
    }
    let mut ders = p
        .chain
        .iter()
        .map(|c| bounded("certificate", c, 16 * 1024).map(<[u8]>::to_vec))
        .collect::<Result<Vec<_>, _>>()?;
    let leaf = ders.remove(0);
    Ok((leaf, ders))
}

/// Checks a proof: the chain leads to one of `anchors` now and is fit for signing, and the leaf's key
/// signed `statement_for(leaf_fingerprint)`.
pub fn verify_proof(
    p: &CertProof,
    anchors: &[Vec<u8>],
    now: OffsetDateTime,
    statement_for: impl FnOnce(&str) -> Statement,
) -> Result<VerifiedProof, CoreError> {
    let (leaf, pool) = proof_chain(p)?;
    x509::check_chain(&leaf, &pool, anchors, now)?;
    let fingerprint = cert_fingerprint(&leaf);
    let spki = x509::cert_spki(&leaf)?;
    let sig = bounded("signature", &p.signature, 1024)?;
    let statement = statement_for(&fingerprint);
    if !statement.is_certificate_statement() {
        return Err(CoreError::Internal(format!("{} is not a certificate statement", statement.namespace())));
    }
    x509::verify_statement(&spki, statement.as_bytes(), sig).map_err(|_| {
        CoreError::InvalidSignature("the proof's signature does not verify with its certificate".into())
    })?;
    let subject = x509::parse(&leaf)?.subject().to_string();
    Ok(VerifiedProof { leaf, fingerprint, subject })
}

/// The key that may have signed a relay statement issued at `issued_at` and expiring at `expires_at`:
/// the root key itself (`relay_public_key`, the key the relay id names) when there is no endorsement;
/// otherwise the endorsed signing key, once the root key's signature over its `kalit/v1/relay-key`
/// statement verifies, the endorsement names the root key's relay, and the statement lies wholly within
/// the key's validity (so a signing key can never make a statement that outlives its endorsement, even
/// with a back-dated `issued_at`).
pub fn relay_signing_key<'a>(
    relay_public_key: &'a [u8],
    endorsement: Option<&'a EndorsedRelayKey>,
    issued_at: i64,
    expires_at: i64,
) -> Result<&'a [u8], CoreError> {
    let Some(e) = endorsement else {
        return Ok(relay_public_key);
    };
    let bad = |why: &str| CoreError::InvalidSignature(format!("the relay's signing key {why}"));
    if e.key.relay_id != key_id(relay_public_key) {
        return Err(bad("is endorsed for another relay"));
    }
    let sig = bounded("relay key endorsement", &e.signature, 64)?;
    verify_ed25519(relay_public_key, Statement::relay_key(&e.key).as_bytes(), sig)
        .map_err(|_| bad("is not endorsed by the relay's key"))?;
    let key = bounded("relay signing key", &e.key.public_key, 32)?;
    if key.len() != 32 {
        return Err(bad("is not an Ed25519 key"));
    }
    if issued_at < e.key.not_before || expires_at > e.key.not_after || expires_at < issued_at {
        return Err(bad("was not valid for this statement's time"));
    }
    Ok(key)
}

/// Checks the relay's signature on an attestation: by the relay's raw Ed25519 (root) public key, or by
/// a signing key it endorsed ([`relay_signing_key`]).
pub fn verify_attestation(
    relay_public_key: &[u8],
    signed: &kalit_proto::relay::SignedAttestation,
) -> Result<(), CoreError> {
    let a = &signed.attestation;
    let key = relay_signing_key(relay_public_key, signed.relay_key.as_deref(), a.issued_at, a.expires_at)?;
    let sig = bounded("attestation signature", &signed.signature, 64)?;
    verify_ed25519(key, Statement::attestation(a).as_bytes(), sig)
}

/// Checks the relay's signature on an origin attestation, as [`verify_attestation`] does.
pub fn verify_origin_attestation(
    relay_public_key: &[u8],
    signed: &kalit_proto::session::SignedOriginAttestation,
) -> Result<(), CoreError> {
    let a = &signed.attestation;
    let key = relay_signing_key(relay_public_key, signed.relay_key.as_deref(), a.issued_at, a.expires_at)?;
    let sig = bounded("origin attestation signature", &signed.signature, 64)?;
    verify_ed25519(key, Statement::origin(a).as_bytes(), sig)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::KeyAlgorithm;
    use crate::keys::generate;

    #[test]
    fn namespaces_and_fields_are_unambiguous() {
        let a = Statement::register("r", b"n", "ab", b"c", "f");
        let b = Statement::register("r", b"n", "a", b"bc", "f");
        assert_ne!(a.as_bytes(), b.as_bytes(), "length prefixes keep field boundaries");
        assert!(a.as_bytes().starts_with(b"kalit/v1/register\0"));
        let p = Statement::device_removal("r", b"n", "ab", "c", "f");
        assert_ne!(a.as_bytes()[..], p.as_bytes()[..a.as_bytes().len().min(p.as_bytes().len())]);
        assert_eq!(p.namespace(), namespace::DEVICE_REMOVAL);
        assert!(a.is_certificate_statement() && p.is_certificate_statement());
        assert!(!Statement::device_request("r", b"n", "ab", "d", "list", "").is_certificate_statement());
    }

    #[test]
    fn logins() {
        assert_eq!(normalize_login(" Alice@Example.UZ ").unwrap(), "alice@example.uz");
        for bad in ["", "ab", "-abc", "a b c", "äbc", &"a".repeat(65), "abc/def", "abc\0"] {
            assert!(normalize_login(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn ed25519_statement_round_trip_and_tamper() {
        let k = PrivateKey::from_pkcs8(&generate(KeyAlgorithm::Ed25519).unwrap()).unwrap();
        let s = Statement::device_request("r", b"nonce", "alice", "dev", "list", "");
        let sig = s.sign(&k).unwrap();
        verify_ed25519(k.public_key_raw(), s.as_bytes(), &sig).unwrap();
        let other = Statement::device_request("r", b"nonce", "alice", "dev", "remove", "");
        assert!(verify_ed25519(k.public_key_raw(), other.as_bytes(), &sig).is_err());
        // Each statement is signed by the kind of key it is for.
        assert!(Statement::register("r", b"n", "alice", b"d", "f").sign(&k).is_err());
        assert!(s.sign_as_certificate(&k).is_err());
        assert!(verify_ed25519(&[0u8; 31], s.as_bytes(), &sig).is_err());
    }

    #[test]
    fn bounded_fields() {
        assert_eq!(bounded("x", &Base64::from([0u8; 3]), 3).unwrap(), &[0, 0, 0]);
        assert!(bounded("x", &Base64::from([0u8; 4]), 3).is_err());
    }
}
