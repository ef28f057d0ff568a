//! Behaviour of the `kalit` commands as people and scripts see it: prompts, exit codes, messages.

use std::fs;
use std::time::{Duration, Instant};

use crate::common::*;

#[test]
fn wrong_pin_counts_locks_and_only_restore_or_reset_helps() {
    let t = tempfile::tempdir().unwrap();
    let v = V::init(t.path(), "vault", 3);
    v.generate("p-256", "key");
    let backup = t.path().join("b.kbk");
    v.run(&["backup", "--out", s(&backup)], &[PIN, "backup-pass-1", "backup-pass-1"]).ok();
    let r = v.run(&["change-pin"], &["000000"]).fails(3, "wrong_pin");
    assert!(r.stderr.contains("2 attempt(s) left"), "{}", r.stderr);
    v.run(&["change-pin"], &["000001"]).fails(3, "wrong_pin");
    v.run(&["change-pin"], &["000002"]).fails(4, "locked");
    let status: serde_json::Value = serde_json::from_str(&v.run(&["status", "--json"], &[]).ok().stdout).unwrap();
    assert_eq!(status["locked"], true);
    // The right PIN no longer helps, for any PIN operation.
    v.run(&["generate", "--alg", "p-256", "--label", "k2"], &[PIN]).fails(4, "locked");
    let doc = t.path().join("d.txt");
    fs::write(&doc, "x").unwrap();
    v.run(&["sign", "key", "--file", s(&doc), "--format", "raw"], &["y", PIN]).fails(4, "locked");
    // Restore the backup elsewhere: the keys come back with a new PIN.
    let r = V { dir: t.path().join("restored") };
    r.run(&["restore", s(&backup)], &["backup-pass-1", "135790", "135790"]).ok();
    r.run(&["sign", "key", "--file", s(&doc), "--format", "raw"], &["y", "135790"]).ok();
    // Reset asks confirmation; "n" keeps everything.
    v.run(&["reset"], &["n"]).fails(10, "declined");
    assert!(v.dir.join("vault.json").exists());
    v.run(&["reset"], &["y"]).ok();
    assert!(!v.dir.join("vault.json").exists());
    v.run(&["init"], &[PIN, PIN]).ok();
}

#[test]
fn a_killed_pin_attempt_still_counts() {
    let t = tempfile::tempdir().unwrap();
    let v = V::init(t.path(), "vault", 10);
    let state = v.dir.join("pin-state.json");
    let mut caught = false;
    for _ in 0..20 {
        let mut child = kalit_cmd(&["vault", "--vault", s(&v.dir), "change-pin"]).spawn().unwrap();
        feed(&mut child, &[PIN]); // the right PIN: only a kill can stop the counter from being reset
        let start = Instant::now();
        // The counter is written before Argon2id runs (>= tens of ms): catch that moment and kill.
        while start.elapsed() < Duration::from_secs(5) {
            let text = fs::read_to_string(&state).unwrap_or_default();
            if text.contains("\"failures\": 1") {
                let _ = child.kill();
                break;
            }
            if child.try_wait().unwrap().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        let status = child.wait().unwrap();
        if !status.success() {
            caught = true;
            break;
        }
    }
    assert!(caught, "never managed to kill the process mid-attempt");
    let status: serde_json::Value = serde_json::from_str(&v.run(&["status", "--json"], &[]).ok().stdout).unwrap();
    assert_eq!(status["failures"], 1, "the killed attempt was counted");
    // The right PIN then works and resets the counter.
    v.run(&["generate", "--alg", "ed25519", "--label", "k"], &[PIN]).ok();
    let status: serde_json::Value = serde_json::from_str(&v.run(&["status", "--json"], &[]).ok().stdout).unwrap();
    assert_eq!(status["failures"], 0);
}

#[test]
fn declining_signs_nothing_and_approval_comes_before_the_pin() {
    let t = tempfile::tempdir().unwrap();
    let v = V::init(t.path(), "vault", 10);
    v.generate("ed25519", "k");
    let doc = t.path().join("letter.txt");
    fs::write(&doc, "Hello").unwrap();
    let r = v.run(&["sign", "k", "--file", s(&doc), "--format", "raw"], &["n", PIN]).fails(10, "declined");
    assert!(
        r.stderr.contains("letter.txt")
            && r.stderr.contains("185f8db32271fe25f561a6fc938b2e264306ec304eda518007d1764826381969"),
        "shows name and SHA-256: {}",
        r.stderr
    );
    assert!(!t.path().join("letter.txt.sig").exists());
    assert!(v.run(&["history"], &[]).ok().stdout.contains("No signatures"));
    let status: serde_json::Value = serde_json::from_str(&v.run(&["status", "--json"], &[]).ok().stdout).unwrap();
    assert_eq!(status["failures"], 0, "a declined request never asked for the PIN");
    v.run(&["sign", "k", "--file", s(&doc), "--format", "raw"], &["y", PIN]).ok();
    assert!(t.path().join("letter.txt.sig").exists());
    // CMS without a certificate is refused with a pointer to the fix.
    let r = v.run(&["sign", "k", "--file", s(&doc)], &["y", PIN]).fails(7, "refused_by_policy");
    assert!(r.stderr.contains("install-cert"));
    // --pss on a non-RSA key.
    v.run(&["sign", "k", "--file", s(&doc), "--format", "raw", "--pss"], &["y", PIN]).fails(8, "invalid_input");
}

#[test]
fn bad_inputs_get_stable_codes_and_never_touch_stored_keys() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path();
    let missing = V { dir: root.join("nope") };
    missing.run(&["list"], &[]).fails(6, "not_found");
    let weak = V { dir: root.join("weak") };
    weak.run(&["init"], &["12345", "12345"]).fails(14, "weak_secret");
    weak.run(&["init"], &["123456", "654321"]).fails(14, "weak_secret");
    weak.run(&["init"], &[]).fails(2, "usage");
    let v = V::init(root, "vault", 50);
    v.generate("p-256", "k");
    v.run(&["generate", "--alg", "p-256", "--label", "k"], &[PIN]).fails(12, "already_exists");
    v.run(&["generate", "--alg", "p-256", "--label", "a/b"], &[PIN]).fails(8, "invalid_input");
    v.run(&["show", "ghost"], &[]).fails(6, "not_found");
    v.run(&["csr", "k", "--subject", "NOPE"], &[PIN]).fails(8, "invalid_input");
    v.run(&["csr", "k", "--subject", "CN=x,C=Uzbekistan"], &[PIN]).fails(8, "invalid_input");
    let before: Vec<_> = all_files(&v.dir.join("keys")).iter().map(|p| fs::read(p).unwrap()).collect();
    // Hostile PFX files: empty, garbage, truncated, huge, deeply nested DER.
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", vec![]),
        ("garbage", b"this is not a pfx".to_vec()),
        ("der-garbage", vec![0x30, 0x82, 0xff, 0xff, 0x02, 0x01, 0x03]),
        ("nested", std::iter::repeat_n([0x30u8, 0x80], 5000).flatten().collect()),
        ("huge", vec![0u8; 2 << 20]),
    ];
    for (name, bytes) in cases {
        let p = root.join(format!("{name}.pfx"));
        fs::write(&p, bytes).unwrap();
        let r = v.run(&["import", s(&p), "--label", name], &["pw-123456", PIN]);
        assert!(r.code == 8 || r.code == 5, "{name}: exit {} {}", r.code, r.stderr);
        assert!(!r.stderr.contains("panicked"), "{name}: {}", r.stderr);
    }
    // A real PFX of ours, truncated at many points.
    let pfx = root.join("real.pfx");
    v.run(&["export", "k", "--out", s(&pfx)], &[PIN, "pfx-pass-1", "pfx-pass-1"]).ok();
    let real = fs::read(&pfx).unwrap();
    for cut in [1, 10, real.len() / 3, real.len() / 2, real.len() - 1] {
        let p = root.join("cut.pfx");
        fs::write(&p, &real[..cut]).unwrap();
        let r = v.run(&["import", s(&p), "--label", "cut"], &["pfx-pass-1", PIN]);
        assert!(r.code == 8 || r.code == 5, "cut {cut}: exit {} {}", r.code, r.stderr);
    }
    // Export password rules; no-export keys.
    v.run(&["export", "k", "--out", s(&root.join("x.pfx"))], &[PIN, "short", "short"]).fails(14, "weak_secret");
    v.run(&["generate", "--alg", "ed25519", "--label", "stay", "--no-export"], &[PIN]).ok();
    v.run(&["export", "stay", "--out", s(&root.join("y.pfx"))], &[PIN]).fails(7, "refused_by_policy");
    assert!(!root.join("y.pfx").exists());
    // Certificates that are not certificates.
    let junk = root.join("junk.pem");
    fs::write(&junk, "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n").unwrap();
    v.run(&["install-cert", "k", s(&junk)], &[]).fails(8, "invalid_input");
    // Verify with hostile inputs.
    let doc = root.join("d.txt");
    fs::write(&doc, "d").unwrap();
    kalit(&["verify", "--file", s(&doc), "--sig", s(&junk)], &[]).fails(8, "invalid_input");
    let fake_cms = root.join("fake.p7s");
    let mut b = vec![0x30, 0x82, 0x01, 0x00, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02];
    b.resize(300, 0xa0);
    fs::write(&fake_cms, b).unwrap();
    kalit(&["verify", "--file", s(&doc), "--sig", s(&fake_cms)], &[]).fails(8, "invalid_input");
    // None of this changed the stored keys (the no-export key was added on purpose, so compare the first).
    let after: Vec<_> = all_files(&v.dir.join("keys")).iter().map(|p| fs::read(p).unwrap()).collect();
    assert!(before.iter().all(|b| after.contains(b)), "a stored key file changed");
    v.run(&["sign", "k", "--file", s(&doc), "--format", "raw"], &["y", PIN]).ok();
}

#[test]
fn list_show_and_history_speak_json_and_text() {
    let t = tempfile::tempdir().unwrap();
    let v = V::init(t.path(), "vault", 10);
    assert!(v.run(&["list"], &[]).ok().stdout.contains("No keys yet"));
    v.generate("rsa-2048", "rsa");
    v.run(&["generate", "--alg", "ed25519", "--label", "ed", "--no-export"], &[PIN]).ok();
    let list: serde_json::Value = serde_json::from_str(&v.run(&["list", "--json"], &[]).ok().stdout).unwrap();
    let arr = list.as_array().unwrap();
    assert_eq!(arr.len(), 2);
    assert_eq!(arr[0]["label"], "ed");
    assert_eq!(arr[0]["policy"]["no_export"], true);
    assert_eq!(arr[1]["algorithm"], "rsa-2048");
    assert_eq!(arr[1]["fingerprint"].as_str().unwrap().len(), 64);
    let text = v.run(&["show", "rsa"], &[]).ok().stdout;
    assert!(text.contains("Fingerprint:  SHA256:") && text.contains("Last used:    never"), "{text}");
    let doc = t.path().join("d.txt");
    fs::write(&doc, "abc").unwrap();
    v.run(&["sign", "rsa", "--file", s(&doc), "--format", "raw"], &["y", PIN]).ok();
    let h: serde_json::Value = serde_json::from_str(&v.run(&["history", "--json"], &[]).ok().stdout).unwrap();
    assert_eq!(h[0]["sha256"], "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    assert_eq!(h[0]["document"], "d.txt");
    assert_eq!(h[0]["format"], "raw");
    let show: serde_json::Value = serde_json::from_str(&v.run(&["show", "rsa", "--json"], &[]).ok().stdout).unwrap();
    assert_eq!(show["last_used"], h[0]["time"]);
    // Destroy: confirmation, then PIN; afterwards nothing of the key remains.
    let id = show["id"].as_str().unwrap().to_string();
    v.run(&["destroy", "rsa"], &["n"]).fails(10, "declined");
    v.run(&["destroy", "rsa"], &["y", PIN]).ok();
    v.run(&["show", "rsa"], &[]).fails(6, "not_found");
    for f in all_files(&v.dir.join("keys")) {
        assert!(!f.to_string_lossy().contains(&id));
        assert!(!fs::read_to_string(&f).unwrap().contains(&id));
    }
}

#[test]
fn hash_agrees_with_sha256sum_and_openssl() {
    let t = tempfile::tempdir().unwrap();
    let f = t.path().join("data.bin");
    fs::write(&f, (0..3_000_000u32).map(|i| (i * 7 % 256) as u8).collect::<Vec<_>>()).unwrap();
    let ours = kalit(&["hash", s(&f)], &[]).ok().stdout;
    let theirs = String::from_utf8(std::process::Command::new("sha256sum").arg(&f).output().unwrap().stdout).unwrap();
    assert_eq!(ours.split_whitespace().next(), theirs.split_whitespace().next());
    if openssl().is_some() {
        for alg in ["sha384", "sha512"] {
            let j: serde_json::Value =
                serde_json::from_str(&kalit(&["hash", s(&f), "--alg", alg, "--json"], &[]).ok().stdout).unwrap();
            let o = ossl_ok(&["dgst", &format!("-{alg}"), "-r", s(&f)]);
            assert_eq!(j["digest"].as_str().unwrap(), o.split_whitespace().next().unwrap());
            assert_eq!(j["size"], 3_000_000);
        }
    }
    kalit(&["hash", s(&t.path().join("missing"))], &[]).fails(6, "not_found");
    let r = kalit(&["hash", s(&f), "--alg", "md5"], &[]);
    assert_eq!(r.code, 2, "clap refuses unknown algorithms: {}", r.stderr);
}

#[test]
fn help_teaches_and_demo_runs() {
    let h = kalit(&["vault", "sign", "--help"], &[]).ok().stdout;
    assert!(h.contains("asks approval") && h.contains("--pss") && h.contains("--format"), "{h}");
    let top = kalit(&["--help"], &[]).ok().stdout;
    assert!(top.contains("standard input") && top.contains("vault"), "{top}");
    let t = tempfile::tempdir().unwrap();
    let out = t.path().join("demo");
    let r = kalit(&["demo", "--out", s(&out)], &[]).ok();
    assert!(r.stdout.contains("every signature verified"), "{}", r.stdout);
    assert!(r.stdout.contains("registered the new login demo.citizen"), "{}", r.stdout);
    assert!(r.stdout.contains("added this phone to the existing login demo.citizen"), "{}", r.stdout);
    for f in ["sample.txt", "sample.txt.p7s", "sample.txt.sig", "chain.pem", "ca.pem", "demo.csr.pem", "demo.pfx"] {
        assert!(out.join(f).exists(), "demo wrote {f}");
    }
    if openssl().is_some() {
        openssl_cms_verify(&out.join("sample.txt.p7s"), &out.join("sample.txt"), &out.join("ca.pem"));
    }
}

#[test]
fn secrets_never_appear_in_any_output() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path();
    let pin = "917253-secret-pin";
    let wrong = "555111-wrong-pin";
    let pfx_pw = "pfx-pass-834615";
    let backup_pw = "backup-pass-774411";
    let v = V { dir: root.join("vault") };
    let mut outputs = Vec::new();
    let mut run = |args: &[&str], answers: &[&str]| {
        let r = v.run(args, answers);
        outputs.push(format!("{}\n{}", r.stdout, r.stderr));
        r
    };
    run(&["init", "--pin-delay-ms", "0"], &[pin, pin]).ok();
    run(&["generate", "--alg", "p-256", "--label", "k"], &[pin]).ok();
    run(&["generate", "--alg", "p-256", "--label", "k2"], &[wrong]);
    let doc = root.join("secret-document.txt");
    fs::write(&doc, "TOP-SECRET-CONTENT-1234").unwrap();
    run(&["sign", "k", "--file", s(&doc), "--format", "raw"], &["y", pin]).ok();
    run(&["sign", "k", "--file", s(&doc), "--format", "raw"], &["y", wrong]);
    let pfx = root.join("k.pfx");
    run(&["export", "k", "--out", s(&pfx)], &[pin, pfx_pw, pfx_pw]).ok();
    run(&["import", s(&pfx), "--label", "again"], &["not-the-password", pin]);
    run(&["import", s(&pfx), "--label", "again"], &[pfx_pw, pin]).ok();
    let backup = root.join("b");
    run(&["backup", "--out", s(&backup)], &[pin, backup_pw, backup_pw]).ok();
    run(&["change-pin"], &[pin, "123", "123"]);
    run(&["history", "--json"], &[]).ok();
    run(&["list", "--json"], &[]).ok();
    for out in &outputs {
        for secret in [pin, wrong, pfx_pw, backup_pw, "TOP-SECRET-CONTENT"] {
            assert!(!out.contains(secret), "{secret:?} appeared in output:\n{out}");
        }
    }
}

#[test]
fn a_reader_that_stops_reading_ends_kalit_quietly() {
    // `kalit ... | head` where head has already gone: no panic report, the exit status of SIGPIPE.
    let t = tempfile::tempdir().unwrap();
    let f = t.path().join("doc.txt");
    fs::write(&f, "x").unwrap();
    let mut c = kalit_cmd(&["hash", f.to_str().unwrap()]);
    let mut child = c.spawn().unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(matches!(out.status.code(), Some(0 | 141)), "{:?} {stderr}", out.status);
}

#[test]
fn man_pages_and_completions_follow_the_argument_grammar() {
    let t = tempfile::tempdir().unwrap();
    let out = t.path().join("man1");
    let r = kalit(&["man", "--out", s(&out)], &[]).ok();
    assert!(r.stdout.contains("manual pages"), "{}", r.stdout);
    // One page per command, named as man(1) looks it up, each with the command's own options.
    for (page, needles) in [
        ("kalit.1", &["kalit - ", "vault", "relay"][..]),
        ("kalit-vault-sign.1", &["kalit-vault-sign", "--level", "b-lta", "--visible"]),
        ("kalit-agent-serve.1", &["--tsa", "--trust"]),
        ("kalit-relay-serve.1", &["--database", "KALIT_RELAY_"]),
    ] {
        let text = fs::read_to_string(out.join(page)).unwrap_or_else(|e| panic!("{page}: {e}"));
        assert!(text.starts_with(".ie") || text.contains(".TH"), "{page} is a man page: {text:.200}");
        for n in needles {
            assert!(text.contains(&n.replace('-', "\\-")) || text.contains(n), "{page} lacks {n}");
        }
    }
    // groff renders every page without a warning (when it is installed).
    if std::process::Command::new("groff").arg("-v").output().is_ok() {
        for e in fs::read_dir(&out).unwrap() {
            let p = e.unwrap().path();
            let o = std::process::Command::new("groff").args(["-man", "-Tutf8", "-ww", "-z"]).arg(&p).output().unwrap();
            assert!(
                o.status.success() && o.stderr.is_empty(),
                "{}: {}",
                p.display(),
                String::from_utf8_lossy(&o.stderr)
            );
        }
    }
    // Bash completes commands and options from the script `kalit completions bash` prints.
    let script = t.path().join("kalit.bash");
    fs::write(&script, kalit(&["completions", "bash"], &[]).ok().stdout).unwrap();
    let complete = |words: &str| {
        let n = words.split(' ').count() - 1;
        let prog = format!(
            "source {}; COMP_WORDS=({words}); COMP_CWORD={n}; COMP_LINE='{words}'; COMP_POINT=${{#COMP_LINE}}; _kalit kalit \"${{COMP_WORDS[COMP_CWORD]}}\" \"${{COMP_WORDS[COMP_CWORD-1]}}\"; echo \"${{COMPREPLY[@]}}\"",
            s(&script)
        );
        let o = std::process::Command::new("bash").args(["-c", &prog]).output().unwrap();
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    assert_eq!(complete("kalit va").trim(), "vault");
    assert!(complete("kalit vault sign --le").contains("--level"));
    assert!(complete("kalit agent serve --ts").contains("--tsa"));
    for shell in ["zsh", "fish"] {
        assert!(kalit(&["completions", shell], &[]).ok().stdout.contains("vault"), "{shell}");
    }
    assert_eq!(kalit(&["completions", "tcsh"], &[]).code, 2, "an unknown shell is a usage error");
}

/// The alert rules (ops/prometheus/kalit-alerts.yml, unit-tested by promtool in CI) name only counters
/// the services count: `kalit_SERVICE_NAME_total` is rendered by kalit-service's metrics for every
/// `metrics.inc("NAME", ...)` in that service (or in kalit-service itself), and `http_requests` always;
/// and gauges (`…_seconds`) the service renders by name.
#[test]
fn alert_rules_name_only_counters_the_services_count() {
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let rules = fs::read_to_string(repo.join("ops/prometheus/kalit-alerts.yml")).unwrap();
    let source = |dir: &str| -> String {
        let mut all = String::new();
        for e in fs::read_dir(repo.join(dir)).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "rs") {
                all.push_str(&fs::read_to_string(p).unwrap());
            }
        }
        all
    };
    let shared = source("crates/kalit-service/src");
    let mut checked = 0;
    for word in rules.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
        let Some(rest) = word.strip_prefix("kalit_") else { continue };
        let (service, _) = rest.split_once('_').unwrap();
        let code = format!("{}{shared}", source(&format!("crates/kalit-{service}/src")));
        // A gauge a service renders itself, by its whole name.
        if word.ends_with("_seconds") && code.contains(&format!("# TYPE {word} gauge")) {
            checked += 1;
            continue;
        }
        let Some(rest) = rest.strip_suffix("_total") else {
            panic!("{word}: alert on counters (…_total) or a gauge the service renders")
        };
        let (service, name) = rest.split_once('_').unwrap();
        let counted = name == "http_requests" || code.contains(&format!("inc(\"{name}\""));
        assert!(counted, "{word}: kalit-{service} counts no {name:?}");
        checked += 1;
    }
    assert!(checked >= 5, "the rules name the relay's and the RA's counters ({checked})");
}

/// `kalit bench load` in miniature: both sides (the relay process, then the bare forwarder on its
/// address) run complete sessions with two simulated computers and phones, and the bench exits non-zero
/// if any session fails. The figures are not judged here (docs/PERFORMANCE.md records them).
#[test]
fn the_load_bench_runs_sessions_through_the_relay_and_the_forwarder_without_errors() {
    // Two rounds: the relay of round 2 is a new process on round 1's address, where the phones registered.
    let r = kalit(&["bench", "load", "--seconds", "1", "--clients", "2", "--warmup", "1", "--rounds", "2"], &[]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(r.stderr.matches("relay: warming up").count(), 2, "{}", r.stderr);
    assert_eq!(r.stderr.matches("forwarder: warming up").count(), 2, "{}", r.stderr);
    let by_round = r.stdout.lines().find(|l| l.starts_with("Relay / forwarder, round by round")).unwrap_or_default();
    let ratios = by_round.split("per second ").nth(1).and_then(|t| t.split(" (median").next()).unwrap_or_default();
    assert_eq!(ratios.split(", ").count(), 2, "one ratio per round: {}", r.stdout);
    for row in ["complete sessions per second", "server CPU per complete session", "errors"] {
        assert!(r.stdout.contains(row), "{}", r.stdout);
    }
    let errors = r.stdout.lines().find(|l| l.starts_with("errors")).unwrap();
    assert_eq!(errors.split_whitespace().collect::<Vec<_>>(), ["errors", "0", "0"], "{}", r.stdout);
    // The relay's Ed25519 work, timed in the bench (the forwarder does none), and the relay's CPU less it.
    let ms = |row: &str, nth: usize| -> f64 {
        let line = r.stdout.lines().find(|l| l.starts_with(row)).unwrap_or_else(|| panic!("{row}: {}", r.stdout));
        let values = line[row.len()..].split(" ms").map(str::trim).collect::<Vec<_>>();
        values[nth].parse().unwrap_or_else(|_| panic!("{line}"))
    };
    let signature = ms("of it, Ed25519 the forwarder skips (timed here)", 0);
    assert!(signature > 0.0, "{}", r.stdout);
    let (all, less) = (ms("server CPU per complete session", 0), ms("server CPU per complete session less that", 0));
    assert!((all - signature - less).abs() < 0.016, "{all} - {signature} = {less}? {}", r.stdout);
    // Each side's time in the kernel is a part of its CPU.
    for side in 0..2 {
        let (cpu, kernel) =
            (ms("server CPU per complete session", side), ms("of it, in the kernel (system time)", side));
        assert!((0.0..=cpu).contains(&kernel), "side {side}: {kernel} of {cpu} ms in the kernel? {}", r.stdout);
    }
    let sessions = r.stdout.lines().find(|l| l.starts_with("complete sessions per second")).unwrap();
    assert!(!sessions.contains(" 0.0/s"), "no session completed on one side: {}", r.stdout);
}

/// `kalit bench load --server-exe`: the relay and forwarder processes start from the binary named (here a
/// script that notes each start and runs this kalit), the clients stay the bench's own; a path that is
/// not a file is a usage error before anything starts.
#[test]
fn the_load_bench_starts_its_servers_from_another_binary_when_asked() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("started");
    let script = dir.path().join("other-kalit");
    std::fs::write(
        &script,
        format!("#!/bin/sh\necho \"$1 $2\" >> '{}'\nexec '{}' \"$@\"\n", log.display(), env!("CARGO_BIN_EXE_kalit")),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let exe = script.to_str().unwrap();
    let r = kalit(&["bench", "load", "--seconds", "1", "--clients", "1", "--warmup", "1", "--server-exe", exe], &[]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(std::fs::read_to_string(&log).unwrap(), "relay serve\nbench forwarder\n");
    assert!(r.stdout.contains(&format!("servers run from {exe}")), "{}", r.stdout);
    let errors = r.stdout.lines().find(|l| l.starts_with("errors")).unwrap();
    assert_eq!(errors.split_whitespace().collect::<Vec<_>>(), ["errors", "0", "0"], "{}", r.stdout);
    let r = kalit(&["bench", "load", "--server-exe", "/nonexistent/kalit"], &[]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("--server-exe /nonexistent/kalit: no such file"), "{}", r.stderr);
}

/// `kalit bench load --nodes 2` in miniature: two relay nodes on one fresh PostgreSQL database behind
/// HAProxy with the shipped configuration, then two forwarders behind the same proxy. Every session of
/// both sides completes, the proxy's CPU is reported, and the tunnels were spread over both nodes (each
/// node's own metrics), so the load-balanced set was measured and not one node.
#[test]
fn the_load_bench_runs_sessions_through_two_relay_nodes_behind_haproxy_without_errors() {
    if kalit_relay::haproxy::installed().is_none() {
        assert!(std::env::var("KALIT_REQUIRE_HAPROXY").is_err(), "KALIT_REQUIRE_HAPROXY is set but haproxy is missing");
        eprintln!("skipped: haproxy is not installed (Debian package haproxy; .ci/run installs it)");
        return;
    }
    let Some(db) = crate::network::relay_databases().into_iter().flatten().next() else {
        eprintln!("skipped: needs KALIT_TEST_POSTGRES_URL");
        return;
    };
    let args = ["bench", "load", "--seconds", "3", "--clients", "4", "--warmup", "1", "--nodes", "2"];
    let r = kalit(&[&args[..], &["--database", &db]].concat(), &[]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let row = |name: &str| r.stdout.lines().find(|l| l.starts_with(name)).unwrap_or_default().to_string();
    assert_eq!(row("errors").split_whitespace().collect::<Vec<_>>(), ["errors", "0", "0"], "{}", r.stdout);
    assert!(!row("complete sessions per second").contains(" 0.0/s"), "a side completed nothing: {}", r.stdout);
    assert!(row("load balancer (HAProxy) CPU").contains(" ms"), "{}", r.stdout);
    let spread = row("tunnels paired per node");
    let per_node: Vec<u64> = spread
        .trim_start_matches("tunnels paired per node (warm-up and run)")
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    assert_eq!(per_node.len(), 2, "{}", r.stdout);
    assert!(per_node.iter().all(|&n| n > 0), "a node paired no tunnel: {}", r.stdout);
}

/// `kalit bench tunnels` in miniature: a relay process holds waiting tunnels while registered phones pair
/// with computers at once and exchange frames; the relay's own gauges see them all at the peak, and the
/// bench exits non-zero if any tunnel or session fails.
#[test]
fn the_tunnels_bench_holds_waiting_and_paired_tunnels_at_once_without_errors() {
    let r = kalit(&["bench", "tunnels", "--waiting", "300", "--active", "30", "--frames", "3"], &[]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let row = |name: &str| r.stdout.lines().find(|l| l.starts_with(name)).unwrap_or_default().to_string();
    assert!(row("waiting tunnels opened").contains("300 of 300"), "{}", r.stdout);
    assert!(row("at the peak").contains("300 / 30"), "the relay's gauges: {}", r.stdout);
    assert!(row("sessions paired at once").contains("30 of 30"), "{}", r.stdout);
    assert_eq!(row("errors").split_whitespace().collect::<Vec<_>>(), ["errors", "0"], "{}", r.stdout);
}
