//! Prometheus text-format metrics without a metrics framework: request counts and latency per route and
//! status, plus named counters the services bump.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;

const BUCKETS: [f64; 10] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0];

#[derive(Debug, Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

/// The metrics of one service. Every label comes from a bounded set: a method outside HTTP's own is
/// `other`, a route is the router's template, a counter's name and result are the services' own static
/// strings. So no client can add series (memory here, and in Prometheus) by what it sends; before, each
/// new method token a stranger made up was a new series kept forever. Known series are found without
/// allocating.
#[derive(Debug)]
pub struct Metrics {
    prefix: &'static str,
    /// By route, then method and status.
    requests: Mutex<BTreeMap<String, ByMethodAndStatus>>,
    latency: Mutex<BTreeMap<String, Histogram>>,
    counters: Mutex<BTreeMap<(&'static str, &'static str), u64>>,
}

/// Request counts of one route by method label and status.
type ByMethodAndStatus = BTreeMap<(&'static str, u16), u64>;

/// A request's method as a label: HTTP's own methods by name, any other token `other`.
fn method_label(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "other",
    }
}

impl Metrics {
    /// Metrics named `<prefix>_...`.
    pub fn new(prefix: &'static str) -> Self {
        Metrics { prefix, requests: Mutex::default(), latency: Mutex::default(), counters: Mutex::default() }
    }

    /// Adds one to counter `name` with label `result`.
    pub fn inc(&self, name: &'static str, result: &'static str) {
        *self.counters.lock().unwrap_or_else(|p| p.into_inner()).entry((name, result)).or_default() += 1;
    }

    fn observe(&self, method: &'static str, route: &str, status: u16, secs: f64) {
        let mut r = self.requests.lock().unwrap_or_else(|p| p.into_inner());
        match r.get_mut(route) {
            Some(by) => *by.entry((method, status)).or_default() += 1,
            None => {
                r.insert(route.to_string(), BTreeMap::from([((method, status), 1)]));
            }
        }
        drop(r);
        let mut l = self.latency.lock().unwrap_or_else(|p| p.into_inner());
        let h = match l.get_mut(route) {
            Some(h) => h,
            None => l.entry(route.to_string()).or_default(),
        };
        for (i, b) in BUCKETS.iter().enumerate() {
            if secs <= *b {
                h.counts[i] += 1;
            }
        }
        h.sum += secs;
        h.count += 1;
    }

    /// The Prometheus exposition text.
    pub fn render(&self) -> String {
        use std::fmt::Write;
        let p = self.prefix;
        let mut out = String::new();
        let _ = writeln!(out, "# HELP {p}_http_requests_total HTTP requests by method, route and status.");
        let _ = writeln!(out, "# TYPE {p}_http_requests_total counter");
        for (r, by) in self.requests.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            for ((m, s), n) in by {
                let _ = writeln!(out, "{p}_http_requests_total{{method=\"{m}\",route=\"{r}\",status=\"{s}\"}} {n}");
            }
        }
        let _ = writeln!(out, "# HELP {p}_http_request_duration_seconds Request latency by route.");
        let _ = writeln!(out, "# TYPE {p}_http_request_duration_seconds histogram");
        for (r, h) in self.latency.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            for (i, b) in BUCKETS.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "{p}_http_request_duration_seconds_bucket{{route=\"{r}\",le=\"{b}\"}} {}",
                    h.counts[i]
                );
            }
            let _ = writeln!(out, "{p}_http_request_duration_seconds_bucket{{route=\"{r}\",le=\"+Inf\"}} {}", h.count);
            let _ = writeln!(out, "{p}_http_request_duration_seconds_sum{{route=\"{r}\"}} {}", h.sum);
            let _ = writeln!(out, "{p}_http_request_duration_seconds_count{{route=\"{r}\"}} {}", h.count);
        }
        let counters = self.counters.lock().unwrap_or_else(|p| p.into_inner());
        let mut last = "";
        for ((name, result), n) in counters.iter() {
            if *name != last {
                let _ = writeln!(out, "# TYPE {p}_{name}_total counter");
                last = name;
            }
            let _ = writeln!(out, "{p}_{name}_total{{result=\"{result}\"}} {n}");
        }
        out
    }
}

/// Whether a client may read `/metrics`: one on this machine (loopback), one of `from` (a Prometheus
/// server elsewhere), or a request that came through no socket (in-process). Anyone else would learn the
/// service's traffic from it: how many register, sign, are refused.
pub fn may_read(client: Option<IpAddr>, from: &[IpAddr]) -> bool {
    client.is_none_or(|ip| {
        let ip = ip.to_canonical();
        ip.is_loopback() || from.iter().any(|f| f.to_canonical() == ip)
    })
}

/// The answer to a client that may not read `/metrics` (403 `unauthorized`).
pub fn not_for_you() -> crate::ServiceError {
    crate::ServiceError::new(
        kalit_proto::ErrorCode::Unauthorized,
        "metrics are served to this machine and to the addresses in metrics_from only",
    )
}

/// Middleware recording every request (route template, not the raw path, so labels stay bounded).
pub async fn track(State(m): State<std::sync::Arc<Metrics>>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = method_label(req.method());
    let route = req.extensions().get::<MatchedPath>().cloned();
    let resp = next.run(req).await;
    let route = route.as_ref().map_or("unmatched", MatchedPath::as_str);
    m.observe(method, route, resp.status().as_u16(), start.elapsed().as_secs_f64());
    resp
}
