//! The agent's JSON API for web pages (OpenAPI: `crates/kalit-agent/openapi.json`). Every request has
//! passed [`crate::guard::guard`] before it reaches a handler.

use axum::Json;
use axum::extract::{Extension, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse};
use kalit_core::digest::HashAlg;
use kalit_core::verify::{Document, verify_document};
use kalit_core::{CoreError, x509};
use kalit_proto::session::{
    AgentStatus, DocFormat, HashRequest, HashResponse, MAX_DOCUMENT, QR_TTL_MAX_SECS, QR_TTL_SECS, SESSION_VERSION,
    SessionCreated, SessionRequest, SessionState, SignDocRequest, SignDocResponse, VerifyPdfRequest, VerifyRequest,
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

pub(crate) async fn sign(
    State(s): State<AgentState>,
    Extension(c): Extension<Caller>,
    Path(id): Path<String>,
    headers: HeaderMap,
    JsonBody(r): JsonBody<SignDocRequest>,
) -> ServiceResult<Json<SignDocResponse>> {
    let sess = authorized(&s, &c, &id, &headers)?;
    let data = document("data", r.data)?;
    let name = r.name.trim();
    if name.is_empty() || name.chars().count() > 200 || name.chars().any(char::is_control) {
        return Err(ServiceError::invalid("name must be 1-200 printable characters"));
    }
    let media_type = r.media_type.unwrap_or_else(|| "application/octet-stream".into());
    if media_type.len() > 100 || !media_type.contains('/') || media_type.chars().any(|c| c.is_control() || c == ' ') {
        return Err(ServiceError::invalid("media_type must look like type/subtype"));
    }
    let out = match (r.format, r.pades) {
        (DocFormat::Pades, options) => {
            crate::pades::sign(&s, &sess, data, name.to_string(), r.pss, options.unwrap_or_default()).await?
        }
        (_, Some(_)) => return Err(ServiceError::invalid("pades options are for format \"pades\"")),
        (format, None) => {
            let doc = Doc { data, name: name.to_string(), media_type, format, pss: r.pss, byte_range: None };
            sess.sign(doc).await?
        }
    };
    tracing::info!(session = %sess.id, format = out.format.as_str(), "document signed and checked");
    Ok(Json(out))
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
