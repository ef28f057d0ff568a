//! Two relay nodes on one PostgreSQL database behind HAProxy with the shipped configuration
//! (`ops/haproxy/kalit-relay.cfg`, its addresses replaced): both ends of every tunnel meet on one node,
//! sessions pair and sign through the proxy on both nodes, a node killed with SIGKILL takes only its own
//! tunnels with it (both ends get an error), new sessions succeed on the node that is left, and no
//! registration is lost.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{PIN, s};
use crate::network::{Ra, Service, enrolled_phone, relay_databases};
use crate::signing::{Page, agent_serve, finish, pair};

const HAPROXY: [&str; 2] = ["/usr/sbin/haproxy", "/usr/bin/haproxy"];

/// The shipped configuration with the lines marked `test:` replaced: a loopback frontend on `port`,
/// a connection cap this machine's open-file limit allows, quick health checks without TLS, and `nodes`
/// as the servers.
fn config(port: u16, nodes: &[&str]) -> String {
    let shipped =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../ops/haproxy/kalit-relay.cfg"))
            .expect("the shipped HAProxy configuration");
    let mut out = vec![];
    let mut lines = shipped.lines().peekable();
    while let Some(line) = lines.next() {
        match line.trim() {
            "# test: bind" => {
                lines.next();
                out.push(format!("    bind 127.0.0.1:{port}"));
            }
            "# test: maxconn" => {
                lines.next();
                out.push("    maxconn 2000".to_string());
            }
            "# test: default-server" => {
                lines.next();
                out.push("    default-server inter 300ms fall 2 rise 1".to_string());
            }
            "# test: servers" => {
                while lines.peek().is_some_and(|l| l.trim_start().starts_with("server ")) {
                    lines.next();
                }
                for (i, n) in nodes.iter().enumerate() {
                    out.push(format!("    server relay{} {n} check", i + 1));
                }
            }
            _ => out.push(line.to_string()),
        }
    }
    out.join("\n") + "\n"
}

/// `kalit_relay_tunnel_total{result="paired"}` of one node.
fn paired(node: &str) -> u64 {
    let text = reqwest::blocking::get(format!("{node}/metrics")).and_then(|r| r.text()).unwrap_or_default();
    text.lines()
        .find(|l| l.starts_with("kalit_relay_tunnel_total{") && l.contains(r#"result="paired""#))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0)
}

/// One session through the proxy: pair, sign, end. Returns the node (0 or 1) that carried the tunnel.
fn session(page: &Page, v: &crate::common::V, nodes: &[&str; 2]) -> usize {
    let before = [paired(nodes[0]), paired(nodes[1])];
    let c = page.start(None);
    let phone = pair(v, &c.qr, &[PIN, "y", PIN]);
    assert_eq!(page.wait(&c, "connected")["phase"], "connected");
    let (code, r) = page.sign(&c, b"through the load balancer", "raw", false);
    assert_eq!(code, 200, "{r}");
    page.end(&c);
    let (code, out, err) = finish(phone);
    assert_eq!(code, 0, "{out}{err}");
    let after = [paired(nodes[0]), paired(nodes[1])];
    match (after[0] - before[0], after[1] - before[1]) {
        (1, 0) => 0,
        (0, 1) => 1,
        other => panic!("the tunnel was paired on {other:?} nodes"),
    }
}

struct Proxy(Child);

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn two_relay_nodes_behind_haproxy_share_logins_pair_each_tunnel_on_one_node_and_survive_a_kill() {
    let Some(haproxy) = HAPROXY.into_iter().find(|p| Path::new(p).exists()) else {
        assert!(std::env::var("KALIT_REQUIRE_HAPROXY").is_err(), "KALIT_REQUIRE_HAPROXY is set but haproxy is missing");
        eprintln!("skipped: haproxy is not installed (Debian package haproxy; .ci/run installs it)");
        return;
    };
    let Some(db) = relay_databases().into_iter().flatten().next() else {
        eprintln!("skipped: needs KALIT_TEST_POSTGRES_URL");
        return;
    };
    let root = tempfile::tempdir().unwrap();
    let root = root.path();
    let ra = Ra::init(root, "ra");
    let ra_svc = ra.serve();
    // One data directory (the shared relay identity), one database; the first node creates both.
    let data = root.join("relay");
    let ca = ra.ca();
    let node = |name: &str| {
        let args = ["relay", "serve", "--data", s(&data), "--database", &db, "--listen", "127.0.0.1:0"];
        let args = [&args[..], &["--trust", s(&ca), "--name", name]].concat();
        // Every tunnel join is a device request of the login; this test makes more than a person would.
        let env = [("KALIT_RELAY_LIMITS__PER_LOGIN_PER_MINUTE", "0")];
        Service::start_env(&args, None, "warn", Stdio::inherit(), &env)
    };
    let mut n1 = node("node one");
    let n2 = node("node two");
    let (u1, u2) = (n1.url.clone(), n2.url.clone());
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let cfg = root.join("haproxy.cfg");
    let hosts = [u1.trim_start_matches("http://"), u2.trim_start_matches("http://")];
    std::fs::write(&cfg, config(port, &hosts)).unwrap();
    let check = Command::new(haproxy).args(["-c", "-q", "-f", s(&cfg)]).output().unwrap();
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stderr));
    let _proxy = Proxy(
        Command::new(haproxy).args(["-db", "-f", s(&cfg)]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap(),
    );
    let proxy = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while reqwest::blocking::get(format!("{proxy}/healthz")).map(|r| r.status().as_u16()).unwrap_or(0) != 200 {
        assert!(Instant::now() < deadline, "HAProxy did not come up");
        std::thread::sleep(Duration::from_millis(100));
    }
    // A citizen registers through the proxy; the agent and the phone reach the relay only through it.
    let v = enrolled_phone(root, "phone", "p-256", &ra, &ra_svc.url, "CN=Ali Cluster,C=UZ");
    v.run(&["register", "main", "--relay", &proxy, "--login", "ali.cluster"], &[PIN]).ok();
    let origin = "https://portal.example";
    let agent = agent_serve(&root.join("agent"), &[origin], &proxy, &ra.ca(), &["--sessions-per-minute", "0"]);
    let page = Page::new(&agent.url, origin);
    let nodes = [u1.as_str(), u2.as_str()];
    // Tunnel ids are random: sessions land on both nodes, each with both of its ends on one node.
    let mut on = [0; 2];
    for _ in 0..12 {
        on[session(&page, &v, &nodes)] += 1;
    }
    assert!(on[0] > 0 && on[1] > 0, "every session on one node: {on:?}");
    // Sessions until one is on node one, left paired; then node one is killed.
    let (c, phone) = loop {
        let before = paired(&u1);
        let c = page.start(None);
        let phone = pair(&v, &c.qr, &[PIN, "y", PIN]);
        assert_eq!(page.wait(&c, "connected")["phase"], "connected");
        if paired(&u1) > before {
            break (c, phone);
        }
        page.end(&c);
        finish(phone);
    };
    n1.kill9();
    // Both ends of its tunnel learn it at once: the page's session closes, the phone exits with the
    // retryable `unavailable` (21).
    let st = page.wait(&c, "closed");
    assert_eq!(st["phase"], "closed", "{st}");
    let (code, out, err) = finish(phone);
    assert_eq!(code, 21, "{out}{err}");
    // Once HAProxy's checks mark it down (two failed checks, 300 ms apart), every new session goes to
    // node two, and the registration made through node one's share is there.
    std::thread::sleep(Duration::from_millis(1500));
    for _ in 0..4 {
        assert_eq!(session(&page, &v, &nodes), 1);
    }
    let r = v.run(&["devices", "--relay", &proxy], &[PIN]).ok();
    assert!(r.stdout.contains("ali.cluster"), "{}", r.stdout);
    drop(n2);
}
