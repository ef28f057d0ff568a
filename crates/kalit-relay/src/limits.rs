//! Rate limits that hold across relay nodes: token buckets in the shared PostgreSQL database, one
//! statement per request. A node on SQLite (one node) keeps its buckets in memory. When the database does
//! not answer, the node falls back to its own in-memory buckets for that request (a limit per node is
//! better than none, and better than refusing everyone while the database restarts).

use std::sync::Arc;

use kalit_service::ratelimit::Buckets;
use kalit_service::{Clock, Metrics, RateLimiter};

use crate::store::{Backend, Store};

/// Buckets in the shared database, with this node's own as the fallback.
#[derive(Debug)]
pub struct SharedBuckets {
    store: Store,
    /// Prefix of this limiter's keys (`addr:`, `login:`).
    prefix: &'static str,
    local: RateLimiter,
    clock: Clock,
    metrics: Arc<Metrics>,
}

/// The limiter for `per_minute` and `burst` under `prefix`: shared on PostgreSQL, in memory otherwise
/// (and when the limit is off).
pub fn buckets(
    store: &Store,
    prefix: &'static str,
    per_minute: u32,
    burst: u32,
    clock: Clock,
    metrics: Arc<Metrics>,
) -> Arc<dyn Buckets> {
    let local = RateLimiter::new(per_minute, burst);
    if store.backend() == Backend::Postgres && per_minute > 0 {
        Arc::new(SharedBuckets { store: store.clone(), prefix, local, clock, metrics })
    } else {
        Arc::new(local)
    }
}

impl Buckets for SharedBuckets {
    fn take<'a>(
        &'a self,
        key: &'a str,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), u64>> + Send + 'a>> {
        Box::pin(async move {
            let per_ms = f64::from(self.local.per_minute()) / 60_000.0;
            let burst = f64::from(self.local.burst());
            let k = format!("{}{key}", self.prefix);
            match self.store.take_token(&k, burst, per_ms, self.clock.now_ms()).await {
                Ok((true, _)) => Ok(()),
                Ok((false, tokens)) => Err(((1.0 - tokens) / (per_ms * 1000.0)).ceil().max(1.0) as u64),
                Err(e) => {
                    self.metrics.inc("rate_limit_store", "unavailable");
                    tracing::warn!(error = %e.message, "shared rate limit unavailable; this node's own applies");
                    self.local.check(key)
                }
            }
        })
    }
}
