//! `kalit bench`: speed measured as ratios against a baseline run in the same invocation:
//! signing against `openssl speed`, hashing against `openssl dgst -sha256`, unlock against bare Argon2id.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use clap::Args;
use kalit_core::keys::{self, PrivateKey};
use kalit_core::{KeyAlgorithm, SecretString};
use kalit_proto::ErrorCode;
use kalit_vault::{KdfParams, PinPolicy, Vault};

use crate::error::{CliError, CliResult};

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct BenchArgs {
    #[command(subcommand)]
    what: Option<BenchWhat>,
    /// Seconds per signing measurement (ours and OpenSSL's).
    #[arg(long, default_value_t = 2)]
    seconds: u32,
    /// Alternating rounds per signing algorithm (the best of each side counts).
    #[arg(long, default_value_t = 3)]
    rounds: u32,
    /// Size of the file hashed, in MiB.
    #[arg(long, default_value_t = 1024)]
    hash_mib: u64,
    /// Unlocks (and bare Argon2id runs) to time, interleaved.
    #[arg(long, default_value_t = 20)]
    unlocks: u32,
    /// Directory for the temporary file and vault [default: the system temp directory].
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Print a Markdown table (for docs/PERFORMANCE.md) instead of plain text.
    #[arg(long)]
    markdown: bool,
}

#[derive(Debug, clap::Subcommand)]
enum BenchWhat {
    /// Registrations per second and latency of a relay on SQLite or PostgreSQL.
    Relay(crate::bench_relay::RelayBenchArgs),
    /// End-to-end signing latency through agent, relay and phone against the phone's own signing time;
    /// the relay's CPU per session and memory per waiting tunnel.
    Session(crate::bench_session::SessionBenchArgs),
    /// A PAdES signature on a large PDF against hashing it with OpenSSL; RFC 3161 tokens per second from
    /// the RA's TSA against `openssl ts -reply`.
    Pdf(crate::bench_pdf::PdfBenchArgs),
    /// Complete signing sessions from many computers and phones at once against a relay process, and
    /// against a bare WebSocket forwarder in the same run: sessions per second, p50/p99, errors, the
    /// server's CPU per session (the part of it in the kernel, and the relay's less the Ed25519 work the
    /// forwarder skips) and memory over time.
    Load(crate::bench_load::LoadBenchArgs),
    /// The relay's capacity at once: many waiting tunnels held open while many sessions are paired and
    /// exchange frames; errors must be zero.
    Tunnels(crate::bench_tunnels::TunnelsBenchArgs),
    /// A large document streamed to the phone through the relay, against a plain copy through the same
    /// relay in the same run.
    Stream(crate::bench_stream::StreamBenchArgs),
    /// The load bench's baseline server (started by `kalit bench load`).
    #[command(hide = true)]
    Forwarder(crate::bench_load::ForwarderArgs),
}

struct Row {
    what: String,
    ours: String,
    baseline: String,
    ratio: f64,
    goal: &'static str,
}

fn openssl_available() -> bool {
    Command::new("openssl").arg("version").output().is_ok_and(|o| o.status.success())
}

/// `openssl speed -mr` prints `+F2:k:bits:sign/s:verify/s` (RSA), `+F4` (ECDSA), `+F6:k:bits:name:sign/s:verify/s` (EdDSA).
fn openssl_speed(alg: KeyAlgorithm, seconds: u32) -> CliResult<Option<f64>> {
    let name = match alg {
        KeyAlgorithm::Rsa2048 => "rsa2048",
        KeyAlgorithm::Rsa3072 => "rsa3072",
        KeyAlgorithm::Rsa4096 => "rsa4096",
        KeyAlgorithm::P256 => "ecdsap256",
        KeyAlgorithm::Ed25519 => "ed25519",
    };
    let out = Command::new("openssl")
        .args(["speed", "-mr", "-seconds", &seconds.to_string(), name])
        .output()
        .map_err(CliError::io("cannot run openssl speed"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    for line in text.lines() {
        let f: Vec<&str> = line.split(':').collect();
        let rate = match f.first().copied() {
            Some("+F2") | Some("+F4") if f.len() >= 5 => f[3].parse().ok(),
            Some("+F6") if f.len() >= 6 => f[4].parse().ok(),
            _ => None,
        };
        if rate.is_some() {
            return Ok(rate);
        }
    }
    Ok(None)
}

fn sign_rate(alg: KeyAlgorithm, seconds: u32) -> CliResult<f64> {
    let key = PrivateKey::from_pkcs8(&keys::generate(alg)?)?;
    let scheme = key.default_scheme();
    let msg = [0x5au8; 32];
    let deadline = Duration::from_secs(seconds as u64);
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < deadline {
        for _ in 0..16 {
            key.sign(scheme, &msg)?;
        }
        n += 16;
    }
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

/// The median of `v` (sorted in place; of an even count, the upper middle value). Every bench uses this one.
pub(crate) fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn fmt_rate(r: f64) -> String {
    format!("{r:.0}/s")
}

pub fn run(a: BenchArgs) -> CliResult {
    match a.what {
        Some(BenchWhat::Relay(r)) => return crate::bench_relay::run(r),
        Some(BenchWhat::Session(s)) => return crate::bench_session::run(s),
        Some(BenchWhat::Pdf(p)) => return crate::bench_pdf::run(p),
        Some(BenchWhat::Load(l)) => return crate::bench_load::run(l),
        Some(BenchWhat::Tunnels(t)) => return crate::bench_tunnels::run(t),
        Some(BenchWhat::Stream(s)) => return crate::bench_stream::run(s),
        Some(BenchWhat::Forwarder(f)) => return crate::bench_load::forwarder(f),
        None => {}
    }
    let have_openssl = openssl_available();
    if !have_openssl {
        eprintln!("note: openssl not found; signing and hashing baselines are skipped");
    }
    let base = a.dir.clone().unwrap_or_else(std::env::temp_dir).join(format!("kalit-bench-{}", std::process::id()));
    std::fs::create_dir_all(&base).map_err(CliError::io("cannot create the bench directory"))?;
    let result = measure(&a, &base, have_openssl);
    let _ = std::fs::remove_dir_all(&base);
    let rows = result?;
    if a.markdown {
        println!("| measurement | Kalit | baseline | ratio | goal |\n|---|---|---|---|---|");
        for r in &rows {
            println!("| {} | {} | {} | {:.3} | {} |", r.what, r.ours, r.baseline, r.ratio, r.goal);
        }
    } else {
        println!("{:<42} {:>14} {:>14} {:>8}  goal", "measurement", "kalit", "baseline", "ratio");
        for r in &rows {
            println!("{:<42} {:>14} {:>14} {:>8.3}  {}", r.what, r.ours, r.baseline, r.ratio, r.goal);
        }
    }
    Ok(())
}

fn measure(a: &BenchArgs, base: &std::path::Path, have_openssl: bool) -> CliResult<Vec<Row>> {
    let mut rows = Vec::new();
    // Signing: per algorithm, rounds alternate Kalit and OpenSSL so that load changes hit both; best of each.
    for alg in KeyAlgorithm::GENERATABLE {
        let (mut ours, mut theirs) = (0f64, None::<f64>);
        for round in 0..a.rounds.max(1) {
            eprintln!("signing {alg}: round {} of {}", round + 1, a.rounds.max(1));
            ours = ours.max(sign_rate(alg, a.seconds)?);
            if have_openssl && let Some(r) = openssl_speed(alg, a.seconds)? {
                theirs = Some(theirs.map_or(r, |t: f64| t.max(r)));
            }
        }
        rows.push(Row {
            what: format!("sign {alg} (ops/s, one core, best of {})", a.rounds.max(1)),
            ours: fmt_rate(ours),
            baseline: theirs.map(|b| format!("{} openssl", fmt_rate(b))).unwrap_or_else(|| "n/a".into()),
            ratio: theirs.map(|b| ours / b).unwrap_or(f64::NAN),
            goal: ">= 0.95",
        });
    }
    // Hashing.
    if a.hash_mib > 0 {
        let path = base.join("hash-input.bin");
        eprintln!("hashing: writing a {} MiB file...", a.hash_mib);
        {
            use std::io::Write;
            let mut f = std::fs::File::create(&path).map_err(CliError::io("cannot create the hash input"))?;
            let block: Vec<u8> = (0..(1u32 << 20)).map(|i| (i.wrapping_mul(2654435761) >> 24) as u8).collect();
            for _ in 0..a.hash_mib {
                f.write_all(&block).map_err(CliError::io("cannot write the hash input"))?;
            }
        }
        let exe = std::env::current_exe().map_err(CliError::io("cannot find the kalit executable"))?;
        let mut best_ours = f64::MAX;
        let mut best_theirs = f64::MAX;
        for round in 0..3 {
            eprintln!("hashing: round {} of 3", round + 1);
            // `kalit hash` as a process, like `openssl dgst`: same start-up costs on both sides.
            let t = Instant::now();
            let o = Command::new(&exe).arg("hash").arg(&path).output().map_err(CliError::io("kalit hash"))?;
            best_ours = best_ours.min(t.elapsed().as_secs_f64());
            let d = String::from_utf8_lossy(&o.stdout).split_whitespace().next().unwrap_or_default().to_string();
            if have_openssl {
                let t = Instant::now();
                let o = Command::new("openssl")
                    .args(["dgst", "-sha256", "-r"])
                    .arg(&path)
                    .output()
                    .map_err(CliError::io("openssl dgst"))?;
                best_theirs = best_theirs.min(t.elapsed().as_secs_f64());
                let theirs = String::from_utf8_lossy(&o.stdout);
                if d.len() != 64 || !theirs.starts_with(&d) {
                    return Err(CliError::new(ErrorCode::Internal, "kalit hash and openssl dgst disagree"));
                }
            }
        }
        let mib = a.hash_mib as f64;
        rows.push(Row {
            what: format!("`kalit hash` vs `openssl dgst -sha256`, {} MiB file (best of 3)", a.hash_mib),
            ours: format!("{:.0} MiB/s", mib / best_ours),
            baseline: if have_openssl { format!("{:.0} MiB/s openssl", mib / best_theirs) } else { "n/a".into() },
            ratio: if have_openssl { best_theirs / best_ours } else { f64::NAN },
            goal: ">= 0.95",
        });
        let _ = std::fs::remove_file(&path);
    }
    // Unlock against bare Argon2id with the same parameters.
    eprintln!("unlock: {} unlocks and {} bare Argon2id derivations, interleaved...", a.unlocks, a.unlocks);
    let pin = SecretString::new("bench-pin-123456".into());
    let vault = Vault::init(&base.join("vault"), &pin, PinPolicy::default())?;
    let kdf: KdfParams = vault.kdf();
    let salt = [7u8; 16];
    let n = a.unlocks.max(1) as usize;
    let (mut unlock_ms, mut bare_ms) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for _ in 0..n {
        let t = Instant::now();
        drop(vault.unlock(&pin)?);
        unlock_ms.push(t.elapsed().as_secs_f64() * 1000.0);
        let t = Instant::now();
        drop(kdf.derive(&pin, &salt)?);
        bare_ms.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let (u, b) = (median(&mut unlock_ms), median(&mut bare_ms));
    rows.push(Row {
        what: format!("unlock (ms, median of {n}; m={} MiB t={} p={})", kdf.m_kib / 1024, kdf.t, kdf.p),
        ours: format!("{u:.1} ms"),
        baseline: format!("{b:.1} ms argon2id"),
        ratio: b / u,
        goal: ">= 0.95 (within 5 %)",
    });
    Ok(rows)
}
