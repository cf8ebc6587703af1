//! `apps/v1`.

pub mod deployment;
pub mod replica_set;
