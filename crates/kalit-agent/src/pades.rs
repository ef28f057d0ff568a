//! PDF signatures (PAdES) through the agent. The agent prepares the page's PDF (an incremental update
//! with a signature field and the hole for the CMS), the phone checks the prepared PDF itself, shows what
//! it found and signs its byte ranges, the agent checks the CMS over the bytes it prepared, writes it into
//! the hole, raises the signature to the level the page asked for with the time-stamping authority this
//! agent was configured with, reads the result back, and the page receives the signed PDF.
//!
//! A page never names a URL the agent fetches: the TSA is the operator's (`kalit agent serve --tsa`), and
//! the CRLs are the distribution points of certificates that chain to the agent's trust anchors.

use kalit_core::digest::HashAlg;
use kalit_core::flow::DocDigest;
use kalit_core::pdf::{self, Kind, Spec, Visible};
use kalit_proto::ErrorCode;
use kalit_proto::session::{DocFormat, PadesOptions, SignDocResponse};
use kalit_service::{ServiceError, ServiceResult};

use crate::AgentState;
use crate::session::{Doc, Session};

/// The agent's source of timestamps and CRLs (blocking: it runs on the blocking pool).
struct Fetch {
    tsa: Option<String>,
}

impl pdf::PublicData for Fetch {
    type Error = ServiceError;

    fn timestamp(&mut self, data: &[u8]) -> ServiceResult<(Vec<u8>, kalit_core::tsp::TimestampInfo)> {
        let url = self.tsa.as_deref().ok_or_else(|| ServiceError::internal("no TSA configured"))?;
        kalit_transport::public_data::timestamp(url, data)
    }

    fn crl(&mut self, url: &str) -> ServiceResult<Vec<u8>> {
        kalit_transport::public_data::fetch_crl(url)
    }
}

/// Checks the page's options before anything is prepared or sent to the phone.
fn check_options(s: &AgentState, o: &PadesOptions) -> ServiceResult<Option<Visible>> {
    if o.level.needs_timestamp() && s.tsa.is_none() {
        return Err(ServiceError::new(
            ErrorCode::Unavailable,
            format!(
                "level {} needs a time-stamping authority, and this computer's Kalit agent has none (kalit agent serve --tsa URL); ask for level b-b",
                o.level.as_str()
            ),
        ));
    }
    if let Some(r) = &o.reason
        && (r.chars().count() > 200 || r.chars().any(char::is_control))
    {
        return Err(ServiceError::invalid("reason must be at most 200 printable characters"));
    }
    if let Some(f) = &o.field
        && (f.is_empty() || f.chars().count() > 200 || f.chars().any(char::is_control))
    {
        return Err(ServiceError::invalid("field must be 1 to 200 printable characters"));
    }
    Ok(o.visible.as_deref().map(Visible::parse).transpose()?)
}

/// Signs the PDF `data` in `sess` with the phone (see the module's description).
pub(crate) async fn sign(
    s: &AgentState,
    sess: &Session,
    data: Vec<u8>,
    name: String,
    pss: bool,
    options: PadesOptions,
) -> ServiceResult<SignDocResponse> {
    if pss {
        return Err(ServiceError::invalid("pss is for raw signatures; a PDF signature's scheme follows the key"));
    }
    let visible = check_options(s, &options)?;
    let Some(cert) = sess.state().certificate else {
        return Err(ServiceError::new(
            ErrorCode::Expired,
            "this session is not connected to a phone (not yet paired, or already closed)",
        ));
    };
    // A level with a timestamp: the TSA must answer before the person is asked, or their approval would
    // produce a signature the page never receives (the phone records what it signed). One token more
    // per signature; the race with a TSA failing in between remains (then: `unavailable`).
    if let (true, Some(url)) = (options.level.needs_timestamp(), s.tsa.clone()) {
        crate::blocking(move || kalit_transport::public_data::check_tsa(&url)).await.map_err(|e| {
            ServiceError::new(ErrorCode::Unavailable, format!("{}; nothing was sent to the phone", e.message))
        })?;
    }
    // /Name: the certificate's common name (readers show the certificate's subject anyway).
    let signer = cert.subject.split(',').find_map(|p| p.trim().strip_prefix("CN=")).unwrap_or(&cert.subject).to_owned();
    let sha256 = hex::encode(HashAlg::Sha256.digest(&data));
    let reason = options.reason.clone();
    let field = options.field.clone();
    let lang = options.lang;
    let prepared = crate::blocking(move || {
        let spec = Spec {
            field: field.as_deref(),
            reason: reason.as_deref(),
            name: Some(&signer),
            time: time::OffsetDateTime::now_utc(),
            reserve: pdf::DEFAULT_RESERVE,
            kind: Kind::Signature,
            visible,
            lang,
        };
        // The new revision is appended to the page's bytes themselves: no copy of a large PDF.
        Ok(pdf::prepare_owned(data, &spec)?)
    })
    .await?;
    // A PDF larger than the phone takes whole is signed by the digest of its byte ranges (the phone says it
    // could not check it, and asks separately).
    let offer = sess.documents();
    let (prepared, digest) = if prepared.pdf.len() as u64 > offer.whole {
        crate::blocking(move || {
            let size = prepared.pdf.len() as u64;
            let [sha256, sha512]: [Vec<u8>; 2] =
                prepared.digests(&[HashAlg::Sha256, HashAlg::Sha512]).try_into().unwrap_or_default();
            Ok((prepared, Some(DocDigest { size, sha256, sha512 })))
        })
        .await?
    } else {
        (prepared, None)
    };
    let doc = Doc {
        data: prepared.pdf.clone(),
        name,
        media_type: "application/pdf".into(),
        format: DocFormat::Pades,
        pss: false,
        byte_range: Some(prepared.byte_range),
        digest,
    };
    // The phone checks the prepared PDF and signs; the session checks the CMS over these byte ranges
    // with the paired certificate before it answers.
    let mut out = sess.sign(doc).await?;
    let cms = out.signature.to_vec();
    let level = options.level;
    let mut fetch = Fetch { tsa: s.tsa.as_deref().map(str::to_owned) };
    let signed =
        crate::blocking(move || pdf::finish(prepared, cms, level, &mut fetch, time::OffsetDateTime::now_utc())).await?;
    out.signature = signed.cms.into();
    out.document = Some(signed.pdf.into());
    out.level = Some(level);
    out.sha256 = sha256;
    Ok(out)
}
