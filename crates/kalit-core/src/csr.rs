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

#[cfg(test)]
mod tests {
    use super::*;

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
