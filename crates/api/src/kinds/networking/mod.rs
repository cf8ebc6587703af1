//! `networking.k8s.io/v1`.

pub mod ingress;
pub mod ingress_class;
pub mod network_policy;
