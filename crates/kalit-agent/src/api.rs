//! The agent's JSON API for web pages (OpenAPI: `crates/kalit-agent/openapi.json`). Every request has
//! passed [`crate::guard::guard`] before it reaches a handler.

use axum::Json;
use axum::extract::{Extension, FromRequest, Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse};
use kalit_core::digest::{HashAlg, Hasher};
use kalit_core::flow::DocDigest;
use kalit_core::verify::{Document, verify_document};
use kalit_core::{CoreError, x509};
use kalit_proto::session::{
    AgentStatus, BoxLanguage, DocFormat, DocumentSupport, HashRequest, HashResponse, MAX_DIGEST_DOCUMENT, MAX_DOCUMENT,
    PREVIEW_LEN, PadesLevel, PadesOptions, QR_TTL_MAX_SECS, QR_TTL_SECS, SESSION_VERSION, SessionCreated,
    SessionRequest, SessionState, SignDocRequest, SignDocResponse, VerifyPdfRequest, VerifyRequest,
};
use kalit_proto::verify::{PdfVerifyReport, VerifyReport};
use kalit_proto::{Base64, ErrorCode};
use kalit_service::error::JsonBody;
use kalit_service::{ServiceError, ServiceResult};

use crate::AgentState;
use crate::guard::Caller;
use crate::session::{Doc, Session};

pub(crate) async fn status(State(s): State<AgentState>, Extension(c): Extension<Caller>) -> Json<AgentStatus> {
    Json(AgentStatus {
        service: "kalit-agent".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        api: SESSION_VERSION,
        relay: s.relay_url.clone(),
        relay_id: s.relay_id.clone(),
        origin_allowed: c.0.is_some(),
    })
}

pub(crate) async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], crate::OPENAPI)
}

pub(crate) async fn page() -> Html<&'static str> {
    Html(include_str!("page.html"))
}

/// What the local page shows: the open sessions' QR codes and SAS.
pub(crate) async fn local_sessions(State(s): State<AgentState>) -> Json<serde_json::Value> {
    let list: Vec<_> = s
        .sessions
        .open()
        .iter()
        .map(|x| {
            let st = x.state();
            serde_json::json!({
                "origin": x.origin, "qr": x.qr, "qr_svg": x.qr_svg, "expires_at": x.expires_at,
                "phase": st.phase, "sas": st.sas, "login": st.login,
            })
        })
        .collect();
    Json(serde_json::json!({ "relay": s.relay_url, "sessions": list }))
}

fn document(field: &str, data: Base64) -> ServiceResult<Vec<u8>> {
    if data.len() > MAX_DOCUMENT {
        return Err(ServiceError::new(ErrorCode::TooLarge, format!("the {field} is larger than {MAX_DOCUMENT} bytes")));
    }
    Ok(data.into_vec())
}

pub(crate) async fn hash(JsonBody(r): JsonBody<HashRequest>) -> ServiceResult<Json<HashResponse>> {
    let alg = match r.alg.as_deref().unwrap_or("sha256") {
        "sha256" | "SHA-256" => HashAlg::Sha256,
        "sha384" | "SHA-384" => HashAlg::Sha384,
        "sha512" | "SHA-512" => HashAlg::Sha512,
        weak @ ("sha1" | "SHA-1" | "md5" | "MD5") => {
            return Err(ServiceError::new(ErrorCode::RefusedByPolicy, format!("{weak} is too weak for signatures")));
        }
        other => {
            return Err(ServiceError::invalid(format!("unknown hash algorithm {other:?} (sha256, sha384, sha512)")));
        }
    };
    // Decoding and hashing up to 8 MiB is CPU work: off the async runtime, so other requests carry on.
    let (name, digest) = crate::blocking(move || {
        let data = document("data", r.data)?;
        Ok((alg.name().to_string(), hex::encode(alg.digest(&data))))
    })
    .await?;
    Ok(Json(HashResponse { alg: name, digest }))
}

fn caller_origin(c: &Caller) -> ServiceResult<String> {
    c.0.clone().ok_or_else(|| ServiceError::new(ErrorCode::RefusedByPolicy, "this call needs an allowed Origin"))
}

pub(crate) async fn create_session(
    State(s): State<AgentState>,
    Extension(c): Extension<Caller>,
    JsonBody(r): JsonBody<SessionRequest>,
) -> ServiceResult<(StatusCode, Json<SessionCreated>)> {
    let origin = caller_origin(&c)?;
    s.session_limiter.check(&origin).map_err(ServiceError::rate_limited)?;
    let ttl = r.ttl.unwrap_or(QR_TTL_SECS);
    if ttl == 0 || ttl > QR_TTL_MAX_SECS {
        return Err(ServiceError::invalid(format!("ttl must be 1..={QR_TTL_MAX_SECS} seconds")));
    }
    let (sess, token) = crate::session::start(&s, &origin, ttl).await?;
    tracing::info!(session = %sess.id, %origin, "signing session started");
    Ok((
        StatusCode::CREATED,
        Json(SessionCreated {
            session: sess.id.clone(),
            token,
            qr: sess.qr.clone(),
            qr_svg: sess.qr_svg.clone(),
            expires_at: sess.expires_at,
        }),
    ))
}

/// The session named in the path, if the caller's origin created it and presents its token. Unknown
/// session, other origin and wrong token all look the same.
fn authorized(s: &AgentState, c: &Caller, id: &str, headers: &HeaderMap) -> ServiceResult<std::sync::Arc<Session>> {
    let none =
        || ServiceError::new(ErrorCode::NotFound, "no such session for this page (unknown, ended, or wrong token)");
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(none)?;
    let sess = s.sessions.get(id).ok_or_else(none)?;
    let same_origin = c.0.as_deref() == Some(sess.origin.as_str());
    if !(sess.token_ok(token) && same_origin) {
        return Err(none());
    }
    Ok(sess)
}

pub(crate) async fn session_state(
    State(s): State<AgentState>,
    Extension(c): Extension<Caller>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ServiceResult<Json<SessionState>> {
    Ok(Json(authorized(&s, &c, &id, &headers)?.state()))
}

pub(crate) async fn end_session(
    State(s): State<AgentState>,
    Extension(c): Extension<Caller>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ServiceResult<StatusCode> {
    authorized(&s, &c, &id, &headers)?.end();
    Ok(StatusCode::NO_CONTENT)
}

/// The options of a sign request whose body is the document itself (`application/octet-stream`): the
/// fields of [`SignDocRequest`] but `data`, in the query string.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SignQuery {
    name: String,
    #[serde(default)]
    media_type: Option<String>,
    #[serde(default)]
    format: DocFormat,
    #[serde(default)]
    pss: bool,
    #[serde(default)]
    level: Option<PadesLevel>,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    visible: Option<String>,
    #[serde(default)]
    field: Option<String>,
    #[serde(default)]
    lang: Option<BoxLanguage>,
}

pub(crate) async fn sign(
    State(s): State<AgentState>,
    Extension(c): Extension<Caller>,
    Path(id): Path<String>,
    headers: HeaderMap,
    req: Request,
) -> ServiceResult<Json<SignDocResponse>> {
    let sess = authorized(&s, &c, &id, &headers)?;
    let (r, incoming) = if crate::guard::is_octet_stream(&headers) {
        let q = Query::<SignQuery>::try_from_uri(req.uri())
            .map_err(|e| ServiceError::invalid(format!("the sign options in the query: {}", e.body_text())))?
            .0;
        let any =
            q.level.is_some() || q.reason.is_some() || q.visible.is_some() || q.field.is_some() || q.lang.is_some();
        let pades = any.then(|| PadesOptions {
            level: q.level.unwrap_or_default(),
            reason: q.reason,
            visible: q.visible,
            field: q.field,
            lang: q.lang.unwrap_or_default(),
        });
        let r = SignDocRequest {
            data: Base64::default(),
            name: q.name,
            media_type: q.media_type,
            format: q.format,
            pss: q.pss,
            pades,
        };
        let incoming = read_document(req.into_body(), sess.documents(), r.format).await?;
        (r, incoming)
    } else {
        let JsonBody(mut r) = JsonBody::<SignDocRequest>::from_request(req, &()).await?;
        let data = document("data", std::mem::take(&mut r.data))?;
        (r, Incoming { data, digest: None })
    };
    let name = r.name.trim();
    if name.is_empty() || name.chars().count() > 200 || name.chars().any(char::is_control) {
        return Err(ServiceError::invalid("name must be 1-200 printable characters"));
    }
    let media_type = r.media_type.unwrap_or_else(|| "application/octet-stream".into());
    if media_type.len() > 100 || !media_type.contains('/') || media_type.chars().any(|c| c.is_control() || c == ' ') {
        return Err(ServiceError::invalid("media_type must look like type/subtype"));
    }
    let Incoming { data, digest } = incoming;
    let out = match (r.format, r.pades) {
        (DocFormat::Pades, options) => {
            crate::pades::sign(&s, &sess, data, name.to_string(), r.pss, options.unwrap_or_default()).await?
        }
        (_, Some(_)) => return Err(ServiceError::invalid("pades options are for format \"pades\"")),
        (format, None) => {
            let doc = Doc { data, name: name.to_string(), media_type, format, pss: r.pss, byte_range: None, digest };
            sess.sign(doc).await?
        }
    };
    tracing::info!(session = %sess.id, format = out.format.as_str(), "document signed and checked");
    Ok(Json(out))
}

/// A document read from a request body.
struct Incoming {
    /// The document, or (with `digest`) its first bytes.
    data: Vec<u8>,
    /// Set when it is too large to travel whole to the paired phone.
    digest: Option<DocDigest>,
}

/// Reads a streamed document. Up to what the paired phone takes whole it is kept; beyond, a CMS is
/// hashed as it comes (SHA-256 and SHA-512) and only its first bytes are kept, a PDF is kept whole (the
/// agent prepares and completes it; the digest of its byte ranges comes later), and a raw signature is
/// refused at once (it needs the whole document on the phone).
async fn read_document(body: axum::body::Body, offer: DocumentSupport, format: DocFormat) -> ServiceResult<Incoming> {
    use futures_util::StreamExt;
    let limit = match format {
        DocFormat::Raw => offer.whole,
        DocFormat::Cms => MAX_DIGEST_DOCUMENT,
        DocFormat::Pades => kalit_core::pdf::MAX_PDF_LEN as u64,
    };
    let too_large = |n: u64| {
        let mib = |x: u64| x.div_ceil(1024 * 1024);
        let why = match format {
            DocFormat::Raw => format!(
                "a raw signature is made over the whole document on the phone, which takes up to {} MiB; ask for cms (by digest) or send less",
                mib(offer.whole)
            ),
            _ => format!("the most Kalit signs as {} is {} MiB", format.as_str(), mib(limit)),
        };
        ServiceError::new(ErrorCode::TooLarge, format!("the document is larger than {} MiB: {why}", mib(n)))
    };
    let mut stream = body.into_data_stream();
    let mut data: Vec<u8> = Vec::new();
    let mut size = 0u64;
    let mut hashers: Option<(Hasher, Hasher)> = None;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| ServiceError::invalid(format!("the document could not be read: {e}")))?;
        size += chunk.len() as u64;
        if size > limit {
            // Read the rest (up to the agent's ceiling) so that the page gets this answer rather than a
            // broken connection in the middle of its upload.
            while let Some(Ok(c)) = stream.next().await {
                size += c.len() as u64;
                if size > MAX_DIGEST_DOCUMENT {
                    break;
                }
            }
            return Err(too_large(limit));
        }
        if let Some((a, b)) = hashers.as_mut() {
            a.update(&chunk);
            b.update(&chunk);
            continue;
        }
        data.extend_from_slice(&chunk);
        if format == DocFormat::Cms && size > offer.whole {
            // From here on the document takes the digest path: hash what came, keep its first bytes.
            let (mut a, mut b) = (Hasher::new(HashAlg::Sha256), Hasher::new(HashAlg::Sha512));
            a.update(&data);
            b.update(&data);
            data.truncate(PREVIEW_LEN);
            data.shrink_to_fit();
            hashers = Some((a, b));
        }
    }
    if size == 0 {
        return Err(ServiceError::invalid("the document is empty"));
    }
    let digest = hashers.map(|(a, b)| DocDigest { size, sha256: a.finish(), sha512: b.finish() });
    Ok(Incoming { data, digest })
}

pub(crate) async fn verify_pdf(
    State(s): State<AgentState>,
    JsonBody(r): JsonBody<VerifyPdfRequest>,
) -> ServiceResult<Json<PdfVerifyReport>> {
    let anchors = s.anchors.clone();
    let report = crate::blocking(move || {
        let data = document("data", r.data)?;
        Ok(kalit_core::verify::verify_pdf(&data, &anchors, &[], time::OffsetDateTime::now_utc())?)
    })
    .await?;
    Ok(Json(report))
}

pub(crate) async fn verify(
    State(s): State<AgentState>,
    JsonBody(r): JsonBody<VerifyRequest>,
) -> ServiceResult<Json<VerifyReport>> {
    if r.format == DocFormat::Pades {
        return Err(ServiceError::invalid("a PDF carries its signatures: POST it to /v1/verify/pdf"));
    }
    let anchors = s.anchors.clone();
    let report = crate::blocking(move || {
        let data = document("data", r.data)?;
        let sig = kalit_core::statement::bounded("signature", &r.signature, kalit_core::cms::MAX_CMS_LEN)?.to_vec();
        let certs = match &r.certificate {
            Some(pem) if pem.len() > 256 * 1024 => {
                return Err(ServiceError::new(ErrorCode::TooLarge, "certificate too large"));
            }
            Some(pem) => x509::parse_cert_bundle(pem.as_bytes())?,
            None => vec![],
        };
        let mut digest_of = |h: HashAlg| Ok::<_, CoreError>(h.digest(&data));
        let mut bytes = || Ok::<_, CoreError>(data.clone());
        let cms = (r.format == DocFormat::Cms).then_some(sig.as_slice());
        let (report, _) = verify_document(
            Document { digest_of: &mut digest_of, bytes: &mut bytes },
            &sig,
            cms,
            &certs,
            &anchors,
            &[],
            time::OffsetDateTime::now_utc(),
        );
        Ok(report)
    })
    .await?;
    Ok(Json(report))
}
