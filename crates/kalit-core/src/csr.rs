//! Certificate signing requests (PKCS#10) signed by the key itself: proof of possession.

use rcgen::{CertificateParams, DistinguishedName, DnType};

use crate::CoreError;
use crate::keys::PrivateKey;

/// Longest subject string accepted.
pub const MAX_SUBJECT_LEN: usize = 1024;

/// Parses an OpenSSL-style subject `CN=...,O=...,C=UZ` (also accepts `/CN=.../O=...`). A comma or slash
/// inside a value is escaped with a backslash. Attribute order is kept.
pub fn parse_subject(s: &str) -> Result<DistinguishedName, CoreError> {
    if s.len() > MAX_SUBJECT_LEN {
        return Err(CoreError::invalid(format!("subject longer than {MAX_SUBJECT_LEN} bytes")));
    }
    let (body, sep) = match s.strip_prefix('/') {
        Some(rest) => (rest, '/'),
        None => (s, ','),
    };
    let mut parts = Vec::new();
    let mut cur = String::new();
    let mut chars = body.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(n) => cur.push(n),
                None => return Err(CoreError::invalid("subject ends with a lone backslash")),
            },
            c if c == sep => parts.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    parts.push(cur);
    let mut dn = DistinguishedName::new();
    let mut count = 0;
    for part in parts {
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        let (k, v) = part
            .split_once('=')
            .ok_or_else(|| CoreError::invalid(format!("subject part {part:?} is not KEY=VALUE")))?;
        let v = v.trim();
        if v.is_empty() || v.chars().any(char::is_control) {
            return Err(CoreError::invalid(format!("subject attribute {k} has an empty or invalid value")));
        }
        let ty = match k.trim().to_ascii_uppercase().as_str() {
            "CN" => DnType::CommonName,
            "O" => DnType::OrganizationName,
            "OU" => DnType::OrganizationalUnitName,
            "C" => {
                if v.len() != 2 || !v.chars().all(|c| c.is_ascii_alphabetic()) {
                    return Err(CoreError::invalid(format!("country C={v} must be two letters")));
                }
                DnType::CountryName
            }
            "L" => DnType::LocalityName,
            "ST" => DnType::StateOrProvinceName,
            "SERIALNUMBER" => DnType::CustomDnType(vec![2, 5, 4, 5]),
            "GIVENNAME" | "GN" => DnType::CustomDnType(vec![2, 5, 4, 42]),
            "SURNAME" | "SN" => DnType::CustomDnType(vec![2, 5, 4, 4]),
            "TITLE" => DnType::CustomDnType(vec![2, 5, 4, 12]),
            "UID" => DnType::CustomDnType(vec![0, 9, 2342, 19200300, 100, 1, 1]),
            "EMAILADDRESS" | "E" => DnType::CustomDnType(vec![1, 2, 840, 113549, 1, 9, 1]),
            other => {
                return Err(CoreError::invalid(format!(
                    "unknown subject attribute {other} (known: CN, O, OU, C, L, ST, SERIALNUMBER, GIVENNAME, SURNAME, TITLE, UID, emailAddress)"
                )));
            }
        };
        dn.push(ty, v);
        count += 1;
    }
    if count == 0 {
        return Err(CoreError::invalid("the subject is empty; give at least CN=..."));
    }
    Ok(dn)
}

/// Builds a PEM PKCS#10 request for `subject`, signed by `key`.
pub fn build_csr_pem(key: &PrivateKey, subject: DistinguishedName) -> Result<String, CoreError> {
    let mut params = CertificateParams::default();
    params.distinguished_name = subject;
    let csr = params.serialize_request(key).map_err(|e| CoreError::invalid(format!("cannot build the CSR: {e}")))?;
    csr.pem().map_err(|e| CoreError::invalid(format!("cannot encode the CSR: {e}")))
}

/// A CSR as Kalit's RA accepts it, whatever sends it: PEM-wrapped PKCS#10 with nothing after it, a key
/// of the RA's profile (RSA 2048 to 4096 bits with the exponent 65537, EC on P-256, or Ed25519), and a
/// signature by that key (proof of possession). Returns the key (DER SubjectPublicKeyInfo). The caller
/// bounds the text's size first.
pub fn check_request(pem_text: &str) -> Result<Vec<u8>, CoreError> {
    use x509_parser::prelude::FromDer;
    use x509_parser::public_key::PublicKey;
    let p = pem::parse(pem_text).map_err(|_| CoreError::invalid("the CSR is not PEM"))?;
    if p.tag() != "CERTIFICATE REQUEST" && p.tag() != "NEW CERTIFICATE REQUEST" {
        return Err(CoreError::invalid(format!("expected a CERTIFICATE REQUEST, got {}", p.tag())));
    }
    let (rest, csr) = x509_parser::certification_request::X509CertificationRequest::from_der(p.contents())
        .map_err(|_| CoreError::invalid("the CSR is not a PKCS#10 request"))?;
    if !rest.is_empty() {
        return Err(CoreError::invalid("trailing bytes after the CSR"));
    }
    let spki = &csr.certification_request_info.subject_pki;
    match spki.parsed() {
        Ok(PublicKey::RSA(rsa)) => {
            let bits = rsa.key_size();
            if !(2048..=4096).contains(&bits) {
                return Err(CoreError::invalid(format!("RSA-{bits} refused: RSA keys have 2048 to 4096 bits")));
            }
            if rsa.try_exponent().ok() != Some(65537) {
                return Err(CoreError::invalid("RSA keys must use the public exponent 65537"));
            }
        }
        Ok(PublicKey::EC(_)) => {
            let curve = spki.algorithm.parameters.as_ref().and_then(|p| p.as_oid().ok());
            if curve.map(|c| c.to_id_string()).as_deref() != Some("1.2.840.10045.3.1.7") {
                return Err(CoreError::invalid("elliptic-curve keys must be on P-256"));
            }
        }
        _ if spki.algorithm.algorithm.to_id_string() == "1.3.101.112" => {}
        _ => return Err(CoreError::invalid("unsupported key type (RSA 2048-4096, P-256 or Ed25519)")),
    }
    // Key checks first: aws-lc cannot verify with a weak key, and "weak key" is the better answer.
    csr.verify_signature().map_err(|_| {
        CoreError::InvalidSignature("the CSR's signature does not verify (no proof of possession)".into())
    })?;
    Ok(spki.raw.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_is_checked_as_the_ra_checks_it() {
        use crate::KeyAlgorithm;
        use crate::keys::generate;
        for alg in [KeyAlgorithm::P256, KeyAlgorithm::Ed25519] {
            let key = PrivateKey::from_pkcs8(&generate(alg).unwrap()).unwrap();
            let pem = build_csr_pem(&key, parse_subject("CN=Ali Valiyev,C=UZ").unwrap()).unwrap();
            assert_eq!(check_request(&pem).unwrap(), key.spki_der(), "{alg:?}: the key comes back");
            // One byte of the signature changed: no proof of possession.
            let mut der = pem::parse(&pem).unwrap().into_contents();
            let last = der.len() - 1;
            der[last] ^= 1;
            let bad = pem::encode(&pem::Pem::new("CERTIFICATE REQUEST", der));
            assert!(matches!(check_request(&bad), Err(CoreError::InvalidSignature(_))), "{alg:?}");
        }
        for (text, want) in [
            ("not pem", "not PEM"),
            ("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", "expected a CERTIFICATE REQUEST"),
            ("-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n", "not a PKCS#10"),
        ] {
            let e = check_request(text).unwrap_err();
            assert!(matches!(e, CoreError::InvalidInput(_)) && e.to_string().contains(want), "{text}: {e}");
        }
    }

    #[test]
    fn subjects() {
        assert!(parse_subject("CN=Ali Valiyev,O=Example,C=UZ").is_ok());
        assert!(parse_subject("/CN=Ali/C=UZ").is_ok());
        assert!(parse_subject("CN=Acme\\, Inc.,C=UZ").is_ok());
        assert!(parse_subject("").is_err());
        assert!(parse_subject("CN").is_err());
        assert!(parse_subject("C=Uzbekistan").is_err());
        assert!(parse_subject("XX=1").is_err());
        assert!(parse_subject("CN=a\\").is_err());
        assert!(parse_subject(&"CN=".repeat(1000)).is_err());
    }
}
