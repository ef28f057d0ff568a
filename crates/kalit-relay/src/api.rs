//! HTTP handlers of the relay (module 3, the paper's W). Registration is paper steps 9-17 with the fixes
//! of `docs/PROTOCOL.md`: fresh nonces, domain-separated statements, proofs checked against the
//! configured trust anchors before the store is consulted.

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use kalit_core::statement::{self, Statement};
use kalit_proto::ErrorCode;
use kalit_proto::relay::{
    Attestation, DeviceInfo, DeviceList, DeviceRequest, Health, NonceResponse, RegisterOutcome, RegisterRequest,
    RegisterResponse, RelayIdentity,
};
use kalit_service::error::JsonBody;
use kalit_service::{ServiceError, ServiceResult};
use time::OffsetDateTime;

use crate::AppState;
use crate::store::{Created, NewCert, NewDevice};

use kalit_service::now_ms;

pub(crate) async fn identity(State(s): State<AppState>) -> Json<RelayIdentity> {
    Json(s.identity.public.clone())
}

pub(crate) async fn health(State(s): State<AppState>) -> ServiceResult<Json<Health>> {
    s.store.ping().await?;
    Ok(Json(Health {
        status: "ok".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        database: s.store.backend().name().into(),
    }))
}

pub(crate) async fn metrics(State(s): State<AppState>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], s.metrics.render())
}

pub(crate) async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], crate::OPENAPI)
}

fn limit_login(s: &AppState, login: &str) -> ServiceResult<()> {
    s.login_limiter.check(login).map_err(|wait| {
        s.metrics.inc("rate_limited", "login");
        ServiceError::rate_limited(wait)
    })
}

pub(crate) async fn nonce(State(s): State<AppState>) -> ServiceResult<Json<NonceResponse>> {
    let n = kalit_core::seal::random::<32>()?;
    let now = now_ms();
    let expires_ms = now + (s.limits.nonce_ttl_secs as i64) * 1000;
    s.store.put_nonce(&n, expires_ms, now).await?;
    s.metrics.inc("nonces", "issued");
    Ok(Json(NonceResponse { nonce: B64.encode(n), expires_at: expires_ms / 1000 }))
}

/// Decodes the request's nonce after checking that the request names this relay. The nonce is consumed
/// later, by [`take_nonce`], once the proofs verified: a malformed or forged request does not burn it.
fn read_nonce(s: &AppState, relay_id: &str, nonce_b64: &str) -> ServiceResult<Vec<u8>> {
    if relay_id != s.identity.id() {
        return Err(ServiceError::invalid(
            "the request names another relay (relay_id); fetch this relay's identity and sign again",
        ));
    }
    let nonce = statement::b64("nonce", nonce_b64, 32)?;
    if nonce.len() != 32 {
        return Err(ServiceError::invalid("a nonce is 32 bytes"));
    }
    Ok(nonce)
}

/// Consumes a nonce: exactly one request can use it, before it expires.
async fn take_nonce(s: &AppState, nonce: &[u8]) -> ServiceResult<()> {
    if !s.store.take_nonce(nonce, now_ms()).await? {
        return Err(ServiceError::new(ErrorCode::Expired, "unknown, used or expired nonce; ask for a new one"));
    }
    Ok(())
}

fn check_device_name(name: &str) -> ServiceResult<()> {
    if name.trim().is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control) {
        return Err(ServiceError::invalid("device_name must be 1 to 64 printable characters"));
    }
    Ok(())
}

pub(crate) async fn register(
    State(s): State<AppState>,
    JsonBody(req): JsonBody<RegisterRequest>,
) -> ServiceResult<(axum::http::StatusCode, Json<RegisterResponse>)> {
    let result = register_inner(&s, req).await;
    s.metrics.inc("registrations", result.as_ref().map_or_else(|e| e.code.as_str(), |r| outcome_name(r.outcome)));
    result.map(|r| (axum::http::StatusCode::CREATED, Json(r)))
}

fn outcome_name(o: RegisterOutcome) -> &'static str {
    match o {
        RegisterOutcome::Created => "created",
        RegisterOutcome::Added => "added",
    }
}

async fn register_inner(s: &AppState, req: RegisterRequest) -> ServiceResult<RegisterResponse> {
    // Everything that does not depend on the store comes first, so a request that fails them gets the
    // same answer whether or not the login exists.
    let login = statement::normalize_login(&req.login)?;
    check_device_name(&req.device_name)?;
    let device_key = statement::b64("device_key", &req.device_key, 32)?;
    if device_key.len() != 32 {
        return Err(ServiceError::invalid("device_key must be a raw 32-byte Ed25519 public key"));
    }
    let nonce = read_nonce(s, &req.relay_id, &req.nonce)?;
    let now = OffsetDateTime::now_utc();
    let relay_id = s.identity.id().to_string();
    let proof = statement::verify_proof(&req.proof, &s.anchors, now, |fp| {
        Statement::register(&relay_id, &nonce, &login, &device_key, fp)
    })?;
    let existing = match &req.existing {
        None => None,
        Some(p) => Some(statement::verify_proof(p, &s.anchors, now, |fp| {
            Statement::login_proof(&relay_id, &nonce, &login, &device_key, &proof.fingerprint, fp)
        })?),
    };
    // Only requests with valid proofs count against the login's limit, so a stranger's junk cannot lock
    // a person out of their own login (strangers are limited per address).
    limit_login(s, &login)?;
    take_nonce(s, &nonce).await?;
    let device_id = statement::key_id(&device_key);
    let cert = NewCert { fingerprint: &proof.fingerprint, subject: &proof.subject, der: &proof.leaf };
    let device = NewDevice { device_id: &device_id, key: &device_key, name: req.device_name.trim() };
    let now_ms = now_ms();
    let outcome = match s.store.create_login(&login, &cert, &device, now_ms).await? {
        Created::Yes => RegisterOutcome::Created,
        Created::LoginExists => {
            let attached = s.store.has_cert(&login, &proof.fingerprint).await?
                || match &existing {
                    Some(e) => s.store.has_cert(&login, &e.fingerprint).await?,
                    None => false,
                };
            if !attached {
                tracing::info!(login = %login, "registration refused: login taken");
                return Err(ServiceError::new(
                    ErrorCode::LoginTaken,
                    "this login is already registered; to add this phone, prove possession of a certificate already attached to it",
                ));
            }
            if s.store.device_count(&login).await? >= s.limits.max_devices_per_login {
                return Err(ServiceError::new(
                    ErrorCode::RefusedByPolicy,
                    format!("a login has at most {} devices; remove one first", s.limits.max_devices_per_login),
                ));
            }
            s.store.add_device(&login, &cert, &device, now_ms).await?;
            RegisterOutcome::Added
        }
    };
    tracing::info!(login = %login, device = %device_id, outcome = outcome_name(outcome), "registered");
    let attestation = s.identity.attest(Attestation {
        relay_id,
        login,
        cert_fingerprint: proof.fingerprint,
        device_id,
        device_key: B64.encode(&device_key),
        issued_at: now_ms / 1000,
    })?;
    Ok(RegisterResponse { outcome, attestation })
}

/// Checks a device-signed request and returns the login.
pub(crate) async fn authorize_device(s: &AppState, req: &DeviceRequest, action: &str) -> ServiceResult<String> {
    let login = statement::normalize_login(&req.login)?;
    let nonce = read_nonce(s, &req.relay_id, &req.nonce)?;
    let sig = statement::b64("signature", &req.signature, 64)?;
    let unauthorized =
        || ServiceError::new(ErrorCode::Unauthorized, "no such device for this login, or a bad signature");
    let device = s.store.device(&login, &req.device_id).await?.ok_or_else(unauthorized)?;
    let st = Statement::device_request(s.identity.id(), &nonce, &login, &req.device_id, action, &req.target);
    statement::verify_ed25519(&device.device_key, st.as_bytes(), &sig).map_err(|_| unauthorized())?;
    limit_login(s, &login)?;
    take_nonce(s, &nonce).await?;
    Ok(login)
}

pub(crate) async fn devices(
    State(s): State<AppState>,
    JsonBody(req): JsonBody<DeviceRequest>,
) -> ServiceResult<Json<DeviceList>> {
    let login = authorize_device(&s, &req, "list").await?;
    let devices = s
        .store
        .devices(&login)
        .await?
        .into_iter()
        .map(|d| DeviceInfo {
            device_id: d.device_id,
            name: d.name,
            cert_fingerprint: d.cert_fingerprint,
            cert_subject: d.cert_subject,
            registered_at: d.created_ms / 1000,
        })
        .collect();
    Ok(Json(DeviceList { login, devices }))
}

pub(crate) async fn remove_device(
    State(s): State<AppState>,
    JsonBody(req): JsonBody<DeviceRequest>,
) -> ServiceResult<Json<serde_json::Value>> {
    let login = authorize_device(&s, &req, "remove").await?;
    if !s.store.remove_device(&login, &req.target, &req.device_id, now_ms()).await? {
        return Err(ServiceError::new(ErrorCode::NotFound, "no such device for this login"));
    }
    tracing::info!(login = %login, device = %req.target, by = %req.device_id, "device removed");
    Ok(Json(serde_json::json!({ "removed": req.target })))
}
