//! Faults survived, with real processes: a relay's PostgreSQL stopped and started again under the relay's
//! feet during a burst of registrations. The PostgreSQL here is a private one (initdb in a temporary
//! directory, on a free port), so stopping it disturbs no other test.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kalit_proto::relay::{RelayIdentity, WELL_KNOWN_PATH};

use crate::burst;
use crate::common::{PIN, s};
use crate::network::{Ra, Service, enrolled_phone, relay};

/// The directory of PostgreSQL's server programs (initdb, pg_ctl), if installed.
fn pg_bin() -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|b| b.join("initdb").exists() && b.join("pg_ctl").exists())
        .collect();
    found.sort();
    found.pop()
}

/// Runs a PostgreSQL program; as root (CI), as the `postgres` user, which PostgreSQL requires.
fn pg(bin: &Path, prog: &str, args: &[&str]) -> Output {
    let root = Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.starts_with(b"0"));
    let mut c = if root {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(bin.join(prog));
        c
    } else {
        Command::new(bin.join(prog))
    };
    c.args(args).output().unwrap()
}

/// A private PostgreSQL server in `dir` on `port`.
struct Postgres {
    bin: PathBuf,
    data: PathBuf,
    port: u16,
}

impl Postgres {
    fn init(bin: PathBuf, dir: &Path) -> Postgres {
        let data = dir.join("pgdata");
        std::fs::create_dir_all(dir).unwrap();
        // The server runs as `postgres` when the tests run as root: it must own its directory.
        let _ = Command::new("chown").args(["postgres:postgres", s(dir)]).status();
        let o = pg(&bin, "initdb", &["-D", s(&data), "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8"]);
        assert!(o.status.success(), "initdb: {}", String::from_utf8_lossy(&o.stderr));
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        Postgres { bin, data, port }
    }

    fn start(&self) {
        let opts = format!("-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off", self.port, s(&self.data));
        let log = self.data.join("server.log");
        let o = pg(&self.bin, "pg_ctl", &["-D", s(&self.data), "-l", s(&log), "-o", &opts, "-w", "start"]);
        assert!(o.status.success(), "pg_ctl start: {}", String::from_utf8_lossy(&o.stderr));
    }

    /// `-m fast`: every connection is cut, as in a restart or a failover.
    fn stop(&self) {
        let o = pg(&self.bin, "pg_ctl", &["-D", s(&self.data), "-m", "fast", "-w", "stop"]);
        assert!(o.status.success(), "pg_ctl stop: {}", String::from_utf8_lossy(&o.stderr));
    }

    fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = pg(&self.bin, "pg_ctl", &["-D", s(&self.data), "-m", "immediate", "stop"]);
    }
}

/// `GET /healthz` (the relay pings its database there): the status code.
fn health(url: &str) -> u16 {
    let c = reqwest::blocking::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
    c.get(format!("{url}/healthz")).send().map(|r| r.status().as_u16()).unwrap_or(0)
}

#[test]
fn a_postgresql_restart_gives_unavailable_meanwhile_and_the_relay_recovers_by_itself() {
    let Some(bin) = pg_bin() else {
        assert!(
            std::env::var("KALIT_TEST_POSTGRES_URL").is_err(),
            "KALIT_TEST_POSTGRES_URL is set but PostgreSQL's server programs (initdb, pg_ctl) are not installed"
        );
        println!("SKIPPED: PostgreSQL's server programs are not installed (postgresql package)");
        return;
    };
    let root = tempfile::tempdir().unwrap();
    let root = root.path();
    let pgsql = Postgres::init(bin, &root.join("pg"));
    pgsql.start();
    let o = Command::new("psql").args([&pgsql.url("postgres"), "-q", "-c", "CREATE DATABASE kalit"]).output().unwrap();
    assert!(o.status.success(), "createdb: {}", String::from_utf8_lossy(&o.stderr));
    let ra = Ra::init(root, "ra");
    let ra_srv = ra.serve();
    let db = pgsql.url("kalit");
    let burst_ca = root.join("burst-ca.pem");
    let persons = Arc::new(burst::people(300, &burst_ca));
    let data = root.join("relay");
    let args = ["relay", "serve", "--data", s(&data), "--database", &db, "--listen", "127.0.0.1:0"];
    let ra_ca = ra.ca();
    let args = [&args[..], &["--trust", s(&ra_ca), "--trust", s(&burst_ca)]].concat();
    // The burst comes from one address: limits it cannot reach (but limits, kept in the database, so
    // their store's outage shows in the metrics).
    let env = [
        ("KALIT_RELAY_LIMITS__PER_LOGIN_PER_MINUTE", "0"),
        ("KALIT_RELAY_LIMITS__PER_ADDRESS_PER_MINUTE", "1000000"),
        ("KALIT_RELAY_LIMITS__PER_ADDRESS_BURST", "1000000"),
    ];
    let rl = Service::start_env(&args, None, "error", Stdio::inherit(), &env);
    let a = enrolled_phone(root, "a", "p-256", &ra, &ra_srv.url, "CN=Aziza,C=UZ");
    let b = enrolled_phone(root, "b", "p-256", &ra, &ra_srv.url, "CN=Boris,C=UZ");
    a.run(&["register", "main", "--relay", &rl.url, "--login", "aziza"], &[PIN]).ok();
    assert_eq!(health(&rl.url), 200);

    // A burst of registrations is under way (four clients, 300 logins, each retried until told) when
    // PostgreSQL goes away: the relay says so with 503 `unavailable`, to probes and to phones alike.
    let ident: RelayIdentity = reqwest::blocking::get(format!("{}{WELL_KNOWN_PATH}", rl.url)).unwrap().json().unwrap();
    let (seen, clients) = burst::start(&rl.url, &ident, persons.clone(), 4);
    let deadline = Instant::now() + Duration::from_secs(60);
    while seen.lock().unwrap().told.len() < 50 {
        assert!(Instant::now() < deadline, "the burst did not get going");
        std::thread::sleep(Duration::from_millis(5));
    }
    pgsql.stop();
    let told_at_stop = seen.lock().unwrap().told.len();
    assert!(told_at_stop < persons.len(), "the burst ended before the database stopped");
    assert_eq!(health(&rl.url), 503, "the health check fails while the database is down");
    let r = b.run(&["register", "main", "--relay", &rl.url, "--login", "boris"], &[PIN]);
    assert_ne!(r.code, 0, "nothing registers without the database");
    assert!(r.stderr.contains("error[unavailable]"), "{}", r.stderr);
    let r = a.run(&["devices", "--relay", &rl.url], &[PIN]);
    assert!(r.stderr.contains("error[unavailable]"), "{}", r.stderr);
    let metrics = reqwest::blocking::get(format!("{}/metrics", rl.url)).unwrap();
    assert_eq!(metrics.status().as_u16(), 200, "the relay process itself keeps answering");
    // What the alert rules (ops/prometheus) watch for: 503s, and the shared rate limits unavailable.
    let metrics = metrics.text().unwrap();
    assert!(metrics.contains("kalit_relay_rate_limit_store_total{result=\"unavailable\"}"), "{metrics}");
    assert!(metrics.contains("status=\"503\"}"), "{metrics}");

    // PostgreSQL is back: the same relay process recovers, without a restart.
    pgsql.start();
    let deadline = Instant::now() + Duration::from_secs(60);
    while health(&rl.url) != 200 {
        assert!(Instant::now() < deadline, "the relay did not recover within 60 s of the database's return");
        std::thread::sleep(Duration::from_millis(200));
    }
    let list = a.run(&["devices", "--relay", &rl.url, "--json"], &[PIN]).ok().stdout;
    let list: serde_json::Value = serde_json::from_str(&list).unwrap();
    assert_eq!(list["devices"].as_array().unwrap().len(), 1, "the registration made before survived: {list}");
    b.run(&["register", "main", "--relay", &rl.url, "--login", "boris"], &[PIN]).ok();
    // The burst's phones that were not told registered on a retry; none that was told is lost.
    for c in clients {
        c.join().expect("a registration client failed");
    }
    let seen = std::mem::take(&mut *seen.lock().unwrap());
    println!(
        "burst: {} told, {} before the database stopped, {} failed attempts retried",
        seen.told.len(),
        told_at_stop,
        seen.failed.len()
    );
    assert!(
        seen.failed.iter().any(|e| e.contains("unavailable")),
        "the outage did not touch the burst: {:?}",
        seen.failed
    );
    let mut logins: Vec<&str> = seen.told.iter().map(|(l, _)| l.as_str()).collect();
    logins.sort_unstable();
    logins.dedup();
    assert_eq!(logins.len(), persons.len());
    burst::all_there(&rl.url, &ident, &persons, &logins);
}

/// A small tmpfs mounted for the test (root only), unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(at).unwrap();
        let o =
            Command::new("mount").args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs", s(at)]).output().ok()?;
        o.status.success().then(|| Tmpfs(at.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").args(["-l", s(&self.0)]).status();
    }
}

/// Writes zeros into `path` until the file system is full.
fn fill(path: &Path) {
    use std::io::Write;
    let mut f = std::fs::File::create(path).unwrap();
    let block = vec![0u8; 64 * 1024];
    loop {
        if let Err(e) = f.write_all(&block) {
            assert_eq!(e.raw_os_error(), Some(28), "ENOSPC expected: {e}");
            break;
        }
    }
    let _ = f.sync_all();
}

#[test]
fn a_full_disk_under_the_sqlite_relay_gives_a_clear_error_and_service_returns_with_space() {
    let root = tempfile::tempdir().unwrap();
    let root = root.path();
    let data = root.join("relay");
    let Some(disk) = Tmpfs::mount(&data, "16m") else {
        let is_root = Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.starts_with(b"0"));
        assert!(!is_root, "running as root, but a tmpfs could not be mounted for the full-disk test");
        println!("SKIPPED: the full-disk test mounts a small tmpfs, which needs root");
        return;
    };
    let ra = Ra::init(root, "ra");
    let ra_srv = ra.serve();
    let rl = relay(&data, &None, &[&ra.ca()]);
    let a = enrolled_phone(root, "a", "p-256", &ra, &ra_srv.url, "CN=Aziza,C=UZ");
    let b = enrolled_phone(root, "b", "p-256", &ra, &ra_srv.url, "CN=Boris,C=UZ");
    a.run(&["register", "main", "--relay", &rl.url, "--login", "aziza"], &[PIN]).ok();

    // The disk fills up: writes fail with a clear `unavailable`, reads go on, nothing is half-written.
    let filler = data.join("filler");
    fill(&filler);
    let r = b.run(&["register", "main", "--relay", &rl.url, "--login", "boris"], &[PIN]);
    assert_ne!(r.code, 0, "nothing registers on a full disk: {}", r.stdout);
    assert!(r.stderr.contains("error[unavailable]") && r.stderr.contains("storage is full"), "{}", r.stderr);
    assert_eq!(health(&rl.url), 200, "the relay still answers what needs no writing");

    // Space returns: the same process serves again, and the database is whole.
    std::fs::remove_file(&filler).unwrap();
    b.run(&["register", "main", "--relay", &rl.url, "--login", "boris"], &[PIN]).ok();
    let list = a.run(&["devices", "--relay", &rl.url, "--json"], &[PIN]).ok().stdout;
    assert!(list.contains("device_id"), "{list}");
    rl.stop();
    if Command::new("sqlite3").arg("-version").output().is_ok() {
        let o = Command::new("sqlite3").arg(data.join("relay.db")).arg("PRAGMA integrity_check").output().unwrap();
        assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "ok", "{}", String::from_utf8_lossy(&o.stderr));
    }
    drop(disk);
}
