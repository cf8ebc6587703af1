//! Low-level Linux host operations behind a safe API; the only Podium crate with `unsafe`.
//!
//! * [`cgroup`]: one [`cgroup::Cgroup`] trait with a v1 and a v2 implementation, picked at
//!   run time by [`cgroup::Hierarchy::detect`].
//! * [`namespace`]: persistent namespaces bind-mounted onto files, and joining them.
//! * [`mounts`]: the container root filesystem (overlayfs, /proc, /dev, /sys) and `pivot_root`.
//! * [`net`]: the node bridge and a veth pair per pod.
//! * [`lock`]: an exclusive, close-on-exec lock on a data dir.
//! * [`process`]: fork, pidfds and process start times (the guard against pid reuse).

pub mod cgroup;
mod error;
pub mod lock;
pub mod memory;
pub mod mounts;
pub mod namespace;
pub mod net;
pub mod process;

pub use error::{LinuxError, Result};
