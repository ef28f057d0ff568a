//! `kalit bench load`: complete signing sessions from many simulated computers and phones at once,
//! running the real protocol (agent and phone code, device authentication, Noise, a raw P-256 signature
//! of a small document, checked by the agent) against a relay process for a fixed time. The baseline, in
//! the same run with the same clients: a bare WebSocket forwarder (`kalit bench forwarder`, a process of
//! its own) that pairs the two ends of a tunnel and pipes their frames, with no device authentication, no
//! database and one attestation per device made once.
//!
//! Reported per side: complete sessions per second, p50 and p99 of a session (create, pair, sign, end),
//! errors, the server process's CPU per session and its resident memory over the run.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path as UrlPath, State};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use clap::Args;
use futures_util::{SinkExt, StreamExt};
use kalit_core::{KeyAlgorithm, SecretString};
use kalit_phone::Client;
use kalit_proto::ErrorCode;
use kalit_proto::relay::{Attestation, DeviceRequest, NonceResponse, SignedAttestation, WELL_KNOWN_PATH};
use kalit_proto::session::{SessionCreated, SessionPhase, SessionState, SignDocResponse, TunnelEvent};
use kalit_vault::{PinPolicy, Vault};

use crate::bench_relay::pct;
use crate::bench_session::{RelayProcess, cpu_secs, rss_kib, rss_kinds_kib, spawn_kalit};
use crate::error::{CliError, CliResult};

#[derive(Debug, Args)]
pub struct LoadBenchArgs {
    /// Seconds each side (relay, then forwarder) is driven.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// Concurrent computer-and-phone pairs (each its own page origin, vault and login).
    #[arg(long, default_value_t = 8)]
    clients: usize,
    /// Print Markdown (for docs/PERFORMANCE.md).
    #[arg(long)]
    markdown: bool,
    /// Drive the relay only (a soak), without the forwarder's run.
    #[arg(long)]
    no_baseline: bool,
    /// Worker threads of the relay's and the forwarder's async runtimes (default: one per core; the
    /// services read TOKIO_WORKER_THREADS, which this sets for them).
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=256))]
    server_threads: Option<u16>,
}

#[derive(Debug, Args)]
pub struct ForwarderArgs {
    /// A relay's data directory: its identity (the forwarder answers as that relay) and database (read
    /// once per device, for the attestation).
    #[arg(long)]
    data: PathBuf,
    /// Where to listen.
    #[arg(long)]
    listen: SocketAddr,
}

fn internal(e: impl std::fmt::Display) -> CliError {
    CliError::new(ErrorCode::Internal, e.to_string())
}

/// One simulated person: a vault with a registered key, and the page origin of their computer.
struct Person {
    vault: Vault,
    pin: SecretString,
    origin: String,
}

/// Enrolment and registration steps unprinted (one line per phone would drown the results).
struct Quiet;

impl kalit_phone::Progress for Quiet {
    fn step(&mut self, _: &str) {}

    fn warn(&mut self, text: &str) {
        eprintln!("warning: {text}");
    }
}

/// What one side of the bench measured.
struct Side {
    sessions: usize,
    errors: Vec<String>,
    secs: f64,
    latencies: Vec<f64>,
    cpu_ms: f64,
    rss: Vec<f64>,
    /// Resident memory by kind (anonymous, file-backed, shared) at the start and the end, KiB.
    rss_kinds: [[f64; 3]; 2],
}

pub fn run(a: LoadBenchArgs) -> CliResult {
    let tmp = crate::demo::tempdir()?;
    let r = bench(&a, &tmp);
    let _ = std::fs::remove_dir_all(&tmp);
    r
}

fn bench(a: &LoadBenchArgs, tmp: &Path) -> CliResult {
    let clients = a.clients.max(1);
    eprintln!("setting up the RA, a relay process and {clients} phones...");
    let (svc, _) = crate::demo::start_services(tmp, "load")?;
    let (relay, relay_url) = crate::bench_session::spawn_relay(tmp, a.server_threads.map(usize::from))?;
    let anchors = kalit_core::x509::parse_cert_bundle(&svc.ca_pem)?;
    let mut people = Vec::with_capacity(clients);
    for i in 0..clients {
        let pin = SecretString::new(format!("load-pin-{i}-123456"));
        let vault = Vault::init(&tmp.join(format!("phone-{i}")), &pin, PinPolicy::default())?;
        let u = vault.unlock(&pin)?;
        u.generate(KeyAlgorithm::P256, "main", false)?;
        let code =
            svc.rt.block_on(kalit_ra::enrol(&svc.ra_dir, &format!("CN=Load {i},C=UZ"), Duration::from_secs(600)))?;
        let mut quiet = Quiet;
        let ra = Client::new(&svc.ra_url, "RA")?;
        kalit_phone::net::enrol(&vault, &u, &ra, "main", &code, Some(anchors.clone()), &mut quiet)?;
        let relay_client = Client::new(&relay_url, "relay")?;
        kalit_phone::net::register(&vault, &u, &relay_client, "main", &format!("load.{i}"), "load", &mut quiet)?;
        drop(u);
        people.push(Person { vault, pin, origin: format!("https://load-{i}.example") });
    }
    // One agent; its relay URL is also the phones' registered one, so the forwarder takes the relay's
    // place on the same address for its half of the run.
    let data = tmp.join("agent");
    let (agent_url, _) = crate::demo::start_agent_in(&svc, tmp, &data, &relay_url, 0)?;
    let origins = kalit_agent::Origins::new(&data);
    for p in &people {
        origins.allow(&p.origin)?;
    }
    let secs = a.seconds.max(1);
    eprintln!("relay: warming up, then {clients} clients for {secs} s...");
    drive(&people, &agent_url, &relay, 2)?;
    let r = drive(&people, &agent_url, &relay, secs)?;
    drop(relay);
    let listen = relay_url.trim_start_matches("http://");
    let relay_data = tmp.join("relay-bench");
    let f = if a.no_baseline {
        None
    } else {
        let args = ["bench".as_ref(), "forwarder".as_ref(), "--data".as_ref(), relay_data.as_os_str()];
        let (forwarder, _) = spawn_kalit(&args, listen, a.server_threads.map(usize::from))?;
        eprintln!("forwarder: warming up, then {clients} clients for {secs} s...");
        drive(&people, &agent_url, &forwarder, 2)?;
        Some(drive(&people, &agent_url, &forwarder, secs)?)
    };
    report(a, clients, &r, f.as_ref());
    for (name, side) in [("relay", Some(&r)), ("forwarder", f.as_ref())] {
        for e in side.iter().flat_map(|s| s.errors.iter()).take(5) {
            eprintln!("{name} error: {e}");
        }
    }
    drop(svc.rt);
    if r.errors.is_empty() && f.as_ref().is_none_or(|f| f.errors.is_empty()) {
        Ok(())
    } else {
        Err(CliError::new(ErrorCode::Internal, "sessions failed under load (listed above)"))
    }
}

/// Every person runs complete sessions through `agent_url` for `secs` seconds, as fast as they go.
fn drive(people: &[Person], agent_url: &str, server: &RelayProcess, secs: u64) -> CliResult<Side> {
    let pid = server.0.id();
    let stop = AtomicBool::new(false);
    let results: Mutex<(Vec<f64>, Vec<String>)> = Mutex::new((vec![], vec![]));
    let rss = Mutex::new(vec![rss_kib(pid)?]);
    let kinds0 = rss_kinds_kib(pid)?;
    let cpu0 = cpu_secs(pid)?;
    let start = Instant::now();
    std::thread::scope(|scope| {
        scope.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(250));
                if let Ok(k) = rss_kib(pid) {
                    rss.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(k);
                }
            }
        });
        for p in people {
            let results = &results;
            scope.spawn(move || {
                let u = match p.vault.unlock(&p.pin) {
                    Ok(u) => u,
                    Err(e) => {
                        let mut g = results.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                        g.1.push(format!("cannot unlock the phone's vault: {e}"));
                        return;
                    }
                };
                while start.elapsed() < Duration::from_secs(secs) {
                    let t = Instant::now();
                    let r = one_session(p, &u, agent_url);
                    let mut g = results.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                    match r {
                        Ok(()) => g.0.push(t.elapsed().as_secs_f64() * 1e3),
                        Err(e) => g.1.push(format!("{}: {}", e.code.as_str(), e.message)),
                    }
                }
            });
        }
        while start.elapsed() < Duration::from_secs(secs) {
            std::thread::sleep(Duration::from_millis(50));
        }
        // The sessions in flight finish; the scope waits for them.
        stop.store(true, Ordering::Relaxed);
    });
    let secs = start.elapsed().as_secs_f64();
    let cpu = cpu_secs(pid)? - cpu0;
    let (mut latencies, errors) = results.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner);
    latencies.sort_by(f64::total_cmp);
    let sessions = latencies.len();
    let rss = rss.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner);
    let rss_kinds = [kinds0, rss_kinds_kib(pid)?];
    Ok(Side { sessions, errors, secs, latencies, cpu_ms: cpu * 1e3 / sessions.max(1) as f64, rss, rss_kinds })
}

/// create -> the phone pairs (device-signed join, Noise, hello) -> one signature, checked by the agent ->
/// end; the phone's loop returns when the page ends the session.
fn one_session(p: &Person, u: &kalit_vault::Unlocked<'_>, agent_url: &str) -> CliResult {
    let mut page = Client::page(agent_url, &p.origin)?;
    let created: SessionCreated = page.post("/v1/sessions", Some(&serde_json::json!({})))?;
    page.set_token(Some(created.token.clone()));
    let path = format!("/v1/sessions/{}", created.session);
    std::thread::scope(|scope| {
        let phone = scope.spawn(|| {
            let mut ui = kalit_phone::pair::AutoUi { unlocked: u, verbose: false };
            kalit_phone::pair::pair(&p.vault, &created.qr, None, &mut ui).map_err(CliError::from)
        });
        let r = (|| {
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                let s: SessionState = page.get(&path)?;
                match s.phase {
                    SessionPhase::Connected => break,
                    SessionPhase::Closed => return Err(internal(format!("closed before pairing: {:?}", s.error))),
                    _ if Instant::now() > deadline => return Err(internal("no phone paired within 30 s")),
                    // Short polls: the page's polling interval is not what this bench measures.
                    _ => std::thread::sleep(Duration::from_millis(2)),
                }
            }
            let body = serde_json::json!({ "data": B64.encode([b'x'; 1024]), "name": "load.bin", "format": "raw" });
            let _: SignDocResponse = page.post(&format!("{path}/sign"), Some(&body))?;
            Ok::<_, CliError>(())
        })();
        let _ = page.delete(&path);
        let phone = phone.join().map_err(|_| internal("phone thread panicked"))?;
        match (r, phone) {
            (Ok(()), Ok(_)) => Ok(()),
            (Err(e), Err(p)) => Err(internal(format!("{}; the phone: {}: {}", e.message, p.code.as_str(), p.message))),
            (Err(e), Ok(_)) | (Ok(()), Err(e)) => Err(e),
        }
    })
}

fn report(a: &LoadBenchArgs, clients: usize, r: &Side, f: Option<&Side>) {
    let rate = |s: &Side| s.sessions as f64 / s.secs;
    let p = |s: &Side, q: f64| if s.latencies.is_empty() { 0.0 } else { pct(&s.latencies, q) };
    let mib = |k: f64| k / 1024.0;
    // RSS at the start, the quarters and the end of the run (MiB), and its growth from the start and
    // over the second half (after the allocator's and SQLite's caches have filled).
    let rss = |s: &Side| {
        let at = |q: f64| s.rss.get(((s.rss.len() - 1) as f64 * q).round() as usize).copied().unwrap_or(0.0);
        let pc = |from: f64, to: f64| if from > 0.0 { (to - from) / from * 100.0 } else { 0.0 };
        let q = [0.0, 0.25, 0.5, 0.75, 1.0].map(at);
        format!(
            "{} MiB; {:+.1} % from the start, {:+.1} % over the second half",
            q.map(|k| format!("{:.1}", mib(k))).join(" / "),
            pc(q[0], q[4]),
            pc(q[2], q[4])
        )
    };
    // What grew: the heap (anonymous), mapped files, or shared memory (SQLite's WAL index).
    let kinds = |s: &Side| {
        let [a, b] = s.rss_kinds;
        format!("{:+.1} / {:+.1} / {:+.1} MiB", mib(b[0] - a[0]), mib(b[1] - a[1]), mib(b[2] - a[2]))
    };
    let side = |show: &dyn Fn(&Side) -> String| f.map_or_else(|| "-".to_string(), show);
    let ratio = |x: &dyn Fn(&Side) -> f64| f.map_or(f64::NAN, |f| x(r) / x(f));
    let rows = [
        (
            "complete sessions per second",
            format!("{:.1}/s", rate(r)),
            side(&|f| format!("{:.1}/s", rate(f))),
            ratio(&rate),
        ),
        (
            "session p50 (create, pair, sign, end)",
            format!("{:.1} ms", p(r, 0.5)),
            side(&|f| format!("{:.1} ms", p(f, 0.5))),
            ratio(&|s| p(s, 0.5)),
        ),
        (
            "session p99",
            format!("{:.1} ms", p(r, 0.99)),
            side(&|f| format!("{:.1} ms", p(f, 0.99))),
            ratio(&|s| p(s, 0.99)),
        ),
        (
            "server CPU per complete session",
            format!("{:.2} ms", r.cpu_ms),
            side(&|f| format!("{:.2} ms", f.cpu_ms)),
            ratio(&|s| s.cpu_ms),
        ),
        ("server RSS: start / quarters / end", rss(r), side(&rss), f64::NAN),
        ("server RSS growth: anonymous / file / shared", kinds(r), side(&kinds), f64::NAN),
        ("errors", r.errors.len().to_string(), side(&|f| f.errors.len().to_string()), f64::NAN),
    ];
    let fmt_ratio = |x: f64| if x.is_nan() { String::new() } else { format!("{x:.2}") };
    let threads = a.server_threads.map_or_else(String::new, |n| format!(", servers on {n} thread(s)"));
    if a.markdown {
        println!(
            "| {clients} clients, {:.0} s each{threads} | relay | bare forwarder (baseline) | ratio |\n|---|---|---|---|",
            r.secs
        );
        for (w, x, y, q) in &rows {
            println!("| {w} | {x} | {y} | {} |", fmt_ratio(*q));
        }
    } else {
        println!("{clients} clients, {:.1} s each{threads}", r.secs);
        println!("{:<40} {:>34} {:>26} {:>7}", "measurement", "relay", "forwarder", "ratio");
        for (w, x, y, q) in &rows {
            println!("{w:<40} {x:>34} {y:>26} {:>7}", fmt_ratio(*q));
        }
    }
}

// ---- the baseline: a bare WebSocket forwarder ----

/// A phone that joined: its socket, login and device id.
type Arrived = (WebSocket, String, String);

#[derive(Clone)]
struct Fwd {
    identity: Arc<kalit_relay::Identity>,
    store: kalit_relay::Store,
    waiting: Arc<Mutex<HashMap<String, tokio::sync::oneshot::Sender<Arrived>>>>,
    /// One attestation per device, made at its first join.
    attestations: Arc<Mutex<HashMap<String, SignedAttestation>>>,
}

/// `kalit bench forwarder`: serves the relay's identity and nonces and pairs tunnel ends, piping frames.
pub fn forwarder(a: ForwarderArgs) -> CliResult {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().map_err(internal)?;
    rt.block_on(async {
        let identity = kalit_relay::Identity::load_or_create(&a.data, "bench relay")?;
        let db = format!("sqlite://{}?mode=rwc", a.data.join("relay.db").display());
        let store = kalit_relay::Store::open(&db).await?;
        let st = Fwd { identity: Arc::new(identity), store, waiting: Arc::default(), attestations: Arc::default() };
        let app = axum::Router::new()
            .route(
                WELL_KNOWN_PATH,
                get(
                    |State(s): State<Fwd>| async move { axum::Json(s.identity.public(kalit_service::now_ms() / 1000)) },
                ),
            )
            .route("/v1/nonce", post(fwd_nonce))
            .route("/v1/tunnel/{id}/wait", get(fwd_wait))
            .route("/v1/tunnel/{id}/join", get(fwd_join))
            .with_state(st);
        let listener = tokio::net::TcpListener::bind(a.listen).await.map_err(internal)?;
        let addr = listener.local_addr().map_err(internal)?;
        println!("bench forwarder listening on http://{addr}");
        axum::serve(listener, app).await.map_err(internal)
    })
}

async fn fwd_nonce() -> Result<axum::Json<NonceResponse>, kalit_service::ServiceError> {
    let n = kalit_core::seal::random::<32>()?;
    let expires_at = time::OffsetDateTime::now_utc().unix_timestamp() + 120;
    Ok(axum::Json(NonceResponse { nonce: n.into(), expires_at }))
}

fn text(e: &TunnelEvent) -> Message {
    Message::Text(serde_json::to_string(e).unwrap_or_default().into())
}

async fn fwd_wait(
    State(s): State<Fwd>,
    UrlPath(id): UrlPath<String>,
    ws: WebSocketUpgrade,
) -> axum::response::Response {
    ws.on_upgrade(move |mut agent| async move {
        let (tx, rx) = tokio::sync::oneshot::channel();
        s.waiting.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(id.clone(), tx);
        if agent.send(text(&TunnelEvent::Ready { expires_in: 60 })).await.is_err() {
            return;
        }
        let Ok(Ok((phone, login, device_id))) = tokio::time::timeout(Duration::from_secs(60), rx).await else {
            s.waiting.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(&id);
            return;
        };
        if agent.send(text(&TunnelEvent::Peer { login: login.into(), device_id: device_id.into() })).await.is_err() {
            return;
        }
        pipe(agent, phone).await;
    })
}

async fn fwd_join(
    State(s): State<Fwd>,
    UrlPath(id): UrlPath<String>,
    ws: WebSocketUpgrade,
) -> axum::response::Response {
    ws.on_upgrade(move |mut phone| async move {
        let Some(Ok(Message::Text(t))) = phone.recv().await else { return };
        let Ok(req) = serde_json::from_str::<DeviceRequest>(t.as_str()) else { return };
        let Some(attestation) = fwd_attestation(&s, &req).await else { return };
        let Some(tx) = s.waiting.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(&id) else { return };
        let joined =
            TunnelEvent::Joined { attestation, computer_address: "127.0.0.1".into(), same_network: true, origin: None };
        if phone.send(text(&joined)).await.is_ok() {
            let _ = tx.send((phone, req.login.to_string(), req.device_id.to_string()));
        }
    })
}

/// The device's attestation, made at its first join (no signature check: this is the baseline).
async fn fwd_attestation(s: &Fwd, req: &DeviceRequest) -> Option<SignedAttestation> {
    let key = req.device_id.to_string();
    if let Some(a) = s.attestations.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(&key) {
        return Some(a.clone());
    }
    let d = s.store.device(req.login.as_ref(), &key).await.ok()??;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let a = s
        .identity
        .attest(Attestation {
            relay_id: s.identity.id().into(),
            login: d.login.into(),
            cert_fingerprint: d.cert_fingerprint.into(),
            device_id: d.device_id.into(),
            device_key: d.device_key.into(),
            issued_at: now,
            expires_at: now + 3600,
        })
        .ok()?;
    s.attestations.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(key, a.clone());
    Some(a)
}

/// Forwards every frame each way until either side closes.
async fn pipe(a: WebSocket, b: WebSocket) {
    let (mut a_tx, mut a_rx) = a.split();
    let (mut b_tx, mut b_rx) = b.split();
    let ab = async {
        while let Some(Ok(m)) = a_rx.next().await {
            if matches!(m, Message::Close(_)) || b_tx.send(m).await.is_err() {
                break;
            }
        }
        let _ = b_tx.close().await;
    };
    let ba = async {
        while let Some(Ok(m)) = b_rx.next().await {
            if matches!(m, Message::Close(_)) || a_tx.send(m).await.is_err() {
                break;
            }
        }
        let _ = a_tx.close().await;
    };
    tokio::select! {
        () = ab => {}
        () = ba => {}
    }
}
