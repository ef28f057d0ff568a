//! `kalit verify` and `kalit hash`: the agent's verification and hashing functions on the command line.

use std::fs::File;
use std::io::{IsTerminal, Read};
use std::path::{Path, PathBuf};

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use kalit_core::digest::{HashAlg, Hasher};
use kalit_core::verify::{Document, looks_like_cms, verify_document};
use kalit_core::{CoreError, x509};
use kalit_proto::ErrorCode;
use time::OffsetDateTime;

use crate::error::{CliError, CliResult};
use crate::files::{self, MAX_DOCUMENT};

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The signed document.
    #[arg(long)]
    file: PathBuf,
    /// The signature: raw bytes, or CMS SignedData in DER or PEM.
    #[arg(long)]
    sig: PathBuf,
    /// The signer's certificate (needed for raw signatures; optional for CMS that carries it).
    #[arg(long)]
    cert: Option<PathBuf>,
    /// Trust anchors (PEM/DER CA certificates): also check the chain, validity and key usage.
    #[arg(long)]
    ca: Option<PathBuf>,
    /// Print a JSON report on standard output.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct HashArgs {
    /// The file to hash.
    file: PathBuf,
    /// Hash algorithm.
    #[arg(long, default_value = "sha256", value_parser = ["sha256", "sha384", "sha512"])]
    alg: String,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// Size from which `kalit hash` shows a progress bar on a terminal.
const PROGRESS_FROM: u64 = 64 << 20;

/// Streams a file through a hasher; a progress bar on stderr when `progress` and the file is large.
pub fn hash_file(path: &Path, alg: HashAlg, progress: bool) -> CliResult<(Vec<u8>, u64)> {
    let mut f = File::open(path).map_err(CliError::io(format!("cannot open {}", path.display())))?;
    let size = f.metadata().map(|m| m.len()).unwrap_or(0);
    let bar = (progress && size >= PROGRESS_FROM && std::io::stderr().is_terminal()).then(|| {
        let b = ProgressBar::new(size);
        if let Ok(style) =
            ProgressStyle::with_template("{msg} [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}")
        {
            b.set_style(style.progress_chars("=> "));
        }
        b.set_message(format!("hashing {}", path.display()));
        b
    });
    let mut h = Hasher::new(alg);
    let mut buf = vec![0u8; 64 << 10];
    let mut total = 0u64;
    loop {
        let n = match f.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(CliError::io(format!("cannot read {}", path.display()))(e)),
        };
        h.update(&buf[..n]);
        total += n as u64;
        if let Some(b) = &bar {
            b.set_position(total);
        }
    }
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    Ok((h.finish(), total))
}

pub fn hash(a: HashArgs) -> CliResult {
    let alg: HashAlg = a.alg.parse()?;
    let (digest, size) = hash_file(&a.file, alg, true)?;
    if a.json {
        println!(
            "{}",
            serde_json::json!({"algorithm": alg.name(), "digest": hex::encode(&digest), "file": a.file.display().to_string(), "size": size})
        );
    } else {
        println!("{}  {}", hex::encode(&digest), a.file.display());
    }
    Ok(())
}

pub fn verify(a: VerifyArgs) -> CliResult {
    let sig = files::read_limited(&a.sig, 1 << 20, "signature file")?;
    let given_certs = match &a.cert {
        Some(p) => x509::parse_cert_bundle(&files::read_limited(p, 1 << 20, "certificate file")?)?,
        None => Vec::new(),
    };
    let anchors = match &a.ca {
        Some(p) => x509::parse_cert_bundle(&files::read_limited(p, 4 << 20, "CA file")?)?,
        None => Vec::new(),
    };
    let doc = &a.file;
    let mut digest_of = |h: HashAlg| -> Result<Vec<u8>, CoreError> {
        hash_file(doc, h, false).map(|(d, _)| d).map_err(|e| CoreError::InvalidInput(e.message))
    };
    let mut bytes =
        || files::read_limited(doc, MAX_DOCUMENT, "document").map_err(|e| CoreError::InvalidInput(e.message));
    let cms = looks_like_cms(&sig);
    let (report, result) = verify_document(
        Document { digest_of: &mut digest_of, bytes: &mut bytes },
        &sig,
        cms.as_deref(),
        &given_certs,
        &anchors,
        OffsetDateTime::now_utc(),
    );
    let outcome = result.map_err(CliError::from);
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).map_err(|e| CliError::new(ErrorCode::Internal, e.to_string()))?
        );
    } else if report.valid {
        println!("Signature is VALID ({} {}).", report.format, report.scheme.as_deref().unwrap_or(""));
        if let Some(s) = &report.signer {
            println!("Signer:  {}\nIssuer:  {}\nSerial:  {}", s.subject, s.issuer, s.serial);
        }
        if let Some(t) = &report.signing_time {
            println!("Signed:  {t} (signer's clock)");
        }
        match &report.chain {
            Some(c) => println!("Chain:   trusted: {}", c.path.join(" <- ")),
            None => println!("Chain:   not checked (give --ca CA.pem to check the certificate chain and validity)"),
        }
    }
    outcome
}
