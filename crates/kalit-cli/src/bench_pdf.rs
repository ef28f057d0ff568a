//! `kalit bench pdf`: a PAdES signature on a large PDF against reading and hashing the same file once
//! with `openssl dgst -sha256`; RFC 3161 tokens from the RA's TSA against `openssl ts -reply`, in the same
//! run.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use kalit_core::cms::{PreparedCms, Profile};
use kalit_core::digest::HashAlg;
use kalit_core::keys::{self, PrivateKey};
use kalit_core::{KeyAlgorithm, SignScheme, pdf};
use kalit_proto::ErrorCode;

use crate::error::{CliError, CliResult};

#[derive(Debug, Args)]
pub struct PdfBenchArgs {
    /// Size of the PDF signed, in MiB.
    #[arg(long, default_value_t = 100)]
    mib: u64,
    /// Rounds of each side (the best counts).
    #[arg(long, default_value_t = 3)]
    rounds: u32,
    /// Timestamp tokens asked for, on each side.
    #[arg(long, default_value_t = 200)]
    tokens: u32,
    /// Directory for the temporary files [default: the system temp directory].
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Print a Markdown table (for docs/PERFORMANCE.md) instead of plain text.
    #[arg(long)]
    markdown: bool,
}

fn internal(e: impl std::fmt::Display) -> CliError {
    CliError::new(ErrorCode::Internal, e.to_string())
}

/// A one-page PDF whose page content is `mib` MiB long (a comment-filled stream), with a correct
/// cross-reference table, written to `path`.
fn write_big_pdf(path: &Path, mib: u64) -> CliResult {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).map_err(CliError::io("cannot create the PDF"))?);
    let mut offsets = vec![];
    let mut at = 0u64;
    let put = |f: &mut std::io::BufWriter<std::fs::File>, b: &[u8], at: &mut u64| -> CliResult {
        f.write_all(b).map_err(CliError::io("cannot write the PDF"))?;
        *at += b.len() as u64;
        Ok(())
    };
    put(&mut f, b"%PDF-1.7\n", &mut at)?;
    for (n, body) in [
        (1, "<</Type/Catalog/Pages 2 0 R>>".to_string()),
        (2, "<</Type/Pages/Kids[3 0 R]/Count 1>>".to_string()),
        (3, "<</Type/Page/Parent 2 0 R/MediaBox[0 0 595 842]/Contents 4 0 R>>".to_string()),
    ] {
        offsets.push(at);
        put(&mut f, format!("{n} 0 obj\n{body}\nendobj\n").as_bytes(), &mut at)?;
    }
    let line = b"% kalit bench: a long page content stream of comments, 64 bytes\n";
    let lines = (mib << 20) / line.len() as u64;
    offsets.push(at);
    put(&mut f, format!("4 0 obj\n<</Length {}>>\nstream\n", lines * line.len() as u64).as_bytes(), &mut at)?;
    for _ in 0..lines {
        put(&mut f, line, &mut at)?;
    }
    put(&mut f, b"\nendstream\nendobj\n", &mut at)?;
    let xref = at;
    put(&mut f, b"xref\n0 5\n0000000000 65535 f \n", &mut at)?;
    for o in offsets {
        put(&mut f, format!("{o:010} 00000 n \n").as_bytes(), &mut at)?;
    }
    put(&mut f, format!("trailer\n<</Size 5/Root 1 0 R>>\nstartxref\n{xref}\n%%EOF\n").as_bytes(), &mut at)?;
    f.flush().map_err(CliError::io("cannot write the PDF"))
}

/// A directory of this run, removed when the bench ends (also on an error).
struct TempDir(PathBuf);

impl TempDir {
    fn new(parent: &Path) -> CliResult<TempDir> {
        let d = parent.join(format!("kalit-bench-pdf-{}", std::process::id()));
        std::fs::create_dir_all(&d).map_err(CliError::io("cannot create a temporary directory"))?;
        Ok(TempDir(d))
    }
    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn best(rounds: u32, mut f: impl FnMut() -> CliResult<Duration>) -> CliResult<Duration> {
    let mut best = Duration::MAX;
    for _ in 0..rounds.max(1) {
        best = best.min(f()?);
    }
    Ok(best)
}

pub fn run(a: PdfBenchArgs) -> CliResult {
    if !Command::new("openssl").arg("version").output().is_ok_and(|o| o.status.success()) {
        return Err(CliError::new(ErrorCode::Unavailable, "the baselines are OpenSSL's: install openssl"));
    }
    let tmp = TempDir::new(&a.dir.clone().unwrap_or_else(std::env::temp_dir))?;
    let big = tmp.path().join("big.pdf");
    eprintln!("writing a {} MiB PDF...", a.mib);
    write_big_pdf(&big, a.mib)?;

    // A signer: P-256 key and a self-signed certificate, in memory.
    let key = PrivateKey::from_pkcs8(&keys::generate(KeyAlgorithm::P256)?)?;
    let mut params = rcgen::CertificateParams::new(vec![]).map_err(internal)?;
    params.distinguished_name = kalit_core::csr::parse_subject("CN=Bench,C=UZ")?;
    let cert = params.self_signed(&key).map_err(internal)?.der().to_vec();

    let mut rows: Vec<(String, String, String, f64, &str)> = vec![];
    // Baseline: read and hash the file once.
    let dgst = best(a.rounds, || {
        let t = Instant::now();
        let out = Command::new("openssl")
            .args(["dgst", "-sha256"])
            .arg(&big)
            .stdout(Stdio::null())
            .status()
            .map_err(CliError::io("cannot run openssl dgst"))?;
        if !out.success() {
            return Err(internal("openssl dgst failed"));
        }
        Ok(t.elapsed())
    })?;
    // Ours: read, prepare (parse, incremental update, byte range), digest, sign, complete, write.
    let out_path = tmp.path().join("signed.pdf");
    let mut inspect_time = Duration::MAX;
    let sign = best(a.rounds, || {
        let t = Instant::now();
        // Read with room for the new revision, so appending it does not move the 100 MiB.
        let data = {
            use std::io::Read;
            let mut f = std::fs::File::open(&big).map_err(CliError::io("cannot read the PDF"))?;
            let len = f.metadata().map_err(CliError::io("cannot read the PDF"))?.len() as usize;
            let mut v = Vec::with_capacity(len + 2 * pdf::DEFAULT_RESERVE + 64 * 1024);
            f.read_to_end(&mut v).map_err(CliError::io("cannot read the PDF"))?;
            v
        };
        let spec = pdf::Spec {
            field: None,
            reason: None,
            name: Some("Bench"),
            time: time::OffsetDateTime::now_utc(),
            reserve: pdf::DEFAULT_RESERVE,
            kind: pdf::Kind::Signature,
            visible: None,
            lang: Default::default(),
        };
        let t_read = t.elapsed();
        // Prepared and hashed at once: the original bytes hash on a second thread while lopdf parses.
        let (prepared, mut digests) = pdf::prepare_and_digest(data, &spec, &[HashAlg::Sha256])?;
        let digest = digests.pop().unwrap_or_default();
        let t_prep = t.elapsed();
        let scheme = SignScheme::EcdsaP256Sha256;
        let cms = PreparedCms::with_profile(
            std::slice::from_ref(&cert),
            scheme,
            &digest,
            Profile::Pades,
            time::OffsetDateTime::now_utc(),
        )?;
        let sig = key.sign(scheme, &cms.to_be_signed())?;
        let signed = prepared.complete(&cms.finish(&sig))?;
        let elapsed = t.elapsed();
        std::fs::write(&out_path, &signed).map_err(CliError::io("cannot write the signed PDF"))?;
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        eprintln!(
            "  read {:.0} ms, prepare and digest {:.0} ms, sign and complete {:.1} ms; then writing the signed file {:.0} ms",
            ms(t_read),
            ms(t_prep - t_read),
            ms(elapsed - t_prep),
            ms(t.elapsed() - elapsed)
        );
        // Verification's reading of the signed file, timed apart: parse, byte ranges, digest.
        let t = Instant::now();
        for s in pdf::signatures(&signed)? {
            s.digest(&signed, HashAlg::Sha256);
        }
        inspect_time = inspect_time.min(t.elapsed());
        Ok(elapsed)
    })?;
    let s = |d: Duration| format!("{:.0} ms", d.as_secs_f64() * 1000.0);
    rows.push((
        format!("PAdES on a {} MiB PDF (read, prepare, digest, sign, complete in memory)", a.mib),
        s(sign),
        format!("{} (openssl dgst -sha256)", s(dgst)),
        sign.as_secs_f64() / dgst.as_secs_f64(),
        "<= 1.5",
    ));
    rows.push((
        format!("reading the signed {} MiB PDF back (parse, byte ranges, digest)", a.mib),
        s(inspect_time),
        format!("{} (openssl dgst -sha256)", s(dgst)),
        inspect_time.as_secs_f64() / dgst.as_secs_f64(),
        "-",
    ));
    drop(std::fs::remove_file(&big));

    // Timestamps: the RA's TSA over HTTP on loopback against `openssl ts -reply` with its own TSA key.
    let (ours_tps, openssl_tps) = tsa_bench(tmp.path(), a.tokens)?;
    rows.push((
        format!("RFC 3161 tokens per second ({} requests, P-256 TSA key)", a.tokens),
        format!("{ours_tps:.0}/s (kalit ra serve, HTTP)"),
        format!("{openssl_tps:.0}/s (openssl ts -reply)"),
        ours_tps / openssl_tps,
        ">= 1",
    ));

    if a.markdown {
        println!("| measurement | Kalit | baseline | ratio | goal |\n|---|---|---|---|---|");
        for (w, o, b, r, g) in &rows {
            println!("| {w} | {o} | {b} | {r:.2} | {g} |");
        }
    } else {
        for (w, o, b, r, g) in &rows {
            println!("{w}\n    Kalit {o}, baseline {b}, ratio {r:.2} (goal {g})");
        }
    }
    Ok(())
}

/// Tokens per second from `kalit ra serve`'s `/v1/timestamp` (one client, sequential requests, over
/// loopback HTTP) and from `openssl ts -reply` (one process per token, which is how it is run).
fn tsa_bench(dir: &Path, tokens: u32) -> CliResult<(f64, f64)> {
    let tokens = tokens.max(1);
    let pass = kalit_core::SecretString::new("bench passphrase 123".into());
    let ra_dir = dir.join("ra");
    kalit_ra::ca::init(&ra_dir, "Bench", KeyAlgorithm::P256, true, 30, &pass)?;
    let ca = kalit_ra::ca::open(&ra_dir, &pass)?;
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().map_err(internal)?;
    let addr = rt.block_on(async {
        let mut state = kalit_ra::RaState::open(&ra_dir, ca, 60).await?;
        state.timestamp_limiter = Arc::new(kalit_service::RateLimiter::new(0, 1));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.map_err(internal)?;
        let addr = listener.local_addr().map_err(internal)?;
        let app = kalit_ra::app(state).into_make_service_with_connect_info::<std::net::SocketAddr>();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Ok::<_, CliError>(addr)
    })?;
    let url = format!("http://{addr}/v1/timestamp");
    let data = b"a signature value to timestamp";
    let t = Instant::now();
    for _ in 0..tokens {
        kalit_transport::public_data::timestamp(&url, data)?;
    }
    let ours = f64::from(tokens) / t.elapsed().as_secs_f64();

    // OpenSSL's TSA, configured like ours: a P-256 key and certificate with the timeStamping usage.
    let key = dir.join("tsa.key");
    let crt = dir.join("tsa.pem");
    let ok = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2"])
        .args(["-subj", "/CN=OpenSSL TSA", "-addext", "extendedKeyUsage=critical,timeStamping"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&crt)
        .stderr(Stdio::null())
        .status()
        .map_err(CliError::io("cannot run openssl req"))?;
    if !ok.success() {
        return Err(internal("openssl req failed"));
    }
    let cnf = dir.join("tsa.cnf");
    std::fs::write(
        &cnf,
        format!(
            "[tsa]\ndefault_tsa = t\n[t]\nserial = {}\nsigner_cert = {}\nsigner_key = {}\nsigner_digest = sha256\ndefault_policy = 1.3.6.1.4.1.59999.1.3.1\ndigests = sha256, sha384, sha512\naccuracy = secs:1\ness_cert_id_alg = sha256\n",
            dir.join("serial").display(),
            crt.display(),
            key.display()
        ),
    )
    .map_err(CliError::io("cannot write tsa.cnf"))?;
    std::fs::write(dir.join("serial"), "01\n").map_err(CliError::io("cannot write the serial file"))?;
    let doc = dir.join("value.bin");
    std::fs::write(&doc, data).map_err(CliError::io("cannot write"))?;
    let query = dir.join("q.tsq");
    let ok = Command::new("openssl")
        .args(["ts", "-query", "-sha256", "-cert", "-data"])
        .arg(&doc)
        .arg("-out")
        .arg(&query)
        .stderr(Stdio::null())
        .status()
        .map_err(CliError::io("cannot run openssl ts"))?;
    if !ok.success() {
        return Err(internal("openssl ts -query failed"));
    }
    let reply = dir.join("r.tsr");
    let t = Instant::now();
    for _ in 0..tokens {
        let ok = Command::new("openssl")
            .args(["ts", "-reply", "-config"])
            .arg(&cnf)
            .arg("-queryfile")
            .arg(&query)
            .arg("-out")
            .arg(&reply)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map_err(CliError::io("cannot run openssl ts"))?;
        if !ok.success() {
            return Err(internal("openssl ts -reply failed"));
        }
    }
    let theirs = f64::from(tokens) / t.elapsed().as_secs_f64();
    Ok((ours, theirs))
}
