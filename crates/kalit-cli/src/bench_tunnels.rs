//! `kalit bench tunnels`: the relay's capacity at once (issue 14's goal: 10,000 waiting tunnels and 1,000
//! active sessions with zero errors). The real relay router runs in this process on loopback (rate limits
//! off, the per-address caps raised: every client here is 127.0.0.1); it holds W waiting tunnels (QR
//! codes no phone scanned) while A registered phones join A other tunnels, every pair exchanges F frames
//! each way, and only then do they end. The relay never reads frames, so the computers and phones here
//! send opaque bytes: this measures the relay, not Noise. Counted at the moment all A are paired: the
//! relay's own tunnel tables.

use std::sync::Arc;
use std::time::Instant;

use clap::Args;
use futures_util::{SinkExt, StreamExt};
use kalit_core::statement::Statement;
use kalit_proto::ErrorCode;
use kalit_proto::relay::{DeviceRequest, NonceResponse};
use kalit_proto::session::TunnelEvent;
use kalit_proto::{Base64, namespace};
use tokio_tungstenite::tungstenite::Message;

use crate::bench_relay::{people, registration};
use crate::error::{CliError, CliResult};

#[derive(Debug, Args)]
pub struct TunnelsBenchArgs {
    /// Waiting tunnels held open the whole time.
    #[arg(long, default_value_t = 10_000)]
    waiting: usize,
    /// Sessions paired at once (each a registered phone and its computer).
    #[arg(long, default_value_t = 1_000)]
    active: usize,
    /// Frames each way per session (1 KiB each).
    #[arg(long, default_value_t = 10)]
    frames: usize,
    /// Print Markdown (for docs/PERFORMANCE.md).
    #[arg(long)]
    markdown: bool,
}

fn internal(e: impl std::fmt::Display) -> CliError {
    CliError::new(ErrorCode::Internal, e.to_string())
}

/// One phone: its login, device id and device key.
struct Phone {
    login: String,
    device_id: String,
    key: kalit_core::keys::PrivateKey,
}

pub fn run(a: TunnelsBenchArgs) -> CliResult {
    // The relay is a process of its own (as deployed), so each side needs one descriptor per socket.
    let limit = kalit_service::serve::raise_file_limit().unwrap_or(1024);
    let needed = (a.waiting + 2 * a.active) as u64 + 256;
    if limit < needed {
        return Err(CliError::new(
            ErrorCode::Usage,
            format!("this bench needs {needed} open files and may have {limit}: raise ulimit -n (hard limit)"),
        ));
    }
    let n = a.active.max(1);
    eprintln!("preparing {n} certificates and a relay process...");
    let (ca, persons) = people(n)?;
    let tmp = crate::demo::tempdir()?;
    let ca_file = tmp.join("bench-ca.pem");
    std::fs::write(&ca_file, pem::encode(&pem::Pem::new("CERTIFICATE", ca))).map_err(internal)?;
    let data = tmp.join("relay");
    let args = [
        "relay".as_ref(),
        "serve".as_ref(),
        "--data".as_ref(),
        data.as_os_str(),
        "--trust".as_ref(),
        ca_file.as_os_str(),
    ];
    let (_relay, base) = crate::bench_session::spawn_kalit(&args, "127.0.0.1:0", &Default::default())?;
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().map_err(internal)?;
    let http = reqwest::Client::new();
    let identity: kalit_proto::relay::RelayIdentity = rt.block_on(async {
        let r = http.get(format!("{base}{}", kalit_proto::relay::WELL_KNOWN_PATH)).send().await.map_err(internal)?;
        r.json().await.map_err(internal)
    })?;
    let relay_id = identity.relay_id.to_string();
    let ws = base.replacen("http", "ws", 1);

    eprintln!("registering {n} phones...");
    let phones: Vec<Phone> = rt.block_on(async {
        let mut out = vec![];
        for (i, p) in persons.iter().enumerate() {
            let nonce = nonce(&http, &base).await?;
            let login = format!("tunnels-{i}");
            let (req, key) = registration(p, &relay_id, &nonce, &login)?;
            let r = http.post(format!("{base}/v1/register")).json(&req).send().await.map_err(internal)?;
            if r.status().as_u16() != 201 {
                return Err(internal(format!("registration answered {}", r.status())));
            }
            let device_id = kalit_core::statement::key_id(key.public_key_raw());
            out.push(Phone { login, device_id, key });
        }
        Ok::<_, CliError>(out)
    })?;

    eprintln!("opening {} waiting tunnels...", a.waiting);
    let t = Instant::now();
    let (idle, idle_errors) = rt.block_on(async {
        let mut open = futures_util::stream::iter((0..a.waiting).map(|i| {
            let url = format!("{ws}/v1/tunnel/{:064x}/wait?ttl=300", (1u128 << 100) + i as u128);
            async move {
                let mut s = kalit_transport::connect(&url).await.map_err(|e| e.message)?;
                match s.next().await {
                    Some(Ok(Message::Text(_))) => Ok(s),
                    other => Err(format!("no ready event: {other:?}")),
                }
            }
        }))
        .buffer_unordered(256);
        let (mut ok, mut errors) = (vec![], vec![]);
        while let Some(r) = open.next().await {
            match r {
                Ok(s) => ok.push(s),
                Err(e) => errors.push(e),
            }
        }
        (ok, errors)
    });
    let open_secs = t.elapsed().as_secs_f64();

    eprintln!("pairing {n} sessions at once, {} frames each way...", a.frames);
    let paired_gate = Arc::new(tokio::sync::Barrier::new(n + 1));
    // No session sends a frame (or ends) before the relay's gauges were read with all of them paired.
    let sampled_gate = Arc::new(tokio::sync::Barrier::new(n + 1));
    let done_gate = Arc::new(tokio::sync::Barrier::new(n + 1));
    let phones = Arc::new(phones);
    let t = Instant::now();
    let (results, seen_waiting, seen_paired) = rt.block_on(async {
        let mut tasks = vec![];
        for i in 0..n {
            let (phones, http, base, ws, relay_id) =
                (phones.clone(), http.clone(), base.clone(), ws.clone(), relay_id.clone());
            let (paired_gate, sampled_gate, done_gate, frames) =
                (paired_gate.clone(), sampled_gate.clone(), done_gate.clone(), a.frames);
            tasks.push(tokio::spawn(async move {
                let mut gated = false;
                let gates = (&*paired_gate, &*sampled_gate);
                let r = session(&phones[i], i, &http, &base, &ws, &relay_id, frames, gates, &mut gated).await;
                if !gated {
                    // A session that failed before pairing still meets the others at the gates, or they
                    // would wait forever.
                    paired_gate.wait().await;
                    sampled_gate.wait().await;
                }
                done_gate.wait().await;
                r
            }));
        }
        paired_gate.wait().await;
        let counts = tunnel_gauges(&http, &base).await;
        sampled_gate.wait().await;
        done_gate.wait().await;
        let mut results = vec![];
        for t in tasks {
            results.push(t.await.map_err(|e| e.to_string()).and_then(|r| r));
        }
        (results, counts.0, counts.1)
    });
    let active_secs = t.elapsed().as_secs_f64();
    let errors: Vec<&String> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    let rss = crate::bench_session::rss_kib(_relay.0.id())?;
    drop(idle);
    drop(_relay);
    let _ = std::fs::remove_dir_all(&tmp);

    let rows = [
        (
            "waiting tunnels opened",
            format!("{} of {}", a.waiting - idle_errors.len(), a.waiting),
            format!("{open_secs:.1} s"),
        ),
        (
            "at the peak: waiting / paired (the relay's tables)",
            format!("{seen_waiting} / {seen_paired}"),
            String::new(),
        ),
        (
            "sessions paired at once, each with its frames both ways",
            format!("{} of {n}", n - errors.len()),
            format!("{active_secs:.1} s"),
        ),
        ("errors", (idle_errors.len() + errors.len()).to_string(), String::new()),
        ("the relay process's resident memory at the end", format!("{:.0} MiB", rss / 1024.0), String::new()),
    ];
    if a.markdown {
        println!("| measure | value | time |\n|---|---|---|");
        for (k, v, t) in rows {
            println!("| {k} | {v} | {t} |");
        }
    } else {
        for (k, v, t) in rows {
            println!("{k:<58} {v:>14} {t:>8}");
        }
    }
    for e in idle_errors.iter().take(3).chain(errors.iter().take(3).copied()) {
        eprintln!("error: {e}");
    }
    if !idle_errors.is_empty() || !errors.is_empty() {
        return Err(CliError::new(ErrorCode::Unavailable, "some tunnels or sessions failed (see above)"));
    }
    Ok(())
}

/// The relay's waiting and paired tunnels, from its metrics.
async fn tunnel_gauges(http: &reqwest::Client, base: &str) -> (String, String) {
    let text = match http.get(format!("{base}/metrics")).send().await {
        Ok(r) => r.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    };
    let gauge = |name: &str| {
        text.lines().find_map(|l| l.strip_prefix(&format!("kalit_relay_tunnels_{name} "))).unwrap_or("?").to_string()
    };
    (gauge("waiting"), gauge("paired"))
}

async fn nonce(http: &reqwest::Client, base: &str) -> CliResult<Vec<u8>> {
    let r: NonceResponse =
        http.post(format!("{base}/v1/nonce")).send().await.map_err(internal)?.json().await.map_err(internal)?;
    Ok(r.nonce.into_vec())
}

type Ws = kalit_transport::Ws;

async fn event(s: &mut Ws) -> Result<TunnelEvent, String> {
    match tokio::time::timeout(std::time::Duration::from_secs(60), s.next()).await {
        Ok(Some(Ok(Message::Text(t)))) => serde_json::from_str(t.as_str()).map_err(|e| e.to_string()),
        other => Err(format!("expected an event, got {other:?}")),
    }
}

async fn frame(s: &mut Ws) -> Result<Vec<u8>, String> {
    match tokio::time::timeout(std::time::Duration::from_secs(60), s.next()).await {
        Ok(Some(Ok(Message::Binary(b)))) => Ok(b.to_vec()),
        other => Err(format!("expected a frame, got {other:?}")),
    }
}

/// One session: a computer waits, the phone joins with its device key; once every session is paired
/// (the first gate) and the relay's gauges were read (the second), `frames` frames go each way, checked
/// byte for byte.
#[allow(clippy::too_many_arguments)]
async fn session(
    phone: &Phone,
    i: usize,
    http: &reqwest::Client,
    base: &str,
    ws: &str,
    relay_id: &str,
    frames: usize,
    gates: (&tokio::sync::Barrier, &tokio::sync::Barrier),
    gated: &mut bool,
) -> Result<(), String> {
    let tunnel = format!("{:064x}", (2u128 << 100) + i as u128);
    let mut computer =
        kalit_transport::connect(&format!("{ws}/v1/tunnel/{tunnel}/wait?ttl=300")).await.map_err(|e| e.message)?;
    if !matches!(event(&mut computer).await?, TunnelEvent::Ready { .. }) {
        return Err("no ready event".into());
    }
    let nonce = nonce(http, base).await.map_err(|e| e.message)?;
    let st =
        Statement::device_request(relay_id, &nonce, &phone.login, &phone.device_id, namespace::TUNNEL_JOIN, &tunnel);
    let join = DeviceRequest {
        login: phone.login.clone().into(),
        device_id: phone.device_id.clone().into(),
        nonce: Base64::of(&nonce),
        relay_id: relay_id.into(),
        target: tunnel.clone(),
        signature: Base64::of(st.sign(&phone.key).map_err(|e| e.to_string())?),
        proof: None,
    };
    let mut ph = kalit_transport::connect(&format!("{ws}/v1/tunnel/{tunnel}/join")).await.map_err(|e| e.message)?;
    let text = serde_json::to_string(&join).map_err(|e| e.to_string())?;
    ph.send(Message::Text(text.into())).await.map_err(|e| e.to_string())?;
    match event(&mut ph).await? {
        TunnelEvent::Joined { .. } => {}
        other => return Err(format!("the phone was not let in: {other:?}")),
    }
    if !matches!(event(&mut computer).await?, TunnelEvent::Peer { .. }) {
        return Err("the computer got no peer event".into());
    }
    gates.0.wait().await;
    *gated = true;
    gates.1.wait().await;
    for k in 0..frames {
        let out = vec![(i + k) as u8; 1024];
        ph.send(Message::Binary(out.clone().into())).await.map_err(|e| e.to_string())?;
        if frame(&mut computer).await? != out {
            return Err("a frame changed on the way".into());
        }
        computer.send(Message::Binary(out.clone().into())).await.map_err(|e| e.to_string())?;
        if frame(&mut ph).await? != out {
            return Err("a frame changed on the way back".into());
        }
    }
    let _ = computer.close(None).await;
    let _ = ph.close(None).await;
    Ok(())
}
