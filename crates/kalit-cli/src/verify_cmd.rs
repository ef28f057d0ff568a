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
    /// The signature: raw bytes, or CMS SignedData in DER or PEM. Leave it out for a signed PDF: its
    /// signatures are inside it.
    #[arg(long)]
    sig: Option<PathBuf>,
    /// The signer's certificate (needed for raw signatures; optional for CMS that carries it).
    #[arg(long)]
    cert: Option<PathBuf>,
    /// Trust anchors (PEM/DER CA certificates): also check the chain, validity and key usage.
    #[arg(long)]
    ca: Option<PathBuf>,
    /// A CRL (DER or PEM) to check the signer's certificate against (repeat for several). A PDF's own
    /// validation data (PAdES-B-LT) is used without it.
    #[arg(long = "crl", value_name = "FILE")]
    crls: Vec<PathBuf>,
    /// Print a JSON report on standard output.
    #[arg(long)]
    json: bool,
}

/// Reads CRLs given with --crl (DER, or PEM `X509 CRL` blocks).
fn read_crls(paths: &[PathBuf]) -> CliResult<Vec<Vec<u8>>> {
    let mut out = vec![];
    for p in paths {
        let bytes = files::read_limited(p, 16 << 20, "CRL file")?;
        if bytes.windows(10).any(|w| w == b"-----BEGIN") {
            let blocks = pem::parse_many(&bytes)
                .map_err(|e| CliError::new(ErrorCode::InvalidInput, format!("{}: bad PEM: {e}", p.display())))?;
            out.extend(blocks.into_iter().filter(|b| b.tag() == "X509 CRL").map(|b| b.into_contents()));
        } else {
            out.push(bytes);
        }
    }
    Ok(out)
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
    let Some(sig_path) = &a.sig else { return verify_pdf(&a) };
    let sig = files::read_limited(sig_path, 1 << 20, "signature file")?;
    let given_certs = match &a.cert {
        Some(p) => x509::parse_cert_bundle(&files::read_limited(p, 1 << 20, "certificate file")?)?,
        None => Vec::new(),
    };
    let anchors = match &a.ca {
        Some(p) => x509::parse_cert_bundle(&files::read_limited(p, 4 << 20, "CA file")?)?,
        None => Vec::new(),
    };
    let crls = read_crls(&a.crls)?;
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
        &crls,
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
        if let Some(t) = &report.timestamp {
            println!("{}", timestamp_line(t));
        }
        match &report.chain {
            Some(c) => {
                println!("Chain:   trusted: {}", c.path.join(" <- "));
                if let Some(r) = &c.revocation {
                    println!("Revocation: {}", kalit_core::display::field(r, 300));
                }
            }
            None => println!("Chain:   not checked (give --ca CA.pem to check the certificate chain and validity)"),
        }
    }
    outcome
}

fn timestamp_line(t: &kalit_proto::verify::TimestampReport) -> String {
    let trust = match &t.chain {
        Some(_) => "TSA trusted",
        None => "TSA not checked: give --ca",
    };
    format!("Time:    {} (timestamp by {}, {trust})", t.time, kalit_core::display::field(&t.tsa, 200))
}

/// `kalit verify --file doc.pdf`: every signature inside the PDF.
fn verify_pdf(a: &VerifyArgs) -> CliResult {
    let pdf = files::read_limited(&a.file, kalit_core::pdf::MAX_PDF_LEN as u64, "PDF")?;
    if !pdf.starts_with(b"%PDF-") {
        return Err(CliError::new(
            ErrorCode::Usage,
            format!("{} is not a PDF: give the signature with --sig", a.file.display()),
        ));
    }
    if a.cert.is_some() {
        return Err(CliError::new(
            ErrorCode::Usage,
            "--cert is for raw signatures; a PDF signature carries its certificates",
        ));
    }
    let anchors = match &a.ca {
        Some(p) => x509::parse_cert_bundle(&files::read_limited(p, 4 << 20, "CA file")?)?,
        None => Vec::new(),
    };
    let crls = read_crls(&a.crls)?;
    let report = kalit_core::verify::verify_pdf(&pdf, &anchors, &crls, OffsetDateTime::now_utc())?;
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).map_err(|e| CliError::new(ErrorCode::Internal, e.to_string()))?
        );
    } else {
        let field = |s: &str| kalit_core::display::field(s, 200);
        if report.signatures.is_empty() {
            println!("{} has no signatures.", a.file.display());
        }
        for s in &report.signatures {
            let what = if s.kind == "document-timestamp" { "Document timestamp" } else { "Signature" };
            let verdict = if s.valid { "VALID" } else { "NOT VALID" };
            println!("{what} {:?}: {verdict} ({} {})", field(&s.field), s.level, s.scheme.as_deref().unwrap_or(""));
            if let Some(r) = &s.reason {
                println!("  Why:     {}", kalit_core::display::terminal_text(r));
            }
            if let Some(c) = &s.signer {
                println!("  Signer:  {}\n  Issuer:  {}", field(&c.subject), field(&c.issuer));
            }
            if let Some(t) = &s.claimed_time {
                println!("  Claimed: {} (signer's clock)", field(t));
            }
            if let Some(r) = &s.signer_reason {
                println!("  Reason:  {}", field(r));
            }
            if let Some(t) = &s.timestamp {
                println!("  {}", timestamp_line(t));
            }
            match &s.chain {
                Some(c) => {
                    println!("  Chain:   trusted: {}", c.path.join(" <- "));
                    if let Some(r) = &c.revocation {
                        println!("  Revocation: {}", field(r));
                    }
                }
                None if anchors.is_empty() => println!("  Chain:   not checked (give --ca CA.pem)"),
                None => {}
            }
            if s.covers_whole_document {
                println!("  Covers:  the whole document");
            } else {
                println!("  Covers:  the document up to this signature; {} bytes were added after it", s.bytes_after);
                match &s.changed_after {
                    None => println!("           (only signatures and validation data)"),
                    Some(w) => println!("           CHANGED after signing: {}", field(w)),
                }
            }
        }
    }
    if report.valid {
        Ok(())
    } else if report.signatures.is_empty() {
        Err(CliError::new(ErrorCode::InvalidSignature, format!("{} has no signatures", a.file.display())))
    } else {
        Err(CliError::new(ErrorCode::InvalidSignature, "not every signature in the PDF is valid"))
    }
}
