//! Per-key token buckets (per client address, per login) behind one trait, [`Buckets`]: in this process's
//! memory ([`RateLimiter`], for one node), or in a store several nodes share (the relay's PostgreSQL
//! buckets), so that a limit holds across a load-balanced set.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::client::{ClientIp, addr_group};
use crate::{Metrics, ServiceError};

/// Most keys tracked before idle buckets are swept (bounds memory under a flood of distinct keys).
const MAX_KEYS: usize = 100_000;

/// A token-bucket limiter: `per_minute` requests per key, bursts up to `burst`.
#[derive(Debug)]
pub struct RateLimiter {
    per_minute: u32,
    burst: u32,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

impl RateLimiter {
    /// A limiter; `per_minute == 0` disables it.
    pub fn new(per_minute: u32, burst: u32) -> Self {
        RateLimiter { per_minute, burst: burst.max(1), buckets: Mutex::new(HashMap::new()) }
    }

    /// Requests per minute (0: no limit).
    pub fn per_minute(&self) -> u32 {
        self.per_minute
    }

    /// Largest burst.
    pub fn burst(&self) -> u32 {
        self.burst
    }

    /// Takes one token for `key`; `Err(seconds to wait)` when empty.
    pub fn check(&self, key: &str) -> Result<(), u64> {
        self.check_at(key, Instant::now())
    }

    /// [`check`](Self::check) at a given instant (for tests).
    pub fn check_at(&self, key: &str, now: Instant) -> Result<(), u64> {
        if self.per_minute == 0 {
            return Ok(());
        }
        let rate = f64::from(self.per_minute) / 60.0;
        let burst = f64::from(self.burst);
        let mut map = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_KEYS && !map.contains_key(key) {
            map.retain(|_, (tokens, at)| *tokens + now.saturating_duration_since(*at).as_secs_f64() * rate < burst);
            if map.len() >= MAX_KEYS {
                // Still full of active keys: refuse new keys rather than grow without bound.
                return Err(60);
            }
        }
        let (tokens, at) = map.entry(key.to_string()).or_insert((burst, now));
        *tokens = (*tokens + now.saturating_duration_since(*at).as_secs_f64() * rate).min(burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - *tokens) / rate).ceil() as u64)
        }
    }
}

/// Where token buckets live.
pub trait Buckets: Send + Sync + std::fmt::Debug {
    /// Takes one token for `key`; `Err(seconds to wait)` when its bucket is empty.
    fn take<'a>(&'a self, key: &'a str) -> Pin<Box<dyn Future<Output = Result<(), u64>> + Send + 'a>>;
}

impl Buckets for RateLimiter {
    fn take<'a>(&'a self, key: &'a str) -> Pin<Box<dyn Future<Output = Result<(), u64>> + Send + 'a>> {
        Box::pin(std::future::ready(self.check(key)))
    }
}

/// State of [`limit_address`]: the limiter and the metrics that count refusals.
#[derive(Debug, Clone)]
pub struct AddressLimit {
    /// Per-address limiter.
    pub limiter: Arc<dyn Buckets>,
    /// Where `rate_limited_total{result="address"}` is counted.
    pub metrics: Arc<Metrics>,
}

/// Middleware: one token per request from the client's address group ([`crate::client::addr_group`] of
/// [`ClientIp`], set by [`crate::client::client_address`]; else the TCP peer); 429 `rate_limited` with
/// `Retry-After` when the bucket is empty.
pub async fn limit_address(State(s): State<AddressLimit>, req: Request, next: Next) -> Response {
    let ip = req
        .extensions()
        .get::<ClientIp>()
        .map(|c| c.0)
        .or_else(|| req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip()));
    let key = ip.map_or_else(|| "in-process".to_string(), |ip| addr_group(ip).to_string());
    if let Err(wait) = s.limiter.take(&key).await {
        s.metrics.inc("rate_limited", "address");
        return ServiceError::rate_limited(wait).into_response();
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn bucket_empties_refills_and_keys_are_independent() {
        let l = RateLimiter::new(60, 3);
        let t = Instant::now();
        for _ in 0..3 {
            assert!(l.check_at("a", t).is_ok());
        }
        assert_eq!(l.check_at("a", t), Err(1));
        assert!(l.check_at("b", t).is_ok(), "other keys carry on");
        assert!(l.check_at("a", t + Duration::from_millis(1100)).is_ok(), "one token per second refills");
        assert!(RateLimiter::new(0, 0).check_at("x", t).is_ok(), "0 disables");
    }
}
