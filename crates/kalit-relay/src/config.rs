//! The relay's configuration: a TOML file (`--config`), `KALIT_RELAY_*` environment variables, then
//! command-line flags. Unknown keys are refused. Every field has a default that works on a fresh machine.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Environment variable prefix.
pub const ENV_PREFIX: &str = "KALIT_RELAY_";

/// The relay's configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RelayConfig {
    /// Address to listen on. Plain HTTP is allowed on loopback only.
    pub listen: String,
    /// Data directory (relay key, SQLite database).
    pub data: Option<PathBuf>,
    /// Database URL: `sqlite://...` or `postgres://...` [default: SQLite file `relay.db` in `data`].
    pub database: Option<String>,
    /// PEM files of CA certificates whose certificates may register.
    pub trust: Vec<PathBuf>,
    /// Name published in the relay's identity.
    pub name: String,
    /// TLS certificate chain (PEM); required off loopback.
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM).
    pub tls_key: Option<PathBuf>,
    /// `text` or `json` log lines.
    pub log_format: String,
    /// Addresses of reverse proxies in front of the relay whose `X-Forwarded-For` names the client
    /// (every per-address limit then counts the forwarded address). Empty: the TCP peer is the client.
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// Addresses besides this machine's own that may read `/metrics` (a Prometheus server elsewhere).
    /// Empty: loopback only. Behind `trusted_proxies`, the forwarded address is the one compared.
    pub metrics_from: Vec<std::net::IpAddr>,
    /// Web pages that may open signing sessions with no agent (kalit.js direct mode): `https://*` (any
    /// https origin), `loopback` (pages on this machine), or exact origins. Empty: direct mode off.
    pub direct_origins: Vec<String>,
    /// Days the audit table keeps its rows: older ones are deleted by the relay, in batches, an hour
    /// apart (0: kept forever, the default; then prune them yourself, docs/OPERATIONS.md).
    pub audit_keep_days: u32,
    /// Milliseconds the relay gathers the audit rows of tunnel joins before it commits them together
    /// (at most 10,000). Each commit costs CPU whatever it holds (about 0.7 ms on the machine of
    /// docs/PERFORMANCE.md), so under load the default makes up to 10 a second; a relay given a small
    /// share of a core spends less with a longer wait. A relay killed outright (SIGKILL, a crash, power)
    /// loses the tunnel-join rows of its last wait; a relay stopped normally writes them first.
    pub audit_linger_ms: u64,
    /// Limits.
    pub limits: Limits,
}

/// Request limits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest request body in bytes.
    pub body_bytes: usize,
    /// Requests per minute per client address (0: no limit).
    pub per_address_per_minute: u32,
    /// Burst per client address.
    pub per_address_burst: u32,
    /// Registration and device requests per minute per login (0: no limit).
    pub per_login_per_minute: u32,
    /// Burst per login.
    pub per_login_burst: u32,
    /// Seconds a nonce from `POST /v1/nonce` stays valid. A join socket's challenge nonce lives
    /// [`crate::tunnel::CHALLENGE_NONCE_SECS`] (or this, when shorter).
    pub nonce_ttl_secs: u64,
    /// Seconds before a request is abandoned.
    pub request_timeout_secs: u64,
    /// Seconds a client has to send its request headers before the connection is closed.
    pub header_timeout_secs: u64,
    /// Most devices per login.
    pub max_devices_per_login: i64,
    /// Most tunnels waiting for a phone at once (beyond: 503).
    pub max_waiting_tunnels: usize,
    /// Most tunnels waiting at once from one address (an IPv6 /64 counts as one; beyond: 429). An agent
    /// waits on one tunnel per QR on screen.
    pub max_waiting_tunnels_per_address: usize,
    /// Most paired tunnels (signing sessions under way) at once (beyond: the phone is told 503).
    pub max_paired_tunnels: usize,
    /// Most open connections (lowered to fit under the open-file limit at start-up).
    pub max_connections: usize,
    /// Most open connections from one address (an IPv6 /64 counts as one).
    pub max_connections_per_address: usize,
    /// Longest life of a paired tunnel, seconds.
    pub tunnel_session_secs: u64,
    /// A paired tunnel with no frame for this long is closed, seconds.
    pub tunnel_idle_secs: u64,
    /// Most frames a paired tunnel forwards (both directions together).
    pub tunnel_max_frames: u32,
    /// Seconds a paired tunnel waits for a web page whose socket dropped (a phone's browser froze its tab)
    /// to take its side back, keeping what the phone sends meanwhile (direct mode; 0: never).
    pub tunnel_resume_secs: u64,
    /// Seconds between a request to detach a certificate from a login and the detachment, during which
    /// a device of that certificate can cancel it.
    pub detach_cooling_off_secs: u64,
    /// Lifetime of the attestation a phone receives when it joins a tunnel (and of a registration's
    /// receipt), seconds.
    pub attestation_ttl_secs: u64,
    /// Seconds between two looks at `relay-keys.json` for a rotated signing key (0: only at start).
    pub key_reload_secs: u64,
}

impl Default for RelayConfig {
    fn default() -> Self {
        RelayConfig {
            listen: "127.0.0.1:8750".into(),
            data: None,
            database: None,
            trust: vec![],
            name: "Kalit relay".into(),
            tls_cert: None,
            tls_key: None,
            log_format: "text".into(),
            trusted_proxies: vec![],
            metrics_from: vec![],
            direct_origins: vec!["https://*".into(), "loopback".into()],
            audit_keep_days: 0,
            audit_linger_ms: crate::store::AUDIT_LINGER.as_millis() as u64,
            limits: Limits::default(),
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            body_bytes: 64 * 1024,
            max_waiting_tunnels: 100_000,
            max_waiting_tunnels_per_address: 32,
            max_paired_tunnels: 20_000,
            max_connections: 250_000,
            max_connections_per_address: 256,
            tunnel_session_secs: 900,
            tunnel_idle_secs: 300,
            tunnel_max_frames: 4096,
            tunnel_resume_secs: 180,
            per_address_per_minute: 600,
            per_address_burst: 120,
            per_login_per_minute: 30,
            per_login_burst: 10,
            nonce_ttl_secs: 120,
            request_timeout_secs: 15,
            header_timeout_secs: 10,
            max_devices_per_login: 20,
            detach_cooling_off_secs: 72 * 3600,
            attestation_ttl_secs: 600,
            key_reload_secs: 30,
        }
    }
}
