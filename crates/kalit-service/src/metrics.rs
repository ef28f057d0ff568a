//! Prometheus text-format metrics without a metrics framework: request counts and latency per route and
//! status, plus named counters the services bump.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;

const BUCKETS: [f64; 10] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0];

#[derive(Debug, Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

/// The metrics of one service.
#[derive(Debug)]
pub struct Metrics {
    prefix: &'static str,
    requests: Mutex<BTreeMap<(String, String, u16), u64>>,
    latency: Mutex<BTreeMap<String, Histogram>>,
    counters: Mutex<BTreeMap<(String, String), u64>>,
}

impl Metrics {
    /// Metrics named `<prefix>_...`.
    pub fn new(prefix: &'static str) -> Self {
        Metrics { prefix, requests: Mutex::default(), latency: Mutex::default(), counters: Mutex::default() }
    }

    /// Adds one to counter `name` with label `result`.
    pub fn inc(&self, name: &str, result: &str) {
        *self.counters.lock().unwrap_or_else(|p| p.into_inner()).entry((name.into(), result.into())).or_default() += 1;
    }

    fn observe(&self, method: &str, route: &str, status: u16, secs: f64) {
        *self
            .requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry((method.into(), route.into(), status))
            .or_default() += 1;
        let mut l = self.latency.lock().unwrap_or_else(|p| p.into_inner());
        let h = l.entry(route.into()).or_default();
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
        for ((m, r, s), n) in self.requests.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            let _ = writeln!(out, "{p}_http_requests_total{{method=\"{m}\",route=\"{r}\",status=\"{s}\"}} {n}");
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
        let mut last = String::new();
        for ((name, result), n) in counters.iter() {
            if *name != last {
                let _ = writeln!(out, "# TYPE {p}_{name}_total counter");
                last.clone_from(name);
            }
            let _ = writeln!(out, "{p}_{name}_total{{result=\"{result}\"}} {n}");
        }
        out
    }
}

/// Middleware recording every request (route template, not the raw path, so labels stay bounded).
pub async fn track(State(m): State<std::sync::Arc<Metrics>>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().as_str().to_string();
    let route = req.extensions().get::<MatchedPath>().map_or("unmatched", |p| p.as_str()).to_string();
    let resp = next.run(req).await;
    m.observe(&method, &route, resp.status().as_u16(), start.elapsed().as_secs_f64());
    resp
}
