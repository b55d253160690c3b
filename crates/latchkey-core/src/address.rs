//! Who is asking (SPEC 4): the client's address behind trusted reverse proxies, and the key under which per-address
//! limits count it.
//!
//! The address is the TCP peer unless the peer is a trusted proxy; then it is the right-most `X-Forwarded-For`
//! entry (or, when no proxy sent that header, `Forwarded: for=`, RFC 7239) that is not itself a trusted proxy. A
//! proxy appends the address it saw, so everything to the right of the first untrusted entry was written by
//! proxies we trust, and everything to its left may be the client's own invention and is never read.

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

/// The client's address. `forwarded_for` holds every `X-Forwarded-For` header value in order, `forwarded` every
/// `Forwarded` header value in order; both are read only when `peer` is trusted.
pub fn client_address(
    peer: IpAddr,
    trusted: &TrustedProxies,
    forwarded_for: &[&str],
    forwarded: &[&str],
) -> IpAddr {
    let peer = canonical(peer);
    if !trusted.contains(peer) {
        return peer;
    }
    let hops: Vec<&str> = if !forwarded_for.is_empty() {
        forwarded_for
            .iter()
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .collect()
    } else {
        forwarded
            .iter()
            .flat_map(|v| v.split(','))
            .filter_map(forwarded_for_of)
            .collect()
    };
    // The hop nearest to us that no trusted proxy is: everything right of it was appended by proxies we trust.
    let mut nearest_trusted = peer;
    for hop in hops.iter().rev() {
        match parse_hop(hop) {
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
    #[allow(clippy::type_complexity)]
    fn headers_count_only_from_trusted_peers() {
        let trusted = TrustedProxies::parse(["10.0.0.0/8", "::1"]).unwrap();
        let none = TrustedProxies::default();
        // (peer, trusted, X-Forwarded-For values, Forwarded values, expected)
        let cases: &[(&str, &TrustedProxies, &[&str], &[&str], &str)] = &[
            // An untrusted peer's headers are ignored, whatever they say.
            (
                "203.0.113.9",
                &trusted,
                &["198.51.100.1"],
                &[],
                "203.0.113.9",
            ),
            (
                "203.0.113.9",
                &none,
                &["198.51.100.1"],
                &["for=198.51.100.1"],
                "203.0.113.9",
            ),
            ("10.0.0.5", &none, &["198.51.100.1"], &[], "10.0.0.5"),
            // A trusted proxy: the right-most entry it appended.
            ("10.0.0.5", &trusted, &["198.51.100.1"], &[], "198.51.100.1"),
            // What the client wrote itself (left of the proxy's entry) is never believed.
            (
                "10.0.0.5",
                &trusted,
                &["1.2.3.4, 198.51.100.1"],
                &[],
                "198.51.100.1",
            ),
            (
                "10.0.0.5",
                &trusted,
                &["1.2.3.4", "198.51.100.1"],
                &[],
                "198.51.100.1",
            ),
            // A chain of trusted proxies is walked through.
            (
                "10.0.0.5",
                &trusted,
                &["1.2.3.4, 198.51.100.1, 10.1.1.1"],
                &[],
                "198.51.100.1",
            ),
            // Only trusted hops: the farthest of them.
            (
                "10.0.0.5",
                &trusted,
                &["10.9.9.9, 10.1.1.1"],
                &[],
                "10.9.9.9",
            ),
            // No header: the proxy itself.
            ("10.0.0.5", &trusted, &[], &[], "10.0.0.5"),
            // Garbage where the proxy's entry should be: the nearest address we can believe.
            (
                "10.0.0.5",
                &trusted,
                &["198.51.100.1, bogus"],
                &[],
                "10.0.0.5",
            ),
            (
                "10.0.0.5",
                &trusted,
                &["198.51.100.1, bogus, 10.1.1.1"],
                &[],
                "10.1.1.1",
            ),
            // Ports and IPv6 spellings.
            (
                "10.0.0.5",
                &trusted,
                &["198.51.100.1:4711"],
                &[],
                "198.51.100.1",
            ),
            ("::1", &trusted, &["2001:db8::7"], &[], "2001:db8::7"),
            ("::1", &trusted, &["[2001:db8::7]:443"], &[], "2001:db8::7"),
            // A dual-stack socket's IPv4-mapped peer is the IPv4 address.
            (
                "::ffff:10.0.0.5",
                &trusted,
                &["198.51.100.1"],
                &[],
                "198.51.100.1",
            ),
            // RFC 7239, used only when no X-Forwarded-For was sent.
            (
                "10.0.0.5",
                &trusted,
                &[],
                &["for=198.51.100.1;proto=https"],
                "198.51.100.1",
            ),
            (
                "10.0.0.5",
                &trusted,
                &[],
                &["for=1.2.3.4, For=\"[2001:db8::7]:4711\""],
                "2001:db8::7",
            ),
            ("10.0.0.5", &trusted, &[], &["for=unknown"], "10.0.0.5"),
            (
                "10.0.0.5",
                &trusted,
                &["198.51.100.1"],
                &["for=1.2.3.4"],
                "198.51.100.1",
            ),
        ];
        for (peer, trusted, xff, fwd, want) in cases {
            assert_eq!(
                client_address(ip(peer), trusted, xff, fwd),
                ip(want),
                "peer {peer}, X-Forwarded-For {xff:?}, Forwarded {fwd:?}"
            );
        }
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
