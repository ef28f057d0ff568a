//! `kalit`: one binary for every Kalit module. This file holds only the command-line grammar and the
//! dispatch; the work happens in the library crates.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

mod agent_cmd;
mod bench;
mod bench_load;
mod bench_pdf;
mod bench_relay;
mod bench_session;
mod bench_stream;
mod bench_tunnels;
mod demo;
mod docs_cmd;
mod error;
mod files;
mod pair;
mod prompt;
mod serve_cmd;
mod vault_cmd;
mod vault_net;
mod verify_cmd;

use error::CliError;

/// Kalit keeps your signing key on your phone; any computer can ask it for a signature.
///
/// Modules: `vault` (the key manager that runs on the phone), `agent` (the desktop service web pages
/// call to sign with the phone), `ra` (the Registration Authority that issues
/// certificates), `relay` (the web service that keeps logins and connects computers to phones), `verify`
/// and `hash` (what the desktop agent offers web pages), `demo` (a walk-through of the whole system) and
/// `bench` (speed against OpenSSL and the relay's throughput).
/// Every prompt reads the terminal, or one line of standard input per prompt when standard input is not a
/// terminal: approval first, then the PIN, then any password. Secrets are never read from arguments or
/// environment variables.
#[derive(Debug, Parser)]
#[command(name = "kalit", version, propagate_version = true, max_term_width = 110)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The phone's key vault: keys encrypted under a PIN, CSRs, certificates, PFX, signing, backup.
    Vault(VaultArgs),
    /// The Registration Authority: create the CA, enrol verified people, issue certificates, revoke.
    Ra(serve_cmd::RaArgs),
    /// The relay (the paper's W): logins, certificates and device keys; registration attestations.
    Relay(serve_cmd::RelayArgs),
    /// Verify a raw or CMS signature over a document (exit 0 only when valid).
    Verify(verify_cmd::VerifyArgs),
    /// Hash a file with SHA-256/384/512 (the agent's hashing function).
    Hash(verify_cmd::HashArgs),
    /// The desktop agent: a loopback web service that allowed web pages call (through web/kalit.js) to sign
    /// with your phone, hash and verify.
    Agent(agent_cmd::AgentArgs),
    /// Walk through Kalit on a throw-away vault: keys, CSR, certificate, signing, verification.
    Demo(demo::DemoArgs),
    /// Measure signing, hashing and unlock speed against OpenSSL and bare Argon2id, in one run.
    Bench(bench::BenchArgs),
    /// Write the manual pages (one per command) generated from this program's arguments.
    Man(docs_cmd::ManArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions(docs_cmd::CompletionsArgs),
}

#[derive(Debug, Args)]
#[command(after_help = "Examples:
  kalit vault init                                   set up the vault and its PIN
  kalit vault generate --alg p-256 --label work      a new key
  kalit vault csr work --subject \"CN=Ali Valiyev,C=UZ\" --out work.csr
  kalit vault install-cert work work.crt             the certificate your CA issued
  kalit vault import old.pfx --label gov             a key from a PFX file
  kalit vault sign work --file contract.pdf          CMS signature in contract.pdf.p7s
  kalit vault enrol work --ra https://ra.example --code ABCD-EFGH-...   certificate from the RA
  kalit vault register work --relay https://relay.example --login ali.valiyev
  kalit vault devices --relay https://relay.example
  printf '%s\\n' y 123456 | kalit vault sign work --file doc.txt --format raw   (scripted: approval, then PIN)")]
struct VaultArgs {
    /// Vault directory [default: $XDG_DATA_HOME/kalit/vault or ~/.local/share/kalit/vault]
    #[arg(long, global = true, env = "KALIT_VAULT", value_name = "DIR")]
    vault: Option<PathBuf>,
    #[command(subcommand)]
    command: VaultCommand,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum AlgArg {
    #[value(name = "rsa-2048")]
    Rsa2048,
    #[value(name = "rsa-3072")]
    Rsa3072,
    #[value(name = "p-256")]
    P256,
    #[value(name = "ed25519")]
    Ed25519,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum FormatArg {
    /// The bare signature: RSA PKCS#1 v1.5 (or PSS) with SHA-256, ECDSA P-256 DER, Ed25519.
    Raw,
    /// DER detached CMS SignedData with signed attributes and the certificate chain.
    Cms,
    /// A signature inside the PDF itself (PAdES), which PDF readers show; --file must be a PDF.
    Pades,
}

impl From<LevelArg> for kalit_proto::session::PadesLevel {
    fn from(l: LevelArg) -> Self {
        match l {
            LevelArg::BB => Self::BB,
            LevelArg::BT => Self::BT,
            LevelArg::Blt => Self::BLt,
            LevelArg::Blta => Self::BLta,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum LevelArg {
    /// Basic: the signature and the signer's certificate chain.
    #[value(name = "b-b")]
    BB,
    /// With a trusted time: a signature timestamp from the TSA named by --tsa.
    #[value(name = "b-t")]
    BT,
    /// B-T, and the validation data (certificates and CRLs from their distribution points) stored in
    /// the PDF, so that it can be verified when the CA's servers are gone (pades only).
    #[value(name = "b-lt")]
    Blt,
    /// B-LT, and a document timestamp over it all (from the same TSA), which keeps the signature's
    /// evidence verifiable after its algorithms age (pades only).
    #[value(name = "b-lta")]
    Blta,
}

/// The language of a visible PDF signature's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum BoxLanguageArg {
    /// English.
    En,
    /// Uzbek (Latin script).
    Uz,
    /// Russian.
    Ru,
}

impl From<BoxLanguageArg> for kalit_proto::session::BoxLanguage {
    fn from(a: BoxLanguageArg) -> Self {
        match a {
            BoxLanguageArg::En => Self::En,
            BoxLanguageArg::Uz => Self::Uz,
            BoxLanguageArg::Ru => Self::Ru,
        }
    }
}

#[derive(Debug, Subcommand)]
enum VaultCommand {
    /// Create the vault and set its PIN (asked twice; at least 6 characters).
    Init {
        /// Wrong PINs before the vault locks (3-100).
        #[arg(long, default_value_t = 10, value_name = "N")]
        max_pin_attempts: u32,
        /// Base of the growing wait after the 3rd wrong PIN (doubles each time, at most 5 min); 0 turns the
        /// wait off, for automation.
        #[arg(long, default_value_t = 1000, value_name = "MS")]
        pin_delay_ms: u64,
    },
    /// Generate a new key pair, encrypted at rest (asks the PIN).
    Generate {
        /// Key algorithm.
        #[arg(long, value_enum)]
        alg: AlgArg,
        /// A unique name for the key.
        #[arg(long)]
        label: String,
        /// The key can never leave the vault: export and backup refuse it. Permanent.
        #[arg(long)]
        no_export: bool,
    },
    /// List keys with fingerprints, certificates and policy flags.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Show one key.
    Show {
        /// Key label.
        key: String,
        #[arg(long)]
        json: bool,
    },
    /// Write a PKCS#10 request signed by the key (proof of possession); asks the PIN.
    Csr {
        /// Key label.
        key: String,
        /// Subject, e.g. "CN=Ali Valiyev,SERIALNUMBER=12345678901234,C=UZ".
        #[arg(long)]
        subject: String,
        /// Output file [default: standard output].
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Install a certificate (PEM or DER, optionally followed by its chain) for a key.
    InstallCert {
        /// Key label.
        key: String,
        /// Certificate file.
        file: PathBuf,
    },
    /// Import a key with its certificate chain from a PFX/PKCS#12 file (asks the PFX password, then the PIN).
    Import {
        /// The PFX file (OpenSSL 3 default or -legacy).
        file: PathBuf,
        /// A unique name for the key.
        #[arg(long)]
        label: String,
    },
    /// Export a key and its chain as a PFX that OpenSSL reads (asks the PIN, then a new password twice).
    Export {
        /// Key label.
        key: String,
        /// Output PFX file.
        #[arg(long)]
        out: PathBuf,
    },
    /// Sign a document: shows what will be signed, asks approval, then the PIN.
    Sign {
        /// Key label.
        key: String,
        /// The document.
        #[arg(long)]
        file: PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value = "cms")]
        format: FormatArg,
        /// RSA-PSS (SHA-256, MGF1-SHA-256, 32-byte salt) instead of PKCS#1 v1.5.
        #[arg(long)]
        pss: bool,
        /// Level of a cms or pades signature [default: b-t with --tsa, else b-b].
        #[arg(long, value_enum)]
        level: Option<LevelArg>,
        /// An RFC 3161 time-stamping authority (e.g. your RA's https://ra.example/v1/timestamp): the
        /// signature gets a trusted time (CAdES-T, PAdES-B-T).
        #[arg(long, value_name = "URL")]
        tsa: Option<String>,
        /// Why you sign (a PDF signature's /Reason, shown by PDF readers).
        #[arg(long)]
        reason: Option<String>,
        /// A visible PDF signature: a box on a page with your name, the date and the reason, at
        /// PAGE,X,Y,WIDTH,HEIGHT in points from the lower-left corner of the page as it is shown (72
        /// points = 1 inch; a page turned by /Rotate is measured turned), e.g. 1,350,60,220,60. A box that
        /// does not fit on the page is refused. Latin letters (Uzbek ones included) and Cyrillic are drawn
        /// with a font the PDF carries; text too wide for the box is made smaller, then cut short.
        #[arg(long, value_name = "PAGE,X,Y,W,H")]
        visible: Option<String>,
        /// The PDF's own empty signature field to sign into (a form's "sign here", e.g. Imzo): the
        /// signature is drawn in the box its author made (leave out --visible). A name the PDF does not
        /// have makes a new field of that name; the name of a field of another kind is refused.
        #[arg(long, value_name = "NAME")]
        field: Option<String>,
        /// The language of the visible box's words ("Digitally signed by", "Date", "Reason") [default:
        /// en].
        #[arg(long, value_enum, value_name = "LANG")]
        box_language: Option<BoxLanguageArg>,
        /// Output file [default: DOC.p7s for cms, DOC.sig for raw, DOC-signed.pdf for pades].
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Write an encrypted archive of all exportable keys, certificates, policy and history (asks the PIN,
    /// then a backup passphrase twice).
    Backup {
        #[arg(long)]
        out: PathBuf,
    },
    /// Restore a backup into an empty or new vault directory (asks the passphrase, then a new PIN twice).
    Restore {
        /// The backup file.
        file: PathBuf,
    },
    /// Destroy a key for good (asks confirmation, then the PIN).
    Destroy {
        /// Key label.
        key: String,
    },
    /// Change the PIN (asks the current PIN, then the new one twice).
    ChangePin,
    /// Every signature made: time, document, digest, key, format, origin.
    History {
        #[arg(long)]
        json: bool,
    },
    /// PIN attempts used and left, lock state, and the relays this phone is registered at.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Get a certificate for a key from the Registration Authority with the enrolment code the operator gave
    /// you: sends a CSR, checks the answer is for this key and chains to the CA, installs it (asks the PIN).
    Enrol {
        /// Key label.
        key: String,
        /// The RA's URL.
        #[arg(long)]
        ra: String,
        /// The one-time enrolment code.
        #[arg(long)]
        code: String,
        /// The RA's root certificate (PEM), as your RA published it [default: trust the root the RA sends,
        /// and print its fingerprint to compare].
        #[arg(long)]
        ca: Option<PathBuf>,
    },
    /// Register this phone at a relay under a login, with the key's certificate (asks the PIN). A login that
    /// exists takes a key whose certificate is already attached to it (for example imported from your
    /// PFX); a new certificate joins it only when this phone is already registered under the login (that
    /// registration approves it).
    Register {
        /// Label of the key whose certificate to attach.
        key: String,
        /// The relay's URL.
        #[arg(long)]
        relay: String,
        /// The login (3-64 of a-z 0-9 . _ - @).
        #[arg(long)]
        login: String,
        /// A name for this phone in device lists [default: from the host name].
        #[arg(long)]
        device_name: Option<String>,
    },
    /// List the devices registered under this phone's login at a relay (asks the PIN).
    Devices {
        #[arg(long)]
        relay: String,
        /// Which login, when this phone has several at the relay.
        #[arg(long)]
        login: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Remove a device (this phone or another of the same login) from a relay (asks the PIN). A device that
    /// registered with another certificate goes only with that certificate's proof (--proof-key), or by
    /// detaching that certificate (kalit vault detach).
    Unregister {
        #[arg(long)]
        relay: String,
        /// Device id, or at least 6 leading characters of it.
        device: String,
        #[arg(long)]
        login: Option<String>,
        /// A key in this vault whose certificate the removed device registered with: it signs the removal.
        #[arg(long, value_name = "KEY")]
        proof_key: Option<String>,
    },
    /// Detach a certificate from your login at a relay, with all its devices, after a cooling-off period
    /// (72 hours by default) that every device of the login sees in `kalit vault devices`; a device of that
    /// certificate can cancel meanwhile with --cancel. The way back when a login was taken over.
    #[command(after_help = "Examples:
  kalit vault devices --relay https://relay.example --json      shows each device's cert_fingerprint
  kalit vault detach 9f2c...e1 --relay https://relay.example     start the cooling-off period
  kalit vault detach 9f2c...e1 --relay https://relay.example --cancel")]
    Detach {
        /// SHA-256 fingerprint of the certificate (64 hex characters).
        cert: String,
        #[arg(long)]
        relay: String,
        /// Cancel a pending detachment of this phone's own certificate instead.
        #[arg(long)]
        cancel: bool,
        #[arg(long)]
        login: Option<String>,
    },
    /// Answer a computer's signing request: give the QR text the computer shows (`kalit:...`) or a photo of
    /// it. Checks the QR's version, age and relay, connects, shows a six-digit code that the computer must
    /// show too, then for each document shows its name, size, type, SHA-256 and (for text) a preview, asks
    /// approval, then the PIN. Runs until the computer ends the session. Documents over 8 MiB stream in
    /// parts (the phone hashes them itself) up to --max-document; larger ones are signed by the computer's
    /// digest (CMS and PDF only), which the phone says it cannot check and asks a second time.
    #[command(after_help = "Examples:
  kalit vault pair 'kalit:eyJ2Ijox...'            the text under the QR on the computer
  kalit vault pair --qr-image photo.png           a photo or screenshot of the QR
  kalit vault pair --max-document 16 --no-digest 'kalit:...'   take at most 16 MiB, never sign by digest
  printf '%s\\n' PIN y PIN | kalit vault pair \"$QR\"   (scripted: PIN to connect, then approval and PIN per document)")]
    Pair {
        /// The QR text, `kalit:...`.
        #[arg(required_unless_present = "qr_image", conflicts_with = "qr_image")]
        qr: Option<String>,
        /// A PNG or JPEG image of the QR.
        #[arg(long, value_name = "FILE")]
        qr_image: Option<PathBuf>,
        /// Which login, when this phone has several at the QR's relay.
        #[arg(long)]
        login: Option<String>,
        /// The largest document this phone receives whole, MiB (8..=64; it hashes it as it arrives).
        #[arg(long, value_name = "MIB", default_value_t = 64, value_parser = clap::value_parser!(u64).range(8..=64))]
        max_document: u64,
        /// Never sign a larger document by the computer's digest (the computer is told it cannot).
        #[arg(long)]
        no_digest: bool,
    },
    /// Destroy every key and the vault itself, without the PIN (the way out of a locked vault with no
    /// backup). Asks confirmation.
    Reset,
}

/// `$XDG_DATA_HOME/kalit/NAME`, or `~/.local/share/kalit/NAME`, or `./kalit-NAME`.
pub(crate) fn data_dir(name: &str) -> PathBuf {
    if let Some(d) = std::env::var_os("XDG_DATA_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(d).join("kalit").join(name);
    }
    if let Some(h) = std::env::var_os("HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(h).join(".local/share/kalit").join(name);
    }
    PathBuf::from(format!("kalit-{name}"))
}

/// A reader that stops reading our output (`kalit verify ... | head`) ends us quietly, as SIGPIPE ends
/// other command-line tools (exit status 141), instead of `println!`'s panic on a broken pipe. Any other
/// panic keeps the default report.
fn quiet_on_broken_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let message =
            payload.downcast_ref::<String>().map(String::as_str).or_else(|| payload.downcast_ref::<&str>().copied());
        let broken_pipe = message.is_some_and(|m| m.starts_with("failed printing to std") && m.contains("Broken pipe"));
        if broken_pipe {
            std::process::exit(141);
        }
        default(info);
    }));
}

fn main() -> ExitCode {
    quiet_on_broken_pipe();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Vault(v) => {
            let dir = v.vault.unwrap_or_else(|| data_dir("vault"));
            vault_cmd::run(&dir, v.command)
        }
        Command::Ra(a) => serve_cmd::ra(a),
        Command::Relay(a) => serve_cmd::relay(a),
        Command::Verify(a) => verify_cmd::verify(a),
        Command::Hash(a) => verify_cmd::hash(a),
        Command::Agent(a) => agent_cmd::run(a),
        Command::Demo(a) => demo::run(a),
        Command::Bench(a) => bench::run(a),
        Command::Man(a) => docs_cmd::man(a),
        Command::Completions(a) => docs_cmd::completions(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(CliError { code, message }) => {
            // Messages can carry text from a relay, an RA or a computer: nothing in them may drive the
            // terminal (escape sequences, bidi overrides), so every line is shown escaped.
            eprintln!("error[{code}]: {}", kalit_core::display::terminal_text(&message));
            ExitCode::from(code.exit_code() as u8)
        }
    }
}
