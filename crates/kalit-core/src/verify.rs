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

/// Verifies `sig` (raw, or CMS when `cms` is `Some`) over `doc` and returns the report with the first
/// failure, if any (the report then has `valid: false` and a reason); `given_certs` are the signer's certificate
/// (first) and intermediates; with `anchors` the chain, validity and key usage are checked too.
pub fn verify_document(
    doc: Document<'_>,
    sig: &[u8],
    cms: Option<&[u8]>,
    given_certs: &[Vec<u8>],
    anchors: &[Vec<u8>],
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
    };
    let result: Result<(), CoreError> = (|| {
        let (signer, pool) = match cms {
            Some(cms) => {
                let v = crate::cms::verify_detached(cms, doc.digest_of, given_certs)?;
                report.scheme = Some(v.scheme.clone());
                report.signing_time = v.signing_time.and_then(|t| t.format(&Rfc3339).ok());
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
            report.chain = Some(x509::check_chain(&signer, &pool, anchors, now)?);
        }
        Ok(())
    })();
    match &result {
        Ok(()) => report.valid = true,
        Err(e) => report.reason = Some(e.to_string()),
    }
    (report, result)
}
