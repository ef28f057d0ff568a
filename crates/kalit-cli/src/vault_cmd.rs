//! `kalit vault ...`.

use std::path::{Path, PathBuf};

use kalit_core::digest::HashAlg;
use kalit_core::{KeyAlgorithm, SecretString};
use kalit_proto::ErrorCode;
use kalit_proto::vault::KeyInfo;
use kalit_vault::{DocumentToSign, PinPolicy, SignFormat, Unlocked, Vault};

use crate::error::{CliError, CliResult};
use crate::files::{self, MAX_DOCUMENT};
use crate::prompt::Prompter;
use crate::{AlgArg, BoxLanguageArg, FormatArg, LevelArg, VaultCommand};

pub(crate) fn print_json<T: serde::Serialize>(v: &T) -> CliResult {
    let s = serde_json::to_string_pretty(v).map_err(|e| CliError::new(ErrorCode::Internal, e.to_string()))?;
    println!("{s}");
    Ok(())
}

/// Asks the PIN (after any wait the counter imposes) and unlocks.
pub(crate) fn unlock<'v>(vault: &'v Vault, p: &mut Prompter) -> CliResult<Unlocked<'v>> {
    let pin = ask_pin(vault, p)?;
    Ok(vault.unlock(&pin)?)
}

/// Asks the PIN after saying how many attempts are left (and waiting out the delay after wrong ones); a
/// locked vault is refused before asking.
pub(crate) fn ask_pin(vault: &Vault, p: &mut Prompter) -> CliResult<SecretString> {
    let status = vault.pin_status()?;
    if status.locked {
        return Err(kalit_vault::VaultError::Locked { failures: status.failures }.into());
    }
    if !status.wait.is_zero() {
        eprintln!(
            "{} wrong PIN(s) so far; waiting {} s before the next attempt is allowed...",
            status.failures,
            status.wait.as_secs_f64().ceil()
        );
        std::thread::sleep(status.wait);
    }
    if status.failures > 0 {
        eprintln!("{} PIN attempt(s) left before the vault locks.", status.remaining);
    }
    p.secret("Vault PIN: ")
}

/// A certificate's end is announced this many days ahead (as the phone app does).
const CERT_WARNING_DAYS: i64 = 30;

/// A certificate's end as a note for people: ended (it signs no more), or ending within
/// [`CERT_WARNING_DAYS`]; `None` otherwise, or when `not_after` is not RFC 3339.
fn cert_end_note(not_after: &str, now: time::OffsetDateTime) -> Option<String> {
    let end = time::OffsetDateTime::parse(not_after, &time::format_description::well_known::Rfc3339).ok()?;
    if now > end {
        return Some("ENDED: this certificate can no longer sign; get a new one (kalit vault enrol)".into());
    }
    match (end - now).whole_days() {
        0 => Some("ends today: get a new certificate (kalit vault enrol) now".into()),
        1 => Some("ends in 1 day: get a new certificate (kalit vault enrol) before then".into()),
        d if d < CERT_WARNING_DAYS => {
            Some(format!("ends in {d} days: get a new certificate (kalit vault enrol) before then"))
        }
        _ => None,
    }
}

fn describe(k: &KeyInfo) -> String {
    let mut s = format!(
        "Key:          {}\nAlgorithm:    {}\nFingerprint:  SHA256:{}\nOrigin:       {}\nCreated:      {}\nLast used:    {}\nNo export:    {}\n",
        k.label,
        k.algorithm,
        k.fingerprint,
        k.origin,
        k.created,
        k.last_used.as_deref().unwrap_or("never"),
        if k.policy.no_export { "yes (the key can never leave this vault)" } else { "no" }
    );
    match &k.certificate {
        Some(c) => {
            s.push_str(&format!(
                "Certificate:\n  Subject:    {}\n  Issuer:     {}\n  Serial:     {}\n  Valid:      {} to {}\n",
                c.subject, c.issuer, c.serial, c.not_before, c.not_after
            ));
            if let Some(note) = cert_end_note(&c.not_after, time::OffsetDateTime::now_utc()) {
                s.push_str(&format!("  Status:     {note}\n"));
            }
            s.push_str(&format!("  Chain:      {} more certificate(s)\n", k.chain_len));
        }
        None => s.push_str("Certificate:  none (make a CSR with `kalit vault csr`, then `kalit vault install-cert`)\n"),
    }
    s
}

fn alg(a: AlgArg) -> KeyAlgorithm {
    match a {
        AlgArg::Rsa2048 => KeyAlgorithm::Rsa2048,
        AlgArg::Rsa3072 => KeyAlgorithm::Rsa3072,
        AlgArg::P256 => KeyAlgorithm::P256,
        AlgArg::Ed25519 => KeyAlgorithm::Ed25519,
    }
}

pub fn run(dir: &Path, cmd: VaultCommand) -> CliResult {
    let mut p = Prompter::new();
    match cmd {
        VaultCommand::Init { max_pin_attempts, pin_delay_ms } => {
            if Vault::exists(dir) {
                return Err(CliError::new(
                    ErrorCode::AlreadyExists,
                    format!("a vault already exists in {}", dir.display()),
                ));
            }
            let policy = PinPolicy { max_attempts: max_pin_attempts, delay_base_ms: pin_delay_ms };
            let pin = p.new_secret("PIN")?;
            kalit_vault::check_new_pin(&pin)?;
            eprintln!("Deriving the PIN key (Argon2id, 64 MiB)...");
            Vault::init(dir, &pin, policy)?;
            println!("Created a vault in {} (locks after {max_pin_attempts} wrong PINs).", dir.display());
            Ok(())
        }
        VaultCommand::Generate { alg: a, label, no_export } => {
            let vault = Vault::open(dir)?;
            let u = unlock(&vault, &mut p)?;
            if matches!(a, AlgArg::Rsa3072) {
                eprintln!("Generating an RSA-3072 key can take a few seconds...");
            }
            let info = u.generate(alg(a), &label, no_export)?;
            println!("Generated {} key {:?}\nFingerprint: SHA256:{}", info.algorithm, info.label, info.fingerprint);
            Ok(())
        }
        VaultCommand::List { json } => {
            let vault = Vault::open(dir)?;
            let (keys, damaged) = vault.keys()?;
            for (path, e) in &damaged {
                eprintln!("warning[{}]: {}: {e}", e.code(), path.display());
            }
            if json {
                return print_json(&keys);
            }
            if keys.is_empty() {
                println!("No keys yet. Create one with: kalit vault generate --alg p-256 --label NAME");
            }
            let now = time::OffsetDateTime::now_utc();
            for k in &keys {
                let end = k.certificate.as_ref().and_then(|c| cert_end_note(&c.not_after, now));
                println!(
                    "{:<20} {:<9} SHA256:{}  {}{}{}",
                    k.label,
                    k.algorithm,
                    &k.fingerprint[..16],
                    k.certificate.as_ref().map(|c| c.subject.as_str()).unwrap_or("(no certificate)"),
                    if k.policy.no_export { "  [no-export]" } else { "" },
                    end.map(|n| format!("  [certificate {}]", n.split(':').next().unwrap_or(&n))).unwrap_or_default()
                );
            }
            Ok(())
        }
        VaultCommand::Show { key, json } => {
            let vault = Vault::open(dir)?;
            let info = vault.key(&key)?;
            if json {
                return print_json(&info);
            }
            print!("{}", describe(&info));
            Ok(())
        }
        VaultCommand::Csr { key, subject, out } => {
            let vault = Vault::open(dir)?;
            kalit_core::csr::parse_subject(&subject)?;
            let u = unlock(&vault, &mut p)?;
            let pem = u.csr(&key, &subject)?;
            match out {
                Some(path) => {
                    files::write_atomic(&path, pem.as_bytes(), false)?;
                    eprintln!("Wrote the CSR to {}", path.display());
                }
                None => print!("{pem}"),
            }
            Ok(())
        }
        VaultCommand::InstallCert { key, file } => {
            let vault = Vault::open(dir)?;
            let bytes = files::read_limited(&file, 1 << 20, "certificate file")?;
            // Checked before the PIN: a certificate for another key is refused without asking.
            vault.check_certificate(&key, &bytes)?;
            let u = unlock(&vault, &mut Prompter::new())?;
            let info = u.install_cert(&key, &bytes)?;
            println!(
                "Installed the certificate for {key:?}\nSubject: {}\nIssuer:  {}\nValid:   {} to {}",
                kalit_core::display::escape(&info.subject),
                kalit_core::display::escape(&info.issuer),
                info.not_before,
                info.not_after
            );
            Ok(())
        }
        VaultCommand::Import { file, label } => {
            let vault = Vault::open(dir)?;
            let bytes = files::read_limited(&file, 1 << 20, "PFX file")?;
            let password = p.secret("PFX password: ")?;
            let u = unlock(&vault, &mut p)?;
            let info = u.import_pfx(&bytes, &password, &label)?;
            println!(
                "Imported {} key {:?} ({})\nFingerprint: SHA256:{}",
                info.algorithm,
                info.label,
                info.certificate.as_ref().map(|c| c.subject.as_str()).unwrap_or("no certificate"),
                info.fingerprint
            );
            Ok(())
        }
        VaultCommand::Export { key, out } => {
            let vault = Vault::open(dir)?;
            let info = vault.key(&key)?;
            if info.policy.no_export {
                return Err(CliError::new(
                    ErrorCode::RefusedByPolicy,
                    format!("key {key:?} was created with --no-export: it can never leave this vault"),
                ));
            }
            let u = unlock(&vault, &mut p)?;
            let password = p.new_secret("PFX password")?;
            let pfx = u.export_pfx(&key, &password)?;
            files::write_atomic(&out, &pfx, true)?;
            println!("Exported {key:?} to {} (readable by `openssl pkcs12`).", out.display());
            Ok(())
        }
        VaultCommand::Sign { key, file, format, pss, level, tsa, reason, visible, field, box_language, out } => {
            let opts = SignOptions { format, pss, level, tsa, reason, visible, field, box_language, out };
            sign(dir, &mut p, &key, &file, opts)
        }
        VaultCommand::Backup { out } => {
            let vault = Vault::open(dir)?;
            let u = unlock(&vault, &mut p)?;
            let pass = p.new_secret("backup passphrase")?;
            let (bytes, summary) = u.backup(&pass)?;
            files::write_atomic(&out, &bytes, true)?;
            println!(
                "Backed up {} key(s) and {} history entries to {}.",
                summary.keys.len(),
                summary.history_entries,
                out.display()
            );
            if !summary.skipped_no_export.is_empty() {
                println!(
                    "Not included (--no-export keys never leave the vault): {}",
                    summary.skipped_no_export.join(", ")
                );
            }
            if !summary.skipped_damaged.is_empty() {
                eprintln!("warning: damaged key files left out: {}", summary.skipped_damaged.join(", "));
            }
            Ok(())
        }
        VaultCommand::Restore { file } => {
            let bytes = files::read_limited(&file, 64 << 20, "backup file")?;
            let pass = p.secret("Backup passphrase: ")?;
            let pin = p.new_secret("PIN")?;
            let (_, summary) = kalit_vault::restore(dir, &bytes, &pass, &pin)?;
            println!(
                "Restored {} key(s) and {} history entries into {}.",
                summary.keys.len(),
                summary.history_entries,
                dir.display()
            );
            Ok(())
        }
        VaultCommand::Destroy { key } => {
            let vault = Vault::open(dir)?;
            let info = vault.key(&key)?;
            eprint!("{}", describe(&info));
            if !p.confirm(&format!("Destroy key {key:?} for good? Signatures it made stay valid; the key cannot be recovered without a backup."))? {
                return Err(CliError::new(ErrorCode::Declined, "not destroyed"));
            }
            let u = unlock(&vault, &mut p)?;
            u.destroy(&key)?;
            println!("Destroyed key {key:?}.");
            Ok(())
        }
        VaultCommand::ChangePin => {
            let vault = Vault::open(dir)?;
            let u = unlock(&vault, &mut p)?;
            let pin = p.new_secret("PIN")?;
            u.change_pin(&pin)?;
            println!("PIN changed.");
            Ok(())
        }
        VaultCommand::History { json } => {
            let vault = Vault::open(dir)?;
            let h = vault.history()?;
            if json {
                return print_json(&h);
            }
            if h.is_empty() {
                println!("No signatures yet.");
            }
            for e in h {
                println!(
                    "{}  {:<16} {:<7} {}  sha256:{}{}",
                    e.time,
                    e.key,
                    e.format,
                    e.document,
                    e.sha256,
                    e.origin.map(|o| format!("  from {o}")).unwrap_or_default()
                );
            }
            Ok(())
        }
        VaultCommand::Status { json } => {
            let vault = Vault::open(dir)?;
            let s = vault.pin_status()?;
            let policy = vault.policy();
            let regs = vault.devices()?;
            if json {
                let registrations: Vec<_> = regs
                    .iter()
                    .map(|d| {
                        serde_json::json!({"relay": d.relay_url, "relay_id": d.relay_id, "login": d.login,
                            "device_id": d.device_id, "key": d.key_label, "since": d.created})
                    })
                    .collect();
                return print_json(&serde_json::json!({
                    "failures": s.failures, "remaining": s.remaining, "locked": s.locked,
                    "wait_seconds": s.wait.as_secs_f64().ceil() as u64, "max_attempts": policy.max_attempts,
                    "registrations": registrations,
                }));
            }
            println!(
                "Vault {}: {}; {} wrong PIN(s), {} attempt(s) left of {}.",
                dir.display(),
                if s.locked { "LOCKED" } else { "unlocked for attempts" },
                s.failures,
                s.remaining,
                policy.max_attempts
            );
            if regs.is_empty() {
                println!("Not registered at any relay (kalit vault register).");
            }
            for d in &regs {
                println!(
                    "Registered at {} as {} with key {:?}, device {} (since {}).",
                    d.relay_url, d.login, d.key_label, d.device_id, d.created
                );
            }
            Ok(())
        }
        VaultCommand::Enrol { key, ra, code, ca } => crate::vault_net::enrol(dir, &key, &ra, &code, ca.as_ref()),
        VaultCommand::Register { key, relay, login, device_name } => {
            crate::vault_net::register(dir, &key, &relay, &login, device_name.as_deref())
        }
        VaultCommand::Devices { relay, login, json } => crate::vault_net::devices(dir, &relay, login.as_deref(), json),
        VaultCommand::Unregister { relay, device, login, proof_key } => {
            crate::vault_net::unregister(dir, &relay, &device, login.as_deref(), proof_key.as_deref())
        }
        VaultCommand::Detach { cert, relay, cancel, login } => {
            crate::vault_net::detach(dir, &relay, &cert, cancel, login.as_deref())
        }
        VaultCommand::Pair { qr, qr_image, login, max_document, no_digest } => {
            let text = match (qr, qr_image) {
                (Some(t), _) => t,
                (None, Some(img)) => crate::pair::decode_qr_image(&img)?,
                (None, None) => return Err(CliError::new(ErrorCode::Usage, "give the QR text or --qr-image FILE")),
            };
            let vault = Vault::open(dir)?;
            let documents = kalit_proto::session::DocumentSupport { whole: max_document << 20, digest: !no_digest };
            let mut ui = crate::pair::TerminalUi { prompter: Prompter::new(), documents };
            let s = kalit_phone::pair::pair(&vault, &text, login.as_deref(), &mut ui)?;
            let withdrawn =
                if s.withdrawn > 0 { format!(", {} withdrawn by the computer", s.withdrawn) } else { String::new() };
            println!("Session over: {} signed, {} declined{withdrawn}.", s.signed, s.declined);
            Ok(())
        }
        VaultCommand::Reset => {
            if !p.confirm(&format!(
                "Destroy EVERY key in {} and the vault itself? This cannot be undone.",
                dir.display()
            ))? {
                return Err(CliError::new(ErrorCode::Declined, "nothing was reset"));
            }
            let n = Vault::reset(dir)?;
            println!("Reset: {n} key(s) destroyed. Create a new vault with `kalit vault init`.");
            Ok(())
        }
    }
}

/// The command line's source of timestamps and CRLs: the network, saying on stderr what it asks whom.
struct Fetch<'a> {
    tsa: Option<&'a str>,
}

impl kalit_core::pdf::PublicData for Fetch<'_> {
    type Error = CliError;

    fn timestamp(&mut self, data: &[u8]) -> CliResult<(Vec<u8>, kalit_core::tsp::TimestampInfo)> {
        let url = self.tsa.ok_or_else(|| CliError::new(ErrorCode::Usage, "this level needs --tsa URL"))?;
        eprintln!("Asking {url} for a timestamp...");
        let (token, ts) = kalit_transport::public_data::timestamp(url, data)?;
        eprintln!("Timestamp:    {} by {}", ts.time, ts.tsa_name());
        Ok((token, ts))
    }

    fn crl(&mut self, url: &str) -> CliResult<Vec<u8>> {
        eprintln!("Fetching the CRL at {url}...");
        Ok(kalit_transport::public_data::fetch_crl(url)?)
    }
}

/// How `kalit vault sign` signs.
struct SignOptions {
    format: FormatArg,
    pss: bool,
    level: Option<LevelArg>,
    tsa: Option<String>,
    reason: Option<String>,
    visible: Option<String>,
    field: Option<String>,
    box_language: Option<BoxLanguageArg>,
    out: Option<PathBuf>,
}

fn sign(dir: &Path, p: &mut Prompter, key: &str, file: &Path, o: SignOptions) -> CliResult {
    let vault = Vault::open(dir)?;
    let info = vault.key(key)?;
    let format = match o.format {
        FormatArg::Raw => SignFormat::Raw,
        FormatArg::Cms => SignFormat::Cms,
        FormatArg::Pades => SignFormat::Pades,
    };
    let level = o.level.unwrap_or(if o.tsa.is_some() { LevelArg::BT } else { LevelArg::BB });
    if format == SignFormat::Raw && (o.level.is_some() || o.tsa.is_some()) {
        return Err(CliError::new(
            ErrorCode::Usage,
            "--level and --tsa are for cms and pades signatures; a raw signature is bare",
        ));
    }
    if level != LevelArg::BB && o.tsa.is_none() {
        return Err(CliError::new(
            ErrorCode::Usage,
            "--level b-t and b-lt need --tsa URL (the time-stamping authority)",
        ));
    }
    if matches!(level, LevelArg::Blt | LevelArg::Blta) && format != SignFormat::Pades {
        return Err(CliError::new(ErrorCode::Usage, "--level b-lt and b-lta are for PDF signatures (--format pades)"));
    }
    if level == LevelArg::BB && o.tsa.is_some() {
        return Err(CliError::new(ErrorCode::Usage, "--tsa adds a timestamp: use --level b-t (or leave --level out)"));
    }
    if (o.reason.is_some() || o.visible.is_some() || o.field.is_some() || o.box_language.is_some())
        && format != SignFormat::Pades
    {
        return Err(CliError::new(
            ErrorCode::Usage,
            "--reason, --visible, --field and --box-language are for PDF signatures (--format pades)",
        ));
    }
    if format != SignFormat::Raw && info.certificate.is_none() {
        return Err(CliError::new(
            ErrorCode::RefusedByPolicy,
            format!(
                "key {key:?} has no certificate: CMS and PDF signatures need one (kalit vault install-cert), or use --format raw"
            ),
        ));
    }
    let data = files::read_limited(file, MAX_DOCUMENT, "document")?;
    let name = file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| file.display().to_string());
    let signer = info.certificate.as_ref().map(|c| c.subject.clone());
    // A PDF signature goes into the PDF: prepare the hole first, and show what the vault will check.
    let prepared = if format == SignFormat::Pades {
        // /Name: the certificate's common name (readers show the certificate's subject anyway).
        let signer_name = info
            .certificate
            .as_ref()
            .map(|c| c.subject.split(',').find_map(|part| part.strip_prefix("CN=")).unwrap_or(&c.subject).to_owned());
        let spec = kalit_core::pdf::Spec {
            field: o.field.as_deref(),
            reason: o.reason.as_deref(),
            name: signer_name.as_deref(),
            time: time::OffsetDateTime::now_utc(),
            reserve: kalit_core::pdf::DEFAULT_RESERVE,
            kind: kalit_core::pdf::Kind::Signature,
            visible: o.visible.as_deref().map(kalit_core::pdf::Visible::parse).transpose()?,
            lang: o.box_language.map(Into::into).unwrap_or_default(),
        };
        Some(kalit_core::pdf::prepare(&data, &spec)?)
    } else {
        None
    };
    eprintln!("You are about to sign:");
    eprintln!("  Document:     {name}");
    eprintln!("  Size:         {} bytes", data.len());
    eprintln!("  SHA-256:      {}", hex::encode(HashAlg::Sha256.digest(&data)));
    if let Some(prep) = &prepared {
        let seen = kalit_core::pdf::inspect_prepared(&prep.pdf)?;
        eprint!("{}", kalit_phone::pair::describe_pdf(&seen, 14));
        if let Some(v) = &o.visible {
            eprintln!("  Visible box:  page,x,y,width,height = {v}");
        }
    }
    eprintln!("  Signer:       {}", signer.as_deref().unwrap_or("(no certificate)"));
    eprintln!("  Key:          {} ({})", info.label, info.algorithm);
    let level_text = match level {
        LevelArg::BB => "",
        LevelArg::BT => ", with a trusted timestamp",
        LevelArg::Blt => ", with a trusted timestamp and long-term validation data",
        LevelArg::Blta => ", with a trusted timestamp, long-term validation data and a document timestamp",
    };
    eprintln!(
        "  Format:       {}{}",
        match format {
            SignFormat::Raw if o.pss => "raw RSA-PSS",
            SignFormat::Raw => "raw",
            SignFormat::Cms => "CMS (detached)",
            SignFormat::Pades => "PDF signature (PAdES)",
        },
        level_text
    );
    if let Some(t) = &o.tsa {
        eprintln!("  Timestamp:    from {t}");
    }
    // Refused kinds (a Kalit statement, a DER structure signed raw) are refused before any question.
    kalit_core::purpose::check_document(&data, format == SignFormat::Raw)?;
    // The TSA must answer before the person is asked: otherwise the signature would be made (and kept in
    // the history) with no file written.
    if let Some(t) = &o.tsa {
        kalit_transport::public_data::check_tsa(t)
            .map_err(|e| CliError::new(e.code, format!("{}; nothing was signed", e.message)))?;
    }
    if !p.confirm("Sign this document?")? {
        return Err(CliError::new(ErrorCode::Declined, "you declined; nothing was signed"));
    }
    let blind = format == SignFormat::Raw && kalit_core::purpose::needs_blind_confirmation(&data);
    if blind
        && !p.confirm(
            "This file is not text Kalit can show you. A raw signature over bytes you cannot read can mean anything to whoever asked for it. Make it anyway?",
        )?
    {
        return Err(CliError::new(ErrorCode::Declined, "you declined; nothing was signed"));
    }
    let u = unlock(&vault, p)?;
    let to_sign = prepared.as_ref().map_or(&data[..], |prep| &prep.pdf[..]);
    let doc = DocumentToSign {
        name: &name,
        data: to_sign,
        digests: None,
        format,
        pss: o.pss,
        origin: None,
        blind_confirmed: blind,
    };
    let outcome = u.sign(key, &doc)?;
    let mut fetch = Fetch { tsa: o.tsa.as_deref() };
    let (bytes, default_ext) = match prepared {
        Some(prep) => {
            let now = time::OffsetDateTime::now_utc();
            (kalit_core::pdf::finish(prep, outcome.bytes, level.into(), &mut fetch, now)?.pdf, "-signed.pdf")
        }
        None if format == SignFormat::Cms && o.tsa.is_some() => {
            // CAdES-B-T: a timestamp over the signature value, as an unsigned attribute.
            let value = kalit_core::cms::signature_value(&outcome.bytes)?;
            let (token, _) = kalit_core::pdf::PublicData::timestamp(&mut fetch, &value)?;
            (kalit_core::cms::add_signature_timestamp(&outcome.bytes, &token)?, ".p7s")
        }
        None if format == SignFormat::Cms => (outcome.bytes, ".p7s"),
        None => (outcome.bytes, ".sig"),
    };
    let out = o.out.unwrap_or_else(|| {
        let mut s = if default_ext == "-signed.pdf" {
            file.with_extension("").into_os_string()
        } else {
            file.as_os_str().to_owned()
        };
        s.push(default_ext);
        PathBuf::from(s)
    });
    files::write_atomic(&out, &bytes, false)?;
    if format == SignFormat::Pades {
        println!("Signed. Signed PDF written to {}", out.display());
    } else {
        println!("Signed. Signature written to {}", out.display());
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_certificates_end_is_announced_thirty_days_ahead() {
        let end = "2027-01-31T12:00:00Z";
        let at = |s: &str| time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).unwrap();
        assert_eq!(cert_end_note(end, at("2027-01-01T12:00:00Z")), None, "30 days ahead: nothing yet");
        assert_eq!(
            cert_end_note(end, at("2027-01-01T12:00:01Z")).unwrap(),
            "ends in 29 days: get a new certificate (kalit vault enrol) before then"
        );
        assert!(cert_end_note(end, at("2027-01-30T12:00:00Z")).unwrap().starts_with("ends in 1 day:"));
        assert!(cert_end_note(end, at("2027-01-31T11:00:00Z")).unwrap().starts_with("ends today:"));
        assert!(
            cert_end_note(end, at("2027-01-31T12:00:00Z")).unwrap().starts_with("ends today:"),
            "valid through notAfter"
        );
        assert!(cert_end_note(end, at("2027-01-31T12:00:01Z")).unwrap().starts_with("ENDED:"));
        assert_eq!(cert_end_note("not a date", at("2027-01-31T12:00:01Z")), None);
    }
}
