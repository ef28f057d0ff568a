//! Serving a router: plain HTTP only on loopback addresses, TLS (rustls, aws-lc-rs) everywhere else,
//! graceful shutdown on Ctrl-C / SIGTERM, and one "listening on URL" line that scripts and tests read.

use std::net::SocketAddr;
use std::path::PathBuf;

use axum::Router;
use kalit_proto::ErrorCode;

use crate::ServiceError;

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

/// Binds `addr`, prints `<name> listening on <url>` on standard output and serves until a shutdown signal.
/// A client that has not sent its request headers within `header_timeout` is disconnected (slow-header
/// clients cannot hold connections open).
pub async fn serve(
    name: &str,
    router: Router,
    addr: SocketAddr,
    tls: Option<TlsFiles>,
    header_timeout: std::time::Duration,
) -> Result<(), ServiceError> {
    check_listen(addr, tls.as_ref())?;
    let listener = bind(addr)?;
    serve_bound(name, router, listener, tls, header_timeout).await
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
    header_timeout: std::time::Duration,
) -> Result<(), ServiceError> {
    let io = |e: std::io::Error| ServiceError::new(ErrorCode::Io, format!("cannot serve: {e}"));
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
            let mut server = axum_server::from_tcp(listener).map_err(io)?;
            server.http_builder().http1().header_read_timeout(header_timeout);
            server.handle(handle).serve(svc).await.map_err(io)
        }
        Some(t) => {
            let cfg = axum_server::tls_rustls::RustlsConfig::from_pem_file(&t.cert, &t.key).await.map_err(|e| {
                ServiceError::invalid(format!("TLS certificate {} / key {}: {e}", t.cert.display(), t.key.display()))
            })?;
            println!("{name} listening on https://{local}");
            tracing::info!(%local, "listening (TLS)");
            let mut server = axum_server::from_tcp_rustls(listener, cfg).map_err(io)?;
            server.http_builder().http1().header_read_timeout(header_timeout);
            server.handle(handle).serve(svc).await.map_err(io)
        }
    }
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
