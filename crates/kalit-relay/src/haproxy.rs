//! The shipped HAProxy configuration for several relay nodes (`ops/haproxy/kalit-relay.cfg`), and that
//! same file made to run on loopback, as the cluster test and `kalit bench load --nodes` run it.

/// `ops/haproxy/kalit-relay.cfg` as shipped: TLS on port 443, three example nodes.
pub const SHIPPED: &str = include_str!("../../../ops/haproxy/kalit-relay.cfg");

/// Where Debian's `haproxy` package puts the program, if it is installed.
pub fn installed() -> Option<&'static str> {
    ["/usr/sbin/haproxy", "/usr/bin/haproxy"].into_iter().find(|p| std::path::Path::new(p).exists())
}

/// The shipped configuration with its lines marked `test:` replaced: a plain-HTTP frontend on
/// `127.0.0.1:port`, `maxconn` connections at most, health checks every 300 ms without TLS (a node is
/// down after two failed checks and up after one good one), and `nodes` (`host:port`) as the servers
/// of both backends. Everything else (the tunnel hash, the timeouts, the forwarded address) is as
/// shipped.
pub fn loopback_config(port: u16, maxconn: u32, nodes: &[&str]) -> String {
    let mut out = vec![];
    let mut lines = SHIPPED.lines().peekable();
    while let Some(line) = lines.next() {
        match line.trim() {
            "# test: bind" => {
                lines.next();
                out.push(format!("    bind 127.0.0.1:{port}"));
            }
            "# test: maxconn" => {
                lines.next();
                out.push(format!("    maxconn {maxconn}"));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_loopback_configuration_replaces_only_the_marked_lines() {
        let cfg = loopback_config(8443, 2000, &["127.0.0.1:1", "127.0.0.1:2"]);
        assert!(cfg.contains("    bind 127.0.0.1:8443\n"));
        assert!(!cfg.contains("ssl crt"), "the frontend is plain HTTP");
        assert!(!cfg.contains("10.0.0.1"), "the example servers are gone");
        assert!(!cfg.contains("maxconn 100000"));
        // Both backends, two servers each; the tunnel hash is kept.
        assert_eq!(cfg.matches("server relay1 127.0.0.1:1 check").count(), 2);
        assert_eq!(cfg.matches("server relay2 127.0.0.1:2 check").count(), 2);
        assert!(cfg.contains("balance uri depth 3") && cfg.contains("hash-type consistent"));
        assert_eq!(cfg.lines().filter(|l| l.trim_start().starts_with("server ")).count(), 4);
        assert!(!cfg.contains("# test:"), "every marked line was replaced");
        // Every other line is kept as shipped, in its order.
        let rest = |c: &str| -> Vec<String> {
            c.lines()
                .filter(|l| !["# test:", "server", "bind ", "maxconn "].iter().any(|w| l.contains(w)))
                .map(str::to_string)
                .collect()
        };
        assert_eq!(rest(&cfg), rest(SHIPPED));
        assert!(rest(SHIPPED).iter().any(|l| l.contains("timeout tunnel 16m")));
    }
}
