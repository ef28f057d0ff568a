//! From a signed hole to a PAdES level: the signature timestamp (B-T), the validation data (B-LT) and the
//! document timestamp (B-LTA), then a read-back of the result. Shared by `kalit vault sign` and the agent;
//! the network stays with the caller, behind [`PublicData`].

use kalit_proto::session::PadesLevel;
use time::OffsetDateTime;

use super::{DEFAULT_RESERVE, Kind, Prepared, Spec, ValidationData, add_validation_data, prepare};
use crate::CoreError;
use crate::tsp::TimestampInfo;

/// Where the signed public data of the higher levels comes from: an RFC 3161 time-stamping authority and
/// the CRL distribution points named in certificates. Each answer is checked here or by the caller's
/// client (a token over the request's imprint, a DER CRL).
pub trait PublicData {
    /// The caller's error (network failures); core errors convert into it.
    type Error: From<CoreError>;
    /// A timestamp token over `data` (the TSA hashes nothing itself: the caller sends the imprint).
    fn timestamp(&mut self, data: &[u8]) -> Result<(Vec<u8>, TimestampInfo), Self::Error>;
    /// The CRL at `url`, DER.
    fn crl(&mut self, url: &str) -> Result<Vec<u8>, Self::Error>;
}

/// A finished PDF signature.
#[derive(Debug, Clone)]
pub struct Finished {
    /// The signed PDF.
    pub pdf: Vec<u8>,
    /// The CMS in it (with its signature timestamp from B-T on).
    pub cms: Vec<u8>,
}

/// Puts `cms` (the phone's or the vault's CMS over `prepared`'s byte ranges) into the PDF and raises it to
/// `level`: for B-T and above the CMS first gets a signature timestamp; B-LT appends a document security
/// store with every certificate and a CRL from each distribution point; B-LTA appends a document
/// timestamp. The result is read back: the new signature must verify over the file as it will be saved.
pub fn finish<P: PublicData>(
    prepared: Prepared,
    cms: Vec<u8>,
    level: PadesLevel,
    public: &mut P,
    now: OffsetDateTime,
) -> Result<Finished, P::Error> {
    let mut cms = cms;
    let mut tsa_certs = vec![];
    if level.needs_timestamp() {
        let value = crate::cms::signature_value(&cms)?;
        let (token, ts) = public.timestamp(&value)?;
        cms = crate::cms::add_signature_timestamp(&cms, &token)?;
        tsa_certs = ts.certificates;
    }
    let field = prepared.field.clone();
    let mut pdf = prepared.complete(&cms)?;
    if level >= PadesLevel::BLt {
        // The signature itself is verified by the read-back below.
        let signer_certs = crate::cms::certificates(&cms)?;
        pdf = add_long_term_data(&pdf, &signer_certs, &tsa_certs, public)?;
    }
    if level == PadesLevel::BLta {
        pdf = add_document_timestamp(&pdf, public, now)?;
    }
    // Read back what is about to be handed out: the signature verifies over the file as it stands.
    let report = crate::verify::verify_pdf(&pdf, &[], &[], now)?;
    let Some(ours) = report.signatures.iter().find(|s| s.field == field) else {
        return Err(CoreError::Internal("the signed PDF has lost its signature".into()).into());
    };
    if let Some(why) = ours.reason.clone().or_else(|| report.signatures.iter().find_map(|s| s.reason.clone())) {
        return Err(CoreError::Internal(format!("the signed PDF does not verify: {why}")).into());
    }
    Ok(Finished { pdf, cms })
}

/// PAdES-B-LT: the certificates of the signature and of its timestamp, and a CRL from each distribution
/// point they name, in a revision of their own. Every certificate but a root must have its CRL: a PDF that
/// claims long-term validity without it would fail years later.
fn add_long_term_data<P: PublicData>(
    pdf: &[u8],
    signer_certs: &[Vec<u8>],
    tsa_certs: &[Vec<u8>],
    public: &mut P,
) -> Result<Vec<u8>, P::Error> {
    let mut data = ValidationData::default();
    for c in signer_certs.iter().chain(tsa_certs) {
        if !data.certs.contains(c) {
            data.certs.push(c.clone());
        }
    }
    let mut urls: Vec<String> = vec![];
    for c in &data.certs {
        let info = crate::x509::cert_info(c)?;
        let found = crate::x509::crl_urls(c);
        if found.is_empty() && info.subject != info.issuer {
            return Err(CoreError::Unavailable(format!(
                "the certificate of {} names no CRL: long-term validation data cannot be had (use level b-t)",
                info.subject
            ))
            .into());
        }
        for u in found {
            if !urls.contains(&u) {
                urls.push(u);
            }
        }
    }
    for u in &urls {
        data.crls.push(public.crl(u)?);
    }
    Ok(add_validation_data(pdf, &data)?)
}

/// PAdES-B-LTA: a document timestamp over the whole file as it stands, in a revision of its own
/// (`/Type /DocTimeStamp`, `/SubFilter /ETSI.RFC3161`).
fn add_document_timestamp<P: PublicData>(pdf: &[u8], public: &mut P, now: OffsetDateTime) -> Result<Vec<u8>, P::Error> {
    let spec = Spec {
        field: None,
        reason: None,
        name: None,
        time: now,
        reserve: DEFAULT_RESERVE,
        kind: Kind::DocTimeStamp,
        visible: None,
        lang: Default::default(),
    };
    let prepared = prepare(pdf, &spec)?;
    let [_, a, b, c] = prepared.byte_range;
    let covered = [&prepared.pdf[..a], &prepared.pdf[b..b + c]].concat();
    let (token, _) = public.timestamp(&covered)?;
    Ok(prepared.complete(&token)?)
}
