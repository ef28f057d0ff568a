//! The Kalit relay (module 3, the paper's web service W): it keeps logins, their certificates and their
//! phones' device keys, and vouches for them with signed attestations. It never holds a user's private key
//! and forwards only ciphertext between agent and phone (`tunnel`).
//!
//! `app(state)` builds the router; `kalit relay serve` is a thin binary around [`build`] and [`app`].

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use kalit_core::x509;
use kalit_proto::ErrorCode;
use kalit_proto::relay::WELL_KNOWN_PATH;
use kalit_proto::session::{TUNNEL_JOIN_PATH, TUNNEL_RESUME_PATH, TUNNEL_WAIT_PATH};
use kalit_service::client::{ConnLimits, TrustedProxies, client_address};
use kalit_service::ratelimit::{AddressLimit, Buckets, limit_address};
use kalit_service::serve::ConnectionPolicy;
use kalit_service::{Metrics, ServiceError};

mod api;
pub mod config;
pub mod direct;
pub mod haproxy;
pub mod identity;
pub mod limits;
pub mod nonces;
pub mod phone_app;
pub mod revocation;
pub mod store;
pub mod tunnel;

pub use config::RelayConfig;
pub use identity::Identity;
pub use store::Store;

/// The OpenAPI description of this API, served at `/openapi.json`.
pub const OPENAPI: &str = include_str!("../openapi.json");

/// Everything a request handler needs. Cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState {
    /// Persistence.
    pub store: Store,
    /// The relay's key and public identity.
    pub identity: Arc<Identity>,
    /// DER CA certificates whose certificates may register.
    pub anchors: Arc<Vec<Vec<u8>>>,
    /// Limits from the configuration.
    pub limits: config::Limits,
    /// Per-address limiter (shared by the nodes on PostgreSQL).
    pub addr_limiter: Arc<dyn Buckets>,
    /// Per-login limiter (the same).
    pub login_limiter: Arc<dyn Buckets>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Tunnels waiting for a phone.
    pub tunnels: Arc<tunnel::Tunnels>,
    /// Where "now" comes from (the system clock; tests move a manual one).
    pub clock: kalit_service::Clock,
    /// Reverse proxies whose forwarded client address is believed.
    pub proxies: TrustedProxies,
    /// Addresses besides loopback that may read `/metrics`.
    pub metrics_from: Arc<Vec<std::net::IpAddr>>,
    /// CRLs of the certificates that register, fetched and kept.
    pub revocation: Arc<revocation::Revocation>,
    /// The web pages that may open tunnels themselves (direct mode).
    pub direct_origins: Arc<direct::DirectOrigins>,
}

impl AppState {
    /// State from parts (tests build one over a throw-away database).
    pub fn new(store: Store, identity: Identity, anchors: Vec<Vec<u8>>, limits: config::Limits) -> AppState {
        let metrics = Arc::new(Metrics::new("kalit_relay"));
        let clock = kalit_service::Clock::system();
        let (l, c, m) = (&limits, &clock, &metrics);
        AppState {
            addr_limiter: limits::buckets(
                &store,
                "addr:",
                l.per_address_per_minute,
                l.per_address_burst,
                c.clone(),
                m.clone(),
            ),
            login_limiter: limits::buckets(
                &store,
                "login:",
                l.per_login_per_minute,
                l.per_login_burst,
                c.clone(),
                m.clone(),
            ),
            store,
            identity: Arc::new(identity),
            anchors: Arc::new(anchors),
            limits,
            metrics,
            tunnels: Arc::new(tunnel::Tunnels::default()),
            clock,
            proxies: TrustedProxies::default(),
            metrics_from: Arc::default(),
            revocation: Arc::new(revocation::Revocation::default()),
            direct_origins: Arc::new(direct::DirectOrigins::default()),
        }
    }

    /// The web pages that may open direct sessions.
    pub fn with_direct_origins(mut self, d: direct::DirectOrigins) -> AppState {
        self.direct_origins = Arc::new(d);
        self
    }

    /// Serves `/metrics` to these addresses too (besides loopback).
    pub fn with_metrics_from(mut self, from: &[std::net::IpAddr]) -> AppState {
        self.metrics_from = Arc::new(from.to_vec());
        self
    }

    /// Believes `X-Forwarded-For` from these proxies.
    pub fn with_trusted_proxies(mut self, proxies: &[std::net::IpAddr]) -> AppState {
        self.proxies = TrustedProxies::new(proxies.to_vec());
        self
    }
}

/// How the relay's listener treats connections: the header timeout from the limits, and connection caps
/// that fit under the open-file limit `file_limit` (one descriptor per connection, 256 kept for the
/// database, logs and files).
pub fn connection_policy(state: &AppState, file_limit: Option<u64>) -> ConnectionPolicy {
    let l = &state.limits;
    let total = kalit_service::serve::connection_cap(l.max_connections, file_limit, 256);
    if total < l.max_connections {
        tracing::info!(total, file_limit, "connection cap lowered to fit the open-file limit");
    }
    ConnectionPolicy {
        header_timeout: Duration::from_secs(l.header_timeout_secs.max(1)),
        limits: ConnLimits { total, per_address: l.max_connections_per_address },
        metrics: Some(state.metrics.clone()),
    }
}

/// Reads every certificate of the trust files.
pub fn load_anchors(files: &[PathBuf]) -> Result<Vec<Vec<u8>>, ServiceError> {
    let mut out = vec![];
    for f in files {
        let bytes = std::fs::read(f)
            .map_err(|e| ServiceError::new(ErrorCode::Io, format!("cannot read trust file {}: {e}", f.display())))?;
        let certs = x509::parse_cert_bundle(&bytes)
            .map_err(|e| ServiceError::invalid(format!("trust file {}: {e}", f.display())))?;
        out.extend(certs);
    }
    Ok(out)
}

/// Opens the store and identity named by `cfg` (the data directory must be set).
pub async fn build(cfg: &RelayConfig) -> Result<AppState, ServiceError> {
    let data = cfg.data.clone().ok_or_else(|| ServiceError::invalid("the relay needs a data directory (--data)"))?;
    // The data directory holds the relay's key and (with SQLite) every login: owner-only.
    kalit_service::files::private_dir(&data)
        .map_err(|e| ServiceError::new(ErrorCode::Io, format!("cannot create {}: {e}", data.display())))?;
    let url = match &cfg.database {
        Some(u) => u.clone(),
        None => {
            let db = data.join("relay.db");
            kalit_service::files::private_file(&db)
                .map_err(|e| ServiceError::new(ErrorCode::Io, format!("cannot create {}: {e}", db.display())))?;
            format!("sqlite://{}?mode=rwc", db.display())
        }
    };
    let anchors = load_anchors(&cfg.trust)?;
    if anchors.is_empty() {
        tracing::warn!("no trust anchors configured (--trust): no certificate can register");
    }
    let store = Store::open(&url).await?;
    if let Err(e) = store.set_audit_linger(std::time::Duration::from_millis(cfg.audit_linger_ms)) {
        store.close().await;
        return Err(e);
    }
    let identity = Identity::load_or_create(&data, &cfg.name)?;
    if !identity.has_root() {
        tracing::info!("the relay's root key is not on this node: it signs with the endorsed keys of relay-keys.json");
    }
    let direct = direct::DirectOrigins::parse(&cfg.direct_origins)?;
    if !direct.enabled() {
        tracing::info!("direct mode is off (direct_origins is empty): only agents open tunnels");
    }
    let state = AppState::new(store, identity, anchors, cfg.limits.clone())
        .with_trusted_proxies(&cfg.trusted_proxies)
        .with_metrics_from(&cfg.metrics_from)
        .with_direct_origins(direct);
    if cfg.limits.key_reload_secs > 0 {
        Identity::watch(&state.identity, std::time::Duration::from_secs(cfg.limits.key_reload_secs));
    }
    if cfg.audit_keep_days > 0 {
        let (store, clock, days) = (state.store.clone(), state.clock.clone(), cfg.audit_keep_days);
        tokio::spawn(async move {
            let mut every = tokio::time::interval(AUDIT_PRUNE_EVERY);
            loop {
                every.tick().await;
                match prune_audit(&store, days, clock.now_ms()).await {
                    Ok(Some(0)) => {}
                    Ok(Some(n)) => tracing::info!(rows = n, days, "audit rows older than the retention deleted"),
                    Ok(None) => tracing::debug!("audit retention: another relay node is deleting old rows"),
                    Err(e) => {
                        tracing::warn!(error = %e.message, "audit retention: rows not deleted; next try in an hour")
                    }
                }
            }
        });
    }
    Ok(state)
}

/// How often the relay deletes audit rows past their retention (`audit_keep_days`); the first time at
/// start-up.
pub const AUDIT_PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// Audit rows deleted per transaction: small enough that a registration waits little for the writer.
pub const AUDIT_PRUNE_BATCH: i64 = 5000;

/// Deletes the audit rows older than `days` before `now_ms`, [`AUDIT_PRUNE_BATCH`] at a time, until none
/// is left; returns how many went, or `None` when another node of the cluster is doing it now.
pub async fn prune_audit(store: &Store, days: u32, now_ms: i64) -> Result<Option<u64>, ServiceError> {
    store.prune_audit(now_ms - i64::from(days) * 86_400_000, AUDIT_PRUNE_BATCH).await
}

/// The relay's router.
pub fn app(state: AppState) -> Router {
    let api = Router::new()
        .route("/v1/nonce", post(api::nonce))
        .route("/v1/register", post(api::register))
        .route("/v1/devices", post(api::devices))
        .route("/v1/devices/remove", post(api::remove_device))
        .route("/v1/certificates/detach", post(api::detach))
        .route("/v1/certificates/cancel-detach", post(api::cancel_detach))
        .route(TUNNEL_WAIT_PATH, get(tunnel::wait))
        .route(TUNNEL_JOIN_PATH, get(tunnel::join))
        .route(TUNNEL_RESUME_PATH, get(tunnel::resume))
        .route_layer(axum::middleware::from_fn_with_state(
            AddressLimit { limiter: state.addr_limiter.clone(), metrics: state.metrics.clone() },
            limit_address,
        ));
    Router::new()
        .route(WELL_KNOWN_PATH, get(api::identity))
        .route("/healthz", get(api::health))
        .route("/metrics", get(api::metrics))
        .route("/openapi.json", get(api::openapi))
        .merge(phone_app::routes())
        .merge(api)
        .route_layer(axum::middleware::from_fn_with_state(state.metrics.clone(), kalit_service::metrics::track))
        .fallback(kalit_service::error::not_found)
        .layer(DefaultBodyLimit::max(state.limits.body_bytes))
        .layer(axum::middleware::from_fn_with_state(state.proxies.clone(), client_address))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            Duration::from_secs(state.limits.request_timeout_secs),
        ))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(state)
}
