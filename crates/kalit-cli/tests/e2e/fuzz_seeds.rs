//! Every fuzz target's harness (`fuzz/fuzz_targets/*_logic.rs`, shared with the libFuzzer binaries) built
//! as ordinary code in every test run, and run on its committed seeds, their truncations and one flipped
//! byte of each: the harnesses cannot fall behind the code, and the seeds keep holding their invariants.
//! (`session_flow` runs in kalit-core's `tests/fuzz_replay.rs`.)

#[path = "../../../../fuzz/fuzz_targets/cert_bundle_logic.rs"]
mod cert_bundle;
#[path = "../../../../fuzz/fuzz_targets/cms_verify_logic.rs"]
mod cms_verify;
#[path = "../../../../fuzz/fuzz_targets/pdf_logic.rs"]
mod pdf;
#[path = "../../../../fuzz/fuzz_targets/pfx_import_logic.rs"]
mod pfx_import;
#[path = "../../../../fuzz/fuzz_targets/pkcs8_and_subject_logic.rs"]
mod pkcs8_and_subject;
#[path = "../../../../fuzz/fuzz_targets/ra_csr_logic.rs"]
mod ra_csr;
#[path = "../../../../fuzz/fuzz_targets/relay_proof_logic.rs"]
mod relay_proof;
#[path = "../../../../fuzz/fuzz_targets/session_logic.rs"]
mod session;
#[path = "../../../../fuzz/fuzz_targets/tsp_logic.rs"]
mod tsp;

use std::path::Path;

/// A fuzz target: its name (the seeds' directory) and its harness.
type Target = (&'static str, fn(&[u8]));

fn seeds(target: &str) -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/seeds").join(target);
    match std::fs::read_dir(&dir) {
        Ok(entries) => entries.map(|e| std::fs::read(e.unwrap().path()).unwrap()).collect(),
        Err(_) => vec![],
    }
}

#[test]
fn every_fuzz_harness_runs_its_seeds_and_their_mutations() {
    let targets: [Target; 9] = [
        ("pdf", pdf::run),
        ("tsp", tsp::run),
        ("cert_bundle", cert_bundle::run),
        ("cms_verify", cms_verify::run),
        ("pfx_import", pfx_import::run),
        ("pkcs8_and_subject", pkcs8_and_subject::run),
        ("ra_csr", ra_csr::run),
        ("relay_proof", relay_proof::run),
        ("session", session::run),
    ];
    let mut runs = 0;
    for (name, run) in targets {
        let mut inputs = seeds(name);
        // `session` has no committed seeds: a QR-shaped text and some frame-shaped bytes.
        inputs.push(b"kalit:eyJ2IjoyfQ".to_vec());
        inputs.push(vec![0; 64]);
        for seed in inputs {
            let n = seed.len();
            for cut in [0, n / 3, n / 2, n.saturating_sub(1), n] {
                run(&seed[..cut]);
                runs += 1;
            }
            if n > 0 {
                let mut flipped = seed.clone();
                flipped[n / 2] ^= 0x40;
                run(&flipped);
                runs += 1;
            }
        }
    }
    assert!(runs > 80, "{runs} runs");
}
