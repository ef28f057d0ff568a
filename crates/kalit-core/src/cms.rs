//! CMS (RFC 5652) detached SignedData: a builder of our own (two phases, so the bytes to sign can travel
//! to the phone) and a verifier over the `cms` crate's types.
//!
//! Signed attributes are always present: contentType (id-data), messageDigest, signingTime and
//! signingCertificateV2 (RFC 5035). For Ed25519 the message digest is SHA-512 (RFC 8419).

use cms::cert::CertificateChoices;
use cms::content_info::ContentInfo;
use cms::signed_data::{SignedData, SignerIdentifier, SignerInfo};
use const_oid::ObjectIdentifier;
use der::asn1::{GeneralizedTime, OctetString, UtcTime};
use der::{Decode, Encode, Tag, Tagged};
use time::OffsetDateTime;
use x509_parser::extensions::ParsedExtension;

use crate::der as w;
use crate::digest::HashAlg;
use crate::x509::{self, verify_with};
use crate::{CoreError, SignScheme};

/// Object identifiers used here.
pub mod oid {
    use const_oid::ObjectIdentifier as O;
    /// id-data
    pub const DATA: O = O::new_unwrap("1.2.840.113549.1.7.1");
    /// id-signedData
    pub const SIGNED_DATA: O = O::new_unwrap("1.2.840.113549.1.7.2");
    /// id-contentType
    pub const CONTENT_TYPE: O = O::new_unwrap("1.2.840.113549.1.9.3");
    /// id-messageDigest
    pub const MESSAGE_DIGEST: O = O::new_unwrap("1.2.840.113549.1.9.4");
    /// id-signingTime
    pub const SIGNING_TIME: O = O::new_unwrap("1.2.840.113549.1.9.5");
    /// id-aa-signingCertificateV2
    pub const SIGNING_CERT_V2: O = O::new_unwrap("1.2.840.113549.1.9.16.2.47");
    /// id-aa-signatureTimeStampToken (RFC 3161 appendix A)
    pub const SIGNATURE_TIMESTAMP: O = O::new_unwrap("1.2.840.113549.1.9.16.2.14");
    /// id-ct-TSTInfo
    pub const TST_INFO: O = O::new_unwrap("1.2.840.113549.1.9.16.1.4");
    /// SHA-256
    pub const SHA256: O = O::new_unwrap("2.16.840.1.101.3.4.2.1");
    /// SHA-384
    pub const SHA384: O = O::new_unwrap("2.16.840.1.101.3.4.2.2");
    /// SHA-512
    pub const SHA512: O = O::new_unwrap("2.16.840.1.101.3.4.2.3");
    /// rsaEncryption
    pub const RSA: O = O::new_unwrap("1.2.840.113549.1.1.1");
    /// sha256WithRSAEncryption
    pub const RSA_SHA256: O = O::new_unwrap("1.2.840.113549.1.1.11");
    /// sha384WithRSAEncryption
    pub const RSA_SHA384: O = O::new_unwrap("1.2.840.113549.1.1.12");
    /// sha512WithRSAEncryption
    pub const RSA_SHA512: O = O::new_unwrap("1.2.840.113549.1.1.13");
    /// id-RSASSA-PSS
    pub const RSA_PSS: O = O::new_unwrap("1.2.840.113549.1.1.10");
    /// id-mgf1
    pub const MGF1: O = O::new_unwrap("1.2.840.113549.1.1.8");
    /// id-ecPublicKey
    pub const EC_PUBLIC_KEY: O = O::new_unwrap("1.2.840.10045.2.1");
    /// ecdsa-with-SHA256
    pub const ECDSA_SHA256: O = O::new_unwrap("1.2.840.10045.4.3.2");
    /// ecdsa-with-SHA384
    pub const ECDSA_SHA384: O = O::new_unwrap("1.2.840.10045.4.3.3");
    /// id-Ed25519
    pub const ED25519: O = O::new_unwrap("1.3.101.112");
}

fn hash_oid(h: HashAlg) -> ObjectIdentifier {
    match h {
        HashAlg::Sha256 => oid::SHA256,
        HashAlg::Sha384 => oid::SHA384,
        HashAlg::Sha512 => oid::SHA512,
    }
}

/// The digest algorithm of the messageDigest attribute for a scheme.
pub fn digest_alg_for(scheme: SignScheme) -> HashAlg {
    match scheme {
        SignScheme::Ed25519 => HashAlg::Sha512,
        _ => HashAlg::Sha256,
    }
}

fn signature_alg_id(scheme: SignScheme) -> Vec<u8> {
    match scheme {
        SignScheme::RsaPkcs1Sha256 => w::alg_id_null(&oid::RSA),
        SignScheme::RsaPssSha256 => {
            let sha256 = w::alg_id(&oid::SHA256);
            let mgf = w::seq(&[&w::oid(&oid::MGF1), &sha256]);
            let params = w::seq(&[&w::ctx(0, &sha256), &w::ctx(1, &mgf), &w::ctx(2, &w::small_int(32))]);
            w::seq(&[&w::oid(&oid::RSA_PSS), &params])
        }
        SignScheme::EcdsaP256Sha256 => w::alg_id(&oid::ECDSA_SHA256),
        SignScheme::Ed25519 => w::alg_id(&oid::ED25519),
    }
}

fn time_der(t: OffsetDateTime) -> Vec<u8> {
    let t = t.to_offset(time::UtcOffset::UTC);
    let (y, m, d, hh, mm, ss) = (t.year(), t.month() as u8, t.day(), t.hour(), t.minute(), t.second());
    if (1950..2050).contains(&y) {
        w::tlv(0x17, format!("{:02}{m:02}{d:02}{hh:02}{mm:02}{ss:02}Z", y % 100).as_bytes())
    } else {
        w::tlv(0x18, format!("{y:04}{m:02}{d:02}{hh:02}{mm:02}{ss:02}Z").as_bytes())
    }
}

fn attribute(o: &ObjectIdentifier, value: Vec<u8>) -> Vec<u8> {
    w::seq(&[&w::oid(o), &w::set_of(vec![value])])
}

/// A SignedData waiting for its signature. Phase one of signing.
#[derive(Debug, Clone)]
pub struct PreparedCms {
    scheme: SignScheme,
    chain: Vec<Vec<u8>>,
    sid: Vec<u8>,
    signed_attrs_content: Vec<u8>,
    /// The encapsulated content type, and the content itself when it is attached (a timestamp token's
    /// TSTInfo); `None` for a detached document (id-data).
    encapsulated: Option<(ObjectIdentifier, Vec<u8>)>,
    /// Whether the certificates go into the SignedData (a TSA leaves them out when not asked).
    carry_certificates: bool,
}

/// Which signed attributes a detached SignedData carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// CAdES-B-B: contentType, messageDigest, signingTime, signingCertificateV2.
    Cades,
    /// PAdES-B-B (ETSI EN 319 142-1 5.2.1): as CAdES but without signingTime; the claimed time lives
    /// in the PDF signature dictionary's `/M`, and a trusted one comes from a timestamp.
    Pades,
}

impl PreparedCms {
    /// Prepares a detached SignedData (CAdES profile) for the document whose
    /// [`digest_alg_for`]`(scheme)` digest is `document_digest`, signed by the leaf of `chain` (leaf
    /// first) at `signing_time`.
    pub fn new(
        chain: &[Vec<u8>],
        scheme: SignScheme,
        document_digest: &[u8],
        signing_time: OffsetDateTime,
    ) -> Result<Self, CoreError> {
        Self::build(chain, scheme, oid::DATA, document_digest, Some(signing_time), None)
    }

    /// Prepares a detached SignedData with the signed attributes of `profile`.
    pub fn with_profile(
        chain: &[Vec<u8>],
        scheme: SignScheme,
        document_digest: &[u8],
        profile: Profile,
        signing_time: OffsetDateTime,
    ) -> Result<Self, CoreError> {
        let time = (profile == Profile::Cades).then_some(signing_time);
        Self::build(chain, scheme, oid::DATA, document_digest, time, None)
    }

    /// Prepares a SignedData that carries `content` of type `content_type` inside it (an RFC 3161
    /// timestamp token carries its TSTInfo this way). No signingTime: the content says the time.
    pub fn encapsulating(
        chain: &[Vec<u8>],
        scheme: SignScheme,
        content_type: ObjectIdentifier,
        content: Vec<u8>,
    ) -> Result<Self, CoreError> {
        let digest = digest_alg_for(scheme).digest(&content);
        Self::build(chain, scheme, content_type, &digest, None, Some(content))
    }

    fn build(
        chain: &[Vec<u8>],
        scheme: SignScheme,
        content_type: ObjectIdentifier,
        document_digest: &[u8],
        signing_time: Option<OffsetDateTime>,
        content: Option<Vec<u8>>,
    ) -> Result<Self, CoreError> {
        let leaf = chain.first().ok_or_else(|| CoreError::invalid("CMS needs the signer's certificate"))?;
        if document_digest.len() != digest_alg_for(scheme).output_len() {
            return Err(CoreError::invalid("document digest has the wrong length"));
        }
        let c = x509::parse(leaf)?;
        let issuer = c.issuer().as_raw();
        let serial = w::tlv(0x02, c.tbs_certificate.raw_serial());
        let sid = w::seq(&[issuer, &serial]);
        // signingCertificateV2: SEQUENCE { SEQUENCE OF ESSCertIDv2 { certHash, issuerSerial } },
        // hashAlgorithm omitted (DEFAULT sha256).
        let general_names = w::seq(&[&w::ctx(4, issuer)]);
        let issuer_serial = w::seq(&[&general_names, &serial]);
        let ess_cert_id = w::seq(&[&w::octets(&HashAlg::Sha256.digest(leaf)), &issuer_serial]);
        let signing_cert = w::seq(&[&w::seq(&[&ess_cert_id])]);
        let mut attrs = vec![
            attribute(&oid::CONTENT_TYPE, w::oid(&content_type)),
            attribute(&oid::MESSAGE_DIGEST, w::octets(document_digest)),
            attribute(&oid::SIGNING_CERT_V2, signing_cert),
        ];
        if let Some(t) = signing_time {
            attrs.push(attribute(&oid::SIGNING_TIME, time_der(t)));
        }
        let encapsulated = match content {
            Some(c) => Some((content_type, c)),
            None if content_type == oid::DATA => None,
            None => Some((content_type, Vec::new())),
        };
        Ok(PreparedCms {
            scheme,
            chain: chain.to_vec(),
            sid,
            signed_attrs_content: w::set_of_content(attrs),
            encapsulated,
            carry_certificates: true,
        })
    }

    /// Leaves the certificates out of the SignedData (the verifier has them from elsewhere).
    pub fn without_certificates(mut self) -> Self {
        self.carry_certificates = false;
        self
    }

    /// The exact bytes the key must sign (DER `SET OF Attribute`).
    pub fn to_be_signed(&self) -> Vec<u8> {
        w::tlv(0x31, &self.signed_attrs_content)
    }

    /// The scheme the signature must use.
    pub fn scheme(&self) -> SignScheme {
        self.scheme
    }

    /// Phase two: the DER ContentInfo carrying the SignedData.
    pub fn finish(self, signature: &[u8]) -> Vec<u8> {
        let digest_alg = w::alg_id(&hash_oid(digest_alg_for(self.scheme)));
        let signer_info = w::seq(&[
            &w::small_int(1),
            &self.sid,
            &digest_alg,
            &w::ctx(0, &self.signed_attrs_content),
            &signature_alg_id(self.scheme),
            &w::octets(signature),
        ]);
        // RFC 5652 5.1: version 3 when the encapsulated content is not id-data.
        let (version, encap) = match &self.encapsulated {
            None => (1, w::seq(&[&w::oid(&oid::DATA)])),
            Some((t, c)) => (3, w::seq(&[&w::oid(t), &w::ctx(0, &w::octets(c))])),
        };
        let certs = if self.carry_certificates { w::ctx(0, &self.chain.concat()) } else { Vec::new() };
        let signed_data = w::seq(&[
            &w::small_int(version),
            &w::set_of(vec![digest_alg.clone()]),
            &encap,
            &certs,
            &w::set_of(vec![signer_info]),
        ]);
        w::seq(&[&w::oid(&oid::SIGNED_DATA), &w::ctx(0, &signed_data)])
    }
}

fn decode_signed_data(cms_der: &[u8]) -> Result<SignedData, CoreError> {
    if cms_der.len() > MAX_CMS_LEN {
        return Err(bad("larger than 1 MiB"));
    }
    let ci = ContentInfo::from_der(cms_der).map_err(|e| bad(&e.to_string()))?;
    if ci.content_type != oid::SIGNED_DATA {
        return Err(CoreError::invalid(format!("CMS content type {} is not SignedData", ci.content_type)));
    }
    ci.content.decode_as().map_err(|e: der::Error| bad(&e.to_string()))
}

fn only_signer(sd: &SignedData) -> Result<&SignerInfo, CoreError> {
    match sd.signer_infos.0.as_slice() {
        [one] => Ok(one),
        _ => Err(CoreError::invalid("the CMS must have exactly one signer here")),
    }
}

/// The signature value of the one SignerInfo of a SignedData: what a signature timestamp covers
/// (RFC 3161 appendix A, ETSI EN 319 122-1 5.3).
pub fn signature_value(cms_der: &[u8]) -> Result<Vec<u8>, CoreError> {
    let sd = decode_signed_data(cms_der)?;
    Ok(only_signer(&sd)?.signature.as_bytes().to_vec())
}

/// The DER certificates a SignedData carries, read without verifying anything (the caller verifies, or
/// has verified, the signature).
pub fn certificates(cms_der: &[u8]) -> Result<Vec<Vec<u8>>, CoreError> {
    carried_certificates(&decode_signed_data(cms_der)?)
}

/// Adds `token` (a DER RFC 3161 timestamp token over [`signature_value`]) to the one SignerInfo as
/// the unsigned signatureTimeStampToken attribute: CAdES-B-T, PAdES-B-T. The signed part is unchanged,
/// so the signature stays valid and the signer is not needed again.
pub fn add_signature_timestamp(cms_der: &[u8], token: &[u8]) -> Result<Vec<u8>, CoreError> {
    use cms::cert::x509::attr::Attribute;
    let sd = decode_signed_data(cms_der)?;
    only_signer(&sd)?;
    let value = der::Any::from_der(token).map_err(|_| CoreError::invalid("the timestamp token is not DER"))?;
    let attr = Attribute {
        oid: oid::SIGNATURE_TIMESTAMP,
        values: der::asn1::SetOfVec::try_from(vec![value]).map_err(|e| bad(&e.to_string()))?,
    };
    let mut sd = sd;
    let mut infos = sd.signer_infos.0.into_vec();
    let si = &mut infos[0];
    let mut unsigned = si.unsigned_attrs.take().map(|a| a.into_vec()).unwrap_or_default();
    if unsigned.iter().any(|a| a.oid == oid::SIGNATURE_TIMESTAMP) {
        return Err(CoreError::invalid("the signature already carries a timestamp"));
    }
    unsigned.push(attr);
    si.unsigned_attrs = Some(der::asn1::SetOfVec::try_from(unsigned).map_err(|e| bad(&e.to_string()))?);
    sd.signer_infos =
        cms::signed_data::SignerInfos(der::asn1::SetOfVec::try_from(infos).map_err(|e| bad(&e.to_string()))?);
    let content = der::Any::encode_from(&sd).map_err(|e| bad(&e.to_string()))?;
    ContentInfo { content_type: oid::SIGNED_DATA, content }.to_der().map_err(|e| bad(&e.to_string()))
}

/// What a successful CMS verification found.
#[derive(Debug, Clone)]
pub struct CmsVerified {
    /// DER of the signer's certificate.
    pub signer_cert: Vec<u8>,
    /// Every certificate carried in the SignedData.
    pub certificates: Vec<Vec<u8>>,
    /// Scheme name, e.g. `rsa-pkcs1-sha256`.
    pub scheme: String,
    /// The signingTime attribute, when present.
    pub signing_time: Option<OffsetDateTime>,
    /// The signature timestamp (CAdES-T), when present: it matches the signature value and its token
    /// verifies with the TSA certificate it names.
    pub timestamp: Option<crate::tsp::TimestampInfo>,
}

/// Largest CMS file accepted.
pub const MAX_CMS_LEN: usize = 1 << 20;

fn bad(msg: &str) -> CoreError {
    CoreError::invalid(format!("malformed CMS: {msg}"))
}

fn parse_hash(o: &ObjectIdentifier) -> Result<HashAlg, CoreError> {
    match *o {
        x if x == oid::SHA256 => Ok(HashAlg::Sha256),
        x if x == oid::SHA384 => Ok(HashAlg::Sha384),
        x if x == oid::SHA512 => Ok(HashAlg::Sha512),
        other => Err(CoreError::Unsupported(format!("digest algorithm {other} (SHA-1 and others are refused)"))),
    }
}

/// Picks the aws-lc-rs verification algorithm for a SignerInfo.
fn verification_for(
    si: &SignerInfo,
    digest: HashAlg,
    signer_modulus_bits: Option<usize>,
) -> Result<(&'static dyn aws_lc_rs::signature::VerificationAlgorithm, String), CoreError> {
    use aws_lc_rs::signature as s;
    let o = si.signature_algorithm.oid;
    let rsa_pkcs1 = |h: HashAlg| -> (&'static dyn s::VerificationAlgorithm, String) {
        match h {
            HashAlg::Sha256 => (&s::RSA_PKCS1_2048_8192_SHA256, "rsa-pkcs1-sha256".into()),
            HashAlg::Sha384 => (&s::RSA_PKCS1_2048_8192_SHA384, "rsa-pkcs1-sha384".into()),
            HashAlg::Sha512 => (&s::RSA_PKCS1_2048_8192_SHA512, "rsa-pkcs1-sha512".into()),
        }
    };
    if o == oid::RSA {
        return Ok(rsa_pkcs1(digest));
    }
    if o == oid::RSA_SHA256 {
        return Ok(rsa_pkcs1(HashAlg::Sha256));
    }
    if o == oid::RSA_SHA384 {
        return Ok(rsa_pkcs1(HashAlg::Sha384));
    }
    if o == oid::RSA_SHA512 {
        return Ok(rsa_pkcs1(HashAlg::Sha512));
    }
    if o == oid::RSA_PSS {
        let params = si.signature_algorithm.parameters.as_ref().ok_or_else(|| bad("PSS without parameters"))?;
        let (hash, salt) = parse_pss_params(params.value())?;
        let name = format!("rsa-pss-{}", hash.name());
        if salt == hash.output_len() {
            return Ok(match hash {
                HashAlg::Sha256 => (&s::RSA_PSS_2048_8192_SHA256, name),
                HashAlg::Sha384 => (&s::RSA_PSS_2048_8192_SHA384, name),
                HashAlg::Sha512 => (&s::RSA_PSS_2048_8192_SHA512, name),
            });
        }
        // OpenSSL signs with the longest salt the key allows; any other length is refused.
        // An attacker's certificate can carry a tiny RSA key: the arithmetic must not underflow.
        let max = signer_modulus_bits.and_then(|bits| pss_max_salt(bits, hash.output_len()));
        if Some(salt) != max {
            return Err(CoreError::Unsupported(format!(
                "PSS salt length {salt} (Kalit verifies the digest length {} or the maximum)",
                hash.output_len()
            )));
        }
        return Ok(match hash {
            HashAlg::Sha256 => (&x509::PSS_SHA256_MAX, name),
            HashAlg::Sha384 => (&x509::PSS_SHA384_MAX, name),
            HashAlg::Sha512 => (&x509::PSS_SHA512_MAX, name),
        });
    }
    let ecdsa = |h: HashAlg| -> Result<(&'static dyn s::VerificationAlgorithm, String), CoreError> {
        match h {
            HashAlg::Sha256 => Ok((&s::ECDSA_P256_SHA256_ASN1, "ecdsa-p256-sha256".into())),
            HashAlg::Sha384 => Ok((&s::ECDSA_P256_SHA384_ASN1, "ecdsa-p256-sha384".into())),
            HashAlg::Sha512 => Err(CoreError::Unsupported("ECDSA with SHA-512".into())),
        }
    };
    if o == oid::ECDSA_SHA256 {
        return ecdsa(HashAlg::Sha256);
    }
    if o == oid::ECDSA_SHA384 {
        return ecdsa(HashAlg::Sha384);
    }
    if o == oid::EC_PUBLIC_KEY {
        return ecdsa(digest);
    }
    if o == oid::ED25519 {
        return Ok((&s::ED25519, "ed25519".into()));
    }
    Err(CoreError::Unsupported(format!("signature algorithm {o}")))
}

/// RSASSA-PSS-params: `[0]` hash (default SHA-1, refused), `[1]` MGF, `[2]` salt length.
/// The longest PSS salt an RSA key of `bits` allows with a hash of `hash_len` bytes (RFC 8017 9.1.1:
/// emLen - hLen - 2); `None` when the key is too small for the hash at all.
fn pss_max_salt(bits: usize, hash_len: usize) -> Option<usize> {
    (bits.checked_add(6)? / 8).checked_sub(hash_len.checked_add(2)?)
}

fn parse_pss_params(seq_content: &[u8]) -> Result<(HashAlg, usize), CoreError> {
    use der::asn1::AnyRef;
    use der::{Decode, Reader, SliceReader, Tag, TagNumber};
    let mut hash = None;
    let mut salt = 20usize;
    let mut r = SliceReader::new(seq_content).map_err(|_| bad("PSS parameters"))?;
    while !r.is_finished() {
        let field = AnyRef::decode(&mut r).map_err(|_| bad("PSS parameters"))?;
        match field.tag() {
            Tag::ContextSpecific { constructed: true, number: TagNumber(0) } => {
                let o = SliceReader::new(field.value())
                    .and_then(|mut a| {
                        a.sequence(|s: &mut SliceReader<'_>| {
                            let o = ObjectIdentifier::decode(s)?;
                            let n = s.remaining_len();
                            s.read_slice(n)?;
                            Ok::<_, der::Error>(o)
                        })
                    })
                    .map_err(|_| bad("PSS hash"))?;
                hash = Some(parse_hash(&o)?);
            }
            Tag::ContextSpecific { constructed: true, number: TagNumber(2) } => {
                let v = SliceReader::new(field.value())
                    .and_then(|mut a| u16::decode(&mut a))
                    .map_err(|_| bad("PSS salt"))?;
                salt = usize::from(v);
            }
            _ => {}
        }
    }
    Ok((hash.ok_or_else(|| CoreError::Unsupported("PSS with SHA-1".into()))?, salt))
}

fn single_value(attr: &cms::cert::x509::attr::Attribute) -> Result<&der::Any, CoreError> {
    if attr.values.len() != 1 {
        return Err(bad("attribute with other than one value"));
    }
    attr.values.iter().next().ok_or_else(|| bad("empty attribute"))
}

fn matches_sid(sid: &SignerIdentifier, cert_der: &[u8]) -> bool {
    let Ok(c) = x509::parse(cert_der) else { return false };
    match sid {
        SignerIdentifier::IssuerAndSerialNumber(isn) => {
            let Ok(issuer) = isn.issuer.to_der() else { return false };
            issuer == c.issuer().as_raw() && isn.serial_number.as_bytes() == c.tbs_certificate.raw_serial()
        }
        SignerIdentifier::SubjectKeyIdentifier(ski) => c.extensions().iter().any(
            |e| matches!(e.parsed_extension(), ParsedExtension::SubjectKeyIdentifier(k) if k.0 == ski.0.as_bytes()),
        ),
    }
}

/// Verifies a detached CMS SignedData. `digest_of` returns the document's digest for a hash algorithm
/// (so large documents can be streamed by the caller). `extra_certs` are tried when the SignedData does
/// not carry the signer's certificate. Every SignerInfo must verify. A signature timestamp, when the
/// signer carries one, must match the signature value and verify; it is reported (whether its TSA is
/// trusted is for the caller to decide, with [`crate::tsp::check_tsa_chain`]).
pub fn verify_detached(
    cms_der: &[u8],
    digest_of: &mut dyn FnMut(HashAlg) -> Result<Vec<u8>, CoreError>,
    extra_certs: &[Vec<u8>],
) -> Result<CmsVerified, CoreError> {
    let sd = decode_signed_data(cms_der)?;
    if sd.encap_content_info.econtent.is_some() {
        return Err(CoreError::invalid("CMS has the content attached; Kalit verifies detached signatures"));
    }
    let certificates = carried_certificates(&sd)?;
    if sd.signer_infos.0.is_empty() {
        return Err(bad("no SignerInfo"));
    }
    let mut result = None;
    for si in sd.signer_infos.0.iter() {
        let mut v = verify_signer(si, sd.encap_content_info.econtent_type, &certificates, extra_certs, digest_of)?;
        v.timestamp = signature_timestamp(si)?;
        result = Some(v);
    }
    result.ok_or_else(|| bad("no SignerInfo"))
}

/// The DER certificates a SignedData carries.
pub(crate) fn carried_certificates(sd: &SignedData) -> Result<Vec<Vec<u8>>, CoreError> {
    let mut certificates = Vec::new();
    if let Some(set) = &sd.certificates {
        for choice in set.0.iter() {
            if let CertificateChoices::Certificate(c) = choice {
                certificates.push(c.to_der().map_err(|e| bad(&e.to_string()))?);
            }
        }
    }
    Ok(certificates)
}

/// The signatureTimeStampToken of a SignerInfo, checked against its signature value.
fn signature_timestamp(si: &SignerInfo) -> Result<Option<crate::tsp::TimestampInfo>, CoreError> {
    let Some(unsigned) = &si.unsigned_attrs else { return Ok(None) };
    let mut found = None;
    for a in unsigned.iter().filter(|a| a.oid == oid::SIGNATURE_TIMESTAMP) {
        if found.is_some() {
            return Err(bad("two signature timestamps"));
        }
        let token = single_value(a)?.to_der().map_err(|e| bad(&e.to_string()))?;
        found = Some(crate::tsp::verify_token(&token, si.signature.as_bytes()).map_err(|e| match e {
            CoreError::InvalidSignature(m) => CoreError::InvalidSignature(format!("the signature timestamp: {m}")),
            other => other,
        })?);
    }
    Ok(found)
}

/// Checks one SignerInfo: its signed attributes (contentType equal to `content_type`, one
/// messageDigest equal to `digest_of`), and its signature with the certificate it names.
pub(crate) fn verify_signer(
    si: &SignerInfo,
    content_type: ObjectIdentifier,
    certificates: &[Vec<u8>],
    extra_certs: &[Vec<u8>],
    digest_of: &mut dyn FnMut(HashAlg) -> Result<Vec<u8>, CoreError>,
) -> Result<CmsVerified, CoreError> {
    let signer_cert =
        certificates.iter().chain(extra_certs.iter()).find(|c| matches_sid(&si.sid, c)).cloned().ok_or_else(|| {
            CoreError::invalid("the signer's certificate is neither in the CMS nor given with --cert")
        })?;
    let hash = parse_hash(&si.digest_alg.oid)?;
    let attrs =
        si.signed_attrs.as_ref().ok_or_else(|| CoreError::Unsupported("CMS without signed attributes".into()))?;
    let mut digest_attr = None;
    let mut type_attr = None;
    let mut signing_time = None;
    for a in attrs.iter() {
        if a.oid == oid::MESSAGE_DIGEST {
            let v = single_value(a)?.decode_as::<OctetString>().map_err(|_| bad("messageDigest"))?;
            if digest_attr.replace(v.as_bytes().to_vec()).is_some() {
                return Err(bad("two messageDigest attributes"));
            }
        } else if a.oid == oid::CONTENT_TYPE {
            let v = single_value(a)?.decode_as::<ObjectIdentifier>().map_err(|_| bad("contentType"))?;
            if type_attr.replace(v).is_some() {
                return Err(bad("two contentType attributes"));
            }
        } else if a.oid == oid::SIGNING_TIME {
            let v = single_value(a)?;
            let unix = match v.tag() {
                Tag::UtcTime => v.decode_as::<UtcTime>().map(|t| t.to_unix_duration()),
                Tag::GeneralizedTime => v.decode_as::<GeneralizedTime>().map(|t| t.to_unix_duration()),
                _ => return Err(bad("signingTime")),
            }
            .map_err(|_| bad("signingTime"))?;
            signing_time = OffsetDateTime::from_unix_timestamp(unix.as_secs() as i64).ok();
        }
    }
    if type_attr != Some(content_type) {
        return Err(bad("contentType attribute missing or different from the encapsulated type"));
    }
    let want = digest_attr.ok_or_else(|| bad("messageDigest attribute missing"))?;
    let have = digest_of(hash)?;
    if aws_lc_rs::constant_time::verify_slices_are_equal(&want, &have).is_err() {
        return Err(CoreError::InvalidSignature(
            "the document's digest differs from the one that was signed: the document was changed or is not the one signed".into(),
        ));
    }
    let cert = x509::parse(&signer_cert)?;
    let bits = match cert.public_key().parsed() {
        Ok(x509_parser::public_key::PublicKey::RSA(rsa)) => Some(rsa.key_size()),
        _ => None,
    };
    let (alg, scheme) = verification_for(si, hash, bits)?;
    let tbs = attrs.to_der().map_err(|e| bad(&e.to_string()))?;
    verify_with(cert.public_key(), alg, &tbs, si.signature.as_bytes()).map_err(|_| {
        CoreError::InvalidSignature("the CMS signature does not verify with the signer's certificate".into())
    })?;
    Ok(CmsVerified { signer_cert, certificates: certificates.to_vec(), scheme, signing_time, timestamp: None })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::KeyAlgorithm;
    use crate::keys::{PrivateKey, generate};

    fn self_signed(key: &PrivateKey) -> Vec<u8> {
        let mut params = rcgen::CertificateParams::new(vec![]).unwrap();
        params.distinguished_name = crate::csr::parse_subject("CN=Test,C=UZ").unwrap();
        params.self_signed(key).unwrap().der().to_vec()
    }

    #[test]
    fn build_then_verify_and_reject_tampering() {
        for alg in KeyAlgorithm::GENERATABLE {
            let key = PrivateKey::from_pkcs8(&generate(alg).unwrap()).unwrap();
            let cert = self_signed(&key);
            let doc = b"a document to sign";
            for pss in [false, true] {
                if pss && !alg.is_rsa() {
                    continue;
                }
                let scheme = alg.scheme(pss).unwrap();
                let d = digest_alg_for(scheme).digest(doc);
                let prep =
                    PreparedCms::new(std::slice::from_ref(&cert), scheme, &d, OffsetDateTime::now_utc()).unwrap();
                let sig = key.sign(scheme, &prep.to_be_signed()).unwrap();
                let cms = prep.finish(&sig);
                let ok = verify_detached(&cms, &mut |h| Ok(h.digest(doc)), &[]).unwrap();
                assert_eq!(ok.signer_cert, cert);
                let err = verify_detached(&cms, &mut |h| Ok(h.digest(b"another document")), &[]).unwrap_err();
                assert!(matches!(err, CoreError::InvalidSignature(_)), "{err}");
                // One flipped bit in the signature value (the last bytes of the file) must fail.
                let mut bad = cms.clone();
                let n = bad.len() - 3;
                bad[n] ^= 1;
                assert!(verify_detached(&bad, &mut |h| Ok(h.digest(doc)), &[]).is_err());
            }
        }
    }

    /// Random bit flips, truncations and insertions in a valid CMS: never a panic, never "valid" for a
    /// changed signature value or signed attribute.
    /// A deterministic xorshift64 generator for the mutation tests.
    fn xorshift(mut state: u64) -> impl FnMut() -> u64 {
        move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        }
    }

    #[test]
    fn mutated_cms_never_panics_or_verifies_when_signed_bytes_change() {
        let key = PrivateKey::from_pkcs8(&generate(KeyAlgorithm::P256).unwrap()).unwrap();
        let cert = self_signed(&key);
        let doc = b"mutation target";
        let scheme = SignScheme::EcdsaP256Sha256;
        let prep = PreparedCms::new(
            std::slice::from_ref(&cert),
            scheme,
            &HashAlg::Sha256.digest(doc),
            OffsetDateTime::now_utc(),
        )
        .unwrap();
        let sig = key.sign(scheme, &prep.to_be_signed()).unwrap();
        let good = prep.finish(&sig);
        let mut rnd = xorshift(0x2545f4914f6cdd1du64);
        for _ in 0..2000 {
            let mut m = good.clone();
            let at = (rnd() as usize) % m.len();
            match rnd() % 3 {
                0 => m[at] ^= 1 << (rnd() % 8),
                1 => m.truncate(at),
                _ => m.insert(at, rnd() as u8),
            }
            let r = verify_detached(&m, &mut |h| Ok(h.digest(doc)), &[]);
            // The signed attributes and signature are the last part of the file: a flip there must fail.
            if m.len() == good.len() && at >= good.len() - 200 && m != good {
                assert!(r.is_err(), "a flip at {at} of {} still verified", good.len());
            }
        }
    }

    #[test]
    fn mutated_certificate_bundles_never_panic() {
        let key = PrivateKey::from_pkcs8(&generate(KeyAlgorithm::Ed25519).unwrap()).unwrap();
        let der = self_signed(&key);
        let pem = x509::cert_pem(&der).into_bytes();
        let mut rnd = xorshift(0x853c49e6748fea9bu64);
        for input in [der, pem] {
            for _ in 0..1000 {
                let mut m = input.clone();
                let at = (rnd() as usize) % m.len();
                match rnd() % 2 {
                    0 => m[at] ^= 1 << (rnd() % 8),
                    _ => m.truncate(at),
                }
                let _ = x509::parse_cert_bundle(&m);
            }
        }
    }

    #[test]
    fn pss_salt_arithmetic_cannot_underflow() {
        assert_eq!(pss_max_salt(2048, 32), Some(222));
        assert_eq!(pss_max_salt(2047, 32), Some(222));
        assert_eq!(pss_max_salt(512, 64), None, "an attacker's tiny key with SHA-512");
        assert_eq!(pss_max_salt(0, 32), None);
        assert_eq!(pss_max_salt(usize::MAX, 32), None);
    }

    #[test]
    fn pss_parameters_read_with_the_der_decoder() {
        let sha256 = w::alg_id(&oid::SHA256);
        let mgf = w::seq(&[&w::oid(&oid::MGF1), &sha256]);
        let content = [w::ctx(0, &sha256), w::ctx(1, &mgf), w::ctx(2, &w::small_int(32))].concat();
        assert_eq!(parse_pss_params(&content).unwrap(), (HashAlg::Sha256, 32));
        // No hash: the default, SHA-1, is refused; a truncated or wrongly typed field is malformed.
        assert!(matches!(parse_pss_params(&w::ctx(2, &w::small_int(20))), Err(CoreError::Unsupported(_))));
        assert!(parse_pss_params(&content[..content.len() - 1]).is_err());
        assert!(parse_pss_params(&[w::ctx(0, &sha256), w::ctx(2, &w::octets(b"x"))].concat()).is_err());
        assert!(parse_pss_params(&w::ctx(0, &w::octets(b"not an algorithm"))).is_err());
    }

    #[test]
    fn garbage_is_an_error() {
        for input in [&b""[..], b"\x30\x80", b"\x30\x03\x06\x01\x00", &[0x30; 64]] {
            assert!(verify_detached(input, &mut |h| Ok(h.digest(b"")), &[]).is_err());
        }
    }
}
