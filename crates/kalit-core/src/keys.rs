//! Private keys behind one type. Only the vault constructs these, from decrypted PKCS#8 held in a
//! [`SecretBytes`]; nothing here writes key bytes anywhere.

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, RsaKeyPair};

use crate::{CoreError, KeyAlgorithm, SecretBytes, SignScheme};

/// Generates a new key pair and returns its private key as PKCS#8 DER.
pub fn generate(alg: KeyAlgorithm) -> Result<SecretBytes, CoreError> {
    let fail = |_| CoreError::Crypto("key generation");
    let der = match alg {
        KeyAlgorithm::Rsa2048 | KeyAlgorithm::Rsa3072 | KeyAlgorithm::Rsa4096 => {
            let size = match alg {
                KeyAlgorithm::Rsa2048 => KeySize::Rsa2048,
                KeyAlgorithm::Rsa3072 => KeySize::Rsa3072,
                _ => KeySize::Rsa4096,
            };
            let kp = RsaKeyPair::generate(size).map_err(fail)?;
            let der = kp.as_der().map_err(fail)?;
            der.as_ref().to_vec()
        }
        KeyAlgorithm::P256 => {
            let kp = EcdsaKeyPair::generate(&signature::ECDSA_P256_SHA256_ASN1_SIGNING).map_err(fail)?;
            kp.to_pkcs8v1().map_err(fail)?.as_ref().to_vec()
        }
        KeyAlgorithm::Ed25519 => {
            // PKCS#8 v1: OpenSSL 3.0 cannot read the v2 form (with the public key) inside a PFX.
            let kp = Ed25519KeyPair::generate().map_err(fail)?;
            kp.to_pkcs8v1().map_err(fail)?.as_ref().to_vec()
        }
    };
    Ok(SecretBytes::new(der))
}

/// Names what a PKCS#8 blob holds, for error messages ("RSA-1024 key", "EC key on curve 1.3.132.0.34").
/// The blob is untrusted (an imported PFX): read with the `der` crate's decoder.
fn describe_pkcs8(pkcs8: &[u8]) -> String {
    use der::asn1::{AnyRef, ObjectIdentifier, OctetStringRef, UintRef};
    use der::{Decode, Reader, SliceReader};
    fn rest<'a>(r: &mut SliceReader<'a>) -> der::Result<()> {
        let n = r.remaining_len();
        r.read_slice(n).map(|_| ())
    }
    let parse = || -> der::Result<String> {
        let (oid, params, key) = SliceReader::new(pkcs8)?.sequence(|r: &mut SliceReader<'_>| {
            let _version = AnyRef::decode(r)?;
            let (oid, params) = r.sequence(|a: &mut SliceReader<'_>| {
                let oid: ObjectIdentifier = ObjectIdentifier::decode(a)?;
                let params = Option::<AnyRef<'_>>::decode(a)?;
                Ok::<_, der::Error>((oid, params))
            })?;
            let key = <&OctetStringRef>::decode(r)?;
            rest(r)?;
            Ok::<_, der::Error>((oid, params, key.as_bytes()))
        })?;
        Ok(match oid.to_string().as_str() {
            "1.2.840.113549.1.1.1" => {
                let modulus = SliceReader::new(key)?.sequence(|r: &mut SliceReader<'_>| {
                    let _version = AnyRef::decode(r)?;
                    let m = UintRef::decode(r)?.as_bytes();
                    rest(r)?;
                    Ok::<_, der::Error>(m)
                })?;
                format!("an RSA-{} key", modulus.len() * 8)
            }
            "1.2.840.10045.2.1" => {
                let curve = params
                    .and_then(|p| p.decode_as::<ObjectIdentifier>().ok())
                    .map(|c| c.to_string())
                    .unwrap_or_else(|| "unknown".into());
                format!("an EC key on curve {curve}")
            }
            "1.3.101.113" => "an Ed448 key".into(),
            other => format!("a key of algorithm {other}"),
        })
    };
    parse().unwrap_or_else(|_| "a malformed private key".into())
}

enum Inner {
    Rsa(RsaKeyPair),
    Ecdsa(EcdsaKeyPair),
    Ed25519(Ed25519KeyPair),
}

/// A usable private key. Dropping it frees (and aws-lc wipes) the key material.
pub struct PrivateKey {
    alg: KeyAlgorithm,
    inner: Inner,
    public: Vec<u8>,
}

impl std::fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrivateKey").field("alg", &self.alg).finish_non_exhaustive()
    }
}

impl PrivateKey {
    /// Parses PKCS#8 (v1 or v2) DER, detecting the algorithm. Refuses RSA sizes other than 2048, 3072 and
    /// 4096 bits, elliptic curves other than P-256, and anything else.
    pub fn from_pkcs8(pkcs8: &SecretBytes) -> Result<Self, CoreError> {
        let der = pkcs8.expose_secret();
        if let Ok(kp) = RsaKeyPair::from_pkcs8(der) {
            let alg = match kp.public_modulus_len() * 8 {
                2048 => KeyAlgorithm::Rsa2048,
                3072 => KeyAlgorithm::Rsa3072,
                4096 => KeyAlgorithm::Rsa4096,
                bits => {
                    return Err(CoreError::Unsupported(format!(
                        "RSA-{bits} (Kalit accepts RSA keys of 2048, 3072 or 4096 bits)"
                    )));
                }
            };
            let public = kp.public_key().as_ref().to_vec();
            return Ok(PrivateKey { alg, inner: Inner::Rsa(kp), public });
        }
        if let Ok(kp) = EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_ASN1_SIGNING, der) {
            let public = kp.public_key().as_ref().to_vec();
            return Ok(PrivateKey { alg: KeyAlgorithm::P256, inner: Inner::Ecdsa(kp), public });
        }
        if let Ok(kp) = Ed25519KeyPair::from_pkcs8_maybe_unchecked(der) {
            let public = kp.public_key().as_ref().to_vec();
            return Ok(PrivateKey { alg: KeyAlgorithm::Ed25519, inner: Inner::Ed25519(kp), public });
        }
        Err(CoreError::Unsupported(format!(
            "{} (Kalit accepts RSA keys of 2048, 3072 or 4096 bits, ECDSA P-256 and Ed25519)",
            describe_pkcs8(der)
        )))
    }

    /// The private key as PKCS#8 v1 (RFC 5208), the form every PKCS#12 reader understands.
    pub fn to_pkcs8_v1(&self) -> Result<SecretBytes, CoreError> {
        let fail = |_| CoreError::Crypto("PKCS#8 encoding");
        let der = match &self.inner {
            Inner::Rsa(kp) => kp.as_der().map_err(fail)?.as_ref().to_vec(),
            Inner::Ecdsa(kp) => kp.to_pkcs8v1().map_err(fail)?.as_ref().to_vec(),
            Inner::Ed25519(kp) => kp.to_pkcs8v1().map_err(fail)?.as_ref().to_vec(),
        };
        Ok(SecretBytes::new(der))
    }

    /// The key's algorithm.
    pub fn algorithm(&self) -> KeyAlgorithm {
        self.alg
    }

    /// The public key in the algorithm's own encoding (for Ed25519: the raw 32 bytes).
    pub fn public_key_raw(&self) -> &[u8] {
        &self.public
    }

    /// DER SubjectPublicKeyInfo of the public half.
    pub fn spki_der(&self) -> Vec<u8> {
        rcgen::PublicKeyData::subject_public_key_info(self)
    }

    /// Signs `msg` with `scheme`, which must fit the key.
    pub fn sign(&self, scheme: SignScheme, msg: &[u8]) -> Result<Vec<u8>, CoreError> {
        let rng = SystemRandom::new();
        match (&self.inner, scheme) {
            (Inner::Rsa(kp), SignScheme::RsaPkcs1Sha256 | SignScheme::RsaPssSha256) => {
                let enc: &'static dyn signature::RsaEncoding = if scheme == SignScheme::RsaPssSha256 {
                    &signature::RSA_PSS_SHA256
                } else {
                    &signature::RSA_PKCS1_SHA256
                };
                let mut sig = vec![0u8; kp.public_modulus_len()];
                kp.sign(enc, &rng, msg, &mut sig).map_err(|_| CoreError::Crypto("RSA signing"))?;
                Ok(sig)
            }
            (Inner::Ecdsa(kp), SignScheme::EcdsaP256Sha256) => {
                Ok(kp.sign(&rng, msg).map_err(|_| CoreError::Crypto("ECDSA signing"))?.as_ref().to_vec())
            }
            (Inner::Ed25519(kp), SignScheme::Ed25519) => Ok(kp.sign(msg).as_ref().to_vec()),
            _ => Err(CoreError::invalid(format!("scheme {} does not fit a {} key", scheme.name(), self.alg))),
        }
    }

    /// Signs a Kalit statement (never a document) under the statement scheme, which no document
    /// signature of this key can verify under (docs/PROTOCOL.md, "One key, many purposes"):
    /// RSA PKCS#1 v1.5 with SHA-384 (documents use SHA-256: the DigestInfo differs, so the padded
    /// messages differ), ECDSA P-256 over the leftmost 256 bits of SHA-384 (documents: SHA-256), and
    /// Ed25519ph with the context [`STATEMENT_CONTEXT`] (documents: PureEdDSA, which RFC 8032's `dom2`
    /// prefix keeps apart).
    pub(crate) fn sign_statement(&self, msg: &[u8]) -> Result<Vec<u8>, CoreError> {
        match &self.inner {
            Inner::Rsa(kp) => {
                let mut sig = vec![0u8; kp.public_modulus_len()];
                kp.sign(&signature::RSA_PKCS1_SHA384, &SystemRandom::new(), msg, &mut sig)
                    .map_err(|_| CoreError::Crypto("RSA signing"))?;
                Ok(sig)
            }
            Inner::Ecdsa(kp) => {
                let h = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA384, msg);
                // ECDSA uses the leftmost bits of the hash that fit the curve order (FIPS 186-5 6.4.1):
                // a P-256 signature over SHA-384 signs its first 32 bytes.
                let e = aws_lc_rs::digest::Digest::import_less_safe(&h.as_ref()[..32], &aws_lc_rs::digest::SHA256)
                    .map_err(|_| CoreError::Crypto("ECDSA statement digest"))?;
                Ok(kp.sign_digest(&e).map_err(|_| CoreError::Crypto("ECDSA signing"))?.as_ref().to_vec())
            }
            Inner::Ed25519(kp) => {
                use aws_lc_rs::encoding::AsBigEndian;
                let seed = kp.seed().map_err(|_| CoreError::Crypto("Ed25519 seed"))?;
                let seed = seed.as_be_bytes().map_err(|_| CoreError::Crypto("Ed25519 seed"))?;
                let seed: [u8; 32] = seed.as_ref().try_into().map_err(|_| CoreError::Crypto("Ed25519 seed"))?;
                ed25519ph_sign(zeroize::Zeroizing::new(seed), msg, STATEMENT_CONTEXT)
            }
        }
    }

    /// The default scheme of this key (PKCS#1 v1.5 for RSA).
    pub fn default_scheme(&self) -> SignScheme {
        match self.alg {
            KeyAlgorithm::P256 => SignScheme::EcdsaP256Sha256,
            KeyAlgorithm::Ed25519 => SignScheme::Ed25519,
            _ => SignScheme::RsaPkcs1Sha256,
        }
    }
}

/// The Ed25519ph context of statement signatures (RFC 8032 5.1: at most 255 bytes).
pub const STATEMENT_CONTEXT: &[u8] = b"kalit/v1/statement";

/// Ed25519ph (RFC 8032 5.1, prehash SHA-512) with a context, from a 32-byte seed that is wiped after use.
fn ed25519ph_sign(seed: zeroize::Zeroizing<[u8; 32]>, msg: &[u8], context: &[u8]) -> Result<Vec<u8>, CoreError> {
    use sha2::Digest as _;
    let sk = ed25519_dalek::SigningKey::from_bytes(&seed);
    let sig = sk
        .sign_prehashed(sha2::Sha512::new_with_prefix(msg), Some(context))
        .map_err(|_| CoreError::Crypto("Ed25519ph signing"))?;
    Ok(sig.to_bytes().to_vec())
}

/// Verifies an Ed25519ph signature with a context by a raw 32-byte public key.
pub(crate) fn ed25519ph_verify(public: &[u8], msg: &[u8], sig: &[u8], context: &[u8]) -> Result<(), CoreError> {
    use sha2::Digest as _;
    let bad = || CoreError::InvalidSignature("the signature does not match".into());
    let pk: [u8; 32] = public.try_into().map_err(|_| bad())?;
    let vk = ed25519_dalek::VerifyingKey::from_bytes(&pk).map_err(|_| bad())?;
    let sig = ed25519_dalek::Signature::from_slice(sig).map_err(|_| bad())?;
    vk.verify_prehashed(sha2::Sha512::new_with_prefix(msg), Some(context), &sig).map_err(|_| bad())
}

impl rcgen::PublicKeyData for PrivateKey {
    fn der_bytes(&self) -> &[u8] {
        &self.public
    }

    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        match self.alg {
            KeyAlgorithm::P256 => &rcgen::PKCS_ECDSA_P256_SHA256,
            KeyAlgorithm::Ed25519 => &rcgen::PKCS_ED25519,
            _ => &rcgen::PKCS_RSA_SHA256,
        }
    }
}

impl rcgen::SigningKey for PrivateKey {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        PrivateKey::sign(self, self.default_scheme(), msg).map_err(|_| rcgen::Error::RingUnspecified)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::x509;

    #[test]
    fn pkcs8_descriptions_come_from_the_der_decoder() {
        let rsa = generate(KeyAlgorithm::Rsa2048).unwrap();
        assert_eq!(describe_pkcs8(rsa.expose_secret()), "an RSA-2048 key");
        let ec = generate(KeyAlgorithm::P256).unwrap();
        assert_eq!(describe_pkcs8(ec.expose_secret()), "an EC key on curve 1.2.840.10045.3.1.7");
        let ed = generate(KeyAlgorithm::Ed25519).unwrap();
        assert_eq!(describe_pkcs8(ed.expose_secret()), "a key of algorithm 1.3.101.112");
        let bytes = ec.expose_secret();
        for cut in [0, 1, 5, bytes.len() / 2, bytes.len() - 1] {
            assert_eq!(describe_pkcs8(&bytes[..cut]), "a malformed private key");
        }
    }

    #[test]
    fn every_algorithm_generates_signs_and_verifies() {
        for alg in KeyAlgorithm::GENERATABLE {
            let pkcs8 = generate(alg).unwrap();
            let key = PrivateKey::from_pkcs8(&pkcs8).unwrap();
            assert_eq!(key.algorithm(), alg);
            let spki = key.spki_der();
            let msg = b"kalit test message";
            let sig = key.sign(key.default_scheme(), msg).unwrap();
            assert_eq!(x509::verify_raw(&spki, msg, &sig).unwrap(), key.default_scheme());
            assert!(x509::verify_raw(&spki, b"another message", &sig).is_err());
            if alg.is_rsa() {
                let sig = key.sign(SignScheme::RsaPssSha256, msg).unwrap();
                assert_eq!(x509::verify_raw(&spki, msg, &sig).unwrap(), SignScheme::RsaPssSha256);
            }
        }
    }

    /// RFC 8032 section 7.3, the Ed25519ph test vector (message "abc", empty context).
    #[test]
    fn ed25519ph_rfc8032_vector() {
        let seed: [u8; 32] = hex::decode("833fe62409237b9d62ec77587520911e9a759cec1d19755b7da901b96dca3d42")
            .unwrap()
            .try_into()
            .unwrap();
        let public = hex::decode("ec172b93ad5e563bf4932c70e1245034c35467ef2efd4d64ebf819683467e2bf").unwrap();
        let expected = "98a70222f0b8121aa9d30f813d683f809e462b469c7ff87639499bb94e6dae41\
                        31f85042463c2a355a2003d062adf5aaa10b8c61e636062aaad11c2a26083406";
        let sig = ed25519ph_sign(zeroize::Zeroizing::new(seed), b"abc", b"").unwrap();
        assert_eq!(hex::encode(&sig), expected);
        ed25519ph_verify(&public, b"abc", &sig, b"").unwrap();
        assert!(ed25519ph_verify(&public, b"abd", &sig, b"").is_err());
        assert!(ed25519ph_verify(&public, b"abc", &sig, STATEMENT_CONTEXT).is_err(), "the context is signed");
    }

    /// A statement signature and a document signature over the same bytes never verify as each other,
    /// for every key type: the two schemes are disjoint, not merely refused.
    #[test]
    fn statement_and_document_signatures_are_disjoint() {
        let msg = b"kalit/v1/register\0 the same bytes either way";
        for alg in KeyAlgorithm::GENERATABLE {
            let key = PrivateKey::from_pkcs8(&generate(alg).unwrap()).unwrap();
            let spki = key.spki_der();
            let st = key.sign_statement(msg).unwrap();
            x509::verify_statement(&spki, msg, &st).unwrap();
            assert!(x509::verify_raw(&spki, msg, &st).is_err(), "{alg}: a statement signature verified as a document");
            let mut schemes = vec![key.default_scheme()];
            if alg.is_rsa() {
                schemes.push(SignScheme::RsaPssSha256);
            }
            for scheme in schemes {
                let doc = key.sign(scheme, msg).unwrap();
                assert!(
                    x509::verify_statement(&spki, msg, &doc).is_err(),
                    "{alg} {scheme:?}: a document signature verified as a statement"
                );
            }
        }
    }

    #[test]
    fn garbage_pkcs8_is_an_error_not_a_panic() {
        for bytes in [&b""[..], b"\x30\x03\x02\x01\x00", &[0xffu8; 300]] {
            assert!(PrivateKey::from_pkcs8(&SecretBytes::from_slice(bytes)).is_err());
        }
    }
}
