//! Who a client is and how much of the server a client may hold: connection caps at accept (globally and
//! per address), the address group used by every per-address limit (an IPv4 address; an IPv6 /64, which
//! one customer usually holds whole), and the client address behind trusted reverse proxies.
//!
//! Invariant: a stranger's share of connections, waiting tunnels and request tokens is counted under its
//! address group, and a forwarded address is believed only when the TCP peer is a configured proxy.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::Metrics;

/// The group an address is limited under: an IPv4 address as itself, an IPv6 address by its /64 (an
/// IPv4-mapped IPv6 address as the IPv4 address).
pub fn addr_group(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        v4 @ IpAddr::V4(_) => v4,
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
    }
}

/// Caps on open connections (0: no cap).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnLimits {
    /// Open connections in all.
    pub total: usize,
    /// Open connections per address group.
    pub per_address: usize,
}

#[derive(Debug, Default)]
struct Counts {
    total: usize,
    per: HashMap<IpAddr, usize>,
}

/// Counts open connections and admits a new one only under both caps.
#[derive(Debug, Clone)]
pub struct ConnGate {
    limits: ConnLimits,
    counts: Arc<Mutex<Counts>>,
    metrics: Option<Arc<Metrics>>,
}

impl ConnGate {
    /// A gate with these caps; refusals are counted as `connections_refused_total{result=...}` when
    /// `metrics` is given.
    pub fn new(limits: ConnLimits, metrics: Option<Arc<Metrics>>) -> Self {
        ConnGate { limits, counts: Arc::default(), metrics }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.counts.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A permit for one connection from `ip`, or `None` when a cap is reached. The permit gives the
    /// connection back when dropped.
    pub fn admit(&self, ip: IpAddr) -> Option<ConnPermit> {
        let group = addr_group(ip);
        let mut c = self.lock();
        let l = self.limits;
        let refused = if l.total > 0 && c.total >= l.total {
            Some("total")
        } else if l.per_address > 0 && c.per.get(&group).copied().unwrap_or(0) >= l.per_address {
            Some("address")
        } else {
            None
        };
        if let Some(why) = refused {
            drop(c);
            if let Some(m) = &self.metrics {
                m.inc("connections_refused", why);
            }
            return None;
        }
        c.total += 1;
        *c.per.entry(group).or_insert(0) += 1;
        Some(ConnPermit { gate: self.clone(), group })
    }

    /// Open connections now (in all, and from `ip`'s group).
    pub fn open(&self, ip: IpAddr) -> (usize, usize) {
        let c = self.lock();
        (c.total, c.per.get(&addr_group(ip)).copied().unwrap_or(0))
    }
}

/// One admitted connection.
#[derive(Debug)]
pub struct ConnPermit {
    gate: ConnGate,
    group: IpAddr,
}

impl Drop for ConnPermit {
    fn drop(&mut self) {
        let mut c = self.gate.lock();
        c.total = c.total.saturating_sub(1);
        if let Some(n) = c.per.get_mut(&self.group) {
            *n -= 1;
            if *n == 0 {
                c.per.remove(&self.group);
            }
        }
    }
}

/// An acceptor that admits a TCP connection through a [`ConnGate`] before the inner acceptor (TLS or
/// none) runs: a connection over a cap is closed at once, before any handshake work.
#[derive(Debug, Clone)]
pub struct GatedAcceptor<A> {
    inner: A,
    gate: ConnGate,
}

impl<A> GatedAcceptor<A> {
    /// Wraps `inner`.
    pub fn new(inner: A, gate: ConnGate) -> Self {
        GatedAcceptor { inner, gate }
    }
}

type AcceptFuture<T> = Pin<Box<dyn Future<Output = io::Result<T>> + Send>>;

impl<A, S> axum_server::accept::Accept<TcpStream, S> for GatedAcceptor<A>
where
    A: axum_server::accept::Accept<TcpStream, S>,
    A::Future: Send + 'static,
    A::Stream: Send + 'static,
    A::Service: Send + 'static,
{
    type Stream = Gated<A::Stream>;
    type Service = A::Service;
    type Future = AcceptFuture<(Self::Stream, Self::Service)>;

    fn accept(&self, stream: TcpStream, service: S) -> Self::Future {
        let permit = stream.peer_addr().ok().and_then(|a| self.gate.admit(a.ip()));
        let Some(permit) = permit else {
            drop(stream);
            return Box::pin(std::future::ready(Err(io::Error::other("over the connection limit"))));
        };
        let inner = self.inner.accept(stream, service);
        Box::pin(async move {
            let (stream, service) = inner.await?;
            Ok((Gated { inner: stream, _permit: permit }, service))
        })
    }
}

/// A stream that holds its connection's permit until it is dropped.
#[derive(Debug)]
pub struct Gated<S> {
    inner: S,
    _permit: ConnPermit,
}

impl<S: AsyncRead + Unpin> AsyncRead for Gated<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Gated<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// The client's address as the services count it: the TCP peer, or, when the peer is a configured
/// reverse proxy, the address that proxy forwarded. A request extension set by [`client_address`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub IpAddr);

/// Reverse proxies whose `X-Forwarded-For` is believed (exact addresses; none by default).
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Arc<Vec<IpAddr>>);

impl TrustedProxies {
    /// Trusts these proxy addresses.
    pub fn new(proxies: Vec<IpAddr>) -> Self {
        TrustedProxies(Arc::new(proxies.into_iter().map(|p| p.to_canonical()).collect()))
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        self.0.contains(&ip.to_canonical())
    }

    /// The client behind `peer`: the peer itself unless it is a trusted proxy; then the right-most
    /// address in `X-Forwarded-For` that is not a trusted proxy (addresses further left were written by
    /// the client and prove nothing). A trusted peer with no usable header counts as itself.
    pub fn client(&self, peer: IpAddr, forwarded_for: &[&str]) -> IpAddr {
        if !self.trusts(peer) {
            return peer.to_canonical();
        }
        let hops = forwarded_for.iter().flat_map(|h| h.split(',')).map(str::trim).collect::<Vec<_>>();
        for hop in hops.iter().rev() {
            match hop.parse::<IpAddr>() {
                Ok(ip) if self.trusts(ip) => continue,
                Ok(ip) => return ip.to_canonical(),
                Err(_) => break,
            }
        }
        peer.to_canonical()
    }
}

/// Middleware: sets [`ClientIp`] on every request (absent when the server recorded no peer, as in
/// in-process tests).
pub async fn client_address(State(proxies): State<TrustedProxies>, mut req: Request, next: Next) -> Response {
    if let Some(ConnectInfo(peer)) = req.extensions().get::<ConnectInfo<SocketAddr>>().copied() {
        let headers = req.headers().get_all("x-forwarded-for");
        let values: Vec<&str> = headers.iter().filter_map(|v| v.to_str().ok()).collect();
        let ip = proxies.client(peer.ip(), &values);
        req.extensions_mut().insert(ClientIp(ip));
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn ipv6_counts_by_its_64_and_mapped_ipv4_as_ipv4() {
        assert_eq!(addr_group(ip("2001:db8:1:2:aaaa::1")), ip("2001:db8:1:2::"));
        assert_eq!(addr_group(ip("2001:db8:1:2:bbbb::9")), addr_group(ip("2001:db8:1:2::7")));
        assert_ne!(addr_group(ip("2001:db8:1:3::1")), addr_group(ip("2001:db8:1:2::1")));
        assert_eq!(addr_group(ip("::ffff:192.0.2.7")), ip("192.0.2.7"));
    }

    #[test]
    fn the_gate_caps_per_group_and_in_all_and_gives_back_on_drop() {
        let g = ConnGate::new(ConnLimits { total: 3, per_address: 2 }, None);
        let a1 = g.admit(ip("2001:db8::1")).unwrap();
        let _a2 = g.admit(ip("2001:db8::2")).unwrap();
        assert!(g.admit(ip("2001:db8::3")).is_none(), "the same /64 is one client");
        let _b = g.admit(ip("192.0.2.1")).unwrap();
        assert!(g.admit(ip("192.0.2.2")).is_none(), "the total cap");
        drop(a1);
        assert_eq!(g.open(ip("2001:db8::9")), (2, 1));
        assert!(g.admit(ip("192.0.2.2")).is_some(), "a closed connection frees its place");
        let open = ConnGate::new(ConnLimits { total: 0, per_address: 0 }, None);
        let held: Vec<_> = (0..1000).map(|_| open.admit(ip("192.0.2.1")).unwrap()).collect();
        assert_eq!(held.len(), 1000, "0 means no cap");
    }

    #[test]
    fn forwarded_addresses_are_believed_only_from_trusted_proxies() {
        let p = TrustedProxies::new(vec![ip("10.0.0.1"), ip("10.0.0.2")]);
        assert_eq!(p.client(ip("192.0.2.9"), &["1.2.3.4"]), ip("192.0.2.9"), "a stranger cannot name another");
        assert_eq!(p.client(ip("10.0.0.1"), &["1.2.3.4, 198.51.100.7"]), ip("198.51.100.7"));
        assert_eq!(p.client(ip("10.0.0.1"), &["1.2.3.4", "198.51.100.7, 10.0.0.2"]), ip("198.51.100.7"));
        assert_eq!(p.client(ip("10.0.0.1"), &[]), ip("10.0.0.1"));
        assert_eq!(p.client(ip("10.0.0.1"), &["garbage"]), ip("10.0.0.1"));
        assert_eq!(TrustedProxies::default().client(ip("10.0.0.1"), &["1.2.3.4"]), ip("10.0.0.1"));
    }
}
