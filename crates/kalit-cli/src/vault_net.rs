//! `kalit vault enrol | register | devices | detach | unregister`: arguments, the PIN prompt and printing
//! around `kalit_phone::net`, which does the requests and their checks.

use std::path::{Path, PathBuf};

use kalit_core::{display, x509};
use kalit_phone::net::{self, Removed};
use kalit_phone::{Client, Printed};
use kalit_vault::Vault;

use crate::error::{CliError, CliResult};
use crate::prompt::Prompter;
use crate::vault_cmd::{print_json, unlock};

fn rfc3339(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_default()
}

/// `kalit vault enrol KEY --ra URL --code CODE [--ca FILE]`.
pub fn enrol(dir: &Path, key: &str, ra: &str, code: &str, ca: Option<&PathBuf>) -> CliResult {
    let client = Client::new(ra, "RA")?;
    let vault = Vault::open(dir)?;
    vault.key(key)?;
    let anchors = match ca {
        Some(f) => {
            let bytes = std::fs::read(f).map_err(CliError::io(format!("cannot read {}", f.display())))?;
            Some(x509::parse_cert_bundle(&bytes)?)
        }
        None => None,
    };
    let u = unlock(&vault, &mut Prompter::new())?;
    let e = net::enrol(&vault, &u, &client, key, code, anchors, &mut Printed)?;
    // The subject and serial come from the RA: shown escaped, like every string from another party.
    println!(
        "  subject:   {}\n  serial:    {}\n  valid to:  {}",
        display::escape(&e.cert.subject),
        display::field(&e.serial, 80),
        e.cert.not_after
    );
    Ok(())
}

/// `kalit vault register KEY --relay URL --login LOGIN [--device-name NAME]`.
pub fn register(dir: &Path, key: &str, relay: &str, login: &str, device_name: Option<&str>) -> CliResult {
    let client = Client::new(relay, "relay")?;
    let vault = Vault::open(dir)?;
    // Reach the relay before asking for the PIN.
    net::relay_identity(&client)?;
    let u = unlock(&vault, &mut Prompter::new())?;
    let name = device_name.map_or_else(default_device_name, str::to_string);
    let rec = net::register(&vault, &u, &client, key, login, &name, &mut Printed)?;
    println!("  device id: {}", rec.device_id);
    Ok(())
}

/// The device name when none is given: this machine's host name.
pub fn default_device_name() -> String {
    let host = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
    let host = host.trim();
    if host.is_empty() {
        "kalit phone".into()
    } else {
        format!("kalit on {}", host.chars().take(40).collect::<String>())
    }
}

/// `kalit vault devices --relay URL [--login L] [--json]`.
pub fn devices(dir: &Path, relay: &str, login: Option<&str>, json: bool) -> CliResult {
    let client = Client::new(relay, "relay")?;
    let vault = Vault::open(dir)?;
    let me = net::pick_device(&vault, &client, login)?;
    let u = unlock(&vault, &mut Prompter::new())?;
    let list = net::devices(&u, &client, &me)?;
    if json {
        return print_json(&list);
    }
    println!("Devices of {} at {}:", display::field(&list.login, 64), client.base());
    for d in &list.devices {
        let mine = if d.device_id == me.device_id { "  (this phone)" } else { "" };
        println!(
            "  {}  {:<24} {}  {}{mine}",
            d.device_id,
            display::field(&d.name, 24),
            rfc3339(d.registered_at),
            display::escape(&d.cert_subject)
        );
    }
    for p in &list.pending_detachments {
        println!(
            "WARNING: device {} asked to detach the certificate {} ({}) from {} at {}, with all its devices.\n  If that is not you: kalit vault detach {} --relay {} --cancel (from a phone of that certificate)",
            p.requested_by,
            &p.cert_fingerprint[..16.min(p.cert_fingerprint.len())],
            display::escape(&p.cert_subject),
            list.login,
            rfc3339(p.effective_at),
            p.cert_fingerprint,
            client.base()
        );
    }
    Ok(())
}

/// `kalit vault detach CERT_FINGERPRINT --relay URL [--cancel]`: ask the relay to detach a certificate
/// from the login after its cooling-off period (or cancel such a request, from a device of that
/// certificate).
pub fn detach(dir: &Path, relay: &str, cert: &str, cancel: bool, login: Option<&str>) -> CliResult {
    let client = Client::new(relay, "relay")?;
    let vault = Vault::open(dir)?;
    let me = net::pick_device(&vault, &client, login)?;
    let cert = net::check_cert_fingerprint(cert)?;
    let u = unlock(&vault, &mut Prompter::new())?;
    let r = net::detach(&u, &client, &me, &cert, cancel)?;
    match r.effective_at {
        Some(at) => println!(
            "The certificate {cert} leaves {} at {}, with all its devices, unless one of them cancels.",
            me.login,
            rfc3339(at)
        ),
        None => println!("The detachment of {cert} from {} is cancelled.", me.login),
    }
    Ok(())
}

/// `kalit vault unregister --relay URL DEVICE [--login L] [--proof-key KEY]`.
pub fn unregister(dir: &Path, relay: &str, device: &str, login: Option<&str>, proof_key: Option<&str>) -> CliResult {
    let client = Client::new(relay, "relay")?;
    let vault = Vault::open(dir)?;
    let me = net::pick_device(&vault, &client, login)?;
    let u = unlock(&vault, &mut Prompter::new())?;
    match net::unregister(&vault, &u, &client, &me, device, proof_key)? {
        Removed::ThisPhone(t) => println!("Removed this phone ({t}) from {} at {}.", me.login, client.base()),
        Removed::OtherRegistrationOfThisPhone(t) => {
            println!("Removed this phone's registration {t} from {} at {}.", me.login, client.base())
        }
        Removed::Other(t) => println!("Removed device {t} from {}.", me.login),
    }
    Ok(())
}
