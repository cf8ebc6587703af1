//! `autoscaling/v2`.

pub mod horizontal_pod_autoscaler;
