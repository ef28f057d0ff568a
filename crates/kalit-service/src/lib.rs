//! HTTP plumbing shared by the relay (module 3) and the Registration Authority: one error type that
//! becomes a JSON answer with a stable code, request limits, per-key rate limits, Prometheus metrics,
//! configuration files with environment overrides, logging, and the "plain HTTP only on loopback" rule.
//!
//! Architecture invariant: no protocol logic lives here; the relay and the RA share this crate and the
//! wire types, never each other.

pub mod client;
pub mod clock;
pub mod config;
pub mod error;
pub mod files;
pub mod metrics;
pub mod migrations;
pub mod ratelimit;
pub mod serve;

pub use clock::Clock;
pub use error::{ServiceError, ServiceResult};
pub use metrics::Metrics;
pub use ratelimit::RateLimiter;

/// Unix time in milliseconds, as the services store it.
pub fn now_ms() -> i64 {
    unix_ms(time::OffsetDateTime::now_utc())
}

/// A time as Unix milliseconds.
pub fn unix_ms(t: time::OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}
