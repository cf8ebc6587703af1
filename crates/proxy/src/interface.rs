//! The dummy interface (a port-less bridge where the kernel has no dummy driver) holding
//! every ClusterIP as a host address (/32 or /128), so the host and pods routed through
//! it reach the proxy's listeners on `clusterIP:port`.
//!
//! Links and addresses are configured with iproute2's `ip`, through `podium_linux::net::ip`
//! like the rest of Podium's networking, rather than over netlink: one tool to debug
//! with, and a netlink implementation can later replace this module alone. The calls
//! block briefly on a child process; async callers run them with `spawn_blocking`.

use std::collections::BTreeSet;
use std::net::IpAddr;

use podium_linux::LinuxError;
use podium_linux::net::{ip, validate_ifname};
use serde::Deserialize;

use crate::error::Result;

/// One link as `ip -j addr show` prints it (only the fields read here).
#[derive(Deserialize)]
struct LinkAddresses {
    #[serde(default)]
    addr_info: Vec<AddressInfo>,
}

#[derive(Deserialize)]
struct AddressInfo {
    local: Option<String>,
    scope: Option<String>,
}

/// Create the dummy interface if missing and bring it up. Idempotent; an existing link
/// of that name is used whatever its type.
pub fn ensure(name: &str) -> Result<()> {
    validate_ifname(name)?;
    // No existence check first: `/sys/class/net` shows the namespace sysfs was mounted in,
    // not necessarily ours, while `ip` answers for the namespace it runs in.
    create(name, "dummy").or_else(|error| match &error {
        // Kernels built without the dummy driver (as on some CI hosts) still have
        // bridges, and a bridge without ports holds local addresses just the same.
        LinuxError::Command { stderr, .. } if stderr.contains("Unknown device type") => {
            create(name, "bridge")
        }
        _ => Err(error),
    })?;
    ip(&["link", "set", name, "up"])?;
    Ok(())
}

fn create(name: &str, kind: &str) -> Result<(), LinuxError> {
    match ip(&["link", "add", "name", name, "type", kind]) {
        Ok(_) => Ok(()),
        // Left from an earlier run, or made by the first attempt of `ensure`.
        Err(LinuxError::Command { stderr, .. }) if stderr.contains("File exists") => Ok(()),
        Err(e) => Err(e),
    }
}

/// The addresses the interface holds, leaving out link-local ones the kernel adds itself.
pub fn addresses(name: &str) -> Result<BTreeSet<IpAddr>> {
    validate_ifname(name)?;
    let output = ip(&["-j", "addr", "show", "dev", name])?;
    parse_addresses(&output)
}

fn parse_addresses(json: &str) -> Result<BTreeSet<IpAddr>> {
    let links: Vec<LinkAddresses> = serde_json::from_str(json)?;
    Ok(links
        .iter()
        .flat_map(|l| &l.addr_info)
        .filter(|a| a.scope.as_deref() != Some("link"))
        .filter_map(|a| a.local.as_deref()?.parse().ok())
        .collect())
}

fn host_prefix(address: IpAddr) -> String {
    match address {
        IpAddr::V4(v4) => format!("{v4}/32"),
        IpAddr::V6(v6) => format!("{v6}/128"),
    }
}

/// Add `address` as a host address. Idempotent.
pub fn add_address(name: &str, address: IpAddr) -> Result<()> {
    validate_ifname(name)?;
    let prefix = host_prefix(address);
    let mut args = vec!["addr", "replace", prefix.as_str(), "dev", name];
    if address.is_ipv6() {
        // Without this the address is "tentative" for a second and binding to it fails.
        args.push("nodad");
    }
    ip(&args)?;
    Ok(())
}

/// Remove `address`. Already gone is fine.
pub fn remove_address(name: &str, address: IpAddr) -> Result<()> {
    validate_ifname(name)?;
    let prefix = host_prefix(address);
    match ip(&["addr", "del", prefix.as_str(), "dev", name]) {
        Ok(_) => Ok(()),
        Err(LinuxError::Command { stderr, .. })
            if stderr.contains("Cannot assign requested address") =>
        {
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

/// Delete the interface and with it every ClusterIP (for `podium down`). Missing is fine.
pub fn remove(name: &str) -> Result<()> {
    validate_ifname(name)?;
    match ip(&["link", "del", name]) {
        Ok(_) => Ok(()),
        Err(LinuxError::Command { stderr, .. }) if stderr.contains("Cannot find device") => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Add the desired addresses the interface lacks (before listeners bind to them).
pub fn add_missing(name: &str, desired: &BTreeSet<IpAddr>) -> Result<()> {
    let current = addresses(name)?;
    for address in desired.difference(&current) {
        add_address(name, *address)?;
    }
    Ok(())
}

/// Remove the addresses not desired any more (after their listeners are closed).
pub fn remove_stale(name: &str, desired: &BTreeSet<IpAddr>) -> Result<()> {
    let current = addresses(name)?;
    for address in current.difference(desired) {
        remove_address(name, *address)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_json_output_is_read_without_link_local_addresses() {
        let json = r#"[{"ifindex":9,"ifname":"podium-svc","flags":["BROADCAST","NOARP","UP","LOWER_UP"],
            "addr_info":[{"family":"inet","local":"10.43.0.1","prefixlen":32,"scope":"global","label":"podium-svc"},
                         {"family":"inet","local":"10.43.0.10","prefixlen":32,"scope":"global"},
                         {"family":"inet6","local":"fd00::a","prefixlen":128,"scope":"global"},
                         {"family":"inet6","local":"fe80::1c2b:3ff:fe4d:5e6f","prefixlen":64,"scope":"link"}]}]"#;
        let addresses = parse_addresses(json).unwrap();
        let expected: BTreeSet<IpAddr> = ["10.43.0.1", "10.43.0.10", "fd00::a"]
            .iter()
            .map(|a| a.parse().unwrap())
            .collect();
        assert_eq!(addresses, expected);
        assert!(parse_addresses("[{}]").unwrap().is_empty());
        assert!(parse_addresses("not json").is_err());
    }

    #[test]
    fn bad_interface_names_are_refused_before_running_anything() {
        assert!(ensure("").is_err());
        assert!(ensure("name with spaces").is_err());
        assert!(addresses("much-too-long-interface-name").is_err());
    }
}
