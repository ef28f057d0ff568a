//! Issuance: CSR checks (proof of possession, allowed keys), the fixed certificate profile, single use of
//! enrolment codes, the issuance log, and the CRL.

use kalit_core::x509;
use kalit_proto::ErrorCode;
use kalit_proto::ra::{IssueRequest, IssueResponse};
use rcgen::{
    CertificateParams, CertificateRevocationListParams, IsCa, KeyIdMethod, KeyUsagePurpose, RevocationReason,
    RevokedCertParams, SerialNumber,
};
use sqlx::Row;
use time::{Duration, OffsetDateTime};

use crate::{RaError, RaState};

/// Largest CSR accepted (PEM text).
pub const MAX_CSR_LEN: usize = 16 * 1024;

/// A positive 128-bit random serial (RFC 5280: at most 20 octets, positive).
pub fn random_serial() -> Result<Vec<u8>, RaError> {
    let mut s = kalit_core::seal::random::<16>()?.to_vec();
    s[0] &= 0x7f;
    s[0] |= 0x01; // never a leading zero byte, so the DER INTEGER is exactly 16 octets
    Ok(s)
}

/// Checks a PEM CSR of at most `MAX_CSR_LEN` bytes as `kalit_core::csr::check_request` does (PKCS#10, the
/// key profile, proof of possession) and returns its public key.
pub fn check_csr(pem_text: &str) -> Result<Vec<u8>, RaError> {
    if pem_text.len() > MAX_CSR_LEN {
        return Err(RaError::new(ErrorCode::TooLarge, format!("a CSR is at most {MAX_CSR_LEN} bytes")));
    }
    Ok(kalit_core::csr::check_request(pem_text)?)
}

/// Normalises an enrolment code (case, dashes and spaces do not matter) and hashes it.
pub fn code_hash(code: &str) -> String {
    let norm: String =
        code.chars().filter(|c| !c.is_whitespace() && *c != '-').collect::<String>().to_ascii_uppercase();
    hex::encode(kalit_core::digest::HashAlg::Sha256.digest(norm.as_bytes()))
}

/// Issues a certificate for `req`: the code is consumed in the same transaction that records the
/// certificate, so a code is used once and a failure leaves it usable.
pub async fn issue(state: &RaState, req: &IssueRequest) -> Result<IssueResponse, RaError> {
    // Parsing the CSR and checking its signature: CPU work, on the blocking pool.
    let csr = req.csr.clone();
    let spki = tokio::task::spawn_blocking(move || check_csr(&csr)).await.map_err(RaError::internal)??;
    if req.code.len() > 64 {
        return Err(RaError::invalid("an enrolment code is at most 64 characters"));
    }
    let now = state.clock.now();
    let now_ms = kalit_service::unix_ms(now);
    let serial = random_serial()?;
    let serial_hex = hex::encode(&serial);
    let mut tx = state.store.pool.begin().await.map_err(RaError::db)?;
    let row = sqlx::query(
        "UPDATE enrolments SET used_ms = $1, serial = $2 WHERE code_hash = $3 AND used_ms IS NULL AND expires_ms >= $1 RETURNING subject",
    )
    .bind(now_ms)
    .bind(&serial_hex)
    .bind(code_hash(&req.code))
    .fetch_optional(&mut *tx)
    .await
    .map_err(RaError::db)?;
    let Some(row) = row else {
        return Err(RaError::new(ErrorCode::Expired, "unknown, used or expired enrolment code; ask the RA operator"));
    };
    let subject: String = row.try_get("subject").map_err(RaError::db)?;
    // One key, one person: a public key already certified to another subject is refused (a CSR's proof
    // of possession could have been obtained from its holder under false pretences). Returning here
    // rolls the transaction back, so the enrolment code stays usable.
    let spki_sha = hex::encode(kalit_core::digest::HashAlg::Sha256.digest(&spki));
    let other = sqlx::query("SELECT subject FROM issued WHERE spki_sha256 = $1 AND subject <> $2 LIMIT 1")
        .bind(&spki_sha)
        .bind(&subject)
        .fetch_optional(&mut *tx)
        .await
        .map_err(RaError::db)?;
    if other.is_some() {
        tracing::warn!(spki_sha256 = %spki_sha, "issuance refused: the key is certified to another subject");
        return Err(RaError::new(
            ErrorCode::RefusedByPolicy,
            "this public key is already certified to another person; generate a new key for this enrolment",
        ));
    }

    let mut p = CertificateParams::default();
    p.distinguished_name = kalit_core::csr::parse_subject(&subject)?;
    p.serial_number = Some(SerialNumber::from_slice(&serial));
    p.not_before = now - Duration::minutes(5);
    p.not_after = now + Duration::days(i64::from(state.ca.validity_days));
    p.is_ca = IsCa::ExplicitNoCa;
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::ContentCommitment];
    p.use_authority_key_identifier_extension = true;
    p.key_identifier_method = KeyIdMethod::Sha256;
    if let Some(url) = &state.public_url {
        p.crl_distribution_points = vec![rcgen::CrlDistributionPoint { uris: vec![format!("{url}/v1/crl")] }];
        p.custom_extensions = vec![ocsp_access(url)];
    }
    let subject_key =
        rcgen::SubjectPublicKeyInfo::from_der(&spki).map_err(|e| RaError::invalid(format!("CSR key: {e}")))?;
    let cert = p.signed_by(&subject_key, &state.ca.issuer).map_err(RaError::internal)?.der().to_vec();
    let not_after_ms = p.not_after.unix_timestamp() * 1000;
    sqlx::query(
        "INSERT INTO issued (serial, subject, spki_sha256, cert_der, issued_ms, not_after_ms) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&serial_hex)
    .bind(&subject)
    .bind(&spki_sha)
    .bind(&cert)
    .bind(now_ms)
    .bind(not_after_ms)
    .execute(&mut *tx)
    .await
    .map_err(RaError::db)?;
    let line = serde_json::json!({
        "issued_at": now.unix_timestamp(), "serial": serial_hex, "subject": subject,
        "spki_sha256": spki_sha, "not_after": p.not_after.unix_timestamp(),
        "cert_sha256": kalit_core::statement::cert_fingerprint(&cert),
    });
    // The log line is on disk before the issuance commits: the log never misses a certificate.
    // An fsynced append: on the blocking pool, so other requests carry on meanwhile.
    let log = state.dir.join("issued.log");
    tokio::task::spawn_blocking(move || kalit_service::files::append_line(&log, &line.to_string()))
        .await
        .map_err(RaError::internal)?
        .map_err(RaError::io("cannot append to issued.log"))?;
    tx.commit().await.map_err(RaError::db)?;
    tracing::info!(serial = %serial_hex, subject = %subject, "certificate issued");
    let mut chain = x509::cert_pem(&cert);
    chain.push_str(&crate::ca::chain_pem(&state.ca));
    Ok(IssueResponse { serial: serial_hex, subject, chain, not_after: p.not_after.unix_timestamp() })
}

/// authorityInfoAccess (RFC 5280 4.2.2.1) naming this RA's OCSP responder at `URL/v1/ocsp`.
fn ocsp_access(url: &str) -> rcgen::CustomExtension {
    use kalit_core::der as w;
    let ocsp = const_oid_der(&[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x30, 0x01]);
    let location = w::tlv(0x86, format!("{url}/v1/ocsp").as_bytes());
    rcgen::CustomExtension::from_oid_content(&[1, 3, 6, 1, 5, 5, 7, 1, 1], w::seq(&[&w::seq(&[&ocsp, &location])]))
}

fn const_oid_der(content: &[u8]) -> Vec<u8> {
    kalit_core::der::tlv(0x06, content)
}

/// The reason code (RFC 5280 CRLReason) of a reason name.
pub fn reason_code(name: &str) -> Option<u8> {
    Some(match name {
        "unspecified" => 0,
        "keyCompromise" => 1,
        "affiliationChanged" => 3,
        "superseded" => 4,
        "cessationOfOperation" => 5,
        "privilegeWithdrawn" => 9,
        _ => return None,
    })
}

/// RFC 5280 reason names accepted by `kalit ra revoke --reason`.
pub const REASONS: [&str; 6] =
    ["unspecified", "keyCompromise", "affiliationChanged", "superseded", "cessationOfOperation", "privilegeWithdrawn"];

fn reason(name: &str) -> Option<RevocationReason> {
    Some(match name {
        "unspecified" => RevocationReason::Unspecified,
        "keyCompromise" => RevocationReason::KeyCompromise,
        "affiliationChanged" => RevocationReason::AffiliationChanged,
        "superseded" => RevocationReason::Superseded,
        "cessationOfOperation" => RevocationReason::CessationOfOperation,
        "privilegeWithdrawn" => RevocationReason::PrivilegeWithdrawn,
        _ => return None,
    })
}

/// Checks a reason name.
pub fn check_reason(name: &str) -> Result<(), RaError> {
    reason(name)
        .map(|_| ())
        .ok_or_else(|| RaError::invalid(format!("unknown reason {name:?}; one of {}", REASONS.join(", "))))
}

/// A CRL (DER) of the issuing CA, valid for a day, numbered by the current time.
pub async fn crl(state: &RaState) -> Result<Vec<u8>, RaError> {
    let now = state.clock.now();
    let revoked = state.store.revoked(now.unix_timestamp() * 1000).await?;
    let revoked_certs = revoked
        .iter()
        .map(|r| {
            Ok(RevokedCertParams {
                serial_number: SerialNumber::from_slice(
                    &hex::decode(&r.serial).map_err(|_| RaError::new(ErrorCode::Corrupt, "bad serial in ra.db"))?,
                ),
                revocation_time: OffsetDateTime::from_unix_timestamp(r.revoked_ms / 1000).map_err(RaError::internal)?,
                reason_code: r.reason.as_deref().and_then(reason),
                invalidity_date: None,
            })
        })
        .collect::<Result<Vec<_>, RaError>>()?;
    let params = CertificateRevocationListParams {
        this_update: now - Duration::minutes(1),
        next_update: now + Duration::days(1),
        crl_number: SerialNumber::from_slice(minimal(&(now.unix_timestamp().max(1) as u64).to_be_bytes())),
        issuing_distribution_point: None,
        revoked_certs,
        key_identifier_method: KeyIdMethod::Sha256,
    };
    Ok(params.signed_by(&state.ca.issuer).map_err(RaError::internal)?.der().to_vec())
}

fn minimal(b: &[u8]) -> &[u8] {
    let first = b.iter().position(|x| *x != 0).unwrap_or(b.len() - 1);
    &b[first..]
}
