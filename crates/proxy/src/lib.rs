//! The service proxy (Podium's kube-proxy, userspace mode): Service ClusterIPs, node
//! ports and LoadBalancer ports are TCP listeners that forward each connection to a
//! ready endpoint, retrying the next one when a backend refuses.
//!
//! [`table`] is the core (listeners reconciled to a set of [`Rule`]s), [`rules`] computes
//! those rules from Services and Endpoints, [`interface`] keeps ClusterIPs on a dummy
//! interface, and [`run`] ties them to the API server's watches.

pub mod error;
pub mod interface;
pub mod rules;
mod sync;
pub mod table;

pub use error::{ProxyError, Result};
pub use sync::{ProxyConfig, run};
pub use table::{Frontend, ProxyTable, Rule, RuleKey, TableConfig};
