//! `kalit ra ...` and `kalit relay serve`: thin wrappers around the `kalit-ra` and `kalit-relay` libraries.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand, ValueEnum};
use kalit_core::{KeyAlgorithm, SecretString};
use kalit_proto::ErrorCode;
use kalit_relay::RelayConfig;
use kalit_service::ServiceError;
use kalit_service::serve::TlsFiles;

use crate::error::{CliError, CliResult};
use crate::prompt::Prompter;

impl From<ServiceError> for CliError {
    fn from(e: ServiceError) -> Self {
        CliError::new(e.code, e.message)
    }
}

impl From<kalit_ra::RaError> for CliError {
    fn from(e: kalit_ra::RaError) -> Self {
        CliError::new(e.code, e.message)
    }
}

pub(crate) fn runtime() -> CliResult<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::new(ErrorCode::Internal, format!("cannot start the async runtime: {e}")))
}

pub(crate) fn parse_listen(s: &str) -> CliResult<SocketAddr> {
    s.parse().map_err(|_| {
        CliError::new(ErrorCode::Usage, format!("--listen {s:?}: expected ADDRESS:PORT, e.g. 127.0.0.1:8750"))
    })
}

fn tls(cert: Option<PathBuf>, key: Option<PathBuf>) -> CliResult<Option<TlsFiles>> {
    match (cert, key) {
        (Some(cert), Some(key)) => Ok(Some(TlsFiles { cert, key })),
        (None, None) => Ok(None),
        _ => Err(CliError::new(ErrorCode::Usage, "give both --tls-cert and --tls-key, or neither")),
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum CaAlgArg {
    #[value(name = "p-256")]
    P256,
    #[value(name = "rsa-3072")]
    Rsa3072,
}

/// The Registration Authority.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  kalit ra init --dir /srv/kalit-ra --name \"Example Agency\" --two-tier
  kalit ra enrol --dir /srv/kalit-ra --subject \"CN=Ali Valiyev,SERIALNUMBER=12345678901234,C=UZ\" --ttl 3d
  kalit ra serve --dir /srv/kalit-ra --listen 127.0.0.1:8740 --passphrase-file /run/secrets/ra
  kalit ra list --dir /srv/kalit-ra                   serials, subjects, expiry, revocations
  kalit ra revoke --dir /srv/kalit-ra 5f0c...e1 --reason keyCompromise")]
pub struct RaArgs {
    #[command(subcommand)]
    command: RaCommand,
}

#[derive(Debug, Subcommand)]
enum RaCommand {
    /// Create the CA (asks a passphrase twice, at least 12 characters; the CA key is sealed under it).
    Init {
        /// RA directory.
        #[arg(long)]
        dir: PathBuf,
        /// The organisation's name, used in the CA certificates.
        #[arg(long)]
        name: String,
        /// CA key algorithm.
        #[arg(long, value_enum, default_value = "p-256")]
        alg: CaAlgArg,
        /// A root CA and an issuing CA under it (the root key then stays sealed while serving).
        #[arg(long)]
        two_tier: bool,
        /// Validity of issued certificates, in days.
        #[arg(long, default_value_t = 365)]
        validity_days: u32,
        /// This RA's address as everyone will reach it (e.g. https://ra.example): the TSA certificate
        /// and every certificate issued name URL/v1/crl as their CRL distribution point (`serve` uses it
        /// unless given another --public-url).
        #[arg(long, value_name = "URL")]
        public_url: Option<String>,
    },
    /// Record a person you have verified; prints their one-time enrolment code alone on standard output.
    Enrol {
        #[arg(long)]
        dir: PathBuf,
        /// The certificate subject, e.g. "CN=Ali Valiyev,SERIALNUMBER=12345678901234,C=UZ".
        #[arg(long)]
        subject: String,
        /// How long the code stays valid: 30m, 24h, 7d (at most 90d).
        #[arg(long, default_value = "7d", value_name = "DURATION")]
        ttl: String,
        /// Print {"code": "..."} (with "link" when --app-url is given).
        #[arg(long)]
        json: bool,
        /// The phone app's address (e.g. https://relay.example/app/): also print an enrolment link that
        /// opens the app with this RA's address and the code filled in. Needs --ra-url.
        #[arg(long, requires = "ra_url", value_name = "URL")]
        app_url: Option<String>,
        /// This RA's address as phones reach it (e.g. https://ra.example), for the enrolment link.
        #[arg(long, value_name = "URL")]
        ra_url: Option<String>,
        /// Also write the enrolment link as a QR code (SVG) to hand to the person.
        #[arg(long, requires = "app_url", value_name = "FILE")]
        qr_svg: Option<PathBuf>,
    },
    /// Serve the RA API: CSR + enrolment code in, certificate chain out; CA chain and CRL.
    Serve {
        #[arg(long)]
        dir: PathBuf,
        /// Address to listen on (plain HTTP on loopback only; otherwise give --tls-cert/--tls-key).
        #[arg(long, default_value = "127.0.0.1:8740")]
        listen: String,
        /// Read the CA passphrase from this file (first line) instead of prompting.
        #[arg(long)]
        passphrase_file: Option<PathBuf>,
        /// TLS certificate chain (PEM), required off loopback.
        #[arg(long)]
        tls_cert: Option<PathBuf>,
        /// TLS private key (PEM).
        #[arg(long)]
        tls_key: Option<PathBuf>,
        /// Issuance requests per minute per client address (0: unlimited).
        #[arg(long, default_value_t = 60)]
        rate_per_minute: u32,
        /// Web origin of a phone app allowed to enrol from a browser (CORS), e.g. the relay that serves
        /// the app: --app-origin https://relay.example (repeat for several). Without it, browsers get no
        /// CORS headers and only the command-line phone can enrol.
        #[arg(long = "app-origin", value_name = "ORIGIN")]
        app_origins: Vec<String>,
        /// This RA's address as everyone reaches it (e.g. https://ra.example): certificates issued from
        /// now on name URL/v1/crl as their CRL distribution point, so verifiers and PDF signers can
        /// find out whether a certificate was revoked. Without it, certificates name no CRL.
        #[arg(long, value_name = "URL")]
        public_url: Option<String>,
        /// An address besides this machine's own that may read /metrics, e.g. your Prometheus server:
        /// --metrics-from 192.0.2.10 (repeat for several). Without it, only loopback reads them.
        #[arg(long = "metrics-from", value_name = "ADDRESS")]
        metrics_from: Vec<std::net::IpAddr>,
        /// Log lines as text or json (filter with KALIT_LOG, e.g. KALIT_LOG=debug).
        #[arg(long, default_value = "text")]
        log_format: String,
    },
    /// List the certificates the RA issued (serial, subject, dates, revocation).
    List {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Sign a new root CRL (DIR/root.crl, served at /v1/root.crl) with the root key, before the current
    /// one runs out (a year after it was signed). Safe while `ra serve` runs: the file is replaced atomically.
    RootCrl {
        #[arg(long)]
        dir: PathBuf,
        /// Read the CA passphrase from this file (first line) instead of prompting.
        #[arg(long)]
        passphrase_file: Option<PathBuf>,
    },
    /// Revoke a certificate by serial number (hex); the next CRL lists it.
    Revoke {
        #[arg(long)]
        dir: PathBuf,
        /// Serial number, hex (colons allowed).
        serial: String,
        /// RFC 5280 reason: unspecified, keyCompromise, affiliationChanged, superseded, cessationOfOperation, privilegeWithdrawn.
        #[arg(long)]
        reason: Option<String>,
    },
}

fn read_passphrase(file: Option<&Path>) -> CliResult<SecretString> {
    match file {
        Some(f) => {
            let text = zeroize::Zeroizing::new(
                std::fs::read_to_string(f).map_err(CliError::io(format!("cannot read {}", f.display())))?,
            );
            #[cfg(unix)]
            if let Ok(m) = std::fs::metadata(f)
                && std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o077 != 0
            {
                eprintln!("warning: {} is readable by other users; chmod 600 it", f.display());
            }
            Ok(SecretString::new(text.lines().next().unwrap_or("").to_string()))
        }
        None => Prompter::new().secret("CA passphrase: "),
    }
}

pub fn ra(a: RaArgs) -> CliResult {
    match a.command {
        RaCommand::Init { dir, name, alg, two_tier, validity_days, public_url } => {
            let pass = Prompter::new().new_secret("CA passphrase")?;
            let alg = match alg {
                CaAlgArg::P256 => KeyAlgorithm::P256,
                CaAlgArg::Rsa3072 => KeyAlgorithm::Rsa3072,
            };
            if let Some(u) = &public_url {
                // The same rule as `serve --public-url`, checked before anything is made.
                kalit_ra::check_public_url(u)?;
            }
            let s = kalit_ra::ca::init_with(&dir, &name, alg, two_tier, validity_days, &pass, public_url.as_deref())?;
            println!("CA created in {}", dir.display());
            for (i, subj) in s.subjects.iter().enumerate() {
                println!("  {} {subj}", if i == 0 { "root:   " } else { "issuing:" });
            }
            println!("  root SHA-256 fingerprint: {}", s.root_fingerprint);
            println!("  chain for relays and verifiers: {}", dir.join("ca.pem").display());
            println!("Next: kalit ra enrol --dir {} --subject \"CN=...,C=UZ\"", dir.display());
            Ok(())
        }
        RaCommand::Enrol { dir, subject, ttl, json, app_url, ra_url, qr_svg } => {
            let ttl = kalit_ra::parse_ttl(&ttl)?;
            // The link's parts are checked before a code is spent on them.
            let link_parts = match (&app_url, &ra_url) {
                (Some(app), Some(ra)) => Some((
                    format!("{}/", kalit_transport::Endpoint::parse(app, "phone app")?.base()),
                    kalit_transport::Endpoint::parse(ra, "RA")?.base().to_string(),
                )),
                _ => None,
            };
            let code = runtime()?.block_on(kalit_ra::enrol(&dir, &subject, ttl))?;
            let link = link_parts.map(|(app, ra)| enrolment_link(&app, &ra, &code));
            if let (Some(link), Some(path)) = (&link, &qr_svg) {
                let svg = qrcode::QrCode::new(link.as_bytes())
                    .map_err(|e| CliError::new(ErrorCode::Internal, format!("QR: {e}")))?
                    .render::<qrcode::render::svg::Color<'_>>()
                    .min_dimensions(320, 320)
                    .build();
                crate::files::write_atomic(path, svg.as_bytes(), false)?;
            }
            if json {
                println!("{}", serde_json::json!({ "code": code, "link": link }));
            } else {
                println!("{code}");
                if let Some(link) = link {
                    println!("enrolment link (opens the phone app with the RA and the code filled in):\n{link}");
                }
            }
            Ok(())
        }
        RaCommand::Serve {
            dir,
            listen,
            passphrase_file,
            tls_cert,
            tls_key,
            rate_per_minute,
            app_origins,
            public_url,
            metrics_from,
            log_format,
        } => {
            let addr = parse_listen(&listen)?;
            let tls = tls(tls_cert, tls_key)?;
            kalit_service::serve::check_listen(addr, tls.as_ref())?;
            let pass = read_passphrase(passphrase_file.as_deref())?;
            let ca = kalit_ra::ca::open(&dir, &pass)?;
            let ca_public_url = ca.public_url.clone();
            drop(pass);
            kalit_service::serve::init_logging(&log_format);
            let rt = runtime()?;
            rt.block_on(async {
                let state = kalit_ra::RaState::open(&dir, ca, rate_per_minute)
                    .await?
                    .with_app_origins(&app_origins)?
                    .with_public_url(public_url.as_deref().or(ca_public_url.as_deref()))?
                    .with_metrics_from(&metrics_from);
                let files = kalit_service::serve::raise_file_limit();
                let limits = kalit_service::client::ConnLimits {
                    total: kalit_service::serve::connection_cap(4096, files, 64),
                    per_address: 64,
                };
                let policy = kalit_service::serve::ConnectionPolicy::new(std::time::Duration::from_secs(10), limits);
                kalit_service::serve::serve("kalit ra", kalit_ra::app(state), addr, tls, policy).await?;
                Ok(())
            })
        }
        RaCommand::List { dir, json } => {
            let issued = runtime()?.block_on(kalit_ra::list(&dir))?;
            if json {
                return crate::vault_cmd::print_json(&issued);
            }
            let day = |t: i64| {
                time::OffsetDateTime::from_unix_timestamp(t)
                    .ok()
                    .and_then(|d| d.format(&time::format_description::well_known::Rfc3339).ok())
                    .map_or_else(String::new, |s| s[..10].to_string())
            };
            println!("{:<32}  {:<10}  {:<10}  {:<24}  subject", "serial", "issued", "expires", "status");
            for c in &issued {
                let status = match (c.revoked_at, &c.reason) {
                    (Some(t), Some(r)) => format!("revoked {} ({r})", day(t)),
                    (Some(t), None) => format!("revoked {}", day(t)),
                    (None, _) => "valid".into(),
                };
                println!(
                    "{:<32}  {:<10}  {:<10}  {:<24}  {}",
                    c.serial,
                    day(c.issued_at),
                    day(c.not_after),
                    status,
                    c.subject
                );
            }
            println!("{} certificate(s)", issued.len());
            Ok(())
        }
        RaCommand::RootCrl { dir, passphrase_file } => {
            let pass = read_passphrase(passphrase_file.as_deref())?;
            let until = kalit_ra::ca::resign_root_crl(&dir, &pass)?;
            println!(
                "Wrote {}: the root CRL, valid until {} (sign the next one before then).",
                dir.join("root.crl").display(),
                until.date()
            );
            Ok(())
        }
        RaCommand::Revoke { dir, serial, reason } => {
            runtime()?.block_on(kalit_ra::revoke(&dir, &serial, reason.as_deref()))?;
            println!("revoked {serial}; the CRL at /v1/crl lists it from now on");
            Ok(())
        }
    }
}

/// The relay (the paper's W).
#[derive(Debug, Args)]
pub struct RelayArgs {
    #[command(subcommand)]
    command: RelayCommand,
}

#[derive(Debug, Subcommand)]
enum RelayCommand {
    /// Serve the relay API (registration, devices, identity, health, metrics).
    #[command(
        after_help = "Configuration: --config FILE (TOML), then KALIT_RELAY_* environment variables (nested keys with
__, e.g. KALIT_RELAY_LIMITS__PER_LOGIN_PER_MINUTE=10), then these flags. Unknown keys are errors.

Web pages that sign with no agent installed (kalit.js direct mode) open tunnels themselves;
the relay vouches to the phone for their origin. Which pages may: direct_origins in the TOML
file (default [\"https://*\", \"loopback\"]; list your portals, or [] to turn it off), or
KALIT_RELAY_DIRECT_ORIGINS=https://my.gov.example,https://bank.example.

The audit table (one row per tunnel join, registration and device change) keeps its rows forever
unless audit_keep_days is set (KALIT_RELAY_AUDIT_KEEP_DAYS=400): older rows then go every hour.
Tunnel-join rows are committed together every audit_linger_ms (default 100, at most 10000): a
longer wait spends less CPU under load and loses more of them if the relay is killed outright.

Examples:
  kalit relay serve --data /var/lib/kalit-relay --trust /etc/kalit/ra-ca.pem
  kalit relay serve --data /var/lib/kalit-relay --database postgres://kalit@db/kalit --trust ra.pem --trust national.pem
  kalit relay serve --config /etc/kalit/relay.toml --listen 0.0.0.0:443 --tls-cert cert.pem --tls-key key.pem"
    )]
    Serve {
        /// Data directory: relay key and SQLite database [default: $XDG_DATA_HOME/kalit/relay].
        #[arg(long)]
        data: Option<PathBuf>,
        /// Address [default 127.0.0.1:8750]; plain HTTP on loopback only.
        #[arg(long)]
        listen: Option<String>,
        /// postgres://... for several relay nodes [default: SQLite in --data].
        #[arg(long)]
        database: Option<String>,
        /// CA certificates (PEM) whose certificates may register; repeat for several.
        #[arg(long, value_name = "CA.pem")]
        trust: Vec<PathBuf>,
        /// TOML configuration file.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Name published in the relay identity.
        #[arg(long)]
        name: Option<String>,
        /// TLS certificate chain (PEM), required off loopback.
        #[arg(long)]
        tls_cert: Option<PathBuf>,
        /// TLS private key (PEM).
        #[arg(long)]
        tls_key: Option<PathBuf>,
        /// text or json.
        #[arg(long)]
        log_format: Option<String>,
    },
    /// Rotate the relay's signing key: a new key, endorsed by the relay's root key, that every node
    /// picks up by itself; phones and agents keep their registrations and pins.
    #[command(
        after_help = "The relay id is the id of the root key (relay-identity.pk8, made on the relay's first start).
This command makes a new signing key in --data (relay-key-ID.pk8), has the root key endorse it for
--valid-days, and lists it in relay-keys.json. Running relays reload that list within
limits.key_reload_secs (30 s) and sign every new attestation with the new key; attestations the
previous key signed keep verifying until its validity ends. Rotate again before the newest key
expires (a monthly job for the default 30 days). Expired keys leave the list.

After the first rotation the nodes need only relay-keys.json and the relay-key-*.pk8 files: keep
relay-identity.pk8 offline and pass it with --root. Copy the data directory's relay-key* files to
every node (or share the directory).

Examples:
  kalit relay rotate-key --data /var/lib/kalit-relay
  kalit relay rotate-key --data /var/lib/kalit-relay --root /media/offline/relay-identity.pk8 --valid-days 30"
    )]
    RotateKey {
        /// Data directory of the relay [default: $XDG_DATA_HOME/kalit/relay].
        #[arg(long)]
        data: Option<PathBuf>,
        /// The relay's root key [default: DATA/relay-identity.pk8].
        #[arg(long, value_name = "FILE")]
        root: Option<PathBuf>,
        /// Days the new key may sign (1 to 366).
        #[arg(long, default_value_t = 30)]
        valid_days: u32,
    },
}

pub fn relay(a: RelayArgs) -> CliResult {
    let (data, listen, database, trust, config, name, tls_cert, tls_key, log_format) = match a.command {
        RelayCommand::Serve { data, listen, database, trust, config, name, tls_cert, tls_key, log_format } => {
            (data, listen, database, trust, config, name, tls_cert, tls_key, log_format)
        }
        RelayCommand::RotateKey { data, root, valid_days } => return rotate_key(data, root, valid_days),
    };
    let mut cfg: RelayConfig = kalit_service::config::load(config.as_deref(), kalit_relay::config::ENV_PREFIX)?;
    if let Some(d) = data {
        cfg.data = Some(d);
    }
    if cfg.data.is_none() {
        cfg.data = Some(crate::data_dir("relay"));
    }
    if let Some(l) = listen {
        cfg.listen = l;
    }
    if database.is_some() {
        cfg.database = database;
    }
    cfg.trust.extend(trust);
    if let Some(n) = name {
        cfg.name = n;
    }
    if tls_cert.is_some() || tls_key.is_some() {
        cfg.tls_cert = tls_cert;
        cfg.tls_key = tls_key;
    }
    if let Some(f) = log_format {
        cfg.log_format = f;
    }
    if !matches!(cfg.log_format.as_str(), "text" | "json") {
        return Err(CliError::new(ErrorCode::Usage, "log_format is text or json"));
    }
    let addr = parse_listen(&cfg.listen)?;
    let tls = tls(cfg.tls_cert.clone(), cfg.tls_key.clone())?;
    kalit_service::serve::check_listen(addr, tls.as_ref())?;
    kalit_service::serve::init_logging(&cfg.log_format);
    runtime()?.block_on(async {
        let state = kalit_relay::build(&cfg).await?;
        tracing::info!(
            relay_id = %state.identity.id(),
            database = state.store.backend().name(),
            anchors = state.anchors.len(),
            "relay ready"
        );
        let policy = kalit_relay::connection_policy(&state, kalit_service::serve::raise_file_limit());
        let store = state.store.clone();
        kalit_service::serve::serve("kalit relay", kalit_relay::app(state), addr, tls, policy).await?;
        // Stopped (SIGTERM, Ctrl-C): the audit rows still queued are written before the process ends.
        store.close().await;
        Ok(())
    })
}

fn rotate_key(data: Option<PathBuf>, root: Option<PathBuf>, valid_days: u32) -> CliResult {
    use kalit_relay::identity;
    if !identity::VALID_DAYS.contains(&valid_days) {
        return Err(CliError::new(ErrorCode::Usage, "--valid-days is 1 to 366"));
    }
    let data = data.unwrap_or_else(|| crate::data_dir("relay"));
    let root = root.unwrap_or_else(|| data.join(identity::KEY_FILE));
    let now = kalit_service::now_ms() / 1000;
    let r = identity::rotate_key(&data, &root, i64::from(valid_days) * 86_400, now)?;
    let day = |t: i64| {
        time::OffsetDateTime::from_unix_timestamp(t)
            .map(|d| format!("{} UTC", d.date()))
            .unwrap_or_else(|_| t.to_string())
    };
    println!(
        "Relay {}: new signing key {}",
        r.relay_id,
        kalit_core::statement::key_id(r.new_key.key.public_key.as_slice())
    );
    println!("  file:        {}", r.new_file.display());
    println!("  signs until: {}; rotate again before then", day(r.new_key.key.not_after));
    for k in &r.still_valid {
        println!(
            "  still valid: {} until {} (what it signed keeps verifying)",
            kalit_core::statement::key_id(k.key.public_key.as_slice()),
            day(k.key.not_after)
        );
    }
    if r.removed > 0 {
        println!("  removed {} expired key(s)", r.removed);
    }
    println!("Running relays switch to it within limits.key_reload_secs (30 s by default).");
    println!("Nodes with their own data directory need relay-keys.json and the new key file copied to them.");
    Ok(())
}

/// The phone app's enrolment link: `APP#kalit-enrol:` + base64url of `{"v":1,"ra":...,"code":...}`.
fn enrolment_link(app_url: &str, ra_url: &str, code: &str) -> String {
    use base64::Engine;
    let json = serde_json::json!({ "v": 1, "ra": ra_url, "code": code }).to_string();
    let base = app_url.split('#').next().unwrap_or(app_url);
    format!("{base}#kalit-enrol:{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json))
}
