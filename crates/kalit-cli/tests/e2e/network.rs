//! The registration process across real processes: `kalit ra serve`, `kalit relay serve` (SQLite, and
//! PostgreSQL when `KALIT_TEST_POSTGRES_URL` is set) and phones driven through `kalit vault ...`.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::common::{PIN, V, kalit, s};

const RA_PASS: &str = "ra passphrase 123";

/// A running service; killed (SIGTERM via `kill`, then waited) on drop.
pub struct Service {
    child: Child,
    pub url: String,
}

impl Service {
    pub fn start(args: &[&str], stdin: Option<&str>) -> Service {
        Self::start_with(args, stdin, "warn", Stdio::inherit())
    }

    /// Starts with a log filter and standard error sent to `stderr`.
    pub fn start_with(args: &[&str], stdin: Option<&str>, log: &str, stderr: Stdio) -> Service {
        Self::start_env(args, stdin, log, stderr, &[])
    }

    /// [`start_with`](Self::start_with) with extra environment variables.
    pub fn start_env(args: &[&str], stdin: Option<&str>, log: &str, stderr: Stdio, env: &[(&str, &str)]) -> Service {
        let mut child = Command::new(env!("CARGO_BIN_EXE_kalit"))
            .args(args)
            .envs(env.iter().copied())
            .env("KALIT_LOG", log)
            .env_remove("KALIT_VAULT")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .unwrap();
        if let Some(text) = stdin {
            child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
        }
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let url = line.trim().rsplit(' ').next().unwrap().to_string();
        assert!(url.starts_with("http"), "service did not start: {line:?} ({args:?})");
        Service { child, url }
    }

    pub fn stop(mut self) {
        self.terminate();
    }

    /// SIGTERM without waiting: the process is told to stop and goes on with its shutdown.
    pub fn term(&self) {
        let _ = Command::new("kill").arg(self.child.id().to_string()).status();
    }

    /// The exit status once the process has ended.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().unwrap()
    }

    /// SIGKILL: the process gets no chance to close anything (a node that dies).
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn terminate(&mut self) {
        self.term();
        let _ = self.child.wait();
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            self.terminate();
        }
    }
}

/// An RA directory with a two-tier CA.
pub struct Ra {
    pub dir: PathBuf,
}

impl Ra {
    pub fn init(root: &Path, name: &str) -> Ra {
        Self::init_with(root, name, &[])
    }
    /// `kalit ra init` with `extra` arguments (e.g. `--public-url`).
    pub fn init_with(root: &Path, name: &str, extra: &[&str]) -> Ra {
        let dir = root.join(name);
        let mut args = vec!["ra", "init", "--dir", s(&dir), "--name", name, "--two-tier"];
        args.extend_from_slice(extra);
        kalit(&args, &[RA_PASS, RA_PASS]).ok();
        let pass = root.join(format!("{name}.pass"));
        std::fs::write(&pass, format!("{RA_PASS}\n")).unwrap();
        std::fs::set_permissions(&pass, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
        Ra { dir }
    }
    pub fn serve(&self) -> Service {
        self.serve_with(&[])
    }
    /// `kalit ra serve` with `extra` arguments (e.g. `--app-origin`).
    pub fn serve_with(&self, extra: &[&str]) -> Service {
        self.serve_on("127.0.0.1:0", extra)
    }
    /// `kalit ra serve` on `listen`.
    pub fn serve_on(&self, listen: &str, extra: &[&str]) -> Service {
        let pass = self.dir.with_extension("pass");
        let mut args = vec!["ra", "serve", "--dir", s(&self.dir), "--listen", listen, "--passphrase-file", s(&pass)];
        args.extend_from_slice(extra);
        Service::start(&args, None)
    }
    pub fn code(&self, subject: &str) -> String {
        let r = kalit(&["ra", "enrol", "--dir", s(&self.dir), "--subject", subject, "--ttl", "1h"], &[]).ok();
        r.stdout.trim().to_string()
    }
    pub fn ca(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }
}

/// A phone with one key enrolled at `ra`.
pub fn enrolled_phone(root: &Path, name: &str, alg: &str, ra: &Ra, ra_url: &str, subject: &str) -> V {
    let v = V::init(root, name, 10);
    v.generate(alg, "main");
    let code = ra.code(subject);
    let r = v.run(&["enrol", "main", "--ra", ra_url, "--code", &code, "--ca", s(&ra.ca())], &[PIN]).ok();
    assert!(r.stdout.contains("chains to the RA's root: installed"), "{}", r.stdout);
    // The code is single-use.
    v.run(&["enrol", "main", "--ra", ra_url, "--code", &code], &[PIN]).fails(20, "expired");
    v
}

/// Database URLs to run the relay on: none (SQLite in --data) and, when configured, a fresh PostgreSQL
/// database.
pub fn relay_databases() -> Vec<Option<String>> {
    let mut out = vec![None];
    match std::env::var("KALIT_TEST_POSTGRES_URL") {
        Ok(base) => {
            let name = format!("kalit_e2e_{}_{}", std::process::id(), rand_suffix());
            let st = Command::new("psql").arg(&base).args(["-q", "-c", &format!("CREATE DATABASE {name}")]).status();
            assert!(st.is_ok_and(|s| s.success()), "psql could not create a test database at {base}");
            let (prefix, _) = base.rsplit_once('/').unwrap();
            out.push(Some(format!("{prefix}/{name}")));
        }
        Err(_) => eprintln!("PostgreSQL part skipped: KALIT_TEST_POSTGRES_URL is not set (.ci/run sets it)"),
    }
    out
}

fn rand_suffix() -> String {
    let mut b = [0u8; 4];
    std::fs::File::open("/dev/urandom").unwrap().read_exact(&mut b).unwrap();
    b.iter().map(|x| format!("{x:02x}")).collect()
}

pub fn relay(data: &Path, db: &Option<String>, trust: &[&Path]) -> Service {
    let mut args = vec!["relay", "serve", "--data", s(data), "--listen", "127.0.0.1:0"];
    if let Some(u) = db {
        args.extend(["--database", u.as_str()]);
    }
    for t in trust {
        args.extend(["--trust", s(t)]);
    }
    // Three phones of one login make about twenty requests in seconds here; on PostgreSQL the per-login
    // buckets outlive a relay restart (they are shared by the nodes), so the burst is sized for the test.
    let env = [("KALIT_RELAY_LIMITS__PER_LOGIN_BURST", "60")];
    Service::start_env(&args, None, "warn", Stdio::inherit(), &env)
}

#[test]
fn enrol_register_second_phone_and_restart_on_each_backend() {
    let root = tempfile::tempdir().unwrap();
    let root = root.path();
    let ra = Ra::init(root, "ra");
    let ra_srv = ra.serve();
    for (i, db) in relay_databases().iter().enumerate() {
        let backend = if db.is_some() { "postgres" } else { "sqlite" };
        let data = root.join(format!("relay-{i}"));
        let rl = relay(&data, db, &[&ra.ca()]);
        let a = enrolled_phone(root, &format!("a{i}"), "p-256", &ra, &ra_srv.url, "CN=Aziza Rahimova,C=UZ");
        let r = a.run(&["register", "main", "--relay", &rl.url, "--login", "Aziza", "--device-name", "A"], &[PIN]).ok();
        assert!(r.stdout.contains("registered the new login aziza"), "{backend}: {}", r.stdout);
        a.run(&["register", "main", "--relay", &rl.url, "--login", "aziza"], &[PIN]).fails(12, "already_exists");
        let st = a.run(&["status"], &[]).ok();
        assert!(st.stdout.contains("Registered at") && st.stdout.contains("as aziza"), "{}", st.stdout);

        // A second phone with its own certificate: the login is taken.
        let b = enrolled_phone(root, &format!("b{i}"), "ed25519", &ra, &ra_srv.url, "CN=Boris,C=UZ");
        let r = b.run(&["register", "main", "--relay", &rl.url, "--login", "aziza"], &[PIN]).fails(18, "login_taken");
        assert!(r.stderr.contains("already attached"), "the message says how to proceed: {}", r.stderr);
        // Aziza's second phone: she moves her first certificate over as a PFX and registers with it.
        let pfx = root.join(format!("a{i}.pfx"));
        a.run(&["export", "main", "--out", s(&pfx)], &[PIN, "pfx-pass-1", "pfx-pass-1"]).ok();
        b.run(&["import", s(&pfx), "--label", "from-a"], &["pfx-pass-1", PIN]).ok();
        let r =
            b.run(&["register", "from-a", "--relay", &rl.url, "--login", "aziza", "--device-name", "B"], &[PIN]).ok();
        assert!(r.stdout.contains("added this phone"), "{backend}: {}", r.stdout);

        let r = b.run(&["devices", "--relay", &rl.url, "--json"], &[PIN]).ok();
        let list: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
        assert_eq!(list["devices"].as_array().unwrap().len(), 2, "{backend}: {list}");

        // Restart the relay on the same data directory and database: nothing is lost.
        rl.stop();
        let rl = relay(&data, db, &[&ra.ca()]);
        let r = a.run(&["devices", "--relay", &rl.url, "--json"], &[PIN]).ok();
        let list: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
        let ids: Vec<String> =
            list["devices"].as_array().unwrap().iter().map(|d| d["device_id"].as_str().unwrap().to_string()).collect();
        assert_eq!(ids.len(), 2, "{backend}: {list}");
        // Aziza removes phone B from phone A (by a prefix of its id); B can no longer speak for the login.
        a.run(&["unregister", "--relay", &rl.url, &ids[1][..8]], &[PIN]).ok();
        b.run(&["devices", "--relay", &rl.url], &[PIN]).fails(22, "unauthorized");
        a.run(&["unregister", "--relay", &rl.url, &ids[0]], &[PIN]).ok();
        a.run(&["devices", "--relay", &rl.url], &[PIN]).fails(6, "not_found");

        // A phone with its own certificate and Aziza's PFX: its own certificate joins the login only with
        // the approval of its registration under Aziza's (attached) certificate.
        let c = enrolled_phone(root, &format!("c{i}"), "p-256", &ra, &ra_srv.url, "CN=Cavid,C=UZ");
        c.run(&["register", "main", "--relay", &rl.url, "--login", "aziza"], &[PIN]).fails(18, "login_taken");
        c.run(&["import", s(&pfx), "--label", "from-a"], &["pfx-pass-1", PIN]).ok();
        c.run(&["register", "from-a", "--relay", &rl.url, "--login", "aziza"], &[PIN]).ok();
        let r = c.run(&["register", "main", "--relay", &rl.url, "--login", "aziza"], &[PIN]).ok();
        assert!(r.stdout.contains("approves the new certificate"), "{backend}: {}", r.stdout);
        // Removing the device of Cavid's certificate from the registration of Aziza's needs the proof of
        // Cavid's certificate.
        let list = c.run(&["devices", "--relay", &rl.url, "--json"], &[PIN]).ok().stdout;
        let list: serde_json::Value = serde_json::from_str(&list).unwrap();
        let cavid = list["devices"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["cert_subject"].as_str().unwrap().contains("Cavid"))
            .unwrap()["device_id"]
            .as_str()
            .unwrap()
            .to_string();
        c.run(&["unregister", "--relay", &rl.url, &cavid], &[PIN]).fails(7, "refused_by_policy");
        c.run(&["unregister", "--relay", &rl.url, &cavid, "--proof-key", "main"], &[PIN]).ok();
        let list = c.run(&["devices", "--relay", &rl.url, "--json"], &[PIN]).ok().stdout;
        assert!(!list.contains(&cavid), "{backend}: {list}");
    }
}

#[test]
fn an_untrusted_pfx_registers_only_after_the_operator_trusts_its_ca() {
    let root = tempfile::tempdir().unwrap();
    let root = root.path();
    let ra = Ra::init(root, "ra");
    let national = Ra::init(root, "national");
    let nat_srv = national.serve();
    // A certificate from another CA, carried as a PFX (as people do today) into a fresh phone.
    let old = enrolled_phone(root, "old", "rsa-2048", &national, &nat_srv.url, "CN=Dilshod,C=UZ");
    let pfx = root.join("old.pfx");
    old.run(&["export", "main", "--out", s(&pfx)], &[PIN, "pfx-pass-1", "pfx-pass-1"]).ok();
    let phone = V::init(root, "phone", 10);
    phone.run(&["import", s(&pfx), "--label", "gov"], &["pfx-pass-1", PIN]).ok();
    let data = root.join("relay");
    let rl = relay(&data, &None, &[&ra.ca()]);
    phone
        .run(&["register", "gov", "--relay", &rl.url, "--login", "dilshod"], &[PIN])
        .fails(17, "untrusted_certificate");
    rl.stop();
    let rl = relay(&data, &None, &[&ra.ca(), &national.ca()]);
    phone.run(&["register", "gov", "--relay", &rl.url, "--login", "dilshod"], &[PIN]).ok();
}

/// A one-shot HTTP server that answers every request with `body` (a hostile or broken RA/relay).
fn fake_server(status: &'static str, body: String) -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in l.incoming().take(4) {
            let Ok(mut s) = stream else { continue };
            let mut buf = vec![0u8; 65536];
            let _ = s.read(&mut buf);
            let resp = format!(
                "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = s.write_all(resp.as_bytes());
        }
    });
    url
}

#[test]
fn the_phone_refuses_a_certificate_for_another_key_and_broken_services() {
    if crate::common::openssl().is_none() {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let root = root.path();
    let ra = Ra::init(root, "ra");
    let ra_srv = ra.serve();
    // A genuine certificate, but for someone else's key.
    let other = enrolled_phone(root, "other", "p-256", &ra, &ra_srv.url, "CN=Other,C=UZ");
    let chain = std::fs::read_to_string(root.join("ra/ca.pem")).unwrap();
    other.run(&["export", "main", "--out", s(&root.join("o.pfx"))], &[PIN, "pfx-pass-1", "pfx-pass-1"]).ok();
    let leaf = crate::common::ossl_ok(&[
        "pkcs12",
        "-in",
        s(&root.join("o.pfx")),
        "-passin",
        "pass:pfx-pass-1",
        "-nokeys",
        "-clcerts",
    ]);
    let body =
        serde_json::json!({"serial": "01", "subject": "CN=Other", "chain": format!("{leaf}{chain}"), "not_after": 0})
            .to_string();
    let evil_ra = fake_server("201 Created", body);
    let v = V::init(root, "victim", 10);
    v.generate("p-256", "k");
    v.run(&["enrol", "k", "--ra", &evil_ra, "--code", "AAAA-BBBB"], &[PIN]).fails(13, "key_mismatch");
    let r = v.run(&["show", "k", "--json"], &[]).ok();
    assert!(r.stdout.contains("\"certificate\": null"), "nothing was installed: {}", r.stdout);
    // Something that is not a Kalit service, and nothing at all.
    let html = fake_server("404 Not Found", "<html>nope</html>".into());
    v.run(&["register", "k", "--relay", &html, "--login", "victim"], &[]).fails(21, "unavailable");
    v.run(&["enrol", "k", "--ra", "http://127.0.0.1:9", "--code", "x"], &[PIN]).fails(21, "unavailable");
    // Plain HTTP to a non-loopback host is refused before anything is sent.
    v.run(&["register", "k", "--relay", "http://relay.example", "--login", "victim"], &[])
        .fails(7, "refused_by_policy");
    // An RA whose error message carries terminal escapes (OSC title, clipboard, screen clear) and a bidi
    // override: shown escaped, never interpreted.
    let hostile = serde_json::json!({"error": {"code": "invalid_input",
        "message": "bad\u{1b}]0;pwned\u{7}\u{1b}]52;c;cGF5bG9hZA==\u{7}\u{1b}[2J\u{202e}txt.exe"}})
    .to_string();
    let evil_ra = fake_server("400 Bad Request", hostile);
    let r = v.run(&["enrol", "k", "--ra", &evil_ra, "--code", "AAAA-BBBB"], &[PIN]).fails(8, "invalid_input");
    assert!(!r.stderr.contains('\x1b') && !r.stderr.contains('\u{202e}'), "{:?}", r.stderr);
    assert!(r.stderr.contains("\\u{1b}]0;pwned"), "{:?}", r.stderr);
}

#[test]
fn relay_operator_rules_tls_and_config() {
    let root = tempfile::tempdir().unwrap();
    let root = root.path();
    // Plain HTTP off loopback is refused.
    let r = kalit(&["relay", "serve", "--data", s(&root.join("r")), "--listen", "0.0.0.0:0"], &[]);
    r.fails(7, "refused_by_policy");
    // A config file with an unknown key, and a bad environment override, are refused.
    let cfg = root.join("relay.toml");
    std::fs::write(&cfg, "listen = \"127.0.0.1:0\"\nlistne = \"typo\"\n").unwrap();
    let r =
        kalit(&["relay", "serve", "--config", s(&cfg), "--data", s(&root.join("r"))], &[]).fails(8, "invalid_input");
    assert!(r.stderr.contains("listne"), "{}", r.stderr);
    // TLS on the relay, trusted by the phone through KALIT_TLS_CA.
    let tls = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    std::fs::write(root.join("tls.pem"), tls.cert.pem()).unwrap();
    std::fs::write(root.join("tls.key"), tls.signing_key.serialize_pem()).unwrap();
    std::fs::write(&cfg, "listen = \"127.0.0.1:0\"\n[limits]\nper_login_per_minute = 100\n").unwrap();
    let ra = Ra::init(root, "ra");
    let ra_srv = ra.serve();
    let (data, ca, cert, key) = (root.join("r"), ra.ca(), root.join("tls.pem"), root.join("tls.key"));
    let args = [
        "relay",
        "serve",
        "--config",
        s(&cfg),
        "--data",
        s(&data),
        "--trust",
        s(&ca),
        "--tls-cert",
        s(&cert),
        "--tls-key",
        s(&key),
    ];
    let rl = Service::start(&args, None);
    assert!(rl.url.starts_with("https://"), "{}", rl.url);
    let v = enrolled_phone(root, "p", "p-256", &ra, &ra_srv.url, "CN=T,C=UZ");
    let url = rl.url.replace("127.0.0.1", "localhost");
    // Without the CA the phone refuses the relay's certificate.
    v.run(&["register", "main", "--relay", &url, "--login", "tls-user"], &[]).fails(21, "unavailable");
    let mut c = crate::common::kalit_cmd(&[
        "vault",
        "--vault",
        s(&v.dir),
        "register",
        "main",
        "--relay",
        &url,
        "--login",
        "tls-user",
    ]);
    c.env("KALIT_TLS_CA", root.join("tls.pem"));
    let mut child = c.spawn().unwrap();
    crate::common::feed(&mut child, &[PIN]);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn service_logs_are_structured_and_hold_no_secrets() {
    let root = tempfile::tempdir().unwrap();
    let root = root.path();
    let ra = Ra::init(root, "ra");
    let ra_log = root.join("ra.log");
    let relay_log = root.join("relay.log");
    let pass = ra.dir.with_extension("pass");
    let ra_srv = Service::start_with(
        &[
            "ra",
            "serve",
            "--dir",
            s(&ra.dir),
            "--listen",
            "127.0.0.1:0",
            "--passphrase-file",
            s(&pass),
            "--log-format",
            "json",
        ],
        None,
        "trace",
        Stdio::from(std::fs::File::create(&ra_log).unwrap()),
    );
    let rl = Service::start_with(
        &[
            "relay",
            "serve",
            "--data",
            s(&root.join("relay")),
            "--listen",
            "127.0.0.1:0",
            "--trust",
            s(&ra.ca()),
            "--log-format",
            "json",
        ],
        None,
        "trace",
        Stdio::from(std::fs::File::create(&relay_log).unwrap()),
    );
    let v = V::init(root, "phone", 10);
    v.generate("p-256", "main");
    let code = ra.code("CN=Log Test,C=UZ");
    v.run(&["enrol", "main", "--ra", &ra_srv.url, "--code", &code, "--ca", s(&ra.ca())], &[PIN]).ok();
    v.run(&["register", "main", "--relay", &rl.url, "--login", "log.test"], &[PIN]).ok();
    v.run(&["register", "main", "--relay", &rl.url, "--login", "log.test"], &[PIN]).fails(12, "already_exists");
    ra_srv.stop();
    rl.stop();
    let logs = format!("{}{}", std::fs::read_to_string(&ra_log).unwrap(), std::fs::read_to_string(&relay_log).unwrap());
    assert!(logs.contains("certificate issued") && logs.contains("registered"), "{logs}");
    for line in logs.lines().filter(|l| !l.trim().is_empty()) {
        serde_json::from_str::<serde_json::Value>(line).unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"));
    }
    let code_plain: String = code.chars().filter(|c| *c != '-').collect();
    for secret in [code.as_str(), code_plain.as_str(), RA_PASS, PIN] {
        assert!(!logs.contains(secret), "a secret reached the logs: {secret}");
    }
    // The CA key never appears in clear in the RA directory.
    for f in crate::common::all_files(&ra.dir) {
        let text = String::from_utf8_lossy(&std::fs::read(&f).unwrap()).into_owned();
        assert!(!text.contains("PRIVATE KEY"), "{}", f.display());
    }
}

#[test]
fn ra_operator_commands() {
    let root = tempfile::tempdir().unwrap();
    let root = root.path();
    let ra = Ra::init(root, "ra");
    let d = s(&ra.dir);
    // A second init on the same directory is refused; enrolment checks the subject and the TTL.
    kalit(&["ra", "init", "--dir", d, "--name", "again"], &[RA_PASS, RA_PASS]).fails(12, "already_exists");
    kalit(&["ra", "init", "--dir", s(&root.join("weak")), "--name", "x"], &["short", "short"]).fails(14, "weak_secret");
    kalit(&["ra", "enrol", "--dir", d, "--subject", "no equals"], &[]).fails(8, "invalid_input");
    kalit(&["ra", "enrol", "--dir", d, "--subject", "CN=x", "--ttl", "1y"], &[]).fails(8, "invalid_input");
    let r = kalit(&["ra", "enrol", "--dir", d, "--subject", "CN=Json,C=UZ", "--json"], &[]).ok();
    let code: serde_json::Value = serde_json::from_str(r.stdout.trim()).unwrap();
    assert_eq!(code["code"].as_str().unwrap().len(), 29);
    // A wrong passphrase file: the RA does not start.
    let bad = root.join("bad.pass");
    std::fs::write(&bad, "not the passphrase\n").unwrap();
    kalit(&["ra", "serve", "--dir", d, "--listen", "127.0.0.1:0", "--passphrase-file", s(&bad)], &[])
        .fails(5, "wrong_password");
    let srv = ra.serve();
    enrolled_phone(root, "p", "p-256", &ra, &srv.url, "CN=Listed Person,C=UZ");
    let list = |json: bool| {
        let mut a = vec!["ra", "list", "--dir", d];
        if json {
            a.push("--json");
        }
        kalit(&a, &[]).ok().stdout
    };
    let issued: serde_json::Value = serde_json::from_str(&list(true)).unwrap();
    let serial = issued[0]["serial"].as_str().unwrap().to_string();
    assert_eq!(issued.as_array().unwrap().len(), 1);
    assert!(issued[0]["revoked_at"].is_null());
    kalit(&["ra", "revoke", "--dir", d, &serial, "--reason", "nonsense"], &[]).fails(8, "invalid_input");
    kalit(&["ra", "revoke", "--dir", d, &serial, "--reason", "keyCompromise"], &[]).ok();
    kalit(&["ra", "revoke", "--dir", d, &serial], &[]).fails(6, "not_found");
    let text = list(false);
    assert!(text.contains("revoked") && text.contains("keyCompromise") && text.contains("Listed Person"), "{text}");
}

#[test]
fn slow_clients_are_cut_off_while_others_are_served() {
    use std::net::TcpStream;
    use std::time::Duration;
    let root = tempfile::tempdir().unwrap();
    let rl = Service::start_env(
        &["relay", "serve", "--data", s(&root.path().join("r")), "--listen", "127.0.0.1:0"],
        None,
        "warn",
        Stdio::inherit(),
        &[("KALIT_RELAY_LIMITS__HEADER_TIMEOUT_SECS", "1")],
    );
    let addr = rl.url.trim_start_matches("http://").to_string();
    // Ten clients that send half a request and then nothing.
    let mut slow: Vec<TcpStream> = (0..10)
        .map(|_| {
            let mut c = TcpStream::connect(&addr).unwrap();
            c.write_all(b"POST /v1/nonce HTTP/1.1\r\nHost: relay\r\nContent-Type: appl").unwrap();
            c
        })
        .collect();
    // Meanwhile a normal client is answered.
    let mut ok = TcpStream::connect(&addr).unwrap();
    ok.write_all(b"GET /healthz HTTP/1.1\r\nHost: relay\r\nConnection: close\r\n\r\n").unwrap();
    let mut answer = String::new();
    ok.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    // The slow ones are disconnected by the server after the header timeout (1 s here; 10 s by default):
    // reading reaches end-of-stream instead of waiting until our own 30 s read timeout gives up.
    for c in &mut slow {
        c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut buf = Vec::new();
        let r = c.read_to_end(&mut buf);
        let closed = match &r {
            Ok(_) => true,
            Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
        };
        assert!(closed, "the relay kept a slow client's connection open: {r:?}");
    }
}

/// Copies the files of `from` into `to` (a cold copy of the small files a backup holds).
fn copy_files(from: &Path, to: &Path, names: &[&str]) {
    std::fs::create_dir_all(to).unwrap();
    for n in names {
        if from.join(n).exists() {
            std::fs::copy(from.join(n), to.join(n)).unwrap_or_else(|e| panic!("{n}: {e}"));
        }
    }
}

/// `sqlite3 DB ".backup TO"`: SQLite's online backup, the way docs/OPERATIONS.md says to copy a database
/// while the service runs.
fn sqlite_backup(db: &Path, to: &Path) {
    let o = Command::new("sqlite3").arg(db).arg(format!(".backup '{}'", to.display())).output().unwrap();
    assert!(o.status.success(), "sqlite3 .backup: {}", String::from_utf8_lossy(&o.stderr));
}

fn relay_identity(url: &str) -> serde_json::Value {
    let body = reqwest::blocking::get(format!("{url}/.well-known/kalit-relay")).unwrap().text().unwrap();
    serde_json::from_str(&body).unwrap()
}

#[test]
fn backups_taken_while_serving_restore_the_ra_and_the_relay() {
    if Command::new("sqlite3").arg("-version").output().is_err() {
        assert!(std::env::var("KALIT_REQUIRE_OPENSSL").is_err(), "CI installs sqlite3 for the backup test");
        println!("SKIPPED: the backup test needs the sqlite3 command (apt-get install sqlite3)");
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let root = root.path();
    let ra = Ra::init(root, "ra");
    let ra_srv = ra.serve();
    let a = enrolled_phone(root, "a", "p-256", &ra, &ra_srv.url, "CN=Aziza Rahimova,C=UZ");
    enrolled_phone(root, "b", "p-256", &ra, &ra_srv.url, "CN=Boris,C=UZ");
    let d = s(&ra.dir);
    let issued: serde_json::Value =
        serde_json::from_str(&kalit(&["ra", "list", "--dir", d, "--json"], &[]).ok().stdout).unwrap();
    let boris = issued.as_array().unwrap().iter().find(|c| c["subject"].as_str().unwrap().contains("Boris")).unwrap();
    let boris_serial = boris["serial"].as_str().unwrap().to_string();
    kalit(&["ra", "revoke", "--dir", d, &boris_serial, "--reason", "keyCompromise"], &[]).ok();

    let dbs = relay_databases();
    for (i, db) in dbs.iter().enumerate() {
        let backend = if db.is_some() { "postgres" } else { "sqlite" };
        let data = root.join(format!("relay-{i}"));
        let rl = relay(&data, db, &[&ra.ca()]);
        let login = format!("aziza{i}");
        a.run(&["register", "main", "--relay", &rl.url, "--login", &login], &[PIN]).ok();
        let before = relay_identity(&rl.url);
        // The backup, taken while the relay serves: its identity key and its database.
        let backup = root.join(format!("relay-backup-{i}"));
        copy_files(&data, &backup, &["relay-identity.pk8"]);
        let dump = backup.join("relay.sql");
        match db {
            None => sqlite_backup(&data.join("relay.db"), &backup.join("relay.db")),
            Some(url) => {
                let o = Command::new("pg_dump").args(["--no-owner", "--file", s(&dump), url]).output().unwrap();
                assert!(o.status.success(), "pg_dump: {}", String::from_utf8_lossy(&o.stderr));
            }
        }
        // The machine is lost: the relay, its directory and its database.
        rl.stop();
        std::fs::remove_dir_all(&data).unwrap();
        let restored_db = db.as_ref().map(|url| {
            let (prefix, name) = url.rsplit_once('/').unwrap();
            let base = std::env::var("KALIT_TEST_POSTGRES_URL").unwrap();
            let fresh = format!("{name}_restored");
            let st = Command::new("psql").arg(&base).args(["-q", "-c", &format!("CREATE DATABASE {fresh}")]).status();
            assert!(st.is_ok_and(|s| s.success()));
            let fresh = format!("{prefix}/{fresh}");
            let o =
                Command::new("psql").args(["-q", "-v", "ON_ERROR_STOP=1", "-f", s(&dump), &fresh]).output().unwrap();
            assert!(o.status.success(), "psql restore: {}", String::from_utf8_lossy(&o.stderr));
            fresh
        });
        // Restored on a new machine: the backup copied into a new directory.
        let restored = root.join(format!("relay-restored-{i}"));
        copy_files(&backup, &restored, &["relay-identity.pk8", "relay.db"]);
        let rl = relay(&restored, &restored_db, &[&ra.ca()]);
        let after = relay_identity(&rl.url);
        assert_eq!(before, after, "{backend}: the same relay identity, so phones' attestations still hold");
        // The phone registered before the backup still speaks for its login, and a new phone registers.
        let list: serde_json::Value =
            serde_json::from_str(&a.run(&["devices", "--relay", &rl.url, "--json"], &[PIN]).ok().stdout).unwrap();
        assert_eq!(list["devices"].as_array().unwrap().len(), 1, "{backend}: {list}");
        let c = enrolled_phone(root, &format!("c{i}"), "p-256", &ra, &ra_srv.url, "CN=Cavid,C=UZ");
        c.run(&["register", "main", "--relay", &rl.url, "--login", &format!("cavid{i}")], &[PIN]).ok();
        rl.stop();
    }

    // The RA, backed up while it serves: the sealed keys, the chain, the log, the root CRL, the database.
    let backup = root.join("ra-backup");
    copy_files(&ra.dir, &backup, &["ca.json", "ca.pem", "issued.log", "root.crl"]);
    sqlite_backup(&ra.dir.join("ra.db"), &backup.join("ra.db"));
    ra_srv.stop();
    std::fs::remove_dir_all(&ra.dir).unwrap();
    copy_files(&backup, &ra.dir, &["ca.json", "ca.pem", "issued.log", "root.crl", "ra.db"]);
    let ra_srv = ra.serve();
    let listed: serde_json::Value =
        serde_json::from_str(&kalit(&["ra", "list", "--dir", d, "--json"], &[]).ok().stdout).unwrap();
    assert_eq!(
        listed.as_array().unwrap().len(),
        issued.as_array().unwrap().len() + dbs.len(),
        "every issued certificate: {listed}"
    );
    let revoked: Vec<&serde_json::Value> =
        listed.as_array().unwrap().iter().filter(|c| !c["revoked_at"].is_null()).collect();
    assert_eq!(revoked.len(), 1, "{listed}");
    assert_eq!(revoked[0]["serial"], boris_serial.as_str());
    // The restored RA's CRL still lists the revocation, and it issues new certificates.
    let crl = reqwest::blocking::get(format!("{}/v1/crl", ra_srv.url)).unwrap().bytes().unwrap();
    let crl_path = root.join("restored.crl");
    std::fs::write(&crl_path, &crl).unwrap();
    if crate::common::openssl().is_some() {
        let text = crate::common::ossl_ok(&["crl", "-inform", "DER", "-in", s(&crl_path), "-noout", "-text"]);
        let upper = boris_serial.to_uppercase();
        assert!(text.contains(upper.trim_start_matches('0')), "the CRL lists {boris_serial}: {text}");
    }
    let e = enrolled_phone(root, "e", "p-256", &ra, &ra_srv.url, "CN=Eldor,C=UZ");
    let show: serde_json::Value = serde_json::from_str(&e.run(&["show", "main", "--json"], &[]).ok().stdout).unwrap();
    assert!(show["certificate"]["subject"].as_str().unwrap().contains("Eldor"), "{show}");
}

#[test]
fn the_root_crl_is_signed_again_with_the_root_key_while_the_ra_serves() {
    let Some(_) = crate::common::openssl() else { return };
    use crate::common::ossl_ok;
    let root = tempfile::tempdir().unwrap();
    let root = root.path();
    let ra = Ra::init_with(root, "ra", &["--public-url", "https://ra.example"]);
    let d = s(&ra.dir);
    let pass = ra.dir.with_extension("pass");
    let srv = ra.serve();
    let crl_file = ra.dir.join("root.crl");
    let fetch = || reqwest::blocking::get(format!("{}/v1/root.crl", srv.url)).unwrap().bytes().unwrap().to_vec();
    let first = std::fs::read(&crl_file).unwrap();
    assert_eq!(fetch(), first);
    // OpenSSL checks each CRL's signature with the root (the last certificate of ca.pem).
    let chain = kalit_core::x509::parse_cert_bundle(&std::fs::read(ra.ca()).unwrap()).unwrap();
    let root_pem = root.join("root.pem");
    std::fs::write(&root_pem, kalit_core::x509::cert_pem(chain.last().unwrap())).unwrap();
    let read = |der: &[u8], name: &str| {
        let f = root.join(name);
        std::fs::write(&f, der).unwrap();
        ossl_ok(&["crl", "-inform", "DER", "-in", s(&f), "-CAfile", s(&root_pem), "-noout", "-text"])
    };
    let before = read(&first, "first.crl");
    assert!(before.contains("X509v3 CRL Number: \n                1"), "{before}");

    // A wrong passphrase signs nothing and leaves the CRL as it was.
    let bad = root.join("bad.pass");
    std::fs::write(&bad, "not the passphrase\n").unwrap();
    kalit(&["ra", "root-crl", "--dir", d, "--passphrase-file", s(&bad)], &[]).fails(5, "wrong_password");
    assert_eq!(std::fs::read(&crl_file).unwrap(), first);

    std::thread::sleep(std::time::Duration::from_millis(1100));
    let r = kalit(&["ra", "root-crl", "--dir", d, "--passphrase-file", s(&pass)], &[]).ok();
    assert!(r.stdout.contains("valid until"), "{}", r.stdout);
    let second = std::fs::read(&crl_file).unwrap();
    assert_ne!(second, first);
    assert_eq!(fetch(), second, "the serving RA hands out the new CRL at once");
    let after = read(&second, "second.crl");
    let number = |text: &str| -> u64 {
        let at = text.find("CRL Number:").unwrap();
        let v = text[at..].lines().nth(1).unwrap().trim();
        u64::from_str_radix(&v.replace(':', ""), if v.contains(':') { 16 } else { 10 }).unwrap()
    };
    assert!(number(&after) > number(&before), "the CRL number grows: {before}\n{after}");
    let last_update = |text: &str| text.lines().find(|l| l.contains("Last Update:")).unwrap().to_string();
    assert_ne!(last_update(&after), last_update(&before));

    // A CA without an issuing CA under its root has one CRL, made while serving: nothing to re-sign.
    let one = root.join("one");
    kalit(&["ra", "init", "--dir", s(&one), "--name", "one"], &[RA_PASS, RA_PASS]).ok();
    let one_pass = root.join("one.pass");
    std::fs::write(&one_pass, format!("{}\n", RA_PASS)).unwrap();
    kalit(&["ra", "root-crl", "--dir", s(&one), "--passphrase-file", s(&one_pass)], &[]).fails(8, "invalid_input");
}
