//! The core group (`v1`, served under `/api/v1`).

pub mod config_map;
pub mod endpoints;
pub mod event;
pub mod namespace;
pub mod node;
pub mod persistent_volume;
pub mod persistent_volume_claim;
pub mod pod;
pub mod secret;
pub mod service;
pub mod service_account;
