//! A burst of registrations as phones make them (nonce, signed request, checked answer), from many
//! threads at once, each retrying what failed until it is told: for the fault tests (a relay node
//! killed, the database restarted) that check no registration a phone was told of is lost.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use kalit_core::KeyAlgorithm;
use kalit_core::ceremony::{Registration, check_nonce, check_relay_identity};
use kalit_core::keys::{self, PrivateKey};
use kalit_proto::relay::{NonceResponse, RegisterOutcome, RegisterResponse, RelayIdentity};
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyUsagePurpose};

/// A person: a certificate key and its chain (leaf, CA).
pub type Person = (PrivateKey, Vec<Vec<u8>>);

/// People with P-256 certificates under a CA of their own (written to `ca_pem` for the relays' trust).
pub fn people(n: usize, ca_pem: &Path) -> Vec<Person> {
    let ca_key = PrivateKey::from_pkcs8(&keys::generate(KeyAlgorithm::P256).unwrap()).unwrap();
    let mut p = CertificateParams::new(vec![]).unwrap();
    p.distinguished_name = kalit_core::csr::parse_subject("CN=Burst CA").unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign];
    let ca = p.self_signed(&ca_key).unwrap();
    std::fs::write(ca_pem, ca.pem()).unwrap();
    let ca = ca.der().to_vec();
    let issuer = Issuer::new(p, ca_key);
    (0..n)
        .map(|i| {
            let key = PrivateKey::from_pkcs8(&keys::generate(KeyAlgorithm::P256).unwrap()).unwrap();
            let mut lp = CertificateParams::new(vec![]).unwrap();
            lp.distinguished_name = kalit_core::csr::parse_subject(&format!("CN=Burst {i}")).unwrap();
            lp.key_usages = vec![KeyUsagePurpose::DigitalSignature];
            let cert = lp.signed_by(&key, &issuer).unwrap().der().to_vec();
            (key, vec![cert, ca.clone()])
        })
        .collect()
}

/// What a burst of registrations saw.
#[derive(Default)]
pub struct Burst {
    /// Logins whose phone was told (a 201 whose attestation checked), with the outcome.
    pub told: Vec<(String, RegisterOutcome)>,
    /// Attempts that failed before the phone was told (connection errors, 5xx), retried.
    pub failed: Vec<String>,
}

/// One registration attempt, as a phone makes it: nonce, signed request, checked answer. A refusal
/// other than 409 panics (only a failing service is worth a retry).
pub fn register_once(
    http: &reqwest::blocking::Client,
    url: &str,
    ident: &RelayIdentity,
    (key, chain): &Person,
    login: &str,
) -> Result<RegisterOutcome, String> {
    let pk = check_relay_identity(ident).unwrap();
    let r = http.post(format!("{url}/v1/nonce")).send().map_err(|e| e.to_string())?;
    let (status, body) = (r.status().as_u16(), r.text().unwrap_or_default());
    if status != 200 {
        assert!(status >= 500, "a nonce was refused with {status}: {body}");
        return Err(format!("{status} {body}"));
    }
    let nr: NonceResponse = serde_json::from_str(&body).map_err(|e| e.to_string())?;
    let nonce = check_nonce(&nr.nonce).map_err(|e| e.to_string())?;
    let device = PrivateKey::from_pkcs8(&keys::generate(KeyAlgorithm::Ed25519).unwrap()).unwrap();
    let reg = Registration {
        relay: (ident, &pk),
        nonce: &nonce,
        login,
        device_key: device.public_key_raw(),
        device_name: "burst",
        chain,
    };
    let sign = |st: &kalit_core::statement::Statement| {
        Ok((st.sign_as_certificate(key).map_err(kalit_core::error::Failure::from)?, chain.clone()))
    };
    let (req, pending) = reg.start(sign, None).unwrap();
    let r = http.post(format!("{url}/v1/register")).json(&req).send().map_err(|e| e.to_string())?;
    let status = r.status().as_u16();
    let body = r.text().unwrap_or_default();
    if status != 201 {
        assert!(status >= 500 || status == 409, "registration of {login} answered {status}: {body}");
        return Err(format!("{status} {body}"));
    }
    let resp: RegisterResponse = serde_json::from_str(&body).map_err(|e| e.to_string())?;
    pending.finish(&resp).map_err(|e| e.to_string())?;
    Ok(resp.outcome)
}

/// Starts `clients` threads that register every person (login `burst.I`) at `url`, each retrying a
/// failed attempt with a new nonce every 50 ms until it is told, for at most 90 s per login.
pub fn start(
    url: &str,
    ident: &RelayIdentity,
    persons: Arc<Vec<Person>>,
    clients: usize,
) -> (Arc<Mutex<Burst>>, Vec<JoinHandle<()>>) {
    let burst = Arc::new(Mutex::new(Burst::default()));
    let next = Arc::new(AtomicUsize::new(0));
    let handles = (0..clients)
        .map(|_| {
            let (persons, burst, next, url, ident) =
                (persons.clone(), burst.clone(), next.clone(), url.to_string(), ident.clone());
            std::thread::spawn(move || {
                let http = reqwest::blocking::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(person) = persons.get(i) else { return };
                    let login = format!("burst.{i}");
                    let deadline = Instant::now() + Duration::from_secs(90);
                    loop {
                        match register_once(&http, &url, &ident, person, &login) {
                            Ok(outcome) => {
                                burst.lock().unwrap().told.push((login, outcome));
                                break;
                            }
                            Err(e) => {
                                assert!(!e.starts_with("409 "), "{login} was refused: {e}");
                                assert!(Instant::now() < deadline, "{login} could not register within 90 s: {e}");
                                burst.lock().unwrap().failed.push(format!("{login}: {e}"));
                                std::thread::sleep(Duration::from_millis(50));
                            }
                        }
                    }
                }
            })
        })
        .collect();
    (burst, handles)
}

/// Every login in `logins` is registered at `url`: another person's certificate gets `login_taken`.
pub fn all_there(url: &str, ident: &RelayIdentity, persons: &[Person], logins: &[&str]) {
    let http = reqwest::blocking::Client::new();
    for (i, login) in logins.iter().enumerate() {
        let n: usize = login.trim_start_matches("burst.").parse().unwrap();
        let other = &persons[(n + 1) % persons.len()];
        let e = register_once(&http, url, ident, other, login).expect_err(login);
        assert!(e.starts_with("409 ") && e.contains("login_taken"), "login {i} {login}: {e}");
    }
}
