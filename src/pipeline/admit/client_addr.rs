//! The client's address: the peer, or behind trusted proxies the right-most
//! hop of `Forwarded` (RFC 7239) / `X-Forwarded-For` that no trusted proxy
//! added.
//!
//! Only a peer in `server.trusted_proxies` is believed about who it forwards
//! for; anyone else can write any `X-Forwarded-For`, so from an untrusted peer
//! the headers are ignored. Behind trusted proxies the list is read from the
//! right (the hop nearest to us) and every trusted hop is skipped: the first
//! untrusted one is the client, since only it was added by someone we trust
//! and describes someone we do not. When a hop cannot be read (`unknown`, an
//! obfuscated `_name`, garbage), the trusted proxy that reported it stands in
//! for the client: one shared bucket rather than one the client can choose.
//! `Forwarded` wins over `X-Forwarded-For` when both are present (RFC 7239 §1:
//! it is the standard form). Pure: takes header values as text, no HTTP types.

use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;

/// The client address for a request from `peer` with these header values
/// (every `Forwarded` and every `X-Forwarded-For` line, in order). `None`
/// only when the peer is unknown.
pub fn client_address<'a>(
    peer: Option<IpAddr>,
    forwarded: impl IntoIterator<Item = &'a str>,
    x_forwarded_for: impl IntoIterator<Item = &'a str>,
    trusted: &[IpNet],
) -> Option<IpAddr> {
    let peer = peer?.to_canonical();
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return Some(peer);
    }
    let mut hops: Vec<Option<IpAddr>> = forwarded
        .into_iter()
        .flat_map(|line| line.split(','))
        .map(forwarded_for)
        .collect();
    if hops.is_empty() {
        hops = x_forwarded_for
            .into_iter()
            .flat_map(|line| line.split(','))
            .map(|hop| node(hop.trim()))
            .collect();
    }
    let mut nearest = peer;
    for hop in hops.into_iter().rev() {
        match hop {
            Some(ip) if is_trusted(&ip) => nearest = ip,
            Some(ip) => return Some(ip),
            None => return Some(nearest),
        }
    }
    // Every hop is a trusted proxy: the left-most is where it started.
    Some(nearest)
}

/// The `for=` node of one `Forwarded` element (`for=192.0.2.60;proto=http`);
/// `None` when it has none or it is not an address.
fn forwarded_for(element: &str) -> Option<IpAddr> {
    element.split(';').find_map(|pair| {
        let (name, value) = pair.split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case("for")
            .then(|| node(value.trim().trim_matches('"')))
            .flatten()
    })
}

/// An address as a node: `192.0.2.1`, `192.0.2.1:8080`, `[2001:db8::1]`,
/// `[2001:db8::1]:443`, `2001:db8::1`.
fn node(text: &str) -> Option<IpAddr> {
    let ip = if let Ok(ip) = text.parse::<IpAddr>() {
        ip
    } else if let Ok(sa) = text.parse::<SocketAddr>() {
        sa.ip()
    } else {
        text.strip_prefix('[')?.strip_suffix(']')?.parse().ok()?
    };
    Some(ip.to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("address")
    }

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|s| s.parse().expect("CIDR")).collect()
    }

    fn addr(peer: &str, fwd: &[&str], xff: &[&str], trusted: &[&str]) -> Option<IpAddr> {
        client_address(
            Some(ip(peer)),
            fwd.iter().copied(),
            xff.iter().copied(),
            &nets(trusted),
        )
    }

    #[test]
    fn untrusted_peer_headers_are_ignored() {
        let got = addr("203.0.113.9", &[], &["1.2.3.4"], &["10.0.0.0/8"]);
        assert_eq!(got, Some(ip("203.0.113.9")));
        let got = addr("203.0.113.9", &["for=1.2.3.4"], &[], &[]);
        assert_eq!(got, Some(ip("203.0.113.9")));
    }

    #[test]
    fn rightmost_untrusted_hop_of_x_forwarded_for() {
        // The client spoofed 6.6.6.6; the proxy appended what it saw.
        let got = addr(
            "10.0.0.2",
            &[],
            &["6.6.6.6, 198.51.100.7", "10.0.0.1"],
            &["10.0.0.0/8"],
        );
        assert_eq!(got, Some(ip("198.51.100.7")));
    }

    #[test]
    fn forwarded_wins_and_is_parsed() {
        let got = addr(
            "10.0.0.2",
            &[r#"for=6.6.6.6, for="[2001:db8:cafe::17]:4711";proto=https"#],
            &["9.9.9.9"],
            &["10.0.0.0/8"],
        );
        assert_eq!(got, Some(ip("2001:db8:cafe::17")));
        let got = addr(
            "10.0.0.2",
            &["For=192.0.2.60:8080;by=10.0.0.2"],
            &[],
            &["10.0.0.0/8"],
        );
        assert_eq!(got, Some(ip("192.0.2.60")));
    }

    #[test]
    fn unreadable_hop_stands_as_the_proxy() {
        let got = addr(
            "10.0.0.2",
            &["for=unknown, for=10.0.0.1"],
            &[],
            &["10.0.0.0/8"],
        );
        assert_eq!(got, Some(ip("10.0.0.1")));
        let got = addr("10.0.0.2", &[], &["not-an-ip"], &["10.0.0.0/8"]);
        assert_eq!(got, Some(ip("10.0.0.2")));
    }

    #[test]
    fn all_trusted_is_the_leftmost_and_no_header_is_the_peer() {
        let got = addr("10.0.0.2", &[], &["10.1.1.1, 10.0.0.1"], &["10.0.0.0/8"]);
        assert_eq!(got, Some(ip("10.1.1.1")));
        assert_eq!(
            addr("10.0.0.2", &[], &[], &["10.0.0.2/32"]),
            Some(ip("10.0.0.2"))
        );
    }

    #[test]
    fn mapped_addresses_are_ipv4() {
        let got = addr(
            "::ffff:10.0.0.2",
            &[],
            &["::ffff:192.0.2.1"],
            &["10.0.0.0/8"],
        );
        assert_eq!(got, Some(ip("192.0.2.1")));
    }
}
