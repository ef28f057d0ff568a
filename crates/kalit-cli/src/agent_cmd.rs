//! `kalit agent ...`: a thin wrapper around the `kalit-agent` library.

use std::io::IsTerminal;
use std::path::PathBuf;

use clap::{Args, Subcommand};
use kalit_agent::{AgentConfig, DEFAULT_LISTEN, Origins};

use crate::error::CliResult;
use crate::serve_cmd::{parse_listen, runtime};

#[derive(Debug, Args)]
#[command(after_help = "Examples:
  kalit agent allow https://portal.example.gov       let that site ask for signatures
  kalit agent serve --relay https://relay.example --trust ca.pem
  kalit agent origins                                 which sites may call the agent
  kalit agent deny https://portal.example.gov

Web pages call the agent through web/kalit.js. Only origins on the allow-list get an answer; the agent
listens on loopback only and answers only to its own address (DNS rebinding protection).")]
pub struct AgentArgs {
    /// Agent data directory (allow-list, pinned relay identity) [default: $XDG_DATA_HOME/kalit/agent]
    #[arg(long, global = true, env = "KALIT_AGENT_DATA", value_name = "DIR")]
    data: Option<PathBuf>,
    #[command(subcommand)]
    command: AgentCommand,
}

#[derive(Debug, Subcommand)]
enum AgentCommand {
    /// Serve the agent on a loopback port until Ctrl-C. Prints `kalit agent listening on URL`.
    Serve {
        /// Loopback address and port (non-loopback addresses are refused).
        #[arg(long, default_value = DEFAULT_LISTEN)]
        listen: String,
        /// The relay's URL (https://, or http:// on loopback).
        #[arg(long, env = "KALIT_RELAY_URL")]
        relay: String,
        /// CA certificates (PEM) that phones' certificates must chain to; repeatable. Required, unless
        /// --dangerously-trust-relay-attestations-only.
        #[arg(long, value_name = "CA.pem")]
        trust: Vec<PathBuf>,
        /// Start without --trust and accept any certificate the relay's attestation vouches for. A breached
        /// relay could then have this computer accept a certificate of its choosing. For tests only.
        #[arg(long)]
        dangerously_trust_relay_attestations_only: bool,
        /// Seconds the phone has to approve a document.
        #[arg(long, default_value_t = 300, value_name = "SECS")]
        approval_timeout: u64,
        /// New signing sessions per minute per origin (0: no limit).
        #[arg(long, default_value_t = 20, value_name = "N")]
        sessions_per_minute: u32,
        /// The RFC 3161 time-stamping authority for PDF signatures of level b-t and above (Kalit's RA
        /// answers at URL/v1/timestamp). Without it, pages get PDF signatures of level b-b only.
        #[arg(long, env = "KALIT_TSA_URL", value_name = "URL")]
        tsa: Option<String>,
        /// Log format: text or json.
        #[arg(long, default_value = "text", value_parser = ["text", "json"])]
        log_format: String,
    },
    /// Allow a web origin (https://host[:port]) to call the agent.
    Allow { origin: String },
    /// Remove a web origin from the allow-list.
    Deny { origin: String },
    /// List the allowed origins.
    Origins {
        #[arg(long)]
        json: bool,
    },
}

pub fn run(a: AgentArgs) -> CliResult {
    let data = a.data.unwrap_or_else(|| crate::data_dir("agent"));
    let origins = Origins::new(&data);
    match a.command {
        AgentCommand::Serve {
            listen,
            relay,
            trust,
            dangerously_trust_relay_attestations_only,
            approval_timeout,
            sessions_per_minute,
            tsa,
            log_format,
        } => {
            let addr = parse_listen(&listen)?;
            kalit_agent::check_loopback(addr)?;
            kalit_service::serve::init_logging(&log_format);
            let cfg = AgentConfig {
                relay,
                data,
                trust,
                approval_timeout_secs: approval_timeout,
                print_qr: std::io::stdout().is_terminal(),
                sessions_per_minute,
                dangerously_trust_relay_attestations_only,
                tsa,
            };
            let list = origins.list()?;
            if list.is_empty() {
                eprintln!("No web origin is allowed yet: add one with `kalit agent allow https://portal.example`.");
            }
            runtime()?.block_on(kalit_agent::serve(cfg, addr))?;
            Ok(())
        }
        AgentCommand::Allow { origin } => {
            let (o, new) = origins.allow(&origin)?;
            if new {
                println!("Allowed {o}. Pages from it can now ask this computer's agent for signatures.");
            } else {
                println!("{o} was already allowed.");
            }
            Ok(())
        }
        AgentCommand::Deny { origin } => {
            if origins.deny(&origin)? {
                println!("Removed {origin} from the allow-list.");
            } else {
                println!("{origin} was not on the allow-list.");
            }
            Ok(())
        }
        AgentCommand::Origins { json } => {
            let list = origins.list()?;
            if json {
                return crate::vault_cmd::print_json(&list);
            }
            if list.is_empty() {
                println!("No origin is allowed (kalit agent allow ORIGIN).");
            }
            for o in list {
                println!("{o}");
            }
            Ok(())
        }
    }
}
