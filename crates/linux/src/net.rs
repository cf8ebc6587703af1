//! Pod networking: a Linux bridge holding the gateway address, and per pod a veth pair
//! whose inner end is the pod's `eth0` with its address and a default route.
//!
//! Links are configured by running iproute2's `ip` rather than speaking netlink: `ip`
//! ships on every host Podium targets, its behaviour is the reference everyone debugs
//! with, and configuring a link *inside* another network namespace over netlink needs a
//! socket opened in that namespace. Every command goes through [`ip`] so a netlink
//! implementation can replace this module alone.

use std::hash::Hasher;
use std::net::Ipv4Addr;
use std::process::Command;
use std::str::FromStr;

use crate::{LinuxError, Result};

/// The longest interface name the kernel accepts (IFNAMSIZ - 1).
const MAX_IFNAME: usize = 15;
/// The name of the pod's end of its veth pair.
pub const POD_INTERFACE: &str = "eth0";

/// An IPv4 network such as `10.42.0.0/24`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Cidr {
    network: Ipv4Addr,
    prefix: u8,
}

impl Ipv4Cidr {
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    pub fn network(&self) -> Ipv4Addr {
        self.network
    }

    /// The first host address, which the bridge holds as the pods' gateway.
    pub fn gateway(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network) + 1)
    }

    /// Addresses pods may get: every host address after the gateway, before broadcast.
    pub fn pod_addresses(&self) -> impl Iterator<Item = Ipv4Addr> + use<> {
        let size = 1u64 << (32 - u32::from(self.prefix));
        let first = u64::from(u32::from(self.network)) + 2;
        let end = u64::from(u32::from(self.network)) + size.saturating_sub(1);
        (first..end)
            .filter_map(|a| u32::try_from(a).ok())
            .map(Ipv4Addr::from)
    }

    pub fn contains(&self, address: Ipv4Addr) -> bool {
        let mask = if self.prefix == 0 {
            0
        } else {
            u32::MAX << (32 - u32::from(self.prefix))
        };
        u32::from(address) & mask == u32::from(self.network)
    }
}

impl FromStr for Ipv4Cidr {
    type Err = LinuxError;

    /// Parses `a.b.c.d/n`; the prefix must leave room for a gateway and one pod (n ≤ 30)
    /// and the address must be the network's first.
    fn from_str(text: &str) -> Result<Self> {
        let invalid = |why: &str| LinuxError::Invalid(format!("CIDR {text:?}: {why}"));
        let (address, prefix) = text
            .split_once('/')
            .ok_or_else(|| invalid("missing /prefix"))?;
        let address: Ipv4Addr = address.parse().map_err(|_| invalid("bad IPv4 address"))?;
        let prefix: u8 = prefix.parse().map_err(|_| invalid("bad prefix length"))?;
        if !(1..=30).contains(&prefix) {
            return Err(invalid("prefix must be between 1 and 30"));
        }
        let mask = u32::MAX << (32 - u32::from(prefix));
        if u32::from(address) & !mask != 0 {
            return Err(invalid("host bits are set"));
        }
        Ok(Ipv4Cidr {
            network: address,
            prefix,
        })
    }
}

impl std::fmt::Display for Ipv4Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// A pod's link: the host end of its veth on `bridge`, the other end as `eth0` in the
/// network namespace pinned at `/run/netns/<netns>`.
#[derive(Debug, Clone)]
pub struct PodLink {
    pub bridge: String,
    pub host_veth: String,
    pub netns: String,
    pub address: Ipv4Addr,
    pub cidr: Ipv4Cidr,
}

/// The host-side veth name of a pod: stable, short enough for the kernel, and unlikely to
/// collide (a hash of the pod UID).
pub fn host_veth_name(pod_uid: &str) -> String {
    let mut hasher = fnv::FnvHasher::default();
    hasher.write(pod_uid.as_bytes());
    let hash = format!("{:016x}", hasher.finish());
    format!("pv{}", &hash[..12])
}

/// Check an interface name before handing it to the kernel.
pub fn validate_ifname(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= MAX_IFNAME
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.');
    if ok {
        Ok(())
    } else {
        Err(LinuxError::Invalid(format!("interface name {name:?}")))
    }
}

/// Create the bridge if missing, give it the gateway address and bring it up. Idempotent.
pub fn ensure_bridge(bridge: &str, cidr: &Ipv4Cidr) -> Result<()> {
    validate_ifname(bridge)?;
    if !link_exists(bridge)? {
        match ip(&["link", "add", "name", bridge, "type", "bridge"]) {
            Ok(_) => {}
            // Another sandbox created it at the same moment.
            Err(LinuxError::Command { stderr, .. }) if stderr.contains("File exists") => {}
            Err(e) => return Err(e),
        }
    }
    // A bridge without an address of its own takes the lowest MAC among its ports, so it
    // changes as pods come and go; pods that cached the old gateway MAC then send their
    // replies nowhere until their ARP entry expires (seconds of stalled connections in a
    // rolling update). A set address never changes.
    ip(&[
        "link",
        "set",
        bridge,
        "address",
        &gateway_mac(cidr.gateway()),
    ])?;
    let gateway = format!("{}/{}", cidr.gateway(), cidr.prefix());
    ip(&["addr", "replace", &gateway, "dev", bridge])?;
    ip(&["link", "set", bridge, "up"])?;
    Ok(())
}

/// The bridge's fixed MAC: CNI's convention, `0a:58` and then the four bytes of the
/// gateway address (locally administered, unicast, and the same after every restart).
pub fn gateway_mac(gateway: Ipv4Addr) -> String {
    let [a, b, c, d] = gateway.octets();
    format!("0a:58:{a:02x}:{b:02x}:{c:02x}:{d:02x}")
}

/// Create the pod's veth pair, attach the host end to the bridge and configure `eth0`,
/// `lo` and the default route inside the pod's namespace. A half-made pair from an earlier
/// attempt is replaced.
pub fn attach_pod(link: &PodLink) -> Result<()> {
    validate_ifname(&link.host_veth)?;
    validate_ifname(&link.bridge)?;
    delete_link(&link.host_veth)?;
    let ns = link.netns.as_str();
    if ip(&["-n", ns, "link", "show", POD_INTERFACE]).is_ok() {
        ip(&["-n", ns, "link", "del", POD_INTERFACE])?;
    }
    ip(&[
        "link",
        "add",
        &link.host_veth,
        "type",
        "veth",
        "peer",
        "name",
        POD_INTERFACE,
        "netns",
        ns,
    ])?;
    ip(&["link", "set", &link.host_veth, "master", &link.bridge, "up"])?;
    let address = format!("{}/{}", link.address, link.cidr.prefix());
    ip(&["-n", ns, "addr", "replace", &address, "dev", POD_INTERFACE])?;
    ip(&["-n", ns, "link", "set", "lo", "up"])?;
    ip(&["-n", ns, "link", "set", POD_INTERFACE, "up"])?;
    ip(&[
        "-n",
        ns,
        "route",
        "replace",
        "default",
        "via",
        &link.cidr.gateway().to_string(),
    ])?;
    Ok(())
}

/// Whether a link of that name exists in the host namespace.
pub fn link_exists(name: &str) -> Result<bool> {
    validate_ifname(name)?;
    Ok(std::path::Path::new("/sys/class/net").join(name).exists())
}

/// Delete a link (a veth takes its peer with it). Missing is fine.
pub fn delete_link(name: &str) -> Result<()> {
    if !link_exists(name)? {
        return Ok(());
    }
    match ip(&["link", "del", name]) {
        Ok(_) => Ok(()),
        Err(LinuxError::Command { stderr, .. }) if stderr.contains("Cannot find device") => Ok(()),
        Err(e) => Err(e),
    }
}

/// Run `ip` with `args`; the one place this crate leaves the process for networking.
pub fn ip(args: &[&str]) -> Result<String> {
    let command = format!("ip {}", args.join(" "));
    let output = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| LinuxError::io(format!("run `{command}` (is iproute2 installed?)"), e))?;
    if !output.status.success() {
        return Err(LinuxError::Command {
            command,
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_parses_and_enumerates() {
        let cidr: Ipv4Cidr = "10.99.7.0/29".parse().unwrap();
        assert_eq!(cidr.gateway(), Ipv4Addr::new(10, 99, 7, 1));
        let pods: Vec<Ipv4Addr> = cidr.pod_addresses().collect();
        assert_eq!(pods.first(), Some(&Ipv4Addr::new(10, 99, 7, 2)));
        assert_eq!(pods.last(), Some(&Ipv4Addr::new(10, 99, 7, 6)));
        assert_eq!(pods.len(), 5);
        assert!(cidr.contains(Ipv4Addr::new(10, 99, 7, 5)));
        assert!(!cidr.contains(Ipv4Addr::new(10, 99, 8, 5)));
        assert_eq!(cidr.to_string(), "10.99.7.0/29");
    }

    #[test]
    fn bad_cidrs_are_refused() {
        for bad in [
            "10.0.0.0",
            "10.0.0.1/24",
            "10.0.0.0/31",
            "10.0.0.0/0",
            "x/24",
            "10.0.0.0/abc",
        ] {
            assert!(bad.parse::<Ipv4Cidr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn the_bridge_mac_is_local_unicast_and_follows_the_gateway() {
        let mac = gateway_mac(Ipv4Addr::new(10, 42, 0, 1));
        assert_eq!(mac, "0a:58:0a:2a:00:01");
        let first = u8::from_str_radix(&mac[..2], 16).unwrap();
        assert_eq!(first & 0b11, 0b10, "locally administered, not multicast");
    }

    #[test]
    fn veth_names_fit_and_differ() {
        let a = host_veth_name("0b9f0c6e-1111-2222-3333-444455556666");
        let b = host_veth_name("0b9f0c6e-1111-2222-3333-444455556667");
        assert_ne!(a, b);
        assert!(validate_ifname(&a).is_ok());
        assert_eq!(a, host_veth_name("0b9f0c6e-1111-2222-3333-444455556666"));
        assert!(validate_ifname("this-name-is-too-long").is_err());
        assert!(validate_ifname("a/b").is_err());
    }
}
