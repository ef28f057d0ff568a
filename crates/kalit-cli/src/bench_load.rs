//! `kalit bench load`: complete signing sessions from many simulated computers and phones at once,
//! running the real protocol (agent and phone code, device authentication, Noise, a raw P-256 signature
//! of a small document, checked by the agent) against a relay process for a fixed time. The baseline, in
//! the same run with the same clients: a bare WebSocket forwarder (`kalit bench forwarder`, a process of
//! its own) that pairs the two ends of a tunnel and pipes their frames, with no device authentication, no
//! database and one attestation per device made once. Its WebSockets have the relay's own settings
//! (`kalit_relay::tunnel::configure`), so that the two differ in what the relay does, not in buffers.
//!
//! Reported per side: complete sessions per second, p50 and p99 of a session (create, pair, sign, end),
//! errors, the server process's CPU per session and its resident memory over the run. Beside them, the
//! Ed25519 work the relay does at every join and the forwarder skips (the join request's signature
//! checked, a fresh attestation signed), timed in the bench process, and the relay's CPU less that work:
//! what the relay costs beyond the signatures it exists to check and make.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path as UrlPath, RawQuery, State};
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
use crate::bench_session::{
    RelayProcess, ServerCmd, cpu_secs, cpu_split_secs, rss_kib, rss_kinds_kib, spawn_kalit, spawn_relay, spawn_relay_on,
};
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
    /// The relay's database: omit for SQLite in a temporary directory, or postgres://... (the bench adds
    /// the relay's tables there, as the relay does, and registers fresh logins).
    #[arg(long)]
    database: Option<String>,
    /// Run N relay nodes on the one --database (PostgreSQL) behind HAProxy with the shipped
    /// configuration (ops/haproxy/kalit-relay.cfg), every client going through the proxy; the baseline
    /// is then N forwarders behind the same proxy. Without it, one relay process is reached directly.
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=16), requires = "database")]
    nodes: Option<u16>,
    /// Seconds of load before each side's measured run, so that pools and caches fill first (the
    /// measured run's RSS starts where the warm-up ends).
    #[arg(long, default_value_t = 2)]
    warmup: u64,
    /// Hold each server process (relay node or forwarder) to PERCENT of one core during the runs,
    /// through a Linux cgroup (needs root). The servers, not the simulated clients sharing this machine,
    /// then set the rate: what N nodes give against one, and the relay against the forwarder, on a
    /// machine with fewer cores than the nodes and the clients would need.
    #[arg(long, value_name = "PERCENT", value_parser = clap::value_parser!(u16).range(1..=800))]
    node_cpu: Option<u16>,
    /// Run relay and forwarder in turn this many times (each time started afresh, with its warm-up), so
    /// that a change in the machine's load hits both sides: the table sums the rounds (RSS: the last
    /// round's), and each round's ratios are listed with their median.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=20))]
    rounds: u16,
    /// Start the relay and forwarder processes from this kalit binary instead of the one running the
    /// bench (the simulated computers and phones stay this one's): two builds' servers under the same
    /// clients, or this build's phones against an older relay.
    #[arg(long, value_name = "PATH")]
    server_exe: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ForwarderArgs {
    /// A relay's data directory: its identity (the forwarder answers as that relay) and database (read
    /// once per device, for the attestation).
    #[arg(long)]
    data: PathBuf,
    /// That relay's database when it is not SQLite in --data: postgres://...
    #[arg(long)]
    database: Option<String>,
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
    /// Of `cpu_ms`, the part in the kernel (system time).
    system_ms: f64,
    /// The load balancer's CPU per complete session, when there is one.
    proxy_cpu_ms: Option<f64>,
    /// PostgreSQL's CPU per complete session, when the servers run on it.
    db_cpu_ms: Option<f64>,
    /// Tunnels paired by each relay node over the warm-up and the run (empty for the forwarders).
    per_node: Vec<u64>,
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
    if let Some(exe) = a.server_exe.as_deref().filter(|e| !e.is_file()) {
        return Err(CliError::new(ErrorCode::Usage, format!("--server-exe {}: no such file", exe.display())));
    }
    let server = ServerCmd { exe: a.server_exe.clone(), threads: a.server_threads.map(usize::from) };
    let where_ = a.nodes.map_or_else(|| "a relay process".to_string(), |n| format!("{n} relay node(s) behind HAProxy"));
    eprintln!("setting up the RA, {where_} and {clients} phones...");
    let (svc, _) = crate::demo::start_services(tmp, "load")?;
    let relay_data = tmp.join("relay-bench");
    let db = a.database.as_deref();
    // The nodes, and the address every client uses: the proxy's, or the one relay's.
    let (nodes, proxy, relay_url) = match a.nodes {
        None => {
            let (relay, url) = spawn_relay(tmp, db, &server)?;
            (vec![(relay, url.clone())], None, url)
        }
        Some(n) => {
            let mut nodes = vec![];
            let mut hosts = vec![];
            for _ in 0..n {
                let node = spawn_relay(tmp, db, &server)?;
                hosts.push(node.1.trim_start_matches("http://").to_string());
                nodes.push(node);
            }
            let (proxy, url) = Proxy::start(tmp, &hosts)?;
            (nodes, Some(proxy), url)
        }
    };
    // The set-up above printed the demo's own relay (it stays idle): say which one is measured.
    let stored = db.map_or_else(|| format!("SQLite in {}", relay_data.display()), |_| "the given --database".into());
    let measured = match a.nodes {
        None => format!("a relay process at {relay_url}"),
        Some(n) => format!("{n} relay node(s) behind HAProxy at {relay_url}"),
    };
    eprintln!("  measured: {measured} ({stored}); the demo's relay above stays idle");
    let anchors = kalit_core::x509::parse_cert_bundle(&svc.ca_pem)?;
    // Logins of their own for this run: a PostgreSQL database may hold an earlier run's.
    let run = hex::encode(kalit_core::seal::random::<4>()?);
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
        let login = format!("load.{run}.{i}");
        kalit_phone::net::register(&vault, &u, &relay_client, "main", &login, "load", &mut quiet)?;
        drop(u);
        people.push(Person { vault, pin, origin: format!("https://load-{i}.example") });
    }
    // One agent; its relay URL is also the phones' registered one, so the forwarders take the relays'
    // places on the same addresses for their half of the run.
    let data = tmp.join("agent");
    let (agent_url, _) = crate::demo::start_agent_in(&svc, tmp, &data, &relay_url, 0)?;
    let origins = kalit_agent::Origins::new(&data);
    for p in &people {
        origins.allow(&p.origin)?;
    }
    let signature_ms = signature_work_ms(tmp)?;
    let secs = a.seconds.max(1);
    let proxy_pid = proxy.as_ref().map(|p| p.0.0.id());
    let run_side = |name: &str, servers: &[(RelayProcess, String)]| -> CliResult<Side> {
        let w = Watch { pids: servers.iter().map(|s| s.0.0.id()).collect(), proxy: proxy_pid, postgres: db.is_some() };
        let _caps = match a.node_cpu {
            Some(percent) => w.pids.iter().map(|&pid| CpuCap::new(pid, percent)).collect::<CliResult<Vec<_>>>()?,
            None => vec![],
        };
        eprintln!("{name}: warming up for {} s, then {clients} clients for {secs} s...", a.warmup);
        drive(&people, &agent_url, &w, a.warmup)?;
        drive(&people, &agent_url, &w, secs)
    };
    let listens: Vec<String> = nodes.iter().map(|n| n.1.trim_start_matches("http://").to_string()).collect();
    let rounds = usize::from(a.rounds.max(1));
    let (mut relays, mut baselines) = (Vec::with_capacity(rounds), Vec::with_capacity(rounds));
    let mut first = Some(nodes);
    for round in 1..=rounds {
        if rounds > 1 {
            eprintln!("round {round} of {rounds}");
        }
        // The relays of round 1 are those the phones registered with; later ones start again where they were.
        let nodes = match first.take() {
            Some(n) => n,
            None => {
                let n = listens.iter().map(|l| spawn_relay_on(tmp, db, &server, l)).collect::<CliResult<Vec<_>>>()?;
                if let Some(p) = &proxy {
                    p.wait_up(n.len())?;
                }
                n
            }
        };
        // Tunnels each node paired over the warm-up and the run, from its own metrics: the proxy's spread.
        let urls: Vec<&str> = nodes.iter().map(|n| n.1.as_str()).collect();
        let paired0 = paired_per_node(&urls)?;
        let mut r = run_side(if nodes.len() > 1 { "relay nodes" } else { "relay" }, &nodes)?;
        r.per_node = paired_per_node(&urls)?.iter().zip(&paired0).map(|(b, a)| b.saturating_sub(*a)).collect();
        relays.push(r);
        drop(nodes);
        if !a.no_baseline {
            let mut forwarders = vec![];
            for listen in &listens {
                let mut args = vec!["bench".as_ref(), "forwarder".as_ref(), "--data".as_ref(), relay_data.as_os_str()];
                if let Some(db) = db {
                    args.extend([OsStr::new("--database"), OsStr::new(db)]);
                }
                forwarders.push(spawn_kalit(&args, listen, &server)?);
            }
            if let Some(p) = &proxy {
                p.wait_up(forwarders.len())?;
            }
            baselines.push(run_side(if forwarders.len() > 1 { "forwarders" } else { "forwarder" }, &forwarders)?);
        }
    }
    let per_round: Vec<[f64; 2]> = relays
        .iter()
        .zip(&baselines)
        .map(|(r, f)| [r.sessions as f64 / r.secs / (f.sessions as f64 / f.secs), r.cpu_ms / f.cpu_ms])
        .collect();
    let r = Side::merge(relays).ok_or_else(|| internal("no round ran"))?;
    let f = Side::merge(baselines);
    report(a, clients, &r, f.as_ref(), signature_ms);
    if per_round.len() > 1 {
        report_rounds(&per_round);
    }
    for (name, side) in [("relay", Some(&r)), ("forwarder", f.as_ref())] {
        for e in side.iter().flat_map(|s| s.errors.iter()).take(5) {
            eprintln!("{name} error: {e}");
        }
    }
    drop(proxy);
    drop(svc.rt);
    if r.errors.is_empty() && f.as_ref().is_none_or(|f| f.errors.is_empty()) {
        Ok(())
    } else {
        Err(CliError::new(ErrorCode::Internal, "sessions failed under load (listed above)"))
    }
}

/// Milliseconds of the Ed25519 work the relay does at every tunnel join and the forwarder does not: the
/// device's signature over its join request checked, and a fresh attestation signed, with the relay's
/// own code (`kalit_core::statement`, `kalit_relay::Identity`). Timed here, on one thread, unheld: the
/// median of 9 batches of 100.
fn signature_work_ms(tmp: &Path) -> CliResult<f64> {
    use kalit_core::keys::{self, PrivateKey};
    use kalit_core::statement::{self, Statement};
    let identity = kalit_relay::Identity::load_or_create(&tmp.join("signature-work"), "bench relay")?;
    let device = PrivateKey::from_pkcs8(&keys::generate(KeyAlgorithm::Ed25519)?)?;
    let (login, device_id, tunnel) = ("load.person", "0123456789abcdef0123456789abcdef", "ab".repeat(32));
    let st = Statement::device_request(
        identity.id(),
        &[7; 32],
        login,
        device_id,
        kalit_proto::namespace::TUNNEL_JOIN,
        &tunnel,
    );
    let sig = st.sign(&device)?;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let one = || -> CliResult {
        statement::verify_ed25519(device.public_key_raw(), st.as_bytes(), &sig)?;
        identity.attest(Attestation {
            relay_id: identity.id().into(),
            login: login.into(),
            cert_fingerprint: "cd".repeat(32).into(),
            device_id: device_id.into(),
            device_key: device.public_key_raw().to_vec().into(),
            issued_at: now,
            expires_at: now + 300,
        })?;
        Ok(())
    };
    let mut per = Vec::with_capacity(9);
    for _ in 0..9 {
        let t = Instant::now();
        for _ in 0..100 {
            one()?;
        }
        per.push(t.elapsed().as_secs_f64() * 1e3 / 100.0);
    }
    Ok(crate::bench::median(&mut per))
}

/// `kalit_relay_tunnel_total{result="paired"}` of each node, from its `/metrics`.
fn paired_per_node(urls: &[&str]) -> CliResult<Vec<u64>> {
    let http = reqwest::blocking::Client::new();
    urls.iter()
        .map(|u| {
            let text = http.get(format!("{u}/metrics")).send().and_then(|r| r.text()).map_err(internal)?;
            Ok(text
                .lines()
                .filter(|l| l.starts_with("kalit_relay_tunnel_total{") && l.contains(r#"result="paired""#))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
                .sum())
        })
        .collect()
}

/// A process held to a share of one core through a Linux cgroup (version 2, or version 1's `cpu`
/// controller) for as long as this lives; then it goes back to the root group.
struct CpuCap {
    dir: PathBuf,
    root: PathBuf,
    pid: u32,
}

impl CpuCap {
    fn new(pid: u32, percent: u16) -> CliResult<Self> {
        let period = 100_000u64;
        let quota = period * u64::from(percent) / 100;
        let v2 = Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
        let root = PathBuf::from(if v2 { "/sys/fs/cgroup" } else { "/sys/fs/cgroup/cpu" });
        let dir = root.join(format!("kalit-bench-{pid}"));
        let denied = |path: &Path, e: std::io::Error| {
            internal(format!("--node-cpu needs a cgroup it can write (run as root): {}: {e}", path.display()))
        };
        let write = |file: PathBuf, text: String| std::fs::write(&file, text).map_err(|e| denied(&file, e));
        if v2 {
            write(root.join("cgroup.subtree_control"), "+cpu".into())?;
        }
        std::fs::create_dir_all(&dir).map_err(|e| denied(&dir, e))?;
        let cap = CpuCap { dir, root, pid };
        if v2 {
            write(cap.dir.join("cpu.max"), format!("{quota} {period}"))?;
        } else {
            write(cap.dir.join("cpu.cfs_period_us"), period.to_string())?;
            write(cap.dir.join("cpu.cfs_quota_us"), quota.to_string())?;
        }
        write(cap.dir.join("cgroup.procs"), pid.to_string())?;
        Ok(cap)
    }
}

impl Drop for CpuCap {
    fn drop(&mut self) {
        let _ = std::fs::write(self.root.join("cgroup.procs"), self.pid.to_string());
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// HAProxy in front of the nodes, with the shipped configuration made to run on loopback.
struct Proxy(RelayProcess, String);

impl Proxy {
    fn start(tmp: &Path, hosts: &[String]) -> CliResult<(Self, String)> {
        let exe = kalit_relay::haproxy::installed()
            .ok_or_else(|| internal("--nodes needs HAProxy (Debian package haproxy)"))?;
        let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map_err(internal)?.port();
        let hosts: Vec<&str> = hosts.iter().map(String::as_str).collect();
        let cfg = tmp.join("haproxy.cfg");
        std::fs::write(&cfg, kalit_relay::haproxy::loopback_config(port, 8000, &hosts)).map_err(internal)?;
        let child = std::process::Command::new(exe)
            .args(["-db", "-f"])
            .arg(&cfg)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .map_err(CliError::io("cannot start haproxy"))?;
        let url = format!("http://127.0.0.1:{port}");
        let proxy = Proxy(RelayProcess(child), url.clone());
        proxy.wait_up(hosts.len())?;
        Ok((proxy, url))
    }

    /// Waits until HAProxy routes to the `n` nodes. Each of them already listens (it printed its address
    /// once bound), and one good check brings a server up, so after more than two check intervals (300
    /// ms) every node is up; then `3n` health checks in a row through the proxy must pass (20 s at most).
    fn wait_up(&self, n: usize) -> CliResult {
        let deadline = Instant::now() + Duration::from_secs(20);
        std::thread::sleep(Duration::from_millis(700));
        let http = reqwest::blocking::Client::new();
        let mut ok = 0;
        while ok < n * 3 {
            let up = http.get(format!("{}/healthz", self.1)).send().is_ok_and(|r| r.status().is_success());
            ok = if up { ok + 1 } else { 0 };
            if Instant::now() > deadline {
                return Err(internal("the nodes did not come up behind HAProxy within 20 s"));
            }
            if !up {
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        Ok(())
    }
}

/// The processes one side of the bench measures.
struct Watch {
    /// The servers (relay nodes or forwarders): CPU and RSS summed.
    pids: Vec<u32>,
    /// The load balancer, if any: its CPU on its own.
    proxy: Option<u32>,
    /// Whether the servers' database is this machine's PostgreSQL: its processes' CPU on its own.
    postgres: bool,
}

/// CPU seconds of every process here named `postgres` (the server's backends and workers).
fn postgres_cpu_secs() -> f64 {
    let Ok(dir) = std::fs::read_dir("/proc") else { return 0.0 };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "postgres"))
        .filter_map(|pid| cpu_secs(pid).ok())
        .sum()
}

/// `f` of each process in `pids`, summed element by element.
fn sum_over<const N: usize>(pids: &[u32], f: fn(u32) -> CliResult<[f64; N]>) -> CliResult<[f64; N]> {
    let mut t = [0.0; N];
    for &p in pids {
        for (t, x) in t.iter_mut().zip(f(p)?) {
            *t += x;
        }
    }
    Ok(t)
}

/// Every person runs complete sessions through `agent_url` for `secs` seconds, as fast as they go,
/// while the processes of `w` are measured.
fn drive(people: &[Person], agent_url: &str, w: &Watch, secs: u64) -> CliResult<Side> {
    let (pids, proxy) = (&w.pids, w.proxy);
    let total = |f: fn(u32) -> CliResult<f64>| pids.iter().map(|&p| f(p)).sum::<CliResult<f64>>();
    // Per-process figures read once each and summed over the servers: RSS by kind, CPU in user space and
    // in the kernel (each pair from the same read of /proc).
    let kinds = || sum_over(pids, rss_kinds_kib);
    let split = || sum_over(pids, cpu_split_secs);
    let stop = AtomicBool::new(false);
    let results: Mutex<(Vec<f64>, Vec<String>)> = Mutex::new((vec![], vec![]));
    let rss = Mutex::new(vec![total(rss_kib)?]);
    let kinds0 = kinds()?;
    let split0 = split()?;
    let proxy0 = proxy.map(cpu_secs).transpose()?;
    let db0 = w.postgres.then(postgres_cpu_secs);
    let start = Instant::now();
    std::thread::scope(|scope| {
        scope.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(250));
                if let Ok(k) = total(rss_kib) {
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
    let split1 = split()?;
    let (cpu, system) = (split1[0] + split1[1] - split0[0] - split0[1], split1[1] - split0[1]);
    let (mut latencies, errors) = results.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner);
    latencies.sort_by(f64::total_cmp);
    let sessions = latencies.len();
    let rss = rss.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner);
    let rss_kinds = [kinds0, kinds()?];
    let per_session = |cpu: f64| cpu * 1e3 / sessions.max(1) as f64;
    let proxy_cpu_ms = match (proxy, proxy0) {
        (Some(p), Some(c0)) => Some(per_session(cpu_secs(p)? - c0)),
        _ => None,
    };
    let db_cpu_ms = db0.map(|c0| per_session(postgres_cpu_secs() - c0));
    let (cpu_ms, system_ms) = (per_session(cpu), per_session(system));
    Ok(Side {
        sessions,
        errors,
        secs,
        latencies,
        cpu_ms,
        system_ms,
        proxy_cpu_ms,
        db_cpu_ms,
        per_node: vec![],
        rss,
        rss_kinds,
    })
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

impl Side {
    /// The rounds of one side as one run: counts, times and latencies together, CPU per session over all
    /// of them; RSS as the last round saw it (each round is a fresh process).
    fn merge(rounds: Vec<Side>) -> Option<Side> {
        let mut merged = rounds.into_iter().reduce(|a, mut b| {
            let n = (a.sessions + b.sessions).max(1) as f64;
            let (wa, wb) = (a.sessions as f64 / n, b.sessions as f64 / n);
            b.cpu_ms = a.cpu_ms * wa + b.cpu_ms * wb;
            b.system_ms = a.system_ms * wa + b.system_ms * wb;
            b.proxy_cpu_ms = a.proxy_cpu_ms.zip(b.proxy_cpu_ms).map(|(x, y)| x * wa + y * wb);
            b.db_cpu_ms = a.db_cpu_ms.zip(b.db_cpu_ms).map(|(x, y)| x * wa + y * wb);
            b.sessions += a.sessions;
            b.secs += a.secs;
            b.errors.splice(0..0, a.errors);
            b.latencies.extend(a.latencies);
            if a.per_node.len() == b.per_node.len() {
                b.per_node.iter_mut().zip(&a.per_node).for_each(|(x, y)| *x += y);
            }
            b
        })?;
        merged.latencies.sort_by(f64::total_cmp);
        Some(merged)
    }
}

/// Each round's ratios (relay / forwarder) and their medians, below the table.
fn report_rounds(per_round: &[[f64; 2]]) {
    let median = |i: usize| crate::bench::median(&mut per_round.iter().map(|r| r[i]).collect::<Vec<_>>());
    let list = |i: usize| per_round.iter().map(|r| format!("{:.2}", r[i])).collect::<Vec<_>>().join(", ");
    println!();
    println!("Relay / forwarder, round by round: sessions per second {} (median {:.2});", list(0), median(0));
    println!("server CPU per complete session {} (median {:.2}).", list(1), median(1));
}

fn report(a: &LoadBenchArgs, clients: usize, r: &Side, f: Option<&Side>, signature_ms: f64) {
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
    let mut rows = vec![
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
        (
            "of it, in the kernel (system time)",
            format!("{:.2} ms", r.system_ms),
            side(&|f| format!("{:.2} ms", f.system_ms)),
            ratio(&|s| s.system_ms),
        ),
        (
            "of it, Ed25519 the forwarder skips (timed here)",
            format!("{signature_ms:.2} ms"),
            side(&|_| "none".into()),
            f64::NAN,
        ),
        (
            "server CPU per complete session less that",
            format!("{:.2} ms", r.cpu_ms - signature_ms),
            side(&|f| format!("{:.2} ms", f.cpu_ms)),
            f.map_or(f64::NAN, |f| (r.cpu_ms - signature_ms) / f.cpu_ms),
        ),
    ];
    // The CPU the servers' proxy and database spend, beside theirs, when there are such processes.
    type Of = fn(&Side) -> Option<f64>;
    let extra: [(&str, Of); 2] = [
        ("load balancer (HAProxy) CPU per complete session", |s| s.proxy_cpu_ms),
        ("PostgreSQL CPU per complete session", |s| s.db_cpu_ms),
    ];
    for (name, of) in extra {
        if let Some(ms) = of(r) {
            let ms_of = |s: &Side| of(s).unwrap_or(f64::NAN);
            rows.push((name, format!("{ms:.2} ms"), side(&|f| format!("{:.2} ms", ms_of(f))), ratio(&ms_of)));
        }
    }
    rows.push(("server RSS: start / quarters / end", rss(r), side(&rss), f64::NAN));
    rows.push(("server RSS growth: anonymous / file / shared", kinds(r), side(&kinds), f64::NAN));
    rows.push(("errors", r.errors.len().to_string(), side(&|f| f.errors.len().to_string()), f64::NAN));
    if a.nodes.is_some() {
        let spread = r.per_node.iter().map(u64::to_string).collect::<Vec<_>>().join(" / ");
        rows.push(("tunnels paired per node (warm-up and run)", spread, "-".into(), f64::NAN));
    }
    let fmt_ratio = |x: f64| if x.is_nan() { String::new() } else { format!("{x:.2}") };
    let threads = a.server_threads.map_or_else(String::new, |n| format!(", servers on {n} thread(s)"));
    let threads = match a.node_cpu {
        Some(p) => format!("{threads}, each server held to {p} % of a core"),
        None => threads,
    };
    let threads = match (a.nodes, &a.database) {
        (Some(n), _) => format!("{threads}, {n} node(s) on PostgreSQL behind HAProxy (server rows: all nodes)"),
        (None, Some(_)) => format!("{threads}, PostgreSQL"),
        (None, None) => threads,
    };
    let threads = match a.rounds {
        0 | 1 => threads,
        n => format!("{threads}, {n} rounds in turn (summed)"),
    };
    let threads = match &a.server_exe {
        Some(exe) => format!("{threads}, servers run from {}", exe.display()),
        None => threads,
    };
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
        println!("{:<48} {:>34} {:>26} {:>7}", "measurement", "relay", "forwarder", "ratio");
        for (w, x, y, q) in &rows {
            println!("{w:<48} {x:>34} {y:>26} {:>7}", fmt_ratio(*q));
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
        let db = a.database.unwrap_or_else(|| format!("sqlite://{}?mode=rwc", a.data.join("relay.db").display()));
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
            .route("/healthz", get(|| async { "ok" }))
            .route("/v1/tunnel/{id}/wait", get(fwd_wait))
            .route("/v1/tunnel/{id}/join", get(fwd_join))
            .with_state(st);
        let listener = tokio::net::TcpListener::bind(a.listen).await.map_err(internal)?;
        let addr = listener.local_addr().map_err(internal)?;
        println!("bench forwarder listening on http://{addr}");
        // The accept loop on the runtime's workers, as the relay's (`kalit_service::serve`).
        tokio::spawn(async move { axum::serve(listener, app).await }).await.map_err(internal)?.map_err(internal)
    })
}

async fn fwd_nonce() -> Result<axum::Json<NonceResponse>, kalit_service::ServiceError> {
    Ok(axum::Json(fresh_nonce()?))
}

fn fresh_nonce() -> Result<NonceResponse, kalit_service::ServiceError> {
    let n = kalit_core::seal::random::<32>()?;
    let expires_at = time::OffsetDateTime::now_utc().unix_timestamp() + 120;
    Ok(NonceResponse { nonce: n.into(), expires_at })
}

fn text(e: &TunnelEvent) -> Message {
    Message::Text(serde_json::to_string(e).unwrap_or_default().into())
}

async fn fwd_wait(
    State(s): State<Fwd>,
    UrlPath(id): UrlPath<String>,
    ws: WebSocketUpgrade,
) -> axum::response::Response {
    kalit_relay::tunnel::configure(ws).on_upgrade(move |mut agent| async move {
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
    RawQuery(query): RawQuery,
    ws: WebSocketUpgrade,
) -> axum::response::Response {
    kalit_relay::tunnel::configure(ws).on_upgrade(move |mut phone| async move {
        // The phone's challenge, as the relay sends it (its nonce is not checked here either).
        if query.as_deref() == Some("challenge=1") {
            let Ok(n) = fresh_nonce() else { return };
            if phone.send(text(&TunnelEvent::Challenge { nonce: n.nonce, expires_at: n.expires_at })).await.is_err() {
                return;
            }
        }
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
