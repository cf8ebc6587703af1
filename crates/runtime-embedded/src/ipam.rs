//! Pod IP allocation: one file per address in use, created with `O_EXCL`, so two pods can
//! never hold the same address and allocations survive agent restarts.

use std::io::Write;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use podium_linux::net::Ipv4Cidr;

use crate::error::{EmbeddedError, Result};
use crate::state::list_dir;

#[derive(Debug, Clone)]
pub struct Ipam {
    dir: PathBuf,
    cidr: Ipv4Cidr,
}

impl Ipam {
    pub fn new(dir: PathBuf, cidr: Ipv4Cidr) -> Self {
        Ipam { dir, cidr }
    }

    /// The address held by `pod_uid`, allocating the lowest free one if it holds none.
    pub fn allocate(&self, pod_uid: &str) -> Result<Ipv4Addr> {
        std::fs::create_dir_all(&self.dir)
            .map_err(|e| EmbeddedError::io_at("create", &self.dir, e))?;
        if let Some(address) = self.address_of(pod_uid)? {
            return Ok(address);
        }
        for address in self.cidr.pod_addresses() {
            let path = self.dir.join(address.to_string());
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(mut file) => {
                    file.write_all(pod_uid.as_bytes())
                        .and_then(|()| file.sync_all())
                        .map_err(|e| EmbeddedError::io_at("write", &path, e))?;
                    return Ok(address);
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(EmbeddedError::io_at("create", &path, e)),
            }
        }
        Err(EmbeddedError::AddressesExhausted(self.cidr.to_string()))
    }

    /// Free every address `pod_uid` holds. Holding none is fine.
    pub fn release(&self, pod_uid: &str) -> Result<()> {
        for (address, owner) in self.allocations()? {
            if owner == pod_uid {
                let path = self.dir.join(address.to_string());
                match std::fs::remove_file(&path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(EmbeddedError::io_at("remove", &path, e)),
                }
            }
        }
        Ok(())
    }

    pub fn address_of(&self, pod_uid: &str) -> Result<Option<Ipv4Addr>> {
        Ok(self
            .allocations()?
            .into_iter()
            .find(|(_, owner)| owner == pod_uid)
            .map(|(a, _)| a))
    }

    /// Every `(address, pod UID)` in use.
    pub fn allocations(&self) -> Result<Vec<(Ipv4Addr, String)>> {
        let mut found = Vec::new();
        for name in list_dir(&self.dir)? {
            let Ok(address) = name.parse::<Ipv4Addr>() else {
                continue;
            };
            let owner = read_owner(&self.dir.join(&name))?;
            found.push((address, owner));
        }
        Ok(found)
    }
}

fn read_owner(path: &Path) -> Result<String> {
    match std::fs::read_to_string(path) {
        Ok(owner) => Ok(owner.trim().to_string()),
        // Released between listing and reading.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        Err(e) => Err(EmbeddedError::io_at("read", path, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_unique_reused_and_freed() {
        let dir = tempfile::tempdir().unwrap();
        let ipam = Ipam::new(dir.path().join("ipam"), "10.99.0.0/29".parse().unwrap());
        let a = ipam.allocate("pod-a").unwrap();
        let b = ipam.allocate("pod-b").unwrap();
        assert_eq!(a, Ipv4Addr::new(10, 99, 0, 2));
        assert_eq!(b, Ipv4Addr::new(10, 99, 0, 3));
        assert_eq!(
            ipam.allocate("pod-a").unwrap(),
            a,
            "same pod keeps its address"
        );
        ipam.release("pod-a").unwrap();
        ipam.release("pod-a").unwrap();
        assert_eq!(ipam.address_of("pod-a").unwrap(), None);
        assert_eq!(
            ipam.allocate("pod-c").unwrap(),
            a,
            "freed address is reused"
        );
        for pod in ["d", "e", "f"] {
            ipam.allocate(pod).unwrap();
        }
        assert!(matches!(
            ipam.allocate("g"),
            Err(EmbeddedError::AddressesExhausted(_))
        ));
    }

    #[test]
    fn concurrent_allocations_never_collide() {
        let dir = tempfile::tempdir().unwrap();
        let ipam = Ipam::new(dir.path().join("ipam"), "10.99.0.0/24".parse().unwrap());
        let handles: Vec<_> = (0..8)
            .map(|i| {
                let ipam = ipam.clone();
                std::thread::spawn(move || ipam.allocate(&format!("pod-{i}")).unwrap())
            })
            .collect();
        let mut addresses: Vec<Ipv4Addr> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        addresses.sort();
        addresses.dedup();
        assert_eq!(addresses.len(), 8);
    }
}
