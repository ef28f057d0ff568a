//! X.509 helpers: certificate bundles, summaries, fingerprints, raw signature verification and a small
//! chain checker.

use aws_lc_rs::signature::{self, UnparsedPublicKey, VerificationAlgorithm};
use kalit_proto::vault::CertInfo;
use kalit_proto::verify::ChainReport;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::ParsedExtension;
use x509_parser::oid_registry as oids;
use x509_parser::prelude::FromDer;
use x509_parser::x509::SubjectPublicKeyInfo;

use crate::digest::HashAlg;
use crate::{CoreError, SignScheme};

/// Most certificates accepted in one bundle (a leaf plus a long chain).
pub const MAX_BUNDLE_CERTS: usize = 16;
/// Longest chain the checker follows.
pub const MAX_CHAIN_DEPTH: usize = 8;

/// Reads one or more certificates from PEM (any number of `CERTIFICATE` blocks) or DER (one or more
/// concatenated). The first one is the leaf.
pub fn parse_cert_bundle(bytes: &[u8]) -> Result<Vec<Vec<u8>>, CoreError> {
    let mut out = Vec::new();
    let looks_pem = bytes.windows(10).any(|w| w == b"-----BEGIN");
    if looks_pem {
        let blocks = pem::parse_many(bytes).map_err(|e| CoreError::invalid(format!("bad PEM: {e}")))?;
        for b in blocks {
            if b.tag() == "CERTIFICATE" {
                out.push(b.into_contents());
            }
        }
    } else {
        let mut rest = bytes;
        while !rest.is_empty() && out.len() <= MAX_BUNDLE_CERTS {
            let (next, _) = X509Certificate::from_der(rest)
                .map_err(|e| CoreError::invalid(format!("not a DER or PEM certificate: {e}")))?;
            let used = rest.len() - next.len();
            out.push(rest[..used].to_vec());
            rest = next;
        }
    }
    if out.is_empty() {
        return Err(CoreError::invalid("no certificate found in the input"));
    }
    if out.len() > MAX_BUNDLE_CERTS {
        return Err(CoreError::invalid(format!("more than {MAX_BUNDLE_CERTS} certificates in one bundle")));
    }
    for der in &out {
        parse(der)?;
    }
    Ok(out)
}

/// Whether `der` is one DER CRL (nothing after it).
pub fn is_crl(der: &[u8]) -> bool {
    use x509_parser::revocation_list::CertificateRevocationList;
    matches!(CertificateRevocationList::from_der(der), Ok((rest, _)) if rest.is_empty())
}

/// A CRL's nextUpdate, when it has one.
pub fn crl_next_update(der: &[u8]) -> Option<OffsetDateTime> {
    use x509_parser::revocation_list::CertificateRevocationList;
    let (_, c) = CertificateRevocationList::from_der(der).ok()?;
    c.next_update().map(|t| t.to_datetime())
}

/// The http(s) URIs of a certificate's CRL distribution points (RFC 5280 4.2.1.13).
pub fn crl_urls(der: &[u8]) -> Vec<String> {
    use x509_parser::extensions::{DistributionPointName, GeneralName};
    let Ok(c) = parse(der) else { return vec![] };
    let mut out = vec![];
    for e in c.extensions() {
        if let ParsedExtension::CRLDistributionPoints(points) = e.parsed_extension() {
            for p in points.iter() {
                if let Some(DistributionPointName::FullName(names)) = &p.distribution_point {
                    for n in names {
                        if let GeneralName::URI(u) = n
                            && (u.starts_with("http://") || u.starts_with("https://"))
                        {
                            out.push((*u).to_string());
                        }
                    }
                }
            }
        }
    }
    out
}

/// Parses one DER certificate, with a clear error.
pub fn parse(der: &[u8]) -> Result<X509Certificate<'_>, CoreError> {
    let (rest, cert) =
        X509Certificate::from_der(der).map_err(|e| CoreError::invalid(format!("malformed certificate: {e}")))?;
    if !rest.is_empty() {
        return Err(CoreError::invalid("trailing bytes after certificate"));
    }
    Ok(cert)
}

/// PEM text of one certificate.
pub fn cert_pem(der: &[u8]) -> String {
    pem::encode(&pem::Pem::new("CERTIFICATE", der.to_vec()))
}

/// The DER SubjectPublicKeyInfo of a certificate.
pub fn cert_spki(der: &[u8]) -> Result<Vec<u8>, CoreError> {
    Ok(parse(der)?.public_key().raw.to_vec())
}

/// SHA-256 of a DER SubjectPublicKeyInfo, lowercase hex: the public-key fingerprint shown everywhere.
pub fn fingerprint(spki_der: &[u8]) -> String {
    hex::encode(HashAlg::Sha256.digest(spki_der))
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_else(|_| t.to_string())
}

/// A summary for people and JSON.
pub fn cert_info(der: &[u8]) -> Result<CertInfo, CoreError> {
    let c = parse(der)?;
    Ok(CertInfo {
        subject: c.subject().to_string(),
        issuer: c.issuer().to_string(),
        serial: c.tbs_certificate.serial.to_str_radix(16),
        not_before: rfc3339(c.validity().not_before.to_datetime()),
        not_after: rfc3339(c.validity().not_after.to_datetime()),
        sha256: hex::encode(HashAlg::Sha256.digest(der)),
    })
}

/// The default document scheme of a key: the first scheme of its type.
pub fn default_scheme_of(spki_der: &[u8]) -> Result<SignScheme, CoreError> {
    Ok(schemes_for(&parse_spki(spki_der)?)?[0])
}

fn schemes_for(spki: &SubjectPublicKeyInfo<'_>) -> Result<&'static [SignScheme], CoreError> {
    let oid = &spki.algorithm.algorithm;
    if *oid == oids::OID_PKCS1_RSAENCRYPTION {
        Ok(&[SignScheme::RsaPkcs1Sha256, SignScheme::RsaPssSha256])
    } else if *oid == oids::OID_KEY_TYPE_EC_PUBLIC_KEY {
        let curve = spki.algorithm.parameters.as_ref().and_then(|p| p.as_oid().ok());
        if curve.as_ref() != Some(&oids::OID_EC_P256) {
            return Err(CoreError::Unsupported("elliptic curve other than P-256".into()));
        }
        Ok(&[SignScheme::EcdsaP256Sha256])
    } else if *oid == oids::OID_SIG_ED25519 {
        Ok(&[SignScheme::Ed25519])
    } else {
        Err(CoreError::Unsupported(format!("public key algorithm {oid}")))
    }
}

use aws_lc_rs::signature::{RsaParameters, RsaPssSaltLength};

/// RSA-PSS with the longest salt the key allows (what OpenSSL signs with by default).
pub(crate) static PSS_SHA256_MAX: RsaParameters =
    signature::RSA_PSS_2048_8192_SHA256.with_pss_salt_length(RsaPssSaltLength::Max);
pub(crate) static PSS_SHA384_MAX: RsaParameters =
    signature::RSA_PSS_2048_8192_SHA384.with_pss_salt_length(RsaPssSaltLength::Max);
pub(crate) static PSS_SHA512_MAX: RsaParameters =
    signature::RSA_PSS_2048_8192_SHA512.with_pss_salt_length(RsaPssSaltLength::Max);

pub(crate) fn verification_alg(scheme: SignScheme) -> &'static dyn VerificationAlgorithm {
    match scheme {
        SignScheme::RsaPkcs1Sha256 => &signature::RSA_PKCS1_2048_8192_SHA256,
        SignScheme::RsaPssSha256 => &signature::RSA_PSS_2048_8192_SHA256,
        SignScheme::EcdsaP256Sha256 => &signature::ECDSA_P256_SHA256_ASN1,
        SignScheme::Ed25519 => &signature::ED25519,
    }
}

/// Parses a DER SubjectPublicKeyInfo.
pub fn parse_spki(spki_der: &[u8]) -> Result<SubjectPublicKeyInfo<'_>, CoreError> {
    let (rest, spki) = SubjectPublicKeyInfo::from_der(spki_der)
        .map_err(|e| CoreError::invalid(format!("malformed public key: {e}")))?;
    if !rest.is_empty() {
        return Err(CoreError::invalid("trailing bytes after public key"));
    }
    Ok(spki)
}

/// Verifies a bare signature over `msg` with the key in `spki_der`, trying each scheme the key admits
/// (RSA: PKCS#1 v1.5, then PSS). Returns the scheme that verified.
pub fn verify_raw(spki_der: &[u8], msg: &[u8], sig: &[u8]) -> Result<SignScheme, CoreError> {
    let spki = parse_spki(spki_der)?;
    let schemes = schemes_for(&spki)?;
    for &scheme in schemes {
        if verify_with(&spki, verification_alg(scheme), msg, sig).is_ok() {
            return Ok(scheme);
        }
    }
    // RSA-PSS with the maximum salt length (OpenSSL's default when it signs with PSS).
    if schemes.contains(&SignScheme::RsaPssSha256) && verify_with(&spki, &PSS_SHA256_MAX, msg, sig).is_ok() {
        return Ok(SignScheme::RsaPssSha256);
    }
    Err(CoreError::InvalidSignature("the signature does not match the document and public key".into()))
}

/// Verifies a statement signature (the statement scheme of [`crate::keys::PrivateKey`]: RSA PKCS#1
/// v1.5 SHA-384, ECDSA P-256 over SHA-384, Ed25519ph with the statement context). No document
/// signature verifies here, and no statement signature verifies in [`verify_raw`].
pub fn verify_statement(spki_der: &[u8], msg: &[u8], sig: &[u8]) -> Result<(), CoreError> {
    let spki = parse_spki(spki_der)?;
    let alg: &'static dyn VerificationAlgorithm = match schemes_for(&spki)?[0] {
        SignScheme::RsaPkcs1Sha256 | SignScheme::RsaPssSha256 => &signature::RSA_PKCS1_2048_8192_SHA384,
        SignScheme::EcdsaP256Sha256 => &signature::ECDSA_P256_SHA384_ASN1,
        SignScheme::Ed25519 => {
            return crate::keys::ed25519ph_verify(
                &spki.subject_public_key.data,
                msg,
                sig,
                crate::keys::STATEMENT_CONTEXT,
            );
        }
    };
    verify_with(&spki, alg, msg, sig)
}

/// Verifies a bare signature with exactly one scheme.
pub fn verify_scheme(spki_der: &[u8], scheme: SignScheme, msg: &[u8], sig: &[u8]) -> Result<(), CoreError> {
    let spki = parse_spki(spki_der)?;
    if !schemes_for(&spki)?.contains(&scheme) {
        return Err(CoreError::InvalidSignature(format!("a {} signature cannot come from this key", scheme.name())));
    }
    verify_with(&spki, verification_alg(scheme), msg, sig)
}

/// Verifies `sig` over `msg` with a given algorithm.
pub(crate) fn verify_with(
    spki: &SubjectPublicKeyInfo<'_>,
    alg: &'static dyn VerificationAlgorithm,
    msg: &[u8],
    sig: &[u8],
) -> Result<(), CoreError> {
    UnparsedPublicKey::new(alg, &spki.subject_public_key.data[..])
        .verify(msg, sig)
        .map_err(|_| CoreError::InvalidSignature("the signature does not match".into()))
}

fn check_validity(c: &X509Certificate<'_>, now: OffsetDateTime) -> Result<(), CoreError> {
    let v = c.validity();
    if now < v.not_before.to_datetime() {
        return Err(CoreError::Untrusted(format!("certificate {} is not valid before {}", c.subject(), v.not_before)));
    }
    if now > v.not_after.to_datetime() {
        return Err(CoreError::Untrusted(format!("certificate {} expired on {}", c.subject(), v.not_after)));
    }
    Ok(())
}

/// The signature algorithms a certificate path may use (rustls-webpki on aws-lc-rs): ECDSA P-256/P-384,
/// Ed25519, RSA PKCS#1 v1.5 and PSS with SHA-256/384/512 and keys of 2048 bits or more. No SHA-1, no
/// RSA below 2048: OpenSSL's default security level refuses those too.
static CHAIN_ALGS: &[&dyn pki_types::SignatureVerificationAlgorithm] = &[
    webpki::aws_lc_rs::ECDSA_P256_SHA256,
    webpki::aws_lc_rs::ECDSA_P256_SHA384,
    webpki::aws_lc_rs::ECDSA_P384_SHA256,
    webpki::aws_lc_rs::ECDSA_P384_SHA384,
    webpki::aws_lc_rs::ED25519,
    webpki::aws_lc_rs::RSA_PKCS1_2048_8192_SHA256,
    webpki::aws_lc_rs::RSA_PKCS1_2048_8192_SHA384,
    webpki::aws_lc_rs::RSA_PKCS1_2048_8192_SHA512,
    webpki::aws_lc_rs::RSA_PKCS1_2048_8192_SHA256_ABSENT_PARAMS,
    webpki::aws_lc_rs::RSA_PKCS1_2048_8192_SHA384_ABSENT_PARAMS,
    webpki::aws_lc_rs::RSA_PKCS1_2048_8192_SHA512_ABSENT_PARAMS,
    webpki::aws_lc_rs::RSA_PSS_2048_8192_SHA256_LEGACY_KEY,
    webpki::aws_lc_rs::RSA_PSS_2048_8192_SHA384_LEGACY_KEY,
    webpki::aws_lc_rs::RSA_PSS_2048_8192_SHA512_LEGACY_KEY,
];

/// Extended key usages that mean "may sign documents" (RFC 5280 4.2.1.12: when a certificate in the path
/// has the extension, one of these must be in it): id-kp-documentSigning (RFC 9336), id-kp-emailProtection
/// (what many national CAs put in signing certificates), anyExtendedKeyUsage, Microsoft document signing
/// and Adobe Authentic Documents Trust.
pub const DOCUMENT_SIGNING_EKUS: [&[u8]; 5] = [
    &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x24],
    &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x04],
    &[0x55, 0x1d, 0x25, 0x00],
    &[0x2b, 0x06, 0x01, 0x04, 0x01, 0x82, 0x37, 0x0a, 0x03, 0x0c],
    &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x2f, 0x01, 0x01, 0x05],
];

/// The EKU policy of document signing: no extension, or one naming a document-signing purpose.
struct DocumentSigning;

impl webpki::ExtendedKeyUsageValidator for DocumentSigning {
    fn validate(&self, iter: webpki::KeyPurposeIdIter<'_, '_>) -> Result<(), webpki::Error> {
        let mut present = vec![];
        for id in iter {
            let id = id?;
            if DOCUMENT_SIGNING_EKUS.iter().any(|e| webpki::KeyPurposeId::new(e) == id) {
                return Ok(());
            }
            present.push(id.to_decoded_oid());
        }
        if present.is_empty() {
            return Ok(());
        }
        Err(webpki::Error::RequiredEkuNotFoundContext(webpki::RequiredEkuNotFoundContext {
            required: webpki::KeyUsage::required_if_present(DOCUMENT_SIGNING_EKUS[0]),
            present,
        }))
    }
}

/// Words for a path-validation failure.
fn describe_path_error(e: &webpki::Error) -> String {
    use webpki::Error as E;
    match e {
        E::UnknownIssuer => "no chain to a trusted CA: the issuer is neither a trust anchor nor a CA certificate at hand".into(),
        E::CertExpired { .. } => "a CA certificate in the chain expired".into(),
        E::CertNotValidYet { .. } => "a CA certificate in the chain is not valid yet".into(),
        E::UnsupportedSignatureAlgorithmContext(_) => {
            "a certificate in the chain is signed with an algorithm Kalit does not accept (SHA-1, or RSA below 2048 bits)".into()
        }
        E::UnsupportedSignatureAlgorithmForPublicKeyContext(_) => {
            "a certificate in the chain is signed with an algorithm that does not fit its issuer's key (or an RSA key below 2048 bits)".into()
        }
        E::InvalidSignatureForPublicKey => "a signature in the chain does not verify".into(),
        E::UnsupportedCriticalExtension => {
            "a certificate in the chain has a critical extension Kalit does not understand (RFC 5280 requires refusing it)".into()
        }
        E::RequiredEkuNotFoundContext(_) => {
            "a certificate in the chain is restricted (extendedKeyUsage) to purposes other than signing documents".into()
        }
        E::NameConstraintViolation => "the signer's name is outside the name constraints of a CA in the chain".into(),
        E::PathLenConstraintViolated => "the chain has more intermediate CAs than a CA's pathLenConstraint allows".into(),
        E::CaUsedAsEndEntity => "the signer certificate is a CA certificate, not a signer's".into(),
        E::EndEntityUsedAsCa => "a certificate that is not a CA issued another".into(),
        E::MaximumPathDepthExceeded | E::MaximumPathBuildCallsExceeded | E::MaximumSignatureChecksExceeded => {
            format!("the chain is too long or too tangled to check ({e:?})")
        }
        E::BadDer | E::BadDerTime | E::TrailingData(_) => "a certificate in the chain is malformed".into(),
        other => format!("the chain does not validate ({other:?})"),
    }
}

/// Checks that `leaf` is fit for document signing now and chains, through certificates in `pool`, to one
/// of `anchors`, with rustls-webpki: signatures from a fixed set of algorithms (no SHA-1, no RSA below
/// 2048 bits), validity periods, CA flags and path lengths, unknown critical extensions refused, name
/// constraints, extendedKeyUsage (when present: a document-signing purpose), path building with
/// backtracking. Kalit's own policy on top: the leaf's keyUsage allows digitalSignature or
/// nonRepudiation, and its own validity is reported by name.
pub fn check_chain(
    leaf: &[u8],
    pool: &[Vec<u8>],
    anchors: &[Vec<u8>],
    now: OffsetDateTime,
) -> Result<ChainReport, CoreError> {
    check_chain_revocation(leaf, pool, anchors, now, &[], None)
}

/// [`check_chain`], and the signer's revocation status from `crls` (DER CRLs; webpki checks each one's
/// signature against the signer's issuer in the path). A revoked signer is refused, unless
/// `signed_at` (a timestamp's time) is before the revocation: a signature made before its key was
/// revoked stays valid. The report says what the CRLs said.
pub fn check_chain_revocation(
    leaf: &[u8],
    pool: &[Vec<u8>],
    anchors: &[Vec<u8>],
    now: OffsetDateTime,
    crls: &[Vec<u8>],
    signed_at: Option<OffsetDateTime>,
) -> Result<ChainReport, CoreError> {
    let newest = newest_crls(crls);
    let crls = newest.as_slice();
    let leaf_c = parse(leaf)?;
    check_validity(&leaf_c, now)?;
    if let Ok(Some(ku)) = leaf_c.key_usage()
        && !(ku.value.digital_signature() || ku.value.non_repudiation())
    {
        return Err(CoreError::Untrusted(
            "the signer certificate's key usage allows neither digitalSignature nor nonRepudiation".into(),
        ));
    }
    match validate_path_crls(leaf, &leaf_c, pool, anchors, now, DocumentSigning, crls) {
        Ok(mut report) => {
            if !crls.is_empty() {
                report.revocation = Some(match crl_issued_by(crls, leaf_c.issuer().as_raw()) {
                    Some(this_update) => format!("not revoked (CRL of {} issued {this_update})", leaf_c.issuer()),
                    None => format!("not checked: no CRL from {}", leaf_c.issuer()),
                });
            }
            return Ok(report);
        }
        Err(CoreError::Untrusted(why)) if why == REVOKED => {}
        Err(e) => return Err(e),
    }
    let (date, reason) = revocation_of(crls, &leaf_c).unwrap_or((OffsetDateTime::UNIX_EPOCH, None));
    let date_text = date.format(&Rfc3339).unwrap_or_default();
    let reason = reason.map(|r| format!(", reason {r}")).unwrap_or_default();
    match signed_at {
        Some(t) if t < date => {
            let mut report = validate_path(leaf, &leaf_c, pool, anchors, now, DocumentSigning)?;
            let t = t.format(&Rfc3339).unwrap_or_default();
            report.revocation = Some(format!(
                "revoked on {date_text}{reason}, after the timestamped signing time {t}: the signature stays valid"
            ));
            Ok(report)
        }
        _ => Err(CoreError::Untrusted(format!("the signer's certificate was revoked on {date_text}{reason}"))),
    }
}

const REVOKED: &str = "the signer's certificate is revoked";

/// Of several CRLs from one issuer (a PDF's stored one and a fresh one), the newest (latest thisUpdate)
/// speaks: an older CRL cannot vouch that a certificate was not revoked since. Unreadable CRLs are kept
/// for webpki to refuse.
fn newest_crls(crls: &[Vec<u8>]) -> Vec<Vec<u8>> {
    use x509_parser::revocation_list::CertificateRevocationList;
    let mut best: Vec<(Vec<u8>, i64, Vec<u8>)> = vec![];
    let mut unreadable = vec![];
    for d in crls {
        let Ok((_, c)) = CertificateRevocationList::from_der(d) else {
            unreadable.push(d.clone());
            continue;
        };
        let issuer = c.issuer().as_raw().to_vec();
        let t = c.last_update().timestamp();
        match best.iter_mut().find(|(i, _, _)| *i == issuer) {
            Some(b) if b.1 < t => *b = (issuer, t, d.clone()),
            Some(_) => {}
            None => best.push((issuer, t, d.clone())),
        }
    }
    best.into_iter().map(|(_, _, d)| d).chain(unreadable).collect()
}

/// When a CRL from `issuer` (raw name) is among `crls`: its thisUpdate.
fn crl_issued_by(crls: &[Vec<u8>], issuer: &[u8]) -> Option<String> {
    use x509_parser::revocation_list::CertificateRevocationList;
    crls.iter().find_map(|d| {
        let (_, c) = CertificateRevocationList::from_der(d).ok()?;
        (c.issuer().as_raw() == issuer).then(|| c.last_update().to_datetime().format(&Rfc3339).unwrap_or_default())
    })
}

/// The revocation date and reason of `cert` in the CRL from its issuer.
fn revocation_of(crls: &[Vec<u8>], cert: &X509Certificate<'_>) -> Option<(OffsetDateTime, Option<String>)> {
    use x509_parser::revocation_list::CertificateRevocationList;
    crls.iter().find_map(|d| {
        let (_, c) = CertificateRevocationList::from_der(d).ok()?;
        if c.issuer().as_raw() != cert.issuer().as_raw() {
            return None;
        }
        c.iter_revoked_certificates().find(|r| r.raw_serial() == cert.tbs_certificate.raw_serial()).map(|r| {
            let reason = r.reason_code().map(|(_, rc)| format!("{rc}"));
            (r.revocation_date.to_datetime(), reason)
        })
    })
}

/// Path validation as in [`check_chain`] (without its keyUsage rule on the leaf) for another
/// extendedKeyUsage rule: a TSA's certificate ([`crate::tsp::check_tsa_chain`]).
pub(crate) fn validate_path_with(
    leaf: &[u8],
    pool: &[Vec<u8>],
    anchors: &[Vec<u8>],
    at: OffsetDateTime,
    usage: impl webpki::ExtendedKeyUsageValidator,
) -> Result<ChainReport, CoreError> {
    let leaf_c = parse(leaf)?;
    check_validity(&leaf_c, at)?;
    validate_path(leaf, &leaf_c, pool, anchors, at, usage)
}

/// The path validation under [`check_chain`], for any extendedKeyUsage rule.
fn validate_path(
    leaf: &[u8],
    leaf_c: &X509Certificate<'_>,
    pool: &[Vec<u8>],
    anchors: &[Vec<u8>],
    now: OffsetDateTime,
    usage: impl webpki::ExtendedKeyUsageValidator,
) -> Result<ChainReport, CoreError> {
    validate_path_crls(leaf, leaf_c, pool, anchors, now, usage, &[])
}

/// [`validate_path`] with the leaf's revocation checked against `crls` (none: not checked; a leaf no CRL
/// covers is not refused, the caller reports it).
fn validate_path_crls(
    leaf: &[u8],
    leaf_c: &X509Certificate<'_>,
    pool: &[Vec<u8>],
    anchors: &[Vec<u8>],
    now: OffsetDateTime,
    usage: impl webpki::ExtendedKeyUsageValidator,
    crls: &[Vec<u8>],
) -> Result<ChainReport, CoreError> {
    if pool.len() > MAX_CHAIN_DEPTH {
        return Err(CoreError::Untrusted(format!("more than {MAX_CHAIN_DEPTH} certificates to build a chain from")));
    }
    leaf_structure(leaf_c)?;
    let mut path = vec![leaf_c.subject().to_string()];
    // A certificate configured as a trust anchor is trusted as itself.
    if anchors.iter().any(|a| a.as_slice() == leaf) {
        return Ok(ChainReport { trusted: true, path, revocation: None });
    }
    let anchor_ders: Vec<pki_types::CertificateDer<'_>> =
        anchors.iter().map(|a| pki_types::CertificateDer::from(a.as_slice())).collect();
    let tas: Vec<(usize, pki_types::TrustAnchor<'_>)> = anchor_ders
        .iter()
        .enumerate()
        .filter_map(|(i, d)| webpki::anchor_from_trusted_cert(d).ok().map(|t| (i, t)))
        .collect();
    let ta_only: Vec<pki_types::TrustAnchor<'_>> = tas.iter().map(|(_, t)| t.clone()).collect();
    let intermediates: Vec<pki_types::CertificateDer<'_>> =
        pool.iter().map(|p| pki_types::CertificateDer::from(p.as_slice())).collect();
    let leaf_der = pki_types::CertificateDer::from(leaf);
    let ee = webpki::EndEntityCert::try_from(&leaf_der)
        .map_err(|e| CoreError::Untrusted(format!("the signer certificate: {}", describe_path_error(&e))))?;
    let t = pki_types::UnixTime::since_unix_epoch(std::time::Duration::from_secs(now.unix_timestamp().max(0) as u64));
    // webpki takes a trust anchor as subject and key only; the anchor certificate's own
    // pathLenConstraint (which OpenSSL enforces, and so did Kalit) is checked here.
    let anchor_der_of = |a: &pki_types::TrustAnchor<'_>| {
        tas.iter()
            .find(|(_, t)| t.subject == a.subject && t.subject_public_key_info == a.subject_public_key_info)
            .map(|(i, _)| anchors[*i].as_slice())
    };
    let anchor_path_len = |path: &webpki::VerifiedPath<'_>| -> Result<(), webpki::Error> {
        let below = path.intermediate_certificates().count() as u32;
        if let Some(der) = anchor_der_of(path.anchor())
            && let Ok(c) = parse(der)
            && let Ok(Some(bc)) = c.basic_constraints()
            && let Some(n) = bc.value.path_len_constraint
            && below > n
        {
            return Err(webpki::Error::PathLenConstraintViolated);
        }
        Ok(())
    };
    let parsed_crls: Vec<webpki::CertRevocationList<'_>> = crls
        .iter()
        .map(|d| webpki::OwnedCertRevocationList::from_der(d).map(webpki::CertRevocationList::from))
        .collect::<Result<_, _>>()
        .map_err(|_| CoreError::InvalidInput("a CRL is malformed".into()))?;
    let crl_refs: Vec<&webpki::CertRevocationList<'_>> = parsed_crls.iter().collect();
    let revocation = webpki::RevocationOptionsBuilder::new(&crl_refs).ok().map(|b| {
        b.with_depth(webpki::RevocationCheckDepth::EndEntity)
            .with_status_policy(webpki::UnknownStatusPolicy::Allow)
            .with_expiration_policy(webpki::ExpirationPolicy::Ignore)
            .build()
    });
    let verified = ee
        .verify_for_usage(CHAIN_ALGS, &ta_only, &intermediates, t, usage, revocation, Some(&anchor_path_len))
        .map_err(|e| match e {
            webpki::Error::CertRevoked => CoreError::Untrusted(REVOKED.into()),
            e => CoreError::Untrusted(describe_path_error(&e)),
        })?;
    for c in verified.intermediate_certificates() {
        if let Ok(p) = parse(c.der().as_ref()) {
            path.push(p.subject().to_string());
        }
    }
    if let Some(der) = anchor_der_of(verified.anchor()) {
        let a = parse(der)?;
        anchor_policy(&a, now)?;
        path.push(a.subject().to_string());
    }
    Ok(ChainReport { trusted: true, path, revocation: None })
}

/// RFC 5280 rules on the signer's certificate that path validation leaves out: a certificate that is not
/// a CA must not assert keyCertSign (4.2.1.9) nor carry name constraints (4.2.1.10); and Kalit's floor on
/// the signer's key: RSA of at least 2048 bits, ECDSA on P-256, P-384 or P-521, or Ed25519 (no DSA, no
/// P-192), the keys OpenSSL's default security level accepts.
fn leaf_structure(c: &X509Certificate<'_>) -> Result<(), CoreError> {
    let untrusted = |m: &str| Err(CoreError::Untrusted(m.into()));
    let is_ca = matches!(c.basic_constraints(), Ok(Some(bc)) if bc.value.ca);
    if !is_ca && matches!(c.key_usage(), Ok(Some(ku)) if ku.value.key_cert_sign()) {
        return untrusted("the signer certificate asserts keyCertSign without being a CA (RFC 5280 4.2.1.9)");
    }
    if !is_ca && matches!(c.name_constraints(), Ok(Some(_))) {
        return untrusted(
            "the signer certificate carries name constraints, which only CA certificates may (RFC 5280 4.2.1.10)",
        );
    }
    use x509_parser::public_key::PublicKey;
    let spki = c.public_key();
    let alg = &spki.algorithm.algorithm;
    let ok = match spki.parsed() {
        Ok(PublicKey::RSA(rsa)) => rsa.key_size() >= 2048,
        Ok(PublicKey::EC(_)) => spki.algorithm.parameters.as_ref().and_then(|p| p.as_oid().ok()).is_some_and(|curve| {
            curve == oids::OID_EC_P256 || curve == oids::OID_NIST_EC_P384 || curve == oids::OID_NIST_EC_P521
        }),
        _ => *alg == oids::OID_SIG_ED25519,
    };
    if !ok {
        return untrusted(
            "the signer certificate's key is too weak or of a kind Kalit does not accept (RSA below 2048 bits, DSA, or a curve other than P-256, P-384, P-521)",
        );
    }
    Ok(())
}

/// What path validation does not check on a trust anchor (webpki takes only its subject and key), but
/// RFC 5280 and OpenSSL do: the anchor certificate is valid now, is a CA (basicConstraints cA, critical),
/// may sign certificates when it has a key usage, and has no critical extension Kalit does not understand.
fn anchor_policy(a: &X509Certificate<'_>, now: OffsetDateTime) -> Result<(), CoreError> {
    let v = a.validity();
    if now < v.not_before.to_datetime() || now > v.not_after.to_datetime() {
        return Err(CoreError::Untrusted(format!(
            "the trusted root {} is not valid now (valid {} to {})",
            a.subject(),
            v.not_before,
            v.not_after
        )));
    }
    match a.basic_constraints() {
        Ok(Some(bc)) if bc.value.ca && bc.critical => {}
        _ => {
            return Err(CoreError::Untrusted(format!(
                "the trusted root {} is not marked as a CA (a critical basicConstraints with cA)",
                a.subject()
            )));
        }
    }
    if matches!(a.key_usage(), Ok(Some(ku)) if !ku.value.key_cert_sign()) {
        return Err(CoreError::Untrusted(format!(
            "the trusted root {} has a key usage that does not allow signing certificates",
            a.subject()
        )));
    }
    if a.extensions().iter().any(|e| {
        e.critical
            && matches!(e.parsed_extension(), x509_parser::extensions::ParsedExtension::UnsupportedExtension { .. })
    }) {
        return Err(CoreError::Untrusted(format!(
            "the trusted root {} has a critical extension Kalit does not understand",
            a.subject()
        )));
    }
    Ok(())
}

/// For the x509-limbo conformance test only (`tests/limbo.rs`): the same path validation as
/// [`check_chain`] (algorithms, validity, critical extensions, path building, name constraints, the
/// anchor's path length), for the TLS purpose a limbo case names instead of document signing, and
/// without Kalit's keyUsage policy on the signer. Kalit itself never validates a TLS purpose with it.
pub mod conformance {
    use super::*;

    /// The purpose a limbo case validates for.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum TlsPurpose {
        /// serverAuth when the extension is present.
        Server,
        /// clientAuth when the extension is present.
        Client,
    }

    /// [`check_chain`]'s path validation for `purpose`.
    pub fn validate_path_for(
        leaf: &[u8],
        pool: &[Vec<u8>],
        anchors: &[Vec<u8>],
        now: OffsetDateTime,
        purpose: TlsPurpose,
    ) -> Result<ChainReport, CoreError> {
        let leaf_c = parse(leaf)?;
        check_validity(&leaf_c, now)?;
        let usage = match purpose {
            TlsPurpose::Server => webpki::KeyUsage::server_auth(),
            TlsPurpose::Client => webpki::KeyUsage::client_auth(),
        };
        validate_path(leaf, &leaf_c, pool, anchors, now, usage)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::KeyAlgorithm;
    use crate::keys::{PrivateKey, generate};
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyUsagePurpose};
    use time::Duration;

    fn key() -> PrivateKey {
        PrivateKey::from_pkcs8(&generate(KeyAlgorithm::P256).unwrap()).unwrap()
    }

    fn ca(name: &str) -> (Vec<u8>, Issuer<'static, PrivateKey>) {
        let k = key();
        let mut p = CertificateParams::new(vec![]).unwrap();
        p.distinguished_name = crate::csr::parse_subject(&format!("CN={name}")).unwrap();
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.key_usages = vec![KeyUsagePurpose::KeyCertSign];
        let der = p.self_signed(&k).unwrap().der().to_vec();
        (der, Issuer::new(p, k))
    }

    fn leaf(issuer: &Issuer<'_, PrivateKey>, days: (i64, i64), usage: Vec<KeyUsagePurpose>) -> Vec<u8> {
        let k = key();
        let mut p = CertificateParams::new(vec![]).unwrap();
        p.distinguished_name = crate::csr::parse_subject("CN=Signer").unwrap();
        p.not_before = OffsetDateTime::now_utc() + Duration::days(days.0);
        p.not_after = OffsetDateTime::now_utc() + Duration::days(days.1);
        p.key_usages = usage;
        p.signed_by(&k, issuer).unwrap().der().to_vec()
    }

    #[test]
    fn revocation_from_crls_and_a_timestamp_before_it() {
        let now = OffsetDateTime::now_utc();
        let crl_ca = |name: &str| {
            let k = key();
            let mut p = CertificateParams::new(vec![]).unwrap();
            p.distinguished_name = crate::csr::parse_subject(&format!("CN={name}")).unwrap();
            p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
            (p.self_signed(&k).unwrap().der().to_vec(), Issuer::new(p, k))
        };
        let (root, issuer) = crl_ca("Root");
        let sign = vec![KeyUsagePurpose::DigitalSignature];
        let signer = leaf(&issuer, (-1, 30), sign.clone());
        let serial = parse(&signer).unwrap().tbs_certificate.raw_serial().to_vec();
        let crl = |revoked: bool, at: OffsetDateTime| {
            rcgen::CertificateRevocationListParams {
                this_update: at,
                next_update: at + Duration::days(1),
                crl_number: rcgen::SerialNumber::from_slice(&[at.unix_timestamp() as u8 | 1]),
                issuing_distribution_point: None,
                revoked_certs: if revoked {
                    vec![rcgen::RevokedCertParams {
                        serial_number: rcgen::SerialNumber::from_slice(&serial),
                        revocation_time: now - Duration::hours(1),
                        reason_code: Some(rcgen::RevocationReason::KeyCompromise),
                        invalidity_date: None,
                    }]
                } else {
                    vec![]
                },
                key_identifier_method: rcgen::KeyIdMethod::Sha256,
            }
            .signed_by(&issuer)
            .unwrap()
            .der()
            .to_vec()
        };
        let anchors = std::slice::from_ref(&root);
        let old_clean = crl(false, now - Duration::days(2));
        let fresh_revoked = crl(true, now - Duration::minutes(5));
        let ok = check_chain_revocation(&signer, &[], anchors, now, std::slice::from_ref(&old_clean), None).unwrap();
        assert!(ok.revocation.unwrap().starts_with("not revoked"));
        // The newest CRL speaks, whatever the order.
        for crls in [vec![old_clean.clone(), fresh_revoked.clone()], vec![fresh_revoked.clone(), old_clean.clone()]] {
            let e = check_chain_revocation(&signer, &[], anchors, now, &crls, None).unwrap_err().to_string();
            assert!(e.contains("revoked on") && e.contains("KeyCompromise"), "{e}");
            // Signed (timestamped) two hours ago, revoked one hour ago: still valid, and said so.
            let r = check_chain_revocation(&signer, &[], anchors, now, &crls, Some(now - Duration::hours(2))).unwrap();
            assert!(r.revocation.unwrap().contains("after the timestamped signing time"));
            // Timestamped after the revocation: refused.
            assert!(
                check_chain_revocation(&signer, &[], anchors, now, &crls, Some(now - Duration::minutes(30))).is_err()
            );
        }
        // A CRL from another CA says nothing about this signer; a malformed one is an error.
        let (_, other) = crl_ca("Other");
        let foreign = rcgen::CertificateRevocationListParams {
            this_update: now,
            next_update: now + Duration::days(1),
            crl_number: rcgen::SerialNumber::from_slice(&[1]),
            issuing_distribution_point: None,
            revoked_certs: vec![],
            key_identifier_method: rcgen::KeyIdMethod::Sha256,
        }
        .signed_by(&other)
        .unwrap()
        .der()
        .to_vec();
        let r = check_chain_revocation(&signer, &[], anchors, now, &[foreign], None).unwrap();
        assert!(r.revocation.unwrap().starts_with("not checked"));
        assert!(check_chain_revocation(&signer, &[], anchors, now, &[vec![0x30, 0x03, 1, 2, 3]], None).is_err());
    }

    #[test]
    fn chain_checks_validity_usage_and_issuer() {
        let now = OffsetDateTime::now_utc();
        let (root, root_issuer) = ca("Root");
        let (other, _) = ca("Other");
        let sign = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::ContentCommitment];
        let good = leaf(&root_issuer, (-1, 30), sign.clone());
        let r = check_chain(&good, &[], std::slice::from_ref(&root), now).unwrap();
        assert_eq!(r.path, vec!["CN=Signer".to_string(), "CN=Root".to_string()]);
        let expect = |der: &[u8], anchors: &[Vec<u8>], needle: &str| {
            let e = check_chain(der, &[], anchors, now).unwrap_err();
            assert!(matches!(e, CoreError::Untrusted(_)), "{e}");
            assert!(e.to_string().contains(needle), "{e}");
        };
        expect(&leaf(&root_issuer, (-30, -1), sign.clone()), std::slice::from_ref(&root), "expired");
        expect(&leaf(&root_issuer, (2, 30), sign.clone()), std::slice::from_ref(&root), "not valid before");
        expect(
            &leaf(&root_issuer, (-1, 30), vec![KeyUsagePurpose::KeyEncipherment]),
            std::slice::from_ref(&root),
            "key usage",
        );
        expect(&good, std::slice::from_ref(&other), "no chain");
        // A CA certificate at hand that did not sign the leaf does not help, nor does the real issuer
        // when it is not itself a trust anchor.
        let e = check_chain(&good, std::slice::from_ref(&other), std::slice::from_ref(&other), now).unwrap_err();
        assert!(e.to_string().contains("no chain"), "{e}");
        assert!(check_chain(&good, std::slice::from_ref(&root), std::slice::from_ref(&other), now).is_err());
    }

    #[test]
    fn path_length_constraints_are_enforced() {
        let now = OffsetDateTime::now_utc();
        let root_key = key();
        let mut rp = CertificateParams::new(vec![]).unwrap();
        rp.distinguished_name = crate::csr::parse_subject("CN=Root pathlen 0").unwrap();
        rp.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        rp.key_usages = vec![KeyUsagePurpose::KeyCertSign];
        let root = rp.self_signed(&root_key).unwrap().der().to_vec();
        let root_issuer = Issuer::new(rp, root_key);
        let inter_key = key();
        let mut ip = CertificateParams::new(vec![]).unwrap();
        ip.distinguished_name = crate::csr::parse_subject("CN=Intermediate").unwrap();
        ip.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ip.key_usages = vec![KeyUsagePurpose::KeyCertSign];
        let inter = ip.signed_by(&inter_key, &root_issuer).unwrap().der().to_vec();
        let inter_issuer = Issuer::new(ip, inter_key);
        let sign = vec![KeyUsagePurpose::DigitalSignature];
        let direct = leaf(&root_issuer, (-1, 30), sign.clone());
        check_chain(&direct, &[], std::slice::from_ref(&root), now).unwrap();
        let below = leaf(&inter_issuer, (-1, 30), sign);
        let e = check_chain(&below, std::slice::from_ref(&inter), std::slice::from_ref(&root), now).unwrap_err();
        assert!(e.to_string().contains("pathLenConstraint"), "{e}");
    }

    fn signer_params(cn: &str) -> CertificateParams {
        let mut p = CertificateParams::new(vec![]).unwrap();
        p.distinguished_name = crate::csr::parse_subject(&format!("CN={cn}")).unwrap();
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        p
    }

    /// RFC 5280 4.2: an unknown critical extension in the signer's certificate or in a CA's is refused
    /// (the hand-written checker accepted it).
    #[test]
    fn unknown_critical_extensions_are_refused() {
        let now = OffsetDateTime::now_utc();
        let (root, root_issuer) = ca("Root");
        let mut p = signer_params("Signer");
        let mut ext = rcgen::CustomExtension::from_oid_content(&[1, 3, 6, 1, 4, 1, 99999, 1], vec![0x05, 0x00]);
        ext.set_criticality(true);
        p.custom_extensions.push(ext);
        let bad = p.signed_by(&key(), &root_issuer).unwrap().der().to_vec();
        let e = check_chain(&bad, &[], std::slice::from_ref(&root), now).unwrap_err();
        assert!(e.to_string().contains("critical extension"), "{e}");
        // The same extension, not critical, is fine.
        let mut p = signer_params("Signer");
        p.custom_extensions
            .push(rcgen::CustomExtension::from_oid_content(&[1, 3, 6, 1, 4, 1, 99999, 1], vec![0x05, 0x00]));
        check_chain(p.signed_by(&key(), &root_issuer).unwrap().der(), &[], std::slice::from_ref(&root), now).unwrap();
    }

    /// extendedKeyUsage, when present, must allow signing documents (in the signer's and the CAs'
    /// certificates).
    #[test]
    fn extended_key_usage_when_present_must_allow_document_signing() {
        use rcgen::ExtendedKeyUsagePurpose as Eku;
        let now = OffsetDateTime::now_utc();
        let (root, root_issuer) = ca("Root");
        let with = |ekus: Vec<Eku>| {
            let mut p = signer_params("Signer");
            p.extended_key_usages = ekus;
            p.signed_by(&key(), &root_issuer).unwrap().der().to_vec()
        };
        let anchors = std::slice::from_ref(&root);
        let e = check_chain(&with(vec![Eku::ServerAuth]), &[], anchors, now).unwrap_err();
        assert!(e.to_string().contains("extendedKeyUsage"), "{e}");
        check_chain(&with(vec![Eku::Other(vec![1, 3, 6, 1, 5, 5, 7, 3, 36])]), &[], anchors, now).unwrap();
        check_chain(&with(vec![Eku::ServerAuth, Eku::EmailProtection]), &[], anchors, now).unwrap();
        check_chain(&with(vec![]), &[], anchors, now).unwrap();
    }

    /// Path building backtracks: of two CA certificates with the issuer's name and key, the first one at
    /// hand leads to an untrusted root; the second to the trusted one.
    #[test]
    fn path_building_backtracks() {
        let now = OffsetDateTime::now_utc();
        let (root, root_issuer) = ca("Root");
        let (_, other_issuer) = ca("Other root");
        let inter_key_der = generate(KeyAlgorithm::P256).unwrap();
        let inter_params = || {
            let mut p = CertificateParams::new(vec![]).unwrap();
            p.distinguished_name = crate::csr::parse_subject("CN=Intermediate").unwrap();
            p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            p.key_usages = vec![KeyUsagePurpose::KeyCertSign];
            p
        };
        let k = || PrivateKey::from_pkcs8(&inter_key_der).unwrap();
        let via_other = inter_params().signed_by(&k(), &other_issuer).unwrap().der().to_vec();
        let via_root = inter_params().signed_by(&k(), &root_issuer).unwrap().der().to_vec();
        let inter_issuer = Issuer::new(inter_params(), k());
        let signer = signer_params("Signer").signed_by(&key(), &inter_issuer).unwrap().der().to_vec();
        let r = check_chain(&signer, &[via_other.clone(), via_root], std::slice::from_ref(&root), now).unwrap();
        assert_eq!(r.path, vec!["CN=Signer", "CN=Intermediate", "CN=Root"]);
        assert!(check_chain(&signer, &[via_other], std::slice::from_ref(&root), now).is_err());
    }

    /// Name constraints of a CA bind the names of the certificates under it.
    #[test]
    fn name_constraints_are_enforced() {
        let now = OffsetDateTime::now_utc();
        let k = key();
        let mut p = CertificateParams::new(vec![]).unwrap();
        p.distinguished_name = crate::csr::parse_subject("CN=Constrained CA").unwrap();
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.key_usages = vec![KeyUsagePurpose::KeyCertSign];
        p.name_constraints = Some(rcgen::NameConstraints {
            permitted_subtrees: vec![rcgen::GeneralSubtree::DnsName("gov.example".into())],
            excluded_subtrees: vec![],
        });
        let root = p.self_signed(&k).unwrap().der().to_vec();
        let issuer = Issuer::new(p, k);
        let signer = |name: &str| {
            let mut p = signer_params("Signer");
            p.subject_alt_names = vec![rcgen::SanType::DnsName(name.try_into().unwrap())];
            p.signed_by(&key(), &issuer).unwrap().der().to_vec()
        };
        check_chain(&signer("portal.gov.example"), &[], std::slice::from_ref(&root), now).unwrap();
        let e = check_chain(&signer("evil.example"), &[], std::slice::from_ref(&root), now).unwrap_err();
        assert!(e.to_string().contains("name constraints"), "{e}");
    }

    #[test]
    fn bundles_in_pem_and_der() {
        let (root, issuer) = ca("Root");
        let l = leaf(&issuer, (-1, 1), vec![KeyUsagePurpose::DigitalSignature]);
        let pem = format!("{}{}", cert_pem(&l), cert_pem(&root));
        assert_eq!(parse_cert_bundle(pem.as_bytes()).unwrap(), vec![l.clone(), root.clone()]);
        let der: Vec<u8> = [l.clone(), root.clone()].concat();
        assert_eq!(parse_cert_bundle(&der).unwrap(), vec![l, root]);
        assert!(parse_cert_bundle(b"").is_err());
        assert!(parse_cert_bundle(b"-----BEGIN PRIVATE KEY-----\nAA==\n-----END PRIVATE KEY-----\n").is_err());
    }
}
