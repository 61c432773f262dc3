//! IP addresses and CIDR blocks (IPv4 and IPv6), as in Istio `ipBlocks`.

use std::net::IpAddr;
use std::str::FromStr;

/// A CIDR block such as `10.0.0.0/8` or `2001:db8::/32`; a bare address is a
/// block of one (`/32` or `/128`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Parses `addr` or `addr/len`. Host bits set below the prefix are
    /// refused, as Istio does (`10.0.0.1/8` is an error, not `10.0.0.0/8`).
    pub fn parse(text: &str) -> Result<Cidr, String> {
        let (addr, len) = match text.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (text, None),
        };
        let ip =
            IpAddr::from_str(addr.trim()).map_err(|_| format!("invalid IP address `{addr}`"))?;
        let max = if ip.is_ipv4() { 32 } else { 128 };
        let prefix = match len {
            None => max,
            Some(l) => {
                let p: u8 = l
                    .parse()
                    .map_err(|_| format!("invalid prefix length in `{text}`"))?;
                if p > max {
                    return Err(format!("prefix length {p} too long in `{text}`"));
                }
                p
            }
        };
        let cidr = Cidr {
            network: ip,
            prefix,
        };
        if cidr.mask(ip) != ip {
            return Err(format!(
                "`{text}` has host bits set beyond its /{prefix} prefix"
            ));
        }
        Ok(cidr)
    }

    fn mask(&self, ip: IpAddr) -> IpAddr {
        match ip {
            IpAddr::V4(v4) => {
                let bits = u32::from(v4);
                let m = if self.prefix == 0 {
                    0
                } else {
                    u32::MAX << (32 - u32::from(self.prefix))
                };
                IpAddr::V4((bits & m).into())
            }
            IpAddr::V6(v6) => {
                let bits = u128::from(v6);
                let m = if self.prefix == 0 {
                    0
                } else {
                    u128::MAX << (128 - u32::from(self.prefix))
                };
                IpAddr::V6((bits & m).into())
            }
        }
    }

    /// Whether `ip` lies in this block. An IPv4-mapped IPv6 address
    /// (`::ffff:10.0.0.1`) is compared as the IPv4 address it carries.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6
                .to_ipv4_mapped()
                .map(IpAddr::V4)
                .unwrap_or(IpAddr::V6(v6)),
            v4 => v4,
        };
        if ip.is_ipv4() != self.network.is_ipv4() {
            return false;
        }
        self.mask(ip) == self.network
    }
}

/// Extracts the IP from an Envoy address string: `10.0.0.1:40000`,
/// `[2001:db8::1]:443`, or a bare address.
pub fn parse_address_ip(address: &str) -> Option<IpAddr> {
    let a = address.trim();
    if let Ok(ip) = IpAddr::from_str(a) {
        return Some(ip);
    }
    if let Some(rest) = a.strip_prefix('[') {
        let end = rest.find(']')?;
        return IpAddr::from_str(&rest[..end]).ok();
    }
    let (host, _port) = a.rsplit_once(':')?;
    IpAddr::from_str(host).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn v4_blocks() {
        let c = Cidr::parse("10.1.0.0/16").unwrap();
        assert!(c.contains(ip("10.1.255.3")));
        assert!(!c.contains(ip("10.2.0.1")));
        assert!(Cidr::parse("0.0.0.0/0").unwrap().contains(ip("8.8.8.8")));
        assert!(Cidr::parse("1.2.3.4").unwrap().contains(ip("1.2.3.4")));
        assert!(!Cidr::parse("1.2.3.4").unwrap().contains(ip("1.2.3.5")));
        assert!(c.contains(ip("::ffff:10.1.2.3")));
    }

    #[test]
    fn v6_blocks() {
        let c = Cidr::parse("2001:db8::/32").unwrap();
        assert!(c.contains(ip("2001:db8:1::1")));
        assert!(!c.contains(ip("2001:db9::1")));
        assert!(!c.contains(ip("10.0.0.1")));
    }

    #[test]
    fn bad_blocks() {
        for bad in [
            "10.0.0.1/8",
            "10.0.0.0/33",
            "300.0.0.0/8",
            "abc",
            "10.0.0.0/x",
            "::/129",
        ] {
            assert!(Cidr::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn addresses() {
        assert_eq!(parse_address_ip("10.0.0.1:40000"), Some(ip("10.0.0.1")));
        assert_eq!(
            parse_address_ip("[2001:db8::1]:443"),
            Some(ip("2001:db8::1"))
        );
        assert_eq!(parse_address_ip("2001:db8::1"), Some(ip("2001:db8::1")));
        assert_eq!(parse_address_ip("nonsense"), None);
    }
}
