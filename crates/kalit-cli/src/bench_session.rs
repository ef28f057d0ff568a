//! `kalit bench session`: the signing path end to end on loopback (agent in this process, relay as its
//! own `kalit relay serve` process, the phone's pairing loop with automatic approval and the key
//! unlocked), against baselines measured in the same run: the bare key signature and the phone vault's
//! signature (the part of the path that is not transport). Also the relay's CPU per completed session
//! and its memory per waiting tunnel.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use clap::Args;
use futures_util::StreamExt;
use kalit_core::keys::{self, PrivateKey};
use kalit_core::{KeyAlgorithm, SecretString, x509};
use kalit_proto::ErrorCode;
use kalit_proto::session::{SessionCreated, SignDocResponse};
use kalit_vault::{DocumentToSign, PinPolicy, SignFormat, Vault};

use crate::bench_relay::pct;
use crate::error::{CliError, CliResult};
use kalit_phone::Client;

#[derive(Debug, Args)]
pub struct SessionBenchArgs {
    /// Signatures timed through one paired session (and on the phone alone, and with the bare key).
    #[arg(long, default_value_t = 300)]
    signs: usize,
    /// Complete sessions (pair, sign once, end) for the relay's CPU time.
    #[arg(long, default_value_t = 50)]
    sessions: usize,
    /// Waiting tunnels opened for the relay's memory per tunnel.
    #[arg(long, default_value_t = 10_000)]
    tunnels: usize,
    /// Print Markdown (for docs/PERFORMANCE.md).
    #[arg(long)]
    markdown: bool,
}

fn internal(e: impl std::fmt::Display) -> CliError {
    CliError::new(ErrorCode::Internal, e.to_string())
}

fn stats(mut v: Vec<f64>) -> (f64, f64) {
    v.sort_by(f64::total_cmp);
    (pct(&v, 0.5), pct(&v, 0.99))
}

/// utime + stime of a process, in seconds.
pub(crate) fn cpu_secs(pid: u32) -> CliResult<f64> {
    let [user, system] = cpu_split_secs(pid)?;
    Ok(user + system)
}

/// utime and stime of a process (its time in user space, and in the kernel: system calls, switching,
/// the network stack), in seconds.
pub(crate) fn cpu_split_secs(pid: u32) -> CliResult<[f64; 2]> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).map_err(internal)?;
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let field = |i: usize| -> f64 { f.get(i).and_then(|x| x.parse().ok()).unwrap_or(0.0) };
    // Clock ticks per second, asked once: the load bench reads every server's and PostgreSQL's processes.
    static HZ: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    let hz = *HZ.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .unwrap_or(100.0)
    });
    Ok([field(11) / hz, field(12) / hz])
}

/// Resident memory of a process, KiB.
pub(crate) fn rss_kib(pid: u32) -> CliResult<f64> {
    Ok(status_kib(pid, &["VmRSS"])?[0])
}

/// The resident memory of process `pid` by kind, KiB: anonymous (the heap: allocator pools, SQLite's page
/// cache), file-backed (the binary and libraries), shared memory (SQLite's WAL index, mapped).
pub(crate) fn rss_kinds_kib(pid: u32) -> CliResult<[f64; 3]> {
    let v = status_kib(pid, &["RssAnon", "RssFile", "RssShmem"])?;
    Ok([v[0], v[1], v[2]])
}

/// Fields of `/proc/PID/status` given in kB, in the order asked.
fn status_kib(pid: u32, fields: &[&str]) -> CliResult<Vec<f64>> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).map_err(internal)?;
    fields
        .iter()
        .map(|f| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(f).and_then(|r| r.strip_prefix(':')))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
                .ok_or_else(|| internal(format!("no {f} in /proc/{pid}/status")))
        })
        .collect()
}

pub(crate) struct RelayProcess(pub(crate) Child);

impl Drop for RelayProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// How a bench starts its server processes (relay nodes, forwarders).
#[derive(Debug, Clone, Default)]
pub(crate) struct ServerCmd {
    /// Another kalit binary to start them from (`kalit bench load --server-exe`); the running one when
    /// `None`.
    pub(crate) exe: Option<std::path::PathBuf>,
    /// Their async runtime's worker threads (tokio reads `TOKIO_WORKER_THREADS`; the default is one per
    /// core).
    pub(crate) threads: Option<usize>,
}

/// `kalit relay serve` as a process of its own on loopback: its data directory is `TMP/relay-bench` (one
/// relay identity, shared by every node started from the same `tmp`), it trusts the bench RA's
/// `TMP/ra/ca.pem`, and its database is `db` (SQLite in its data directory when `None`).
pub(crate) fn spawn_relay(tmp: &Path, db: Option<&str>, server: &ServerCmd) -> CliResult<(RelayProcess, String)> {
    spawn_relay_on(tmp, db, server, "127.0.0.1:0")
}

/// [`spawn_relay`] listening on `listen` (a relay started again where it was before).
pub(crate) fn spawn_relay_on(
    tmp: &Path,
    db: Option<&str>,
    server: &ServerCmd,
    listen: &str,
) -> CliResult<(RelayProcess, String)> {
    let (data, trust) = (tmp.join("relay-bench"), tmp.join("ra").join("ca.pem"));
    let mut args = vec![
        "relay".as_ref(),
        "serve".as_ref(),
        "--data".as_ref(),
        data.as_os_str(),
        "--trust".as_ref(),
        trust.as_os_str(),
    ];
    if let Some(db) = db {
        args.extend([std::ffi::OsStr::new("--database"), std::ffi::OsStr::new(db)]);
    }
    spawn_kalit(&args, listen, server)
}

/// Runs `kalit ARGS --listen LISTEN` (a service that prints its URL first) as `server` says, with rate
/// limits off and the per-address caps raised.
pub(crate) fn spawn_kalit(
    args: &[&std::ffi::OsStr],
    listen: &str,
    server: &ServerCmd,
) -> CliResult<(RelayProcess, String)> {
    let exe = match &server.exe {
        Some(e) => e.clone(),
        None => std::env::current_exe().map_err(internal)?,
    };
    let mut cmd = Command::new(exe);
    if let Some(n) = server.threads {
        cmd.env("TOKIO_WORKER_THREADS", n.to_string());
    }
    let mut child = cmd
        .args(args)
        .args(["--listen", listen])
        .env("KALIT_RELAY_LIMITS__PER_ADDRESS_PER_MINUTE", "0")
        .env("KALIT_RELAY_LIMITS__PER_LOGIN_PER_MINUTE", "0")
        // Every client of a bench is 127.0.0.1: the per-address caps would count them all as one.
        .env("KALIT_RELAY_LIMITS__MAX_WAITING_TUNNELS_PER_ADDRESS", "1000000")
        .env("KALIT_RELAY_LIMITS__MAX_CONNECTIONS_PER_ADDRESS", "1000000")
        .env("KALIT_LOG", "error")
        .stdout(Stdio::piped())
        .spawn()
        .map_err(CliError::io("cannot start a service"))?;
    let mut line = String::new();
    BufReader::new(child.stdout.take().ok_or_else(|| internal("service stdout"))?)
        .read_line(&mut line)
        .map_err(internal)?;
    let url = line.trim().rsplit(' ').next().unwrap_or("").to_string();
    if !url.starts_with("http") {
        return Err(internal(format!("the service did not start: {line:?}")));
    }
    Ok((RelayProcess(child), url))
}

pub fn run(a: SessionBenchArgs) -> CliResult {
    let tmp = crate::demo::tempdir()?;
    let r = bench(&a, &tmp);
    let _ = std::fs::remove_dir_all(&tmp);
    r
}

/// RA, relay (its own process), agent and an enrolled, registered phone with a P-256 key, on loopback.
pub(crate) struct BenchStack {
    pub(crate) svc: crate::demo::Services,
    pub(crate) relay: RelayProcess,
    pub(crate) relay_url: String,
    pub(crate) vault: Vault,
    pub(crate) pin: SecretString,
    pub(crate) agent_url: String,
    pub(crate) origin: String,
}

pub(crate) fn bench_stack(tmp: &Path) -> CliResult<BenchStack> {
    eprintln!("setting up RA, relay, agent and phone on loopback...");
    let (svc, code) = crate::demo::start_services(tmp, "bench")?;
    let (relay, relay_url) = spawn_relay(tmp, None, &ServerCmd::default())?;
    let pin = SecretString::new("bench-pin-123456".into());
    let vault = Vault::init(&tmp.join("phone"), &pin, PinPolicy::default())?;
    {
        let u = vault.unlock(&pin)?;
        u.generate(KeyAlgorithm::P256, "bench", false)?;
        let anchors = x509::parse_cert_bundle(&svc.ca_pem)?;
        let mut quiet = kalit_phone::Printed;
        let ra = Client::new(&svc.ra_url, "RA")?;
        kalit_phone::net::enrol(&vault, &u, &ra, "bench", &code, Some(anchors), &mut quiet)?;
        let relay_client = Client::new(&relay_url, "relay")?;
        kalit_phone::net::register(&vault, &u, &relay_client, "bench", "bench.user", "bench", &mut quiet)?;
    }
    let (agent_url, origin) = crate::demo::start_agent(&svc, tmp, &relay_url, 0)?;
    Ok(BenchStack { svc, relay, relay_url, vault, pin, agent_url, origin })
}

fn bench(a: &SessionBenchArgs, tmp: &Path) -> CliResult {
    let BenchStack { svc, relay, relay_url, vault, pin, agent_url, origin } = bench_stack(tmp)?;
    let relay_pid = relay.0.id();
    let u = vault.unlock(&pin)?;
    let doc = vec![b'x'; 1024];
    let n = a.signs.max(10);

    // Baselines in this run: the bare key (same algorithm), and the phone vault's signing (decrypt the key,
    // sign, append the history line).
    let key = PrivateKey::from_pkcs8(&keys::generate(KeyAlgorithm::P256)?)?;
    let mut bare = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        key.sign(key.default_scheme(), &doc)?;
        bare.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let mut phone_only = Vec::with_capacity(n);
    let d = DocumentToSign {
        name: "bench",
        data: &doc,
        digests: None,
        format: SignFormat::Raw,
        pss: false,
        origin: None,
        blind_confirmed: true,
    };
    for _ in 0..n {
        let t = Instant::now();
        u.sign("bench", &d)?;
        phone_only.push(t.elapsed().as_secs_f64() * 1e3);
    }

    // One paired session, n signatures through page -> agent -> relay -> phone and back.
    let session = |signs: usize, times: &mut Vec<f64>| -> CliResult {
        let mut page = Client::page(&agent_url, &origin)?;
        let created: SessionCreated = page.post("/v1/sessions", Some(&serde_json::json!({})))?;
        page.set_token(Some(created.token.clone()));
        let path = format!("/v1/sessions/{}", created.session);
        std::thread::scope(|scope| {
            let phone = scope.spawn(|| {
                let mut ui = kalit_phone::pair::AutoUi { unlocked: &u, verbose: false };
                kalit_phone::pair::pair(&vault, &created.qr, None, &mut ui).map_err(CliError::from)
            });
            let r = (|| {
                crate::demo::wait_connected(&page, &path)?;
                let body = serde_json::json!({ "data": B64.encode(&doc), "name": "bench.bin", "format": "raw" });
                for _ in 0..signs {
                    let t = Instant::now();
                    let _: SignDocResponse = page.post(&format!("{path}/sign"), Some(&body))?;
                    times.push(t.elapsed().as_secs_f64() * 1e3);
                }
                Ok::<_, CliError>(())
            })();
            let _ = page.delete(&path);
            phone.join().map_err(|_| internal("phone thread panicked"))??;
            r
        })
    };
    eprintln!("timing {n} signatures through one session...");
    let mut warm = vec![];
    session(5, &mut warm)?;
    let mut e2e = Vec::with_capacity(n);
    session(n, &mut e2e)?;

    // Relay CPU per complete session (pair with a device-signed join, handshake, one signature, end).
    let m = a.sessions.max(1);
    eprintln!("running {m} complete sessions...");
    let cpu0 = cpu_secs(relay_pid)?;
    let wall = Instant::now();
    for _ in 0..m {
        let mut t = vec![];
        session(1, &mut t)?;
    }
    let per_session_wall = wall.elapsed().as_secs_f64() * 1e3 / m as f64;
    let cpu_per_session = (cpu_secs(relay_pid)? - cpu0) * 1e3 / m as f64;

    // Memory per waiting tunnel.
    let k = a.tunnels.max(1);
    eprintln!("opening {k} waiting tunnels...");
    std::thread::sleep(std::time::Duration::from_millis(500));
    let rss0 = rss_kib(relay_pid)?;
    let sockets = svc.rt.block_on(async {
        let mut out = Vec::with_capacity(k);
        let mut pending = futures_util::stream::iter((0..k).map(|i| {
            let url = kalit_transport::ws_url(&relay_url, &format!("/v1/tunnel/{:064x}/wait?ttl=300", i + 1))
                .unwrap_or_default();
            async move {
                let mut ws = kalit_transport::connect(&url).await?;
                ws.next().await; // ready
                Ok::<_, kalit_service::ServiceError>(ws)
            }
        }))
        .buffer_unordered(256);
        while let Some(ws) = pending.next().await {
            out.push(ws?);
        }
        Ok::<_, CliError>(out)
    })?;
    std::thread::sleep(std::time::Duration::from_secs(1));
    let rss1 = rss_kib(relay_pid)?;
    let per_tunnel = (rss1 - rss0) / sockets.len() as f64;
    drop(sockets);

    let (bare50, bare99) = stats(bare);
    let (ph50, ph99) = stats(phone_only);
    let (e50, e99) = stats(e2e);
    let overhead = e50 - ph50;
    let rows = [
        ("bare P-256 signature (baseline)", format!("{bare50:.3} ms"), format!("p99 {bare99:.3} ms"), String::new()),
        (
            "phone vault signature (baseline: key decrypt + sign + history)",
            format!("{ph50:.3} ms"),
            format!("p99 {ph99:.3} ms"),
            String::new(),
        ),
        (
            "end to end: page -> agent -> relay -> phone -> agent (checked) -> page",
            format!("{e50:.3} ms"),
            format!("p99 {e99:.3} ms"),
            format!(
                "p50 overhead over the phone's signature {overhead:.3} ms (goal <= 1.5 ms: {})",
                if overhead <= 1.5 { "met" } else { "NOT met" }
            ),
        ),
        (
            "relay CPU per complete session",
            format!("{cpu_per_session:.3} ms"),
            format!("wall {per_session_wall:.1} ms/session"),
            format!("{m} sessions; pairing + 1 signature + end"),
        ),
        (
            "relay memory per waiting tunnel",
            format!("{per_tunnel:.1} KiB"),
            format!("{} tunnels, RSS {:.0} -> {:.0} MiB", k, rss0 / 1024.0, rss1 / 1024.0),
            format!("goal <= 16 KiB: {}", if per_tunnel <= 16.0 { "met" } else { "NOT met" }),
        ),
    ];
    if a.markdown {
        println!("| measurement | value | detail | note |\n|---|---|---|---|");
        for (w, v, d, note) in &rows {
            println!("| {w} | {v} | {d} | {note} |");
        }
    } else {
        for (w, v, d, note) in &rows {
            println!("{w:<72} {v:>12}  {d}  {note}");
        }
    }
    drop(relay);
    drop(svc.rt);
    Ok(())
}
