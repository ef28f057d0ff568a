//! `kalit bench relay`: registrations per second and latency percentiles of a real relay (HTTP on
//! loopback, SQLite or PostgreSQL), against the relay's own cryptographic work per registration measured
//! in the same run (certificate chain check, proof signature check, attestation signature).

use kalit_proto::Base64;
use std::sync::Arc;
use std::time::Instant;

use clap::Args;
use kalit_core::KeyAlgorithm;
use kalit_core::keys::{self, PrivateKey};
use kalit_core::statement::{self, Statement};
use kalit_proto::ErrorCode;
use kalit_proto::relay::{Attestation, CertProof, NonceResponse, RegisterRequest};
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyUsagePurpose};

use crate::error::{CliError, CliResult};

#[derive(Debug, Args)]
pub struct RelayBenchArgs {
    /// Database: omit for SQLite in a temporary directory, or postgres://... (the bench adds its own
    /// tables there, as the relay does, and uses fresh logins).
    #[arg(long)]
    database: Option<String>,
    /// Registrations to time.
    #[arg(long, default_value_t = 2000)]
    registrations: usize,
    /// Concurrent clients.
    #[arg(long, default_value_t = 8)]
    clients: usize,
    /// Print a Markdown table row set.
    #[arg(long)]
    markdown: bool,
}

fn internal(e: impl std::fmt::Display) -> CliError {
    CliError::new(ErrorCode::Internal, e.to_string())
}

/// A certificate holder: the key and its chain (leaf, bench CA).
pub(crate) struct Person {
    key: PrivateKey,
    chain: Vec<Vec<u8>>,
}

/// `n` certificate holders under a new bench CA (returned as DER).
pub(crate) fn people(n: usize) -> CliResult<(Vec<u8>, Vec<Person>)> {
    let ca_key = PrivateKey::from_pkcs8(&keys::generate(KeyAlgorithm::P256)?)?;
    let mut p = CertificateParams::new(vec![]).map_err(internal)?;
    p.distinguished_name = kalit_core::csr::parse_subject("CN=Bench CA")?;
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign];
    let ca = p.self_signed(&ca_key).map_err(internal)?.der().to_vec();
    let issuer = Issuer::new(p, ca_key);
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let key = PrivateKey::from_pkcs8(&keys::generate(KeyAlgorithm::P256)?)?;
        let mut lp = CertificateParams::new(vec![]).map_err(internal)?;
        lp.distinguished_name = kalit_core::csr::parse_subject(&format!("CN=Bench {i}"))?;
        lp.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let cert = lp.signed_by(&key, &issuer).map_err(internal)?.der().to_vec();
        out.push(Person { key, chain: vec![cert, ca.clone()] });
    }
    Ok((ca, out))
}

fn request(p: &Person, relay_id: &str, nonce: &[u8], login: &str) -> CliResult<RegisterRequest> {
    registration(p, relay_id, nonce, login).map(|(r, _)| r)
}

/// A registration of a new device key for `login`, proven with `p`'s certificate; and that device key.
pub(crate) fn registration(
    p: &Person,
    relay_id: &str,
    nonce: &[u8],
    login: &str,
) -> CliResult<(RegisterRequest, PrivateKey)> {
    let device = PrivateKey::from_pkcs8(&keys::generate(KeyAlgorithm::Ed25519)?)?;
    let raw = device.public_key_raw().to_vec();
    let fp = statement::cert_fingerprint(&p.chain[0]);
    let sig = Statement::register(relay_id, nonce, login, &raw, &fp).sign_as_certificate(&p.key)?;
    let r = RegisterRequest {
        login: login.into(),
        device_key: Base64::of(&raw),
        device_name: "bench".into(),
        nonce: Base64::of(nonce),
        relay_id: relay_id.into(),
        proof: CertProof { chain: p.chain.iter().map(Base64::of).collect(), signature: Base64::of(sig) },
        approval: None,
    };
    Ok((r, device))
}

pub(crate) fn pct(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

pub fn run(a: RelayBenchArgs) -> CliResult {
    let n = a.registrations.max(a.clients).max(1);
    eprintln!("preparing {n} certificates...");
    let (ca, persons) = people(n)?;
    let tmp = tempfile_dir()?;
    let url = a.database.clone().unwrap_or_else(|| format!("sqlite://{}?mode=rwc", tmp.join("relay.db").display()));
    let backend = if url.starts_with("sqlite") { "SQLite" } else { "PostgreSQL" };
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().map_err(internal)?;
    let limits =
        kalit_relay::config::Limits { per_address_per_minute: 0, per_login_per_minute: 0, ..Default::default() };
    let (addr, state) = rt.block_on(async {
        let store = kalit_relay::Store::open(&url).await?;
        let identity = kalit_relay::Identity::load_or_create(&tmp, "bench relay")?;
        let state = kalit_relay::AppState::new(store, identity, vec![ca.clone()], limits);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.map_err(internal)?;
        let addr = listener.local_addr().map_err(internal)?;
        let app = kalit_relay::app(state.clone()).into_make_service_with_connect_info::<std::net::SocketAddr>();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Ok::<_, CliError>((addr, state))
    })?;
    let relay_id = state.identity.id().to_string();
    let base = format!("http://{addr}");
    let run_id = hex::encode(kalit_core::seal::random::<4>()?);

    // Baseline, same process: the relay's crypto per registration, one thread.
    let now = time::OffsetDateTime::now_utc();
    let sample: Vec<RegisterRequest> = persons
        .iter()
        .take(200.min(n))
        .enumerate()
        .map(|(i, p)| request(p, &relay_id, &[i as u8; 32], &format!("base-{i}")))
        .collect::<CliResult<_>>()?;
    let t = Instant::now();
    for r in &sample {
        let nonce = r.nonce.to_vec();
        let dk = r.device_key.to_vec();
        let v = statement::verify_proof(&r.proof, std::slice::from_ref(&ca), now, |fp| {
            Statement::register(&relay_id, &nonce, &r.login, &dk, fp)
        })?;
        state.identity.attest(Attestation {
            relay_id: relay_id.clone().into(),
            login: r.login.clone(),
            cert_fingerprint: v.fingerprint.into(),
            device_id: statement::key_id(&dk).into(),
            device_key: r.device_key.clone(),
            issued_at: 0,
            expires_at: 600,
        })?;
    }
    let crypto_ms = t.elapsed().as_secs_f64() * 1000.0 / sample.len() as f64;

    eprintln!("registering {n} logins through {} clients on {backend}...", a.clients);
    let persons = Arc::new(persons);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let start = Instant::now();
    let handles: Vec<_> = (0..a.clients)
        .map(|_| {
            let (persons, next, base, relay_id, run_id) =
                (persons.clone(), next.clone(), base.clone(), relay_id.clone(), run_id.clone());
            std::thread::spawn(move || -> CliResult<Vec<f64>> {
                let http = reqwest::blocking::Client::new();
                let mut lat = vec![];
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if i >= persons.len() {
                        return Ok(lat);
                    }
                    let t0 = Instant::now();
                    let nr: NonceResponse =
                        http.post(format!("{base}/v1/nonce")).send().and_then(|r| r.json()).map_err(internal)?;
                    let nonce = nr.nonce.to_vec();
                    let req = request(&persons[i], &relay_id, &nonce, &format!("bench-{run_id}-{i}"))?;
                    let resp = http.post(format!("{base}/v1/register")).json(&req).send().map_err(internal)?;
                    if resp.status().as_u16() != 201 {
                        return Err(internal(format!("registration answered {}", resp.status())));
                    }
                    lat.push(t0.elapsed().as_secs_f64() * 1000.0);
                }
            })
        })
        .collect();
    let mut lat = vec![];
    for h in handles {
        lat.extend(h.join().map_err(|_| internal("a client thread panicked"))??);
    }
    let secs = start.elapsed().as_secs_f64();

    // Non-enumeration, measured: answer time of a registration with a bad signature for a login that
    // exists and for one that does not, interleaved, one client. The answers themselves are identical
    // (tested); this measures how close their timing is.
    let http = reqwest::blocking::Client::new();
    let (mut taken, mut free) = (vec![], vec![]);
    for i in 0..400 {
        let nr: NonceResponse =
            http.post(format!("{base}/v1/nonce")).send().and_then(|r| r.json()).map_err(internal)?;
        let nonce = nr.nonce.to_vec();
        let login = if i % 2 == 0 { format!("bench-{run_id}-0") } else { format!("free-{run_id}-{i}") };
        let mut req = request(&persons[0], &relay_id, &nonce, &login)?;
        req.proof.signature = Base64::of([7u8; 72]);
        let t0 = Instant::now();
        let status = http.post(format!("{base}/v1/register")).json(&req).send().map_err(internal)?.status();
        let ms = t0.elapsed().as_secs_f64() * 1000.0;
        if status.as_u16() != 400 {
            return Err(internal(format!("a forged registration answered {status}")));
        }
        if i % 2 == 0 { taken.push(ms) } else { free.push(ms) }
    }
    taken.sort_by(f64::total_cmp);
    free.sort_by(f64::total_cmp);
    let (t50, f50) = (pct(&taken, 0.5), pct(&free, 0.5));
    rt.block_on(state.store.close());
    drop(rt);
    let _ = std::fs::remove_dir_all(&tmp);
    lat.sort_by(f64::total_cmp);
    let (p50, p99) = (pct(&lat, 0.5), pct(&lat, 0.99));
    let rate = lat.len() as f64 / secs;
    let line = |what: &str, ours: String, base: String, ratio: f64| {
        if a.markdown {
            println!("| {what} | {ours} | {base} | {ratio:.2} |");
        } else {
            println!("{what:<46} {ours:>12} {base:>16} {ratio:>8.2}");
        }
    };
    if a.markdown {
        println!(
            "| relay ({backend}, {} clients, {} registrations) | relay | baseline | ratio |\n|---|---|---|---|",
            a.clients,
            lat.len()
        );
    } else {
        println!("relay on {backend}, {} clients, {} registrations ({:.1} s)", a.clients, lat.len(), secs);
        println!("{:<46} {:>12} {:>16} {:>8}", "measurement", "relay", "baseline", "ratio");
    }
    let ops = 1000.0 / crypto_ms;
    line("registrations per second", format!("{rate:.0}/s"), format!("{ops:.0}/s crypto, 1 core"), rate / ops);
    line(
        "p50 latency (nonce + register)",
        format!("{p50:.2} ms"),
        format!("{crypto_ms:.2} ms crypto"),
        p50 / crypto_ms,
    );
    line(
        "p99 latency (nonce + register)",
        format!("{p99:.2} ms"),
        format!("{crypto_ms:.2} ms crypto"),
        p99 / crypto_ms,
    );
    line(
        "forged proof, existing login vs free (p50)",
        format!("{t50:.3} ms"),
        format!("{f50:.3} ms free login"),
        t50 / f50,
    );
    Ok(())
}

fn tempfile_dir() -> CliResult<std::path::PathBuf> {
    let d = std::env::temp_dir().join(format!("kalit-bench-relay-{}", std::process::id()));
    std::fs::create_dir_all(&d).map_err(CliError::io("cannot create a temporary directory"))?;
    Ok(d)
}
