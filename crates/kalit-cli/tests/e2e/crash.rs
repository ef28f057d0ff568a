//! Crash safety: a real `kalit` process is killed at random points of generate, import, install-cert,
//! change-pin and destroy, many times; after every kill the vault opens with either the old or the new
//! state, every key it lists decrypts and signs, and one of the two PINs works.

use std::fs;
use std::time::{Duration, Instant};

use kalit_core::SecretString;
use kalit_vault::{DocumentToSign, SignFormat, Vault};

use crate::common::*;

const PIN_B: &str = "975310";

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// Opens the vault and checks it is whole; returns the PIN that works.
fn check_whole(dir: &std::path::Path, pins: [&str; 2]) -> (String, Vec<String>) {
    let v = Vault::open(dir).expect("the vault opens after a crash");
    let (keys, damaged) = v.keys().unwrap();
    assert!(damaged.is_empty(), "damaged key files after a crash: {damaged:?}");
    let mut working = None;
    for p in pins {
        if let Ok(u) = v.unlock(&SecretString::new(p.into())) {
            for k in &keys {
                let doc = DocumentToSign {
                    name: "check",
                    data: b"check",
                    digests: None,
                    format: SignFormat::Raw,
                    pss: false,
                    origin: None,
                    blind_confirmed: false,
                };
                u.sign(&k.label, &doc).unwrap_or_else(|e| panic!("key {} unusable after a crash: {e}", k.label));
            }
            working = Some(p.to_string());
            break;
        }
    }
    let pin = working.expect("neither the old nor the new PIN opens the vault after a crash");
    (pin, keys.into_iter().map(|k| k.label).collect())
}

#[test]
fn killing_kalit_mid_write_never_breaks_the_vault() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path();
    let v = V::init(root, "vault", 100);
    // Material: a PFX to import and a CA to issue certificates for CSRs.
    let donor = V::init(root, "donor", 10);
    donor.generate("p-256", "donor");
    let pfx = root.join("donor.pfx");
    donor.run(&["export", "donor", "--out", s(&pfx)], &[PIN, "donor-pass", "donor-pass"]).ok();
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(vec![]).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = rcgen::Issuer::new(ca_params, ca_key);

    let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64;
    println!("crash test seed: {seed}");
    let mut rng = Rng(seed);
    let mut pin = PIN.to_string();
    let mut kills = 0;
    let ops = ["generate", "import", "install-cert", "change-pin", "destroy"];
    let rounds = 45;
    for i in 0..rounds {
        let op = ops[i % ops.len()];
        let label = format!("{op}-{i}");
        let (args, answers, window_ms): (Vec<String>, Vec<String>, u64) = match op {
            "generate" => {
                let alg = ["p-256", "ed25519", "rsa-2048"][rng.below(3) as usize];
                (
                    vec!["generate".into(), "--alg".into(), alg.into(), "--label".into(), label.clone()],
                    vec![pin.clone()],
                    400,
                )
            }
            "import" => (
                vec!["import".into(), s(&pfx).into(), "--label".into(), label.clone()],
                vec!["donor-pass".into(), pin.clone()],
                400,
            ),
            "install-cert" => {
                v.generate_with_pin("p-256", &label, &pin);
                let csr = v.run(&["csr", &label, "--subject", "CN=Crash Test"], &[&pin]).ok().stdout;
                let cert = rcgen::CertificateSigningRequestParams::from_pem(&csr).unwrap().signed_by(&ca).unwrap();
                let path = root.join(format!("{label}.pem"));
                fs::write(&path, cert.pem()).unwrap();
                (vec!["install-cert".into(), label.clone(), s(&path).into()], vec![pin.clone()], 400)
            }
            "change-pin" => {
                let new = if pin == PIN { PIN_B } else { PIN };
                (vec!["change-pin".into()], vec![pin.clone(), new.into(), new.into()], 500)
            }
            _ => {
                v.generate_with_pin("ed25519", &label, &pin);
                (vec!["destroy".into(), label.clone()], vec!["y".into(), pin.clone()], 400)
            }
        };
        let mut full: Vec<&str> = vec!["vault", "--vault", s(&v.dir)];
        full.extend(args.iter().map(String::as_str));
        let mut child = kalit_cmd(&full).spawn().unwrap();
        feed(&mut child, &answers.iter().map(String::as_str).collect::<Vec<_>>());
        let delay = Duration::from_micros(rng.below(window_ms * 1000));
        let start = Instant::now();
        while start.elapsed() < delay {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_micros(300));
        }
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap();
            kills += 1;
        }
        let status = child.wait().unwrap();
        let (working, labels) = check_whole(&v.dir, [PIN, PIN_B]);
        pin = working;
        // Either the old or the new state, never a mix.
        match op {
            "generate" | "import" if status.success() => {
                assert!(labels.contains(&label), "{op} succeeded but {label} is missing")
            }
            "destroy" if status.success() => {
                assert!(!labels.contains(&label), "destroy succeeded but {label} is still there")
            }
            "install-cert" => {
                let info = Vault::open(&v.dir).unwrap().key(&label).unwrap();
                if status.success() {
                    assert!(info.certificate.is_some());
                }
            }
            _ => {}
        }
        // Leftover temp files are cleaned by the next open, and never mistaken for keys.
        let _ = Vault::open(&v.dir).unwrap();
    }
    println!("crash test: {rounds} rounds, {kills} processes killed mid-operation");
    assert!(kills >= rounds / 4, "too few kills landed mid-operation ({kills}); the test did not test much");
}

impl V {
    fn generate_with_pin(&self, alg: &str, label: &str, pin: &str) {
        self.run(&["generate", "--alg", alg, "--label", label], &[pin]).ok();
    }
}
