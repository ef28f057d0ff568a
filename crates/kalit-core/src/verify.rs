//! Document signature verification shared by `kalit verify` and the agent: raw or CMS, then the signer's
//! certificate chain against trust anchors.

use kalit_proto::verify::VerifyReport;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::digest::HashAlg;
use crate::{CoreError, x509};

/// Returns the DER CMS when `sig` looks like CMS SignedData (DER or PEM), `None` for a raw signature.
pub fn looks_like_cms(sig: &[u8]) -> Option<Vec<u8>> {
    if sig.windows(10).any(|w| w == b"-----BEGIN") {
        let p = pem::parse(sig).ok()?;
        return matches!(p.tag(), "CMS" | "PKCS7").then(|| p.into_contents());
    }
    // A DER SEQUENCE starting with the signedData OID is CMS; anything else is a raw signature.
    let oid = crate::der::oid(&crate::cms::oid::SIGNED_DATA);
    (sig.first() == Some(&0x30) && sig.len() > 20 && sig[..20].windows(oid.len()).any(|w| w == oid))
        .then(|| sig.to_vec())
}

/// How to reach the document: its digest for CMS (so large files can be streamed), its bytes for raw.
pub struct Document<'a> {
    /// The document's digest under an algorithm.
    pub digest_of: &'a mut dyn FnMut(HashAlg) -> Result<Vec<u8>, CoreError>,
    /// The document's bytes.
    pub bytes: &'a mut dyn FnMut() -> Result<Vec<u8>, CoreError>,
}

impl std::fmt::Debug for Document<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Document")
    }
}

/// The report of a verified timestamp; with `anchors`, its TSA's chain is checked at the token's time.
pub fn timestamp_report(
    ts: &crate::tsp::TimestampInfo,
    anchors: &[Vec<u8>],
) -> Result<kalit_proto::verify::TimestampReport, CoreError> {
    let chain = if anchors.is_empty() {
        None
    } else {
        Some(crate::tsp::check_tsa_chain(&ts.tsa_cert, &ts.certificates, anchors, ts.time)?)
    };
    Ok(kalit_proto::verify::TimestampReport {
        time: ts.time.format(&Rfc3339).unwrap_or_default(),
        tsa: ts.tsa_name(),
        serial: ts.serial.clone(),
        policy: ts.policy.clone(),
        chain,
    })
}

/// Verifies `sig` (raw, or CMS when `cms` is `Some`) over `doc` and returns the report with the first
/// failure, if any (the report then has `valid: false` and a reason); `given_certs` are the signer's certificate
/// (first) and intermediates; with `anchors` the chain, validity and key usage are checked too.
pub fn verify_document(
    doc: Document<'_>,
    sig: &[u8],
    cms: Option<&[u8]>,
    given_certs: &[Vec<u8>],
    anchors: &[Vec<u8>],
    crls: &[Vec<u8>],
    now: OffsetDateTime,
) -> (VerifyReport, Result<(), CoreError>) {
    let mut report = VerifyReport {
        valid: false,
        format: if cms.is_some() { "cms" } else { "raw" }.into(),
        scheme: None,
        signer: None,
        signing_time: None,
        chain: None,
        reason: None,
        timestamp: None,
    };
    let result: Result<(), CoreError> = (|| {
        let mut signed_at = None;
        let (signer, pool) = match cms {
            Some(cms) => {
                let v = crate::cms::verify_detached(cms, doc.digest_of, given_certs)?;
                report.scheme = Some(v.scheme.clone());
                report.signing_time = v.signing_time.and_then(|t| t.format(&Rfc3339).ok());
                if let Some(ts) = &v.timestamp {
                    report.timestamp = Some(timestamp_report(ts, anchors)?);
                    signed_at = Some(ts.time);
                }
                let mut pool = v.certificates.clone();
                pool.extend(given_certs.iter().cloned());
                (v.signer_cert, pool)
            }
            None => {
                let cert = given_certs
                    .first()
                    .cloned()
                    .ok_or_else(|| CoreError::InvalidInput("a raw signature needs the signer's certificate".into()))?;
                let scheme = x509::verify_raw(&x509::cert_spki(&cert)?, &(doc.bytes)()?, sig)?;
                report.scheme = Some(scheme.name().into());
                (cert, given_certs.to_vec())
            }
        };
        report.signer = Some(x509::cert_info(&signer)?);
        if !anchors.is_empty() {
            report.chain = Some(x509::check_chain_revocation(&signer, &pool, anchors, now, crls, signed_at)?);
        }
        Ok(())
    })();
    match &result {
        Ok(()) => report.valid = true,
        Err(e) => report.reason = Some(e.to_string()),
    }
    (report, result)
}

/// Verifies every signature and document timestamp of a PDF: the byte ranges and the CMS (or token)
/// over them, the signer's chain against `anchors` (when given), the signature timestamp, and what the
/// revisions after each signature changed.
#[cfg(feature = "pdf")]
pub fn verify_pdf(
    pdf: &[u8],
    anchors: &[Vec<u8>],
    crls: &[Vec<u8>],
    now: OffsetDateTime,
) -> Result<kalit_proto::verify::PdfVerifyReport, CoreError> {
    use kalit_proto::verify::{PdfSignatureReport, PdfVerifyReport};
    // The document security store: certificates for the paths, CRLs for revocation (with `crls`).
    let (signatures, dss) = crate::pdf::signatures_and_validation_data(pdf)?;
    let mut all_crls = dss.crls.clone();
    all_crls.extend(crls.iter().cloned());
    let mut out = Vec::new();
    for s in signatures {
        let doc_ts = s.sub_filter == "ETSI.RFC3161";
        let mut r = PdfSignatureReport {
            field: s.field.clone(),
            kind: if doc_ts { "document-timestamp" } else { "signature" }.into(),
            level: "none".into(),
            valid: false,
            reason: None,
            signer: None,
            scheme: None,
            claimed_time: s.claimed_time.clone(),
            signer_reason: s.reason.clone(),
            timestamp: None,
            chain: None,
            covers_whole_document: s.bytes_after == 0,
            bytes_after: s.bytes_after as u64,
            changed_after: s.later_changes.clone().err(),
        };
        let result: Result<(), CoreError> = (|| {
            if s.contents.is_empty() {
                return Err(CoreError::InvalidSignature("the signature field is empty (never signed)".into()));
            }
            if doc_ts {
                let ts = crate::tsp::verify_token(&s.contents, &s.signed_bytes(pdf))?;
                r.signer = Some(x509::cert_info(&ts.tsa_cert)?);
                r.timestamp = Some(timestamp_report(&ts, anchors)?);
            } else {
                if !matches!(s.sub_filter.as_str(), "ETSI.CAdES.detached" | "adbe.pkcs7.detached") {
                    return Err(CoreError::Unsupported(format!("PDF signature type {:?}", s.sub_filter)));
                }
                let v = crate::cms::verify_detached(&s.contents, &mut |h| Ok(s.digest(pdf, h)), &[])?;
                r.scheme = Some(v.scheme.clone());
                r.signer = Some(x509::cert_info(&v.signer_cert)?);
                if s.sub_filter == "ETSI.CAdES.detached" {
                    r.level = match (&v.timestamp, dss.crls.is_empty()) {
                        (None, _) => "B-B",
                        (Some(_), true) => "B-T",
                        (Some(_), false) => "B-LT",
                    }
                    .into();
                }
                if let Some(ts) = &v.timestamp {
                    r.timestamp = Some(timestamp_report(ts, anchors)?);
                }
                if !anchors.is_empty() {
                    let mut pool = v.certificates.clone();
                    pool.extend(dss.certs.iter().cloned());
                    let signed_at = v.timestamp.as_ref().map(|t| t.time);
                    r.chain =
                        Some(x509::check_chain_revocation(&v.signer_cert, &pool, anchors, now, &all_crls, signed_at)?);
                }
            }
            if let Err(what) = &s.later_changes {
                return Err(CoreError::InvalidSignature(format!(
                    "the document was changed after this signature: {what}"
                )));
            }
            Ok(())
        })();
        match result {
            Ok(()) => r.valid = true,
            Err(e) => r.reason = Some(e.to_string()),
        }
        out.push(r);
    }
    // A B-LT signature that a valid document timestamp covers later is B-LTA.
    let stamped_at = out.iter().filter(|r| r.kind == "document-timestamp" && r.valid).map(|r| r.bytes_after).min();
    if let Some(after) = stamped_at {
        for r in out.iter_mut().filter(|r| r.level == "B-LT" && r.bytes_after > after) {
            r.level = "B-LTA".into();
        }
    }
    Ok(PdfVerifyReport { valid: !out.is_empty() && out.iter().all(|r| r.valid), signatures: out })
}
