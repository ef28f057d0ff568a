//! X.509 helpers: certificate bundles, summaries, fingerprints, raw signature verification and a small
//! chain checker.

use aws_lc_rs::signature::{self, UnparsedPublicKey, VerificationAlgorithm};
use kalit_proto::vault::CertInfo;
use kalit_proto::verify::ChainReport;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use x509_parser::certificate::X509Certificate;
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

/// RFC 5280 4.2.1.9: a CA certificate with pathLenConstraint n may have at most n intermediate CA
/// certificates below it.
fn check_path_len(c: &X509Certificate<'_>, intermediates_below: u32) -> Result<(), CoreError> {
    if let Ok(Some(bc)) = c.basic_constraints()
        && let Some(n) = bc.value.path_len_constraint
        && intermediates_below > n
    {
        return Err(CoreError::Untrusted(format!(
            "CA {} allows {n} intermediate CA(s) below it, the chain has {intermediates_below}",
            c.subject()
        )));
    }
    Ok(())
}

fn is_ca(c: &X509Certificate<'_>) -> bool {
    let ca = matches!(c.basic_constraints(), Ok(Some(bc)) if bc.value.ca);
    let ku_ok = match c.key_usage() {
        Ok(Some(ku)) => ku.value.key_cert_sign(),
        Ok(None) => true,
        Err(_) => false,
    };
    ca && ku_ok
}

/// Checks that `leaf` is fit for document signing now and chains, through certificates in `pool`, to one
/// of `anchors`. Signatures, validity periods, CA flags and the leaf's key usage are checked.
pub fn check_chain(
    leaf: &[u8],
    pool: &[Vec<u8>],
    anchors: &[Vec<u8>],
    now: OffsetDateTime,
) -> Result<ChainReport, CoreError> {
    let leaf_c = parse(leaf)?;
    check_validity(&leaf_c, now)?;
    if let Ok(Some(ku)) = leaf_c.key_usage()
        && !(ku.value.digital_signature() || ku.value.non_repudiation())
    {
        return Err(CoreError::Untrusted(
            "the signer certificate's key usage allows neither digitalSignature nor nonRepudiation".into(),
        ));
    }
    let anchors_parsed: Vec<X509Certificate<'_>> = anchors.iter().map(|d| parse(d)).collect::<Result<_, _>>()?;
    let pool_parsed: Vec<(usize, X509Certificate<'_>)> =
        pool.iter().enumerate().filter_map(|(i, d)| parse(d).ok().map(|c| (i, c))).collect();
    let mut path = vec![leaf_c.subject().to_string()];
    let mut current_der: &[u8] = leaf;
    let mut current = leaf_c;
    for depth in 0..MAX_CHAIN_DEPTH {
        // Intermediate CA certificates between the leaf and the certificate about to be added.
        let below = depth as u32;
        if anchors.iter().any(|a| a.as_slice() == current_der) {
            return Ok(ChainReport { trusted: true, path });
        }
        for a in &anchors_parsed {
            if a.subject().as_raw() == current.issuer().as_raw()
                && current.verify_signature(Some(a.public_key())).is_ok()
            {
                check_validity(a, now)?;
                check_path_len(a, below)?;
                path.push(a.subject().to_string());
                return Ok(ChainReport { trusted: true, path });
            }
        }
        let next = pool_parsed.iter().find(|(i, c)| {
            pool[*i].as_slice() != current_der
                && c.subject().as_raw() == current.issuer().as_raw()
                && is_ca(c)
                && current.verify_signature(Some(c.public_key())).is_ok()
        });
        match next {
            Some((i, c)) => {
                check_validity(c, now)?;
                check_path_len(c, below)?;
                path.push(c.subject().to_string());
                current_der = &pool[*i];
                current = parse(current_der)?;
            }
            None => {
                return Err(CoreError::Untrusted(format!(
                    "no chain to a trusted CA: issuer {} of {} is neither a trust anchor nor a CA certificate at hand",
                    current.issuer(),
                    current.subject()
                )));
            }
        }
    }
    Err(CoreError::Untrusted(format!("chain longer than {MAX_CHAIN_DEPTH} certificates")))
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
        assert!(e.to_string().contains("allows 0 intermediate"), "{e}");
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
