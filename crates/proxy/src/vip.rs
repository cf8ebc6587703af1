//! ClusterIPs as /32 addresses on a dummy interface, so connections to them from pods
//! (routed to the host through the node bridge) and from the host are delivered locally,
//! where the proxy listens. This shells out to `ip` (iproute2), in this one module: four
//! idempotent commands do not justify a netlink client, and netlink can replace it here.

use std::collections::BTreeSet;
use std::net::IpAddr;

use tokio::process::Command;

pub struct VirtualIps {
    interface: String,
    ready: tokio::sync::Mutex<bool>,
}

async fn ip(args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new("ip").args(args).output().await?;
    if !out.status.success() {
        anyhow::bail!("ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

impl VirtualIps {
    pub fn new(interface: &str) -> Self {
        VirtualIps { interface: interface.to_string(), ready: tokio::sync::Mutex::new(false) }
    }

    /// Make the interface hold exactly `wanted`.
    pub async fn reconcile(&self, wanted: &BTreeSet<IpAddr>) -> anyhow::Result<()> {
        let mut ready = self.ready.lock().await;
        if !*ready {
            if ip(&["link", "show", &self.interface]).await.is_err() {
                ip(&["link", "add", &self.interface, "type", "dummy"]).await?;
            }
            ip(&["link", "set", &self.interface, "up"]).await?;
            *ready = true;
        }
        let listing = ip(&["-4", "-o", "addr", "show", "dev", &self.interface]).await?;
        let present: BTreeSet<IpAddr> = listing
            .lines()
            .filter_map(|l| l.split_whitespace().skip_while(|w| *w != "inet").nth(1))
            .filter_map(|cidr| cidr.split('/').next()?.parse().ok())
            .collect();
        for add in wanted.difference(&present) {
            ip(&["addr", "add", &format!("{add}/32"), "dev", &self.interface]).await?;
        }
        for remove in present.difference(wanted) {
            ip(&["addr", "del", &format!("{remove}/32"), "dev", &self.interface]).await?;
        }
        Ok(())
    }
}
