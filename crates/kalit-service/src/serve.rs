//! Serving a router: plain HTTP only on loopback addresses, TLS (rustls, aws-lc-rs) everywhere else,
//! connection caps and timeouts from the first byte ([`ConnectionPolicy`]), graceful shutdown on Ctrl-C /
//! SIGTERM, and one "listening on URL" line that scripts and tests read.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum_server::accept::DefaultAcceptor;
use kalit_proto::ErrorCode;

use crate::client::{ConnGate, ConnLimits, GatedAcceptor};
use crate::{Metrics, ServiceError};

/// Certificate and key files (PEM) for TLS.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// Certificate chain, PEM.
    pub cert: PathBuf,
    /// Private key, PEM.
    pub key: PathBuf,
}

/// Refuses plain HTTP on a non-loopback address.
pub fn check_listen(addr: SocketAddr, tls: Option<&TlsFiles>) -> Result<(), ServiceError> {
    if tls.is_none() && !addr.ip().is_loopback() {
        return Err(ServiceError::new(
            ErrorCode::RefusedByPolicy,
            format!(
                "refusing plain HTTP on {addr}: only loopback addresses (127.0.0.1, ::1) may serve without TLS; give tls_cert and tls_key"
            ),
        ));
    }
    Ok(())
}

/// What a connection may hold before it has earned more.
#[derive(Debug, Clone)]
pub struct ConnectionPolicy {
    /// A connection must finish its TLS handshake, then send its first request's headers (and any later
    /// request's headers), each within this time, or it is closed: silent sockets cannot pile up.
    pub header_timeout: Duration,
    /// Caps on open connections, in all and per address group.
    pub limits: ConnLimits,
    /// Where refusals are counted.
    pub metrics: Option<Arc<Metrics>>,
}

impl ConnectionPolicy {
    /// `header_timeout` and caps, without metrics.
    pub fn new(header_timeout: Duration, limits: ConnLimits) -> Self {
        ConnectionPolicy { header_timeout, limits, metrics: None }
    }
}

/// Binds `addr`, prints `<name> listening on <url>` on standard output and serves until a shutdown signal,
/// under `policy`.
pub async fn serve(
    name: &str,
    router: Router,
    addr: SocketAddr,
    tls: Option<TlsFiles>,
    policy: ConnectionPolicy,
) -> Result<(), ServiceError> {
    check_listen(addr, tls.as_ref())?;
    let listener = bind(addr)?;
    serve_bound(name, router, listener, tls, policy).await
}

/// Raises this process's open-file limit to its hard limit (a relay holds one descriptor per
/// connection) and returns the soft limit now in force, when the system tells it.
#[cfg(unix)]
pub fn raise_file_limit() -> Option<u64> {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut l = getrlimit(Resource::Nofile);
    if let (Some(cur), Some(max)) = (l.current, l.maximum)
        && cur < max
    {
        l.current = Some(max);
        if let Err(e) = setrlimit(Resource::Nofile, l) {
            tracing::warn!(error = %e, "could not raise the open-file limit");
        }
    }
    getrlimit(Resource::Nofile).current
}

/// Elsewhere the limit is left as it is.
#[cfg(not(unix))]
pub fn raise_file_limit() -> Option<u64> {
    None
}

/// The connection cap that leaves room under the open-file limit for the database, logs and files
/// (`reserve` descriptors): `wanted`, lowered when the limit is smaller.
pub fn connection_cap(wanted: usize, file_limit: Option<u64>, reserve: usize) -> usize {
    match file_limit {
        Some(l) => wanted.min(usize::try_from(l).unwrap_or(usize::MAX).saturating_sub(reserve).max(1)),
        None => wanted,
    }
}

/// Binds `addr` (non-blocking, for [`serve_bound`]).
pub fn bind(addr: SocketAddr) -> Result<std::net::TcpListener, ServiceError> {
    let io = |e: std::io::Error| ServiceError::new(ErrorCode::Io, format!("cannot listen on {addr}: {e}"));
    let listener = std::net::TcpListener::bind(addr).map_err(io)?;
    listener.set_nonblocking(true).map_err(io)?;
    Ok(listener)
}

/// [`serve`] on a listener bound by the caller (who needed the port first, e.g. for `Host` checks).
pub async fn serve_bound(
    name: &str,
    router: Router,
    listener: std::net::TcpListener,
    tls: Option<TlsFiles>,
    policy: ConnectionPolicy,
) -> Result<(), ServiceError> {
    let io = |e: std::io::Error| ServiceError::new(ErrorCode::Io, format!("cannot serve: {e}"));
    let header_timeout = policy.header_timeout;
    let gate = ConnGate::new(policy.limits, policy.metrics.clone());
    let local = listener.local_addr().map_err(io)?;
    check_listen(local, tls.as_ref())?;
    let handle = axum_server::Handle::new();
    let h2 = handle.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutting down");
        h2.graceful_shutdown(Some(std::time::Duration::from_secs(10)));
    });
    let svc = router.into_make_service_with_connect_info::<SocketAddr>();
    match tls {
        None => {
            println!("{name} listening on http://{local}");
            tracing::info!(%local, "listening (plain HTTP, loopback)");
            let mut server = axum_server::from_tcp(listener)
                .map_err(io)?
                .acceptor(GatedAcceptor::new(DefaultAcceptor, gate))
                .first_request_timeout(header_timeout);
            server.http_builder().http1().header_read_timeout(header_timeout);
            on_worker(server.handle(handle).serve(svc)).await?.map_err(io)
        }
        Some(t) => {
            let cfg = axum_server::tls_rustls::RustlsConfig::from_pem_file(&t.cert, &t.key).await.map_err(|e| {
                ServiceError::invalid(format!("TLS certificate {} / key {}: {e}", t.cert.display(), t.key.display()))
            })?;
            println!("{name} listening on https://{local}");
            tracing::info!(%local, "listening (TLS)");
            let mut server = axum_server::from_tcp_rustls(listener, cfg)
                .map_err(io)?
                .map(|tls| GatedAcceptor::new(tls.handshake_timeout(header_timeout), gate))
                .first_request_timeout(header_timeout);
            server.http_builder().http1().header_read_timeout(header_timeout);
            on_worker(server.handle(handle).serve(svc)).await?.map_err(io)
        }
    }
}

/// Runs the accept loop as a task of the runtime instead of in the caller's `block_on`. There it ran on
/// the process's main thread, so every accepted connection crossed to a worker thread (wake-ups of two
/// threads per connection): that cost the relay about a tenth of its CPU per signing session
/// (docs/PERFORMANCE.md, "The accept loop on the runtime's workers").
async fn on_worker<T: Send + 'static>(
    accept: impl std::future::Future<Output = T> + Send + 'static,
) -> Result<T, ServiceError> {
    tokio::spawn(accept)
        .await
        .map_err(|e| ServiceError::new(ErrorCode::Internal, format!("the server's accept loop ended: {e}")))
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}

/// Installs the log subscriber: `text` or `json` lines on standard error, filtered by `KALIT_LOG`
/// (default `info`).
pub fn init_logging(format: &str) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("KALIT_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let b = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    let _ = if format == "json" { b.json().try_init() } else { b.try_init() };
}
