//! HTTP handlers of the relay (module 3, the paper's W). Registration is paper steps 9-17 with the fixes
//! of `docs/PROTOCOL.md`: fresh nonces, domain-separated statements, proofs checked against the
//! configured trust anchors before the store is consulted.

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use kalit_core::ceremony::{self, CheckedRegistration};
use kalit_core::statement::{self, Statement};
use kalit_proto::namespace::{CANCEL_DETACH, DETACH};
use kalit_proto::relay::{
    Attestation, DetachResponse, DeviceInfo, DeviceList, DeviceRequest, Health, NonceResponse, PendingDetachment,
    RegisterOutcome, RegisterRequest, RegisterResponse, SignedAttestation,
};
use kalit_proto::{Base64, ErrorCode};
use kalit_service::error::JsonBody;
use kalit_service::{ServiceError, ServiceResult};

use crate::AppState;
use crate::store::{Created, NewCert, NewDevice};

/// The relay's public identity, readable by any page (kalit.js in direct mode pins it from the page).
pub(crate) async fn identity(State(s): State<AppState>) -> impl axum::response::IntoResponse {
    ([(axum::http::header::ACCESS_CONTROL_ALLOW_ORIGIN, "*")], Json(s.identity.public(s.clock.now_ms() / 1000)))
}

pub(crate) async fn health(State(s): State<AppState>) -> ServiceResult<Json<Health>> {
    s.store.ping().await?;
    Ok(Json(Health {
        status: "ok".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        database: s.store.backend().name().into(),
    }))
}

pub(crate) async fn metrics(
    State(s): State<AppState>,
    peer: Option<axum::Extension<kalit_service::client::ClientIp>>,
) -> Result<impl IntoResponse, ServiceError> {
    if !kalit_service::metrics::may_read(peer.map(|p| p.0.0), &s.metrics_from) {
        return Err(kalit_service::metrics::not_for_you());
    }
    let mut out = s.metrics.render();
    let t = &s.tunnels;
    for (name, help, n) in [
        ("waiting", "Tunnels waiting for a phone (QR codes on screens).", t.waiting()),
        ("paired", "Tunnels paired (sessions under way).", t.paired()),
        ("parked", "Paired tunnels waiting for their web page to come back (direct mode).", t.parked()),
    ] {
        out.push_str(&format!(
            "# HELP kalit_relay_tunnels_{name} {help}\n# TYPE kalit_relay_tunnels_{name} gauge\nkalit_relay_tunnels_{name} {n}\n"
        ));
    }
    if let Some(t) = s.identity.signing_keys_not_after() {
        out.push_str(&format!(
            "# HELP kalit_relay_signing_key_not_after_seconds Unix time after which this node's newest endorsed signing key signs nothing (kalit relay rotate-key before then).\n# TYPE kalit_relay_signing_key_not_after_seconds gauge\nkalit_relay_signing_key_not_after_seconds {t}\n"
        ));
    }
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out))
}

pub(crate) async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], crate::OPENAPI)
}

async fn limit_login(s: &AppState, login: &str) -> ServiceResult<()> {
    s.login_limiter.take(login).await.map_err(|wait| {
        s.metrics.inc("rate_limited", "login");
        ServiceError::rate_limited(wait)
    })
}

pub(crate) async fn nonce(State(s): State<AppState>) -> ServiceResult<Json<NonceResponse>> {
    Ok(Json(issue_nonce(&s, s.limits.nonce_ttl_secs)?))
}

/// A fresh single-use nonce valid for `ttl_secs`: for `POST /v1/nonce` (the configured lifetime), and for a
/// phone's join socket opened with a challenge (as long as that socket waits for its join request).
pub(crate) fn issue_nonce(s: &AppState, ttl_secs: u64) -> ServiceResult<NonceResponse> {
    let now = s.clock.now_ms();
    let expires_ms = now + (ttl_secs as i64) * 1000;
    let n = s.store.issue_nonce(expires_ms)?;
    s.metrics.inc("nonces", "issued");
    Ok(NonceResponse { nonce: n.into(), expires_at: expires_ms / 1000 })
}

/// Decodes the request's nonce after checking that the request names this relay. The nonce is consumed
/// later, by [`take_nonce`], once the proofs verified: a malformed or forged request does not burn it.
fn read_nonce(s: &AppState, relay_id: &str, nonce: &Base64) -> ServiceResult<Vec<u8>> {
    if relay_id != s.identity.id() {
        return Err(ServiceError::invalid(
            "the request names another relay (relay_id); fetch this relay's identity and sign again",
        ));
    }
    let nonce = statement::bounded("nonce", nonce, 32)?.to_vec();
    if nonce.len() != 32 {
        return Err(ServiceError::invalid("a nonce is 32 bytes"));
    }
    Ok(nonce)
}

/// Consumes a nonce: exactly one request can use it, before it expires.
async fn take_nonce(s: &AppState, nonce: &[u8]) -> ServiceResult<()> {
    if !s.store.take_nonce(nonce, s.clock.now_ms()).await? {
        return Err(ServiceError::new(ErrorCode::Expired, "unknown, used or expired nonce; ask for a new one"));
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
    let nonce = read_nonce(s, &req.relay_id, &req.nonce)?;
    let now = s.clock.now();
    let relay_id = s.identity.id().to_string();
    // Chain validation and a signature check: CPU work, on the blocking pool.
    let (anchors, rid, n) = (s.anchors.clone(), relay_id.clone(), nonce.clone());
    let cert_proof = req.proof.clone();
    let CheckedRegistration { login, device_key, device_id, device_name, proof, approval } =
        tokio::task::spawn_blocking(move || ceremony::check_registration(&req, &rid, &n, &anchors, now))
            .await
            .map_err(|e| ServiceError::internal(format!("worker: {e}")))??;
    // A revoked certificate registers nothing (its CRL, when it names one, fetched and kept). The chain
    // is kept with the certificate, for the same check at the device's later requests.
    let (leaf, chain) = kalit_core::statement::proof_chain(&cert_proof)?;
    s.revocation.check_chain(&leaf, &chain, &s.anchors, now).await?;
    // Only requests with valid proofs count against the login's limit, so a stranger's junk cannot lock
    // a person out of their own login (strangers are limited per address).
    limit_login(s, &login).await?;
    let cert = NewCert { fingerprint: &proof.fingerprint, subject: &proof.subject, der: &proof.leaf, chain: &chain };
    let device = NewDevice { device_id: &device_id, key: &device_key, name: &device_name };
    let now_ms = s.clock.now_ms();
    s.store.apply_due_detachments(&login, now_ms).await?;
    let taken = || {
        ServiceError::new(
            ErrorCode::LoginTaken,
            "this login is already registered; a new certificate joins it only with the approval of a device already registered to it",
        )
    };
    // A login that exists is joined by its own certificates, or by a new certificate that a registered
    // device of the login approved (its signature over this request's nonce, certificate and device).
    // The nonce is consumed only after that check, so a refused request does not burn it.
    // (A login always has a certificate: the last one's detachment removes the login.)
    let exists = s.store.has_any_cert(&login).await?;
    if exists && !s.store.has_cert(&login, &proof.fingerprint).await? {
        let Some((approver_id, sig)) = &approval else {
            tracing::info!(login = %login, "registration refused: login taken");
            return Err(taken());
        };
        let approver = s.store.device(&login, approver_id).await?.ok_or_else(taken)?;
        let st = ceremony::approval_statement(&relay_id, &nonce, &login, approver_id, &proof.fingerprint, &device_id);
        if statement::verify_ed25519(&approver.device_key, st.as_bytes(), sig).is_err() {
            tracing::info!(login = %login, "registration refused: bad device approval");
            return Err(taken());
        }
    }
    take_nonce(s, &nonce).await?;
    let outcome = match s.store.create_login(&login, &cert, &device, now_ms).await? {
        Created::Yes => RegisterOutcome::Created,
        Created::LoginExists => {
            if !exists {
                // Another registration created the login between our check and our insert.
                return Err(taken());
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
    let attestation = attest(s, login, proof.fingerprint, device_id, &device_key, now_ms)?;
    Ok(RegisterResponse { outcome, attestation })
}

/// The relay's signed statement that this certificate and device belong to this login, valid for
/// `attestation_ttl_secs`.
pub(crate) fn attest(
    s: &AppState,
    login: String,
    cert_fingerprint: String,
    device_id: String,
    device_key: &[u8],
    now_ms: i64,
) -> ServiceResult<SignedAttestation> {
    let issued_at = now_ms / 1000;
    s.identity.attest(Attestation {
        relay_id: s.identity.id().into(),
        login: login.into(),
        cert_fingerprint: cert_fingerprint.into(),
        device_id: device_id.into(),
        device_key: device_key.into(),
        issued_at,
        expires_at: issued_at + s.limits.attestation_ttl_secs as i64,
    })
}

/// Checks a device-signed request and returns the login and the device. Detachments whose time has come
/// are carried out first, so a detached device is refused here.
pub(crate) async fn authorize_device(
    s: &AppState,
    req: &DeviceRequest,
    action: &str,
) -> ServiceResult<(String, crate::store::DeviceRow)> {
    let login = statement::normalize_login(&req.login)?;
    let nonce = read_nonce(s, &req.relay_id, &req.nonce)?;
    let sig = statement::bounded("signature", &req.signature, 64)?;
    let unauthorized =
        || ServiceError::new(ErrorCode::Unauthorized, "no such device for this login, or a bad signature");
    let device = s.store.current_device(&login, &req.device_id, s.clock.now_ms()).await?.ok_or_else(unauthorized)?;
    let st = Statement::device_request(s.identity.id(), &nonce, &login, &req.device_id, action, &req.target);
    statement::verify_ed25519(&device.device_key, st.as_bytes(), sig).map_err(|_| unauthorized())?;
    // A device acts under the certificate it registered with: once that is revoked, it does nothing more.
    // (A registration older than the stored chains is not checked here: without its intermediates the
    // path may not build, and refusing every such device after an upgrade would lock people out.)
    if let Some(chain) = &device.cert_chain {
        s.revocation.check_chain(&device.cert_der, chain, &s.anchors, s.clock.now()).await?;
    }
    limit_login(s, &login).await?;
    take_nonce(s, &nonce).await?;
    Ok((login, device))
}

pub(crate) async fn devices(
    State(s): State<AppState>,
    JsonBody(req): JsonBody<DeviceRequest>,
) -> ServiceResult<Json<DeviceList>> {
    let (login, _) = authorize_device(&s, &req, "list").await?;
    let devices = s
        .store
        .devices(&login)
        .await?
        .into_iter()
        .map(|d| DeviceInfo {
            device_id: d.device_id.into(),
            name: d.name,
            cert_fingerprint: d.cert_fingerprint.into(),
            cert_subject: d.cert_subject,
            registered_at: d.created_ms / 1000,
        })
        .collect();
    let pending_detachments = s
        .store
        .pending_detachments(&login)
        .await?
        .into_iter()
        .map(|p| PendingDetachment {
            cert_fingerprint: p.fingerprint.into(),
            cert_subject: p.subject,
            requested_by: p.requested_by.into(),
            requested_at: p.requested_ms / 1000,
            effective_at: p.effective_ms / 1000,
        })
        .collect();
    Ok(Json(DeviceList { login: login.into(), devices, pending_detachments }))
}

/// `POST /v1/devices/remove`. A device removes itself or another device of its own certificate; a device
/// registered with another certificate goes only with that certificate's proof (otherwise one stolen
/// phone could remove every other phone of the login), or by detaching that certificate.
pub(crate) async fn remove_device(
    State(s): State<AppState>,
    JsonBody(req): JsonBody<DeviceRequest>,
) -> ServiceResult<Json<serde_json::Value>> {
    let nonce = read_nonce(&s, &req.relay_id, &req.nonce)?;
    let (login, me) = authorize_device(&s, &req, "remove").await?;
    let not_found = || ServiceError::new(ErrorCode::NotFound, "no such device for this login");
    let target = s.store.device(&login, &req.target).await?.ok_or_else(not_found)?;
    if target.cert_fingerprint != me.cert_fingerprint {
        let Some(p) = &req.proof else {
            return Err(ServiceError::new(
                ErrorCode::RefusedByPolicy,
                "that device registered with another certificate: removing it needs that certificate's proof (or detach the certificate, which gives its devices time to object)",
            ));
        };
        let st = Statement::device_removal(s.identity.id(), &nonce, &login, &me.device_id, &target.device_id);
        let (p, anchors, now) = (p.clone(), s.anchors.clone(), s.clock.now());
        let cert_proof = p.clone();
        let proof = tokio::task::spawn_blocking(move || statement::verify_proof(&p, &anchors, now, |_| st))
            .await
            .map_err(|e| ServiceError::internal(format!("worker: {e}")))??;
        s.revocation.check(&cert_proof, &s.anchors, now).await?;
        if proof.fingerprint != target.cert_fingerprint {
            return Err(ServiceError::new(
                ErrorCode::RefusedByPolicy,
                "the proof is not by the certificate that device registered with",
            ));
        }
    }
    if !s.store.remove_device(&login, &req.target, &req.device_id, s.clock.now_ms()).await? {
        return Err(not_found());
    }
    tracing::info!(login = %login, device = %req.target, by = %req.device_id, "device removed");
    Ok(Json(serde_json::json!({ "removed": req.target })))
}

/// `POST /v1/certificates/detach`: a device of the login asks that a certificate (target: fingerprint)
/// leave the login with all its devices after the cooling-off period. Every device of the login sees
/// the request in its device list, and a device of that certificate can cancel it meanwhile.
pub(crate) async fn detach(
    State(s): State<AppState>,
    JsonBody(req): JsonBody<DeviceRequest>,
) -> ServiceResult<Json<DetachResponse>> {
    let (login, me) = authorize_device(&s, &req, DETACH).await?;
    if s.store.cert_subject(&login, &req.target).await?.is_none() {
        return Err(ServiceError::new(ErrorCode::NotFound, "no such certificate on this login"));
    }
    let now = s.clock.now_ms();
    let effective = now + (s.limits.detach_cooling_off_secs as i64) * 1000;
    let at = s.store.request_detach(&login, &req.target, &me.device_id, now, effective).await?;
    tracing::warn!(login = %login, cert = %req.target, by = %me.device_id, effective_at = at / 1000, "certificate detachment requested");
    Ok(Json(DetachResponse { cert_fingerprint: req.target.into(), effective_at: Some(at / 1000) }))
}

/// `POST /v1/certificates/cancel-detach`: a device of the certificate named in a pending detachment
/// cancels it.
pub(crate) async fn cancel_detach(
    State(s): State<AppState>,
    JsonBody(req): JsonBody<DeviceRequest>,
) -> ServiceResult<Json<DetachResponse>> {
    let (login, me) = authorize_device(&s, &req, CANCEL_DETACH).await?;
    if me.cert_fingerprint != req.target {
        return Err(ServiceError::new(
            ErrorCode::RefusedByPolicy,
            "only a device of the certificate being detached can cancel its detachment",
        ));
    }
    if !s.store.cancel_detach(&login, &req.target, &me.device_id, s.clock.now_ms()).await? {
        return Err(ServiceError::new(ErrorCode::NotFound, "no pending detachment of this certificate"));
    }
    tracing::info!(login = %login, cert = %req.target, by = %me.device_id, "certificate detachment cancelled");
    Ok(Json(DetachResponse { cert_fingerprint: req.target.into(), effective_at: None }))
}
