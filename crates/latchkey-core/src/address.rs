//! Who is asking (SPEC 4): the client's address behind trusted reverse proxies, and the key under which per-address
//! limits count it.
//!
//! The address is the TCP peer unless the peer is a trusted proxy; then it is the right-most entry of the one
//! header the proxies write (`X-Forwarded-For`, or `Forwarded: for=` of RFC 7239, as configured) that is not
//! itself a trusted proxy. A proxy appends the address it saw, so everything to the right of the first untrusted
//! entry was written by proxies we trust, and everything to its left may be the client's own invention and is
//! never read. The other header is never read at all: a proxy that writes one passes the other through as the
//! client sent it.

use ipnet::IpNet;
use std::net::{IpAddr, Ipv6Addr};

/// The networks whose connections may say, in a header, whom they forward for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// Parses CIDR blocks (`10.0.0.0/8`, `fd00::/8`) or single addresses (`192.0.2.7`, `::1`).
    pub fn parse<'a>(entries: impl IntoIterator<Item = &'a str>) -> Result<Self, String> {
        let mut nets = Vec::new();
        for entry in entries {
            let entry = entry.trim();
            if entry.is_empty() {
                continue;
            }
            let net = match entry.parse::<IpNet>() {
                Ok(net) => net,
                Err(_) => match entry.parse::<IpAddr>() {
                    Ok(ip) => IpNet::from(ip),
                    Err(_) => {
                        return Err(format!(
                        "trusted_proxies: `{entry}` is not an address or CIDR block (like 10.0.0.0/8 or ::1)"
                    ))
                    }
                },
            };
            nets.push(net.trunc());
        }
        Ok(TrustedProxies(nets))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// The blocks, as written back (`10.0.0.0/8`).
    pub fn to_strings(&self) -> Vec<String> {
        self.0.iter().map(ToString::to_string).collect()
    }
}

/// An IPv4 address written as IPv6 (`::ffff:192.0.2.1`, what a dual-stack socket reports) is that IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    }
}

/// Which header the trusted proxies write.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ProxyHeader {
    /// `X-Forwarded-For: client, proxy1, …` (nginx, HAProxy's `option forwardfor`, most load balancers).
    #[default]
    XForwardedFor,
    /// `Forwarded: for=client, for=proxy1` (RFC 7239).
    Forwarded,
}

impl ProxyHeader {
    pub fn parse(name: &str) -> Option<Self> {
        match name.to_ascii_lowercase().as_str() {
            "x-forwarded-for" => Some(ProxyHeader::XForwardedFor),
            "forwarded" => Some(ProxyHeader::Forwarded),
            _ => None,
        }
    }

    /// The header's name, as sent.
    pub fn name(self) -> &'static str {
        match self {
            ProxyHeader::XForwardedFor => "x-forwarded-for",
            ProxyHeader::Forwarded => "forwarded",
        }
    }
}

/// The client's address. `values` holds every value of the `header` the proxies write, in order; it is read only
/// when `peer` is trusted.
pub fn client_address(
    peer: IpAddr,
    trusted: &TrustedProxies,
    header: ProxyHeader,
    values: &[&str],
) -> IpAddr {
    let peer = canonical(peer);
    if !trusted.contains(peer) {
        return peer;
    }
    let hops: Vec<Option<&str>> = values
        .iter()
        .flat_map(|v| v.split(','))
        .map(|hop| match header {
            ProxyHeader::XForwardedFor => Some(hop.trim()),
            ProxyHeader::Forwarded => forwarded_for_of(hop),
        })
        .collect();
    // The hop nearest to us that no trusted proxy is: everything right of it was appended by proxies we trust.
    let mut nearest_trusted = peer;
    for hop in hops.iter().rev() {
        match hop.and_then(parse_hop) {
            Some(ip) if trusted.contains(ip) => nearest_trusted = ip,
            Some(ip) => return ip,
            // What a trusted proxy appended is not an address: the proxy is misconfigured, and the last address
            // we can believe is the proxy's own.
            None => return nearest_trusted,
        }
    }
    nearest_trusted
}

/// The `for=` value of one `Forwarded` element (`for=192.0.2.60;proto=http`).
fn forwarded_for_of(element: &str) -> Option<&str> {
    element.split(';').find_map(|pair| {
        let (name, value) = pair.trim().split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case("for")
            .then(|| value.trim())
    })
}

/// One hop: `192.0.2.1`, `192.0.2.1:4711`, `2001:db8::1`, `[2001:db8::1]:4711`, `"[2001:db8::1]"`.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim().trim_matches('"');
    if let Ok(ip) = hop.parse::<IpAddr>() {
        return Some(canonical(ip));
    }
    if let Some(rest) = hop.strip_prefix('[') {
        let (ip, _port) = rest.split_once(']')?;
        return ip.parse::<Ipv6Addr>().ok().map(|v6| canonical(v6.into()));
    }
    let (ip, port) = hop.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    ip.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4)
}

/// The key per-address limits count under: the IPv4 address, or the IPv6 /64 (one customer's network: a host
/// can take any address in it at will).
pub fn limit_key(ip: IpAddr) -> String {
    match canonical(ip) {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => {
            let s = v6.segments();
            let prefix = Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0);
            format!("{prefix}/64")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn headers_count_only_from_trusted_peers() {
        use ProxyHeader::{Forwarded as F, XForwardedFor as X};
        let trusted = TrustedProxies::parse(["10.0.0.0/8", "::1"]).unwrap();
        let none = TrustedProxies::default();
        // (peer, trusted, header the proxies write, its values, expected)
        let cases: &[(&str, &TrustedProxies, ProxyHeader, &[&str], &str)] = &[
            // An untrusted peer's headers are ignored, whatever they say.
            ("203.0.113.9", &trusted, X, &["198.51.100.1"], "203.0.113.9"),
            (
                "203.0.113.9",
                &none,
                F,
                &["for=198.51.100.1"],
                "203.0.113.9",
            ),
            ("10.0.0.5", &none, X, &["198.51.100.1"], "10.0.0.5"),
            // A trusted proxy: the right-most entry it appended.
            ("10.0.0.5", &trusted, X, &["198.51.100.1"], "198.51.100.1"),
            // What the client wrote itself (left of the proxy's entry) is never believed.
            (
                "10.0.0.5",
                &trusted,
                X,
                &["1.2.3.4, 198.51.100.1"],
                "198.51.100.1",
            ),
            (
                "10.0.0.5",
                &trusted,
                X,
                &["1.2.3.4", "198.51.100.1"],
                "198.51.100.1",
            ),
            // A chain of trusted proxies is walked through.
            (
                "10.0.0.5",
                &trusted,
                X,
                &["1.2.3.4, 198.51.100.1, 10.1.1.1"],
                "198.51.100.1",
            ),
            // Only trusted hops: the farthest of them.
            ("10.0.0.5", &trusted, X, &["10.9.9.9, 10.1.1.1"], "10.9.9.9"),
            // No header: the proxy itself.
            ("10.0.0.5", &trusted, X, &[], "10.0.0.5"),
            // Garbage where the proxy's entry should be: the nearest address we can believe.
            (
                "10.0.0.5",
                &trusted,
                X,
                &["198.51.100.1, bogus"],
                "10.0.0.5",
            ),
            (
                "10.0.0.5",
                &trusted,
                X,
                &["198.51.100.1, bogus, 10.1.1.1"],
                "10.1.1.1",
            ),
            // Ports and IPv6 spellings.
            (
                "10.0.0.5",
                &trusted,
                X,
                &["198.51.100.1:4711"],
                "198.51.100.1",
            ),
            ("::1", &trusted, X, &["2001:db8::7"], "2001:db8::7"),
            ("::1", &trusted, X, &["[2001:db8::7]:443"], "2001:db8::7"),
            // A dual-stack socket's IPv4-mapped peer is the IPv4 address.
            (
                "::ffff:10.0.0.5",
                &trusted,
                X,
                &["198.51.100.1"],
                "198.51.100.1",
            ),
            // RFC 7239.
            (
                "10.0.0.5",
                &trusted,
                F,
                &["for=198.51.100.1;proto=https"],
                "198.51.100.1",
            ),
            (
                "10.0.0.5",
                &trusted,
                F,
                &["for=1.2.3.4, For=\"[2001:db8::7]:4711\""],
                "2001:db8::7",
            ),
            ("10.0.0.5", &trusted, F, &["for=unknown"], "10.0.0.5"),
            // An element of ours without `for=` is not an address: nothing left of it is read.
            (
                "10.0.0.5",
                &trusted,
                F,
                &["for=1.2.3.4, proto=https"],
                "10.0.0.5",
            ),
        ];
        for (peer, trusted, header, values, want) in cases {
            assert_eq!(
                client_address(ip(peer), trusted, *header, values),
                ip(want),
                "peer {peer}, {header:?} {values:?}"
            );
        }
        assert_eq!(ProxyHeader::parse("Forwarded"), Some(F));
        assert_eq!(ProxyHeader::parse("X-Forwarded-For"), Some(X));
        assert_eq!(ProxyHeader::parse("x-real-ip"), None);
    }

    #[test]
    fn trusted_proxies_parse_blocks_and_addresses() {
        let t = TrustedProxies::parse(["10.1.2.3/8", " 192.0.2.7 ", "", "fd00::/8"]).unwrap();
        assert_eq!(t.to_strings(), ["10.0.0.0/8", "192.0.2.7/32", "fd00::/8"]);
        assert!(t.contains(ip("10.200.0.1")));
        assert!(t.contains(ip("::ffff:192.0.2.7")));
        assert!(!t.contains(ip("192.0.2.8")));
        let err = TrustedProxies::parse(["10.0.0.0/33"]).unwrap_err();
        assert!(err.contains("10.0.0.0/33"), "{err}");
        assert!(TrustedProxies::parse(["example.com"]).is_err());
    }

    #[test]
    fn ipv6_addresses_count_per_64() {
        assert_eq!(limit_key(ip("192.0.2.1")), "192.0.2.1");
        assert_eq!(limit_key(ip("::ffff:192.0.2.1")), "192.0.2.1");
        assert_eq!(limit_key(ip("2001:db8:1:2:3:4:5:6")), "2001:db8:1:2::/64");
        assert_eq!(
            limit_key(ip("2001:db8:1:2:ffff::1")),
            limit_key(ip("2001:db8:1:2::9"))
        );
        assert_ne!(
            limit_key(ip("2001:db8:1:2::1")),
            limit_key(ip("2001:db8:1:3::1"))
        );
    }
}
