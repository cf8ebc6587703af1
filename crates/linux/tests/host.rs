//! Host operations against the real kernel (needs root): a cgroup with a limit and a
//! process in it, and a pod link on a bridge inside namespaces this test creates.

use std::path::Path;
use std::time::Duration;

use podium_linux::cgroup::Hierarchy;
use podium_linux::namespace::{self, NamespaceKind};
use podium_linux::net::{self, Ipv4Cidr, PodLink};

#[test]
fn cgroup_limits_accounts_kills_and_removes() {
    let hierarchy = Hierarchy::detect().expect("a cgroup hierarchy (run as root on Linux)");
    let cgroup = hierarchy.cgroup("podium-linux-test/pod/c").unwrap();
    let parent = hierarchy.cgroup("podium-linux-test").unwrap();
    cgroup.create().expect("create cgroup (needs root)");
    cgroup.set_memory_limit(Some(32 << 20)).unwrap();
    cgroup.set_cpu_limit(Some(500)).unwrap();
    let mut child = std::process::Command::new("sleep")
        .arg("100")
        .spawn()
        .unwrap();
    cgroup.add_pid(child.id()).unwrap();
    assert_eq!(cgroup.pids().unwrap(), vec![child.id()]);
    assert_eq!(
        parent.pids().unwrap(),
        vec![child.id()],
        "pids include descendants"
    );
    // Memory already charged elsewhere does not move with the process on v1; only reading is checked.
    let _ = cgroup.memory_usage().unwrap();
    std::thread::sleep(Duration::from_millis(20));
    let _ = cgroup.cpu_usage_nanos().unwrap();
    assert_eq!(cgroup.oom_kill_count().unwrap(), 0);
    parent.remove().unwrap();
    let status = child.wait().unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(9)
    );
    assert!(!cgroup.exists() && !parent.exists());
    parent.remove().unwrap();
}

#[test]
fn pod_link_gets_address_route_and_reaches_the_gateway() {
    let cidr: Ipv4Cidr = "10.99.31.0/24".parse().unwrap();
    let bridge = "pdlinuxtest";
    let netns_name = "podium-linux-test-pod";
    let netns = Path::new("/run/netns").join(netns_name);
    namespace::prepare_shared_dir(Path::new("/run/netns"))
        .expect("prepare /run/netns (needs root)");
    namespace::create_persistent(&[(NamespaceKind::Net, netns.clone())], "unused").unwrap();
    net::ensure_bridge(bridge, &cidr).unwrap();
    net::ensure_bridge(bridge, &cidr).unwrap();
    let link = PodLink {
        bridge: bridge.into(),
        host_veth: net::host_veth_name("linux-test-pod"),
        netns: netns_name.into(),
        address: "10.99.31.2".parse().unwrap(),
        cidr,
    };
    net::attach_pod(&link).unwrap();
    // Attaching again replaces the pair rather than failing.
    net::attach_pod(&link).unwrap();
    let addresses = net::ip(&["-n", netns_name, "-4", "addr", "show", "eth0"]).unwrap();
    let routes = net::ip(&["-n", netns_name, "route", "show", "default"]).unwrap();
    // The gateway is routed through the pod's eth0.
    let probe = std::process::Command::new("ip")
        .args([
            "netns",
            "exec",
            netns_name,
            "ip",
            "route",
            "get",
            "10.99.31.1",
        ])
        .output()
        .unwrap();
    net::delete_link(&link.host_veth).unwrap();
    net::delete_link(bridge).unwrap();
    namespace::remove_persistent(&netns).unwrap();
    assert!(addresses.contains("10.99.31.2/24"), "{addresses}");
    assert!(
        routes.contains("default via 10.99.31.1 dev eth0"),
        "{routes}"
    );
    assert!(String::from_utf8_lossy(&probe.stdout).contains("dev eth0"));
    assert!(!net::link_exists(&link.host_veth).unwrap() && !net::link_exists(bridge).unwrap());
    assert!(!netns.exists());
}

/// The v2 code on a real cgroup2 mount: the unified tree itself on a v2 host, the
/// controller-less `unified` mount on a hybrid one (so only process handling is checked).
#[test]
fn cgroup_v2_moves_kills_and_removes() {
    let root = ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"]
        .into_iter()
        .find_map(|path| match Hierarchy::detect_at(Path::new(path)) {
            Ok(Hierarchy::V2 { root }) => Some(root),
            _ => None,
        })
        .expect("no cgroup2 mount at /sys/fs/cgroup or /sys/fs/cgroup/unified");
    let hierarchy = Hierarchy::V2 { root };
    let parent = hierarchy.cgroup("podium-linux-v2-test").unwrap();
    let cgroup = hierarchy.cgroup("podium-linux-v2-test/pod/c").unwrap();
    cgroup.create().expect("create v2 cgroup (needs root)");
    let mut child = std::process::Command::new("sleep")
        .arg("100")
        .spawn()
        .unwrap();
    cgroup.add_pid(child.id()).unwrap();
    assert_eq!(parent.pids().unwrap(), vec![child.id()]);
    parent.remove().unwrap();
    let status = child.wait().unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(9)
    );
    assert!(!parent.exists());
}
