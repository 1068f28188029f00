//! Where alert webhooks may be delivered: the guard against server-side
//! request forgery. Anyone who may update a handoff contract chooses the
//! URI the worker POSTs to, so without this guard they could make Tally
//! call into the network it runs in (the cloud metadata service at
//! 169.254.169.254, a database's HTTP port, a sidecar's admin endpoint).
//!
//! An address is *internal* when it is loopback, private (RFC 1918),
//! shared (CGNAT 100.64/10), link-local (metadata services live there),
//! unique-local, unspecified, multicast or reserved, in IPv4 or IPv6, and
//! in the IPv6 forms that embed an IPv4 address (mapped, compatible, NAT64,
//! 6to4). Internal addresses are refused unless an operator put them in the
//! allow-list (`--alert-allow-cidr`).
//!
//! The check runs twice: when a contract is updated (so a mistake is told
//! to whoever made it) and at every delivery, after DNS resolution, on the
//! very addresses the connection then uses. A name that resolved outside
//! at update time and inside later (DNS rebinding) is caught by the second
//! check, and there is no second lookup between the check and the connect.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::str::FromStr;
use std::time::Duration;

/// How long a name may take to resolve.
pub const RESOLVE_TIMEOUT: Duration = Duration::from_secs(3);

/// An address block such as `10.0.0.0/8` or `fd00::/8`; a bare address is
/// a block of one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, canonical(ip)) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                prefix_eq(u32::from(n).into(), u32::from(a).into(), 32, self.prefix)
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                prefix_eq(u128::from(n), u128::from(a), 128, self.prefix)
            }
            _ => false,
        }
    }
}

fn prefix_eq(a: u128, b: u128, bits: u8, prefix: u8) -> bool {
    if prefix == 0 {
        return true;
    }
    let shift = u32::from(bits - prefix);
    (a >> shift) == (b >> shift)
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Cidr, String> {
        let s = s.trim();
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let network: IpAddr = addr
            .parse()
            .map_err(|_| format!("'{s}' is not an address block such as 10.1.0.0/16"))?;
        let network = canonical(network);
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("'{s}': the prefix length is 0 to {max}"))?,
        };
        Ok(Cidr { network, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// An IPv4 address written as IPv6 (`::ffff:10.0.0.1`) is that IPv4
/// address: a check of one form must hold for the other.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => ip,
        },
        v4 => v4,
    }
}

/// Why an IPv4 address is internal, if it is.
fn internal_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, ..] = ip.octets();
    Some(match (a, b) {
        (0, _) => "unspecified (0.0.0.0/8)",
        (10, _) | (172, 16..=31) | (192, 168) => "private",
        (100, 64..=127) => "shared address space (100.64.0.0/10)",
        (127, _) => "loopback",
        (169, 254) => "link-local (cloud metadata lives there)",
        (192, 0) if ip.octets()[2] == 0 => "IETF protocol assignments (192.0.0.0/24)",
        (198, 18..=19) => "benchmarking (198.18.0.0/15)",
        (224..=239, _) => "multicast",
        (240..=255, _) => "reserved or broadcast",
        _ => return None,
    })
}

/// Why an address is internal, if it is; IPv6 forms embedding an IPv4
/// address answer for that address.
pub fn internal(ip: IpAddr) -> Option<&'static str> {
    let v6 = match canonical(ip) {
        IpAddr::V4(v4) => return internal_v4(v4),
        IpAddr::V6(v6) => v6,
    };
    let seg = v6.segments();
    if v6.is_unspecified() {
        return Some("unspecified");
    }
    if v6.is_loopback() {
        return Some("loopback");
    }
    let embedded = |hi: u16, lo: u16| Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
    // ::a.b.c.d (deprecated IPv4-compatible).
    if seg[..6] == [0; 6] {
        return internal_v4(embedded(seg[6], seg[7])).or(Some("IPv4-compatible"));
    }
    // NAT64 (64:ff9b::/96) and 6to4 (2002::/16) reach an IPv4 address.
    if seg[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return internal_v4(embedded(seg[6], seg[7]));
    }
    if seg[0] == 0x2002 {
        return internal_v4(embedded(seg[1], seg[2]));
    }
    Some(match seg[0] {
        s if s & 0xfe00 == 0xfc00 => "unique-local (fc00::/7)",
        s if s & 0xffc0 == 0xfe80 => "link-local (fe80::/10)",
        s if s & 0xffc0 == 0xfec0 => "site-local (fec0::/10)",
        s if s & 0xff00 == 0xff00 => "multicast",
        _ => return None,
    })
}

/// Which addresses alert webhooks may reach: every public one, and the
/// internal ones in `allowed`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Egress {
    allowed: Vec<Cidr>,
}

impl Egress {
    /// Public addresses only.
    pub fn public_only() -> Egress {
        Egress::default()
    }

    /// Public addresses and those in `allowed` (`--alert-allow-cidr`).
    pub fn allowing(allowed: impl IntoIterator<Item = Cidr>) -> Egress {
        Egress {
            allowed: allowed.into_iter().collect(),
        }
    }

    pub fn allowed(&self) -> &[Cidr] {
        &self.allowed
    }

    /// Ok for an address a webhook may be delivered to; else why not.
    pub fn vet(&self, ip: IpAddr) -> Result<(), String> {
        match internal(ip) {
            Some(why) if !self.allowed.iter().any(|c| c.contains(ip)) => Err(format!(
                "{ip} is an internal address ({why}) and not in --alert-allow-cidr"
            )),
            _ => Ok(()),
        }
    }

    /// The addresses `host` stands for, each vetted: an address literal is
    /// itself, a name is resolved (bounded by `RESOLVE_TIMEOUT`). A name
    /// any of whose addresses is refused is refused whole, so that which
    /// one a client would pick cannot matter.
    pub async fn resolve(&self, host: &str, port: u16) -> Result<Vec<SocketAddr>, Refused> {
        let host = host.trim_matches(['[', ']']);
        if let Ok(ip) = host.parse::<IpAddr>() {
            self.vet(ip).map_err(Refused::Address)?;
            return Ok(vec![SocketAddr::new(ip, port)]);
        }
        let found: Vec<SocketAddr> =
            tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host((host, port)))
                .await
                .map_err(|_| Refused::Unresolved(format!("resolving {host}: timed out")))?
                .map_err(|e| Refused::Unresolved(format!("resolving {host}: {e}")))?
                .collect();
        if found.is_empty() {
            return Err(Refused::Unresolved(format!("{host} has no address")));
        }
        for a in &found {
            self.vet(a.ip())
                .map_err(|e| Refused::Address(format!("{host} resolves to {e}")))?;
        }
        Ok(found)
    }
}

/// Why a webhook address cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// It is (or resolves to) an internal address: never connected to.
    Address(String),
    /// The name does not resolve (now): nothing to vet.
    Unresolved(String),
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refused::Address(s) | Refused::Unresolved(s) => f.write_str(s),
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
    fn internal_addresses_are_named() {
        for s in [
            "127.0.0.1",
            "127.8.9.10",
            "10.0.0.1",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "100.127.255.255",
            "0.0.0.0",
            "0.1.2.3",
            "224.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "fe80::1",
            "fc00::1",
            "fd12:3456::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "::ffff:10.0.0.1",
            "::10.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "2002:a9fe:a9fe::1",
            "ff02::1",
        ] {
            assert!(internal(ip(s)).is_some(), "{s}");
            assert!(Egress::public_only().vet(ip(s)).is_err(), "{s}");
        }
        for s in [
            "8.8.8.8",
            "172.32.0.1",
            "100.128.0.1",
            "169.255.0.1",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
        ] {
            assert_eq!(internal(ip(s)), None, "{s}");
        }
    }

    #[test]
    fn the_allow_list_lets_internal_blocks_through() {
        let cidrs: Vec<Cidr> = ["127.0.0.0/8", "fd00::/8", "10.1.2.3"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        let e = Egress::allowing(cidrs);
        for ok in [
            "127.0.0.1",
            "::ffff:127.0.0.1",
            "fd00::5",
            "10.1.2.3",
            "8.8.8.8",
        ] {
            assert!(e.vet(ip(ok)).is_ok(), "{ok}");
        }
        for refused in ["10.1.2.4", "169.254.169.254", "::1", "fc00::1"] {
            let err = e.vet(ip(refused)).unwrap_err();
            assert!(err.contains("--alert-allow-cidr"), "{err}");
        }
        assert!(
            "0.0.0.0/0"
                .parse::<Cidr>()
                .unwrap()
                .contains(ip("10.0.0.1"))
        );
    }

    #[test]
    fn blocks_are_parsed_strictly() {
        for bad in [
            "",
            "10.0.0.0/33",
            "::/129",
            "10.0.0/8",
            "x/8",
            "10.0.0.0/-1",
        ] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
        assert_eq!(
            "::ffff:10.0.0.0/8".parse::<Cidr>().unwrap().to_string(),
            "10.0.0.0/8"
        );
    }

    #[tokio::test]
    async fn names_are_vetted_after_resolution() {
        let e = Egress::public_only();
        assert!(matches!(
            e.resolve("localhost", 80).await,
            Err(Refused::Address(_))
        ));
        assert!(matches!(
            e.resolve("[::1]", 80).await,
            Err(Refused::Address(_))
        ));
        let allowed = Egress::allowing(["127.0.0.0/8".parse().unwrap()]);
        assert_eq!(
            allowed.resolve("127.0.0.1", 80).await.unwrap(),
            vec!["127.0.0.1:80".parse().unwrap()]
        );
    }
}
