//! Three relay nodes on one PostgreSQL database behind HAProxy with the shipped configuration
//! (`ops/haproxy/kalit-relay.cfg`, its addresses replaced by `kalit_relay::haproxy::loopback_config`):
//! both ends of every tunnel meet on one node, sessions pair and sign through the proxy on every node.
//! Then, during a burst of registrations and with a paired session on each node, one node is killed
//! with SIGKILL: it takes only its own tunnel with it (both ends get an error), the sessions on the other
//! nodes sign and end, new sessions start on the nodes that are left, no registration a phone was told
//! of is lost, and every phone that was not told registers on a retry.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kalit_proto::relay::{RegisterOutcome, RelayIdentity, WELL_KNOWN_PATH};

use crate::burst;
use crate::common::{PIN, V, s};
use crate::network::{Ra, Service, enrolled_phone, relay_databases};
use crate::signing::{Created, Page, agent_serve, finish, pair};

/// The sum of a node's `NAME{...}` counters whose labels contain `label` (all of them when empty).
fn counter(node: &str, name: &str, label: &str) -> u64 {
    let text = reqwest::blocking::get(format!("{node}/metrics")).and_then(|r| r.text()).unwrap_or_default();
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) && l.contains(label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

/// `kalit_relay_tunnel_total{result="paired"}` of every node (0 for a node that does not answer).
fn paired(nodes: &[String]) -> Vec<u64> {
    nodes.iter().map(|n| counter(n, "kalit_relay_tunnel_total", r#"result="paired""#)).collect()
}

/// The one node whose paired count grew between `before` and `after`.
fn which(before: &[u64], after: &[u64]) -> usize {
    let grew: Vec<usize> = (0..before.len()).filter(|&i| after[i] > before[i]).collect();
    assert_eq!(grew.len(), 1, "the tunnel was paired on nodes {grew:?}");
    grew[0]
}

/// A session through the proxy, paired and left open. Returns it with the node that carries it.
fn open(page: &Page, v: &V, nodes: &[String]) -> (Created, Child, usize) {
    let before = paired(nodes);
    let c = page.start(None);
    let phone = pair(v, &c.qr, &[PIN, "y", PIN]);
    assert_eq!(page.wait(&c, "connected")["phase"], "connected");
    (c, phone, which(&before, &paired(nodes)))
}

/// Signs in an open session and ends it; the phone exits 0.
fn sign_and_end(page: &Page, (c, phone): (Created, Child)) {
    let (code, r) = page.sign(&c, b"through the load balancer", "raw", false);
    assert_eq!(code, 200, "{r}");
    page.end(&c);
    let (code, out, err) = finish(phone);
    assert_eq!(code, 0, "{out}{err}");
}

/// One session through the proxy: pair, sign, end. Returns the node that carried the tunnel.
fn session(page: &Page, v: &V, nodes: &[String]) -> usize {
    let (c, phone, node) = open(page, v, nodes);
    sign_and_end(page, (c, phone));
    node
}

struct Proxy(Child);

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn three_relay_nodes_behind_haproxy_pair_each_tunnel_on_one_node_and_survive_a_kill_during_a_burst() {
    let Some(haproxy) = kalit_relay::haproxy::installed() else {
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
    let burst_ca = root.join("burst-ca.pem");
    let persons = Arc::new(burst::people(400, &burst_ca));
    // One data directory (the shared relay identity), one database; the first node creates both.
    let data = root.join("relay");
    let ca = ra.ca();
    // Every node has the same name too: it is published in the relay identity, which phones see.
    let node = || {
        let args = ["relay", "serve", "--data", s(&data), "--database", &db, "--listen", "127.0.0.1:0"];
        let args =
            [&args[..], &["--trust", s(&ca), "--trust", s(&burst_ca), "--name", "Kalit relay (cluster)"]].concat();
        // Every tunnel join is a device request of the login, and the burst comes from one address
        // (HAProxy's): this test makes more requests than people would.
        let env =
            [("KALIT_RELAY_LIMITS__PER_LOGIN_PER_MINUTE", "0"), ("KALIT_RELAY_LIMITS__PER_ADDRESS_PER_MINUTE", "0")];
        Service::start_env(&args, None, "warn", Stdio::inherit(), &env)
    };
    let mut services = [node(), node(), node()];
    let nodes: Vec<String> = services.iter().map(|n| n.url.clone()).collect();
    // One relay to the phones and agents: every node publishes the same identity (id, key, name).
    let idents: Vec<RelayIdentity> = nodes
        .iter()
        .map(|n| reqwest::blocking::get(format!("{n}{WELL_KNOWN_PATH}")).unwrap().json().unwrap())
        .collect();
    assert!(idents.iter().all(|i| *i == idents[0]) && idents[0].name == "Kalit relay (cluster)", "{idents:?}");
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let cfg = root.join("haproxy.cfg");
    let hosts: Vec<&str> = nodes.iter().map(|u| u.trim_start_matches("http://")).collect();
    std::fs::write(&cfg, kalit_relay::haproxy::loopback_config(port, 2000, &hosts)).unwrap();
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
    // Citizens register through the proxy; the agent and the phones reach the relay only through it.
    let phones: Vec<V> = (0..3)
        .map(|i| {
            let v = enrolled_phone(root, &format!("phone{i}"), "p-256", &ra, &ra_svc.url, &format!("CN=Ali {i},C=UZ"));
            v.run(&["register", "main", "--relay", &proxy, "--login", &format!("ali.{i}")], &[PIN]).ok();
            v
        })
        .collect();
    // An agent keeps one open session per origin: three portals, one per held session below.
    let origins = ["https://portal.example", "https://tax.example", "https://bank.example"];
    let agent = agent_serve(&root.join("agent"), &origins, &proxy, &ra.ca(), &["--sessions-per-minute", "0"]);
    let pages: Vec<Page> = origins.iter().map(|o| Page::new(&agent.url, o)).collect();
    let page = &pages[0];
    // Tunnel ids are random: sessions land on every node, each with both of its ends on one node.
    let mut on = [0; 3];
    for _ in 0..40 {
        on[session(page, &phones[0], &nodes)] += 1;
        if on.iter().all(|&n| n > 0) {
            break;
        }
    }
    assert!(on.iter().all(|&n| n > 0), "sessions never reached every node: {on:?}");

    // One paired session held open on each node, each with its own portal and phone.
    let mut held: Vec<Option<(usize, Created, Child)>> = vec![None, None, None];
    for _ in 0..60 {
        let count = held.iter().flatten().count();
        if count == held.len() {
            break;
        }
        let (c, phone, n) = open(&pages[count], &phones[count], &nodes);
        if held[n].is_none() {
            held[n] = Some((count, c, phone));
        } else {
            sign_and_end(&pages[count], (c, phone));
        }
    }
    assert!(held.iter().all(Option::is_some), "could not place a session on every node");

    // The burst: six clients register 400 logins through the proxy as phones do, each retrying what
    // failed (with a new nonce) until it is told, for at most a minute per login.
    let ident: RelayIdentity = reqwest::blocking::get(format!("{proxy}{WELL_KNOWN_PATH}")).unwrap().json().unwrap();
    let (burst, clients) = burst::start(&proxy, &ident, persons.clone(), 6);
    // A quarter in, the node that has answered the most registrations (HAProxy spreads them over the
    // nodes) is killed.
    let deadline = Instant::now() + Duration::from_secs(60);
    while burst.lock().unwrap().told.len() < persons.len() / 4 {
        assert!(Instant::now() < deadline, "the burst did not get going");
        std::thread::sleep(Duration::from_millis(5));
    }
    let served: Vec<u64> = nodes.iter().map(|n| counter(n, "kalit_relay_registrations_total", "")).collect();
    let k = (0..3).max_by_key(|&i| served[i]).unwrap();
    services[k].kill9();
    let told_at_kill = burst.lock().unwrap().told.len();
    assert!(told_at_kill < persons.len(), "the burst ended before the kill");

    // Both ends of the killed node's tunnel learn it at once: the page's session closes, the phone exits
    // with the retryable `unavailable` (21). The sessions on the other nodes sign and end.
    for (n, h) in held.into_iter().enumerate() {
        let (p, c, phone) = h.unwrap();
        if n == k {
            let st = pages[p].wait(&c, "closed");
            assert_eq!(st["phase"], "closed", "{st}");
            let (code, out, err) = finish(phone);
            assert_eq!(code, 21, "{out}{err}");
        } else {
            sign_and_end(&pages[p], (c, phone));
        }
    }
    for c in clients {
        c.join().expect("a registration client failed");
    }
    let burst = std::mem::take(&mut *burst.lock().unwrap());
    eprintln!(
        "burst: {} registrations, {} told before the kill of node {}, {} failed attempts retried, {} answered `added` \
         (their first answer was lost)",
        burst.told.len(),
        told_at_kill,
        k + 1,
        burst.failed.len(),
        burst.told.iter().filter(|(_, o)| *o == RegisterOutcome::Added).count()
    );
    assert!(!burst.failed.is_empty(), "the kill did not touch the burst");
    // Every phone was told in the end, once per login.
    let mut logins: Vec<&str> = burst.told.iter().map(|(l, _)| l.as_str()).collect();
    logins.sort_unstable();
    logins.dedup();
    assert_eq!(logins.len(), persons.len());
    // And no registration that a phone was told of is lost.
    burst::all_there(&proxy, &ident, &persons, &logins);
    let r = phones[0].run(&["devices", "--relay", &proxy], &[PIN]).ok();
    assert!(r.stdout.contains("ali.0"), "{}", r.stdout);

    // Once HAProxy's checks mark the node down (two failed checks, 300 ms apart), new sessions start on
    // the nodes that are left.
    std::thread::sleep(Duration::from_millis(1500));
    for _ in 0..4 {
        assert_ne!(session(page, &phones[0], &nodes), k);
    }
}
