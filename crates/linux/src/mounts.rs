//! The container root filesystem: overlayfs over the image layers, the API filesystems
//! (/proc, /dev, /sys), generated files bound in, then `pivot_root`. These run in the
//! container's init after it unshared its mount namespace, so nothing here is visible
//! on the host and everything vanishes with the container.

use std::path::{Component, Path, PathBuf};

use nix::mount::{MntFlags, MsFlags, mount, umount2};

use crate::{LinuxError, Result};

/// The largest mount data the kernel copies (one page, minus the terminating NUL).
const MAX_MOUNT_DATA: usize = 4095;

/// Device nodes a container gets, bound from the host's `/dev` (binding works where mknod
/// is refused, and carries the host's major/minor numbers).
const DEVICES: [&str; 6] = ["null", "zero", "full", "random", "urandom", "tty"];

/// Symlinks every container's /dev has, as runc creates them.
const DEV_SYMLINKS: [(&str, &str); 5] = [
    ("/proc/self/fd", "fd"),
    ("/proc/self/fd/0", "stdin"),
    ("/proc/self/fd/1", "stdout"),
    ("/proc/self/fd/2", "stderr"),
    ("pts/ptmx", "ptmx"),
];

/// What the container's root filesystem is made of.
#[derive(Debug, Clone)]
pub struct RootfsSpec {
    /// Image layer directories, lowest first.
    pub layers: Vec<PathBuf>,
    /// Where the container's writes go.
    pub upper: PathBuf,
    /// overlayfs's scratch directory, on the same filesystem as `upper`.
    pub work: PathBuf,
    /// The mount point of the merged root.
    pub target: PathBuf,
    /// Host files bound over paths inside the root (`/etc/hosts`, `/etc/resolv.conf`, ...).
    pub bind_files: Vec<(PathBuf, String)>,
}

/// Stop mount events propagating between this mount namespace and the one it was copied
/// from, so the container's mounts never appear on the host and vice versa.
pub fn make_private() -> Result<()> {
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(|e| LinuxError::sys("make / private", e))
}

/// The overlayfs option string; refuses paths overlayfs cannot parse and option strings
/// longer than the kernel accepts.
pub fn overlay_options(layers: &[PathBuf], upper: &Path, work: &Path) -> Result<String> {
    if layers.is_empty() {
        return Err(LinuxError::Invalid(
            "an image needs at least one layer".into(),
        ));
    }
    let text = |p: &Path| -> Result<String> {
        let s = p
            .to_str()
            .ok_or_else(|| LinuxError::Invalid(format!("non-UTF-8 path {}", p.display())))?;
        if s.contains([':', ',']) {
            return Err(LinuxError::Invalid(format!(
                "overlay path {s:?} contains ':' or ','"
            )));
        }
        Ok(s.to_string())
    };
    // overlayfs lists the top layer first.
    let lower: Vec<String> = layers
        .iter()
        .rev()
        .map(|p| text(p))
        .collect::<Result<_>>()?;
    let options = format!(
        "lowerdir={},upperdir={},workdir={}",
        lower.join(":"),
        text(upper)?,
        text(work)?
    );
    if options.len() > MAX_MOUNT_DATA {
        return Err(LinuxError::Invalid(format!(
            "overlay options for {} layers are {} bytes, over the kernel's {MAX_MOUNT_DATA}",
            layers.len(),
            options.len()
        )));
    }
    Ok(options)
}

/// Mount the overlay root and everything inside it. Call in a private mount namespace.
pub fn prepare_rootfs(spec: &RootfsSpec) -> Result<()> {
    for dir in [&spec.upper, &spec.work, &spec.target] {
        std::fs::create_dir_all(dir).map_err(|e| LinuxError::io_at("create", dir, e))?;
    }
    let options = overlay_options(&spec.layers, &spec.upper, &spec.work)?;
    mount(
        Some("overlay"),
        &spec.target,
        Some("overlay"),
        MsFlags::empty(),
        Some(options.as_str()),
    )
    .map_err(|e| LinuxError::sys(format!("mount overlay at {}", spec.target.display()), e))?;
    let root = &spec.target;
    let nosuid_nodev_noexec = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;

    let proc_dir = mount_point_dir(root, "/proc")?;
    mount(
        Some("proc"),
        &proc_dir,
        Some("proc"),
        nosuid_nodev_noexec,
        None::<&str>,
    )
    .map_err(|e| LinuxError::sys("mount /proc", e))?;

    let dev = mount_point_dir(root, "/dev")?;
    mount(
        Some("tmpfs"),
        &dev,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME,
        Some("mode=755,size=65536k"),
    )
    .map_err(|e| LinuxError::sys("mount /dev", e))?;
    for device in DEVICES {
        let target = dev.join(device);
        create_file(&target)?;
        let source = Path::new("/dev").join(device);
        mount(
            Some(&source),
            &target,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(|e| LinuxError::sys(format!("bind {}", source.display()), e))?;
    }
    for (link_target, name) in DEV_SYMLINKS {
        std::os::unix::fs::symlink(link_target, dev.join(name))
            .map_err(|e| LinuxError::io_at("symlink", &dev.join(name), e))?;
    }
    let pts = dev.join("pts");
    create_dir(&pts)?;
    mount(
        Some("devpts"),
        &pts,
        Some("devpts"),
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        Some("newinstance,ptmxmode=0666,mode=0620"),
    )
    .map_err(|e| LinuxError::sys("mount /dev/pts", e))?;
    let shm = dev.join("shm");
    create_dir(&shm)?;
    mount(
        Some("shm"),
        &shm,
        Some("tmpfs"),
        nosuid_nodev_noexec,
        Some("mode=1777,size=65536k"),
    )
    .map_err(|e| LinuxError::sys("mount /dev/shm", e))?;

    let sys = mount_point_dir(root, "/sys")?;
    mount(
        Some("sysfs"),
        &sys,
        Some("sysfs"),
        nosuid_nodev_noexec | MsFlags::MS_RDONLY,
        None::<&str>,
    )
    .map_err(|e| LinuxError::sys("mount /sys", e))?;

    for (source, inside) in &spec.bind_files {
        let target = mount_point_file(root, inside)?;
        mount(
            Some(source),
            &target,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(|e| LinuxError::sys(format!("bind {} onto {inside}", source.display()), e))?;
    }
    Ok(())
}

/// Make `new_root` the root of this mount namespace and detach the old root, the way runc
/// does it without a temporary directory (`pivot_root(".", ".")`).
pub fn pivot_into(new_root: &Path) -> Result<()> {
    nix::unistd::chdir(new_root)
        .map_err(|e| LinuxError::sys(format!("chdir {}", new_root.display()), e))?;
    nix::unistd::pivot_root(".", ".").map_err(|e| LinuxError::sys("pivot_root", e))?;
    umount2(".", MntFlags::MNT_DETACH).map_err(|e| LinuxError::sys("detach old root", e))?;
    nix::unistd::chdir("/").map_err(|e| LinuxError::sys("chdir /", e))
}

/// `inside` (an absolute path in the container) under `root`, refusing `..`.
fn resolve_inside(root: &Path, inside: &str) -> Result<PathBuf> {
    let relative = Path::new(inside.trim_start_matches('/'));
    if relative.as_os_str().is_empty()
        || !relative
            .components()
            .all(|c| matches!(c, Component::Normal(_)))
    {
        return Err(LinuxError::Invalid(format!("container path {inside:?}")));
    }
    Ok(root.join(relative))
}

/// Check that the directory holding `path` resolves inside `root`: image content can hold
/// symlinks such as `/etc -> /host/etc` that would send a mount onto the host.
fn ensure_parent_inside(root: &Path, path: &Path) -> Result<()> {
    let parent = path.parent().unwrap_or(root);
    std::fs::create_dir_all(parent).map_err(|e| LinuxError::io_at("create", parent, e))?;
    let real_parent =
        std::fs::canonicalize(parent).map_err(|e| LinuxError::io_at("resolve", parent, e))?;
    let real_root =
        std::fs::canonicalize(root).map_err(|e| LinuxError::io_at("resolve", root, e))?;
    if !real_parent.starts_with(&real_root) {
        return Err(LinuxError::Invalid(format!(
            "{} leaves the container root",
            path.display()
        )));
    }
    Ok(())
}

/// A directory to mount on at `inside`; a symlink or file there is replaced.
fn mount_point_dir(root: &Path, inside: &str) -> Result<PathBuf> {
    let path = resolve_inside(root, inside)?;
    ensure_parent_inside(root, &path)?;
    match std::fs::symlink_metadata(&path) {
        Ok(meta) if meta.is_dir() => return Ok(path),
        Ok(_) => std::fs::remove_file(&path).map_err(|e| LinuxError::io_at("replace", &path, e))?,
        Err(_) => {}
    }
    create_dir(&path)?;
    Ok(path)
}

/// A regular file to bind onto at `inside`; a symlink there (e.g. Debian's
/// `/etc/resolv.conf`) is replaced so the mount cannot follow it out of the root.
fn mount_point_file(root: &Path, inside: &str) -> Result<PathBuf> {
    let path = resolve_inside(root, inside)?;
    ensure_parent_inside(root, &path)?;
    match std::fs::symlink_metadata(&path) {
        Ok(meta) if meta.is_file() => return Ok(path),
        Ok(meta) if meta.is_dir() => {
            return Err(LinuxError::Invalid(format!(
                "{inside} is a directory in the image"
            )));
        }
        Ok(_) => std::fs::remove_file(&path).map_err(|e| LinuxError::io_at("replace", &path, e))?,
        Err(_) => {}
    }
    create_file(&path)?;
    Ok(path)
}

fn create_dir(path: &Path) -> Result<()> {
    match std::fs::create_dir(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(LinuxError::io_at("create", path, e)),
    }
}

fn create_file(path: &Path) -> Result<()> {
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map(drop)
        .map_err(|e| LinuxError::io_at("create", path, e))
}

/// Mount points of this process's mount namespace at or below `path`, deepest first.
pub fn mounts_under(path: &Path) -> Result<Vec<PathBuf>> {
    let info = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| LinuxError::io("read /proc/self/mountinfo", e))?;
    let mut found: Vec<PathBuf> = info
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(|field| PathBuf::from(unescape_mountinfo(field)))
        .filter(|mount_point| mount_point.starts_with(path))
        .collect();
    found.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    found.dedup();
    Ok(found)
}

/// Lazily unmount everything at or below `path` (cleanup after a crash left mounts).
pub fn unmount_under(path: &Path) -> Result<()> {
    for mount_point in mounts_under(path)? {
        match umount2(&mount_point, MntFlags::MNT_DETACH) {
            Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => {}
            Err(e) => {
                return Err(LinuxError::sys(
                    format!("unmount {}", mount_point.display()),
                    e,
                ));
            }
        }
    }
    Ok(())
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo` octal.
fn unescape_mountinfo(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && let Some(digits) = bytes.get(i + 1..i + 4)
            && digits.iter().all(|d| (b'0'..=b'7').contains(d))
        {
            let value = digits
                .iter()
                .fold(0u32, |acc, d| acc * 8 + u32::from(d - b'0'));
            if let Ok(byte) = u8::try_from(value) {
                out.push(byte);
                i += 4;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlay_lists_top_layer_first() {
        let layers = vec![PathBuf::from("/l/base"), PathBuf::from("/l/app")];
        let options =
            overlay_options(&layers, Path::new("/c/upper"), Path::new("/c/work")).unwrap();
        assert_eq!(
            options,
            "lowerdir=/l/app:/l/base,upperdir=/c/upper,workdir=/c/work"
        );
    }

    #[test]
    fn overlay_refuses_what_it_cannot_express() {
        let upper = Path::new("/u");
        let work = Path::new("/w");
        assert!(overlay_options(&[], upper, work).is_err());
        assert!(overlay_options(&[PathBuf::from("/a:b")], upper, work).is_err());
        let many: Vec<PathBuf> = (0..200)
            .map(|i| PathBuf::from(format!("/var/lib/podium/layers/{i:064}")))
            .collect();
        assert!(matches!(
            overlay_options(&many, upper, work),
            Err(LinuxError::Invalid(_))
        ));
    }

    #[test]
    fn container_paths_stay_inside_the_root() {
        let root = tempfile::tempdir().unwrap();
        assert!(resolve_inside(root.path(), "/etc/../../x").is_err());
        std::fs::create_dir(root.path().join("inner")).unwrap();
        std::os::unix::fs::symlink("/", root.path().join("inner/escape")).unwrap();
        assert!(mount_point_file(root.path(), "/inner/escape/etc/hosts").is_err());
        // A symlinked file is replaced by a regular file.
        std::fs::create_dir(root.path().join("etc")).unwrap();
        std::os::unix::fs::symlink("/etc/shadow", root.path().join("etc/resolv.conf")).unwrap();
        let target = mount_point_file(root.path(), "/etc/resolv.conf").unwrap();
        assert!(std::fs::symlink_metadata(target).unwrap().is_file());
    }

    #[test]
    fn mountinfo_escapes_are_decoded() {
        assert_eq!(unescape_mountinfo("/a\\040b"), "/a b");
        assert_eq!(unescape_mountinfo("/plain"), "/plain");
        assert_eq!(unescape_mountinfo("/end\\"), "/end\\");
    }

    #[test]
    fn root_is_a_mount_point() {
        assert!(
            mounts_under(Path::new("/"))
                .unwrap()
                .contains(&PathBuf::from("/"))
        );
    }
}
