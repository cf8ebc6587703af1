//! Unpacking one layer tar into a directory overlayfs can stack, verifying its digests.

use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;

use nix::sys::stat::{Mode, SFlag, makedev, mknod};
use sha2::{Digest, Sha256};

use crate::ImageError;
use crate::archive::{invalid, io_err, stays_inside};

/// A reader that hashes everything that passes through it.
struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
}

impl<R: Read> HashingReader<R> {
    fn new(inner: R) -> Self {
        HashingReader {
            inner,
            hasher: Sha256::new(),
        }
    }

    /// Read to the end (tar stops at its end marker, gzip may have trailing bytes) and
    /// return the digest of the whole stream.
    fn finish(mut self) -> io::Result<String> {
        io::copy(&mut self, &mut io::sink())?;
        Ok(format!("sha256:{:x}", self.hasher.finalize()))
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// The digests of an unpacked layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LayerDigests {
    /// Of the file as stored (what a manifest names).
    pub blob: String,
    /// Of the uncompressed tar (what the image config's `rootfs.diff_ids` names).
    pub diff_id: String,
}

/// `.wh.<name>` in OCI layers: `<name>` of a lower layer is deleted.
const WHITEOUT_PREFIX: &str = ".wh.";
/// `.wh..wh..opq` in OCI layers: the directory hides everything below it.
const OPAQUE_MARKER: &str = ".wh..wh..opq";

/// overlayfs' whiteout: a character device 0/0.
fn make_whiteout(path: &Path) -> Result<(), ImageError> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
    .map_err(io_err(format!(
        "replacing {} with a whiteout",
        path.display()
    )))?;
    mknod(path, SFlag::S_IFCHR, Mode::empty(), makedev(0, 0)).map_err(|errno| ImageError::Io {
        context: format!("creating whiteout {}", path.display()),
        source: errno.into(),
    })
}

/// overlayfs' opaque directory: the `trusted.overlay.opaque=y` xattr.
fn make_opaque(dir: &Path) -> Result<(), ImageError> {
    xattr::set(dir, "trusted.overlay.opaque", b"y")
        .map_err(io_err(format!("marking {} opaque", dir.display())))
}

/// The directory `relative` under `dest`, created if missing. Whiteouts are written by
/// hand rather than by `tar`, so this does the check `tar` does for its own entries: an
/// earlier entry may have made a component a symlink (`etc -> /etc`), and following it
/// would delete or mark files of the host.
fn directory_inside(dest: &Path, relative: &Path) -> Result<std::path::PathBuf, ImageError> {
    let mut current = dest.to_path_buf();
    for component in relative.components() {
        current.push(component);
        match fs::symlink_metadata(&current) {
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => {
                return Err(invalid(format!(
                    "whiteout below {}, which is not a directory",
                    current.display()
                )));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => fs::create_dir(&current)
                .map_err(io_err(format!("creating {}", current.display())))?,
            Err(e) => {
                return Err(ImageError::Io {
                    context: format!("inspecting {}", current.display()),
                    source: e,
                });
            }
        }
    }
    Ok(current)
}

/// Unpack the layer file at `blob` (plain or gzip tar) into `dest`, an empty directory,
/// turning OCI whiteouts into overlayfs ones. Files keep their permissions and
/// ownership; device nodes and FIFOs are skipped (containers get theirs from the runtime).
pub(crate) fn unpack(blob: &Path, dest: &Path) -> Result<LayerDigests, ImageError> {
    let file = File::open(blob).map_err(io_err(format!("opening {}", blob.display())))?;
    let mut stored = BufReader::new(HashingReader::new(file));
    let head = stored
        .fill_buf()
        .map_err(io_err(format!("reading {}", blob.display())))?;
    if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        return Err(invalid(format!(
            "{} is zstd-compressed; only plain and gzip layers are supported",
            blob.display()
        )));
    }
    let gzipped = head.starts_with(&[0x1f, 0x8b]);
    let diff_id = {
        let decoded: Box<dyn Read + '_> = if gzipped {
            Box::new(flate2::read::GzDecoder::new(&mut stored))
        } else {
            Box::new(&mut stored)
        };
        let mut tar_stream = HashingReader::new(decoded);
        unpack_entries(&mut tar_stream, dest)?;
        tar_stream
            .finish()
            .map_err(io_err(format!("reading {}", blob.display())))?
    };
    let blob_digest = stored
        .into_inner()
        .finish()
        .map_err(io_err(format!("reading {}", blob.display())))?;
    Ok(LayerDigests {
        blob: blob_digest,
        diff_id,
    })
}

fn unpack_entries(stream: &mut impl Read, dest: &Path) -> Result<(), ImageError> {
    let mut archive = tar::Archive::new(stream);
    archive.set_preserve_permissions(true);
    archive.set_preserve_ownerships(true);
    archive.set_preserve_mtime(true);
    archive.set_unpack_xattrs(true);
    archive.set_overwrite(true);
    for entry in archive.entries().map_err(io_err("reading the layer"))? {
        let mut entry = entry.map_err(io_err("reading the layer"))?;
        let path = entry
            .path()
            .map_err(io_err("reading a layer entry's path"))?
            .into_owned();
        if !stays_inside(&path) {
            return Err(invalid(format!(
                "layer entry {} escapes the layer",
                path.display()
            )));
        }
        let kind = entry.header().entry_type();
        if kind.is_hard_link() {
            let target = entry
                .link_name()
                .map_err(io_err("reading a hard link's target"))?;
            if !target.as_deref().is_some_and(stays_inside) {
                return Err(invalid(format!(
                    "hard link {} points outside the layer",
                    path.display()
                )));
            }
        }
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let relative_parent = path.parent().unwrap_or(Path::new(""));
        if name == OPAQUE_MARKER {
            make_opaque(&directory_inside(dest, relative_parent)?)?;
            continue;
        }
        if let Some(hidden) = name.strip_prefix(WHITEOUT_PREFIX) {
            if hidden.is_empty() || hidden.starts_with(WHITEOUT_PREFIX) {
                return Err(invalid(format!("malformed whiteout {}", path.display())));
            }
            make_whiteout(&directory_inside(dest, relative_parent)?.join(hidden))?;
            continue;
        }
        if matches!(
            kind,
            tar::EntryType::Block | tar::EntryType::Char | tar::EntryType::Fifo
        ) {
            continue;
        }
        entry
            .unpack_in(dest)
            .map_err(io_err(format!("unpacking {}", path.display())))?;
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};

    use flate2::Compression;
    use flate2::write::GzEncoder;

    use super::*;

    /// A layer tar entry for tests.
    pub(crate) enum Item<'a> {
        File(&'a str, &'a [u8], u32),
        Dir(&'a str),
        Symlink(&'a str, &'a str),
        HardLink(&'a str, &'a str),
    }

    pub(crate) fn layer_tar(items: &[Item]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for item in items {
            let mut header = tar::Header::new_gnu();
            header.set_uid(1000);
            header.set_gid(1000);
            header.set_mtime(0);
            match item {
                Item::File(path, data, mode) => {
                    header.set_mode(*mode);
                    header.set_size(data.len() as u64);
                    builder.append_data(&mut header, path, *data).unwrap();
                }
                Item::Dir(path) => {
                    header.set_entry_type(tar::EntryType::Directory);
                    header.set_mode(0o750);
                    header.set_size(0);
                    builder.append_data(&mut header, path, io::empty()).unwrap();
                }
                Item::Symlink(path, target) | Item::HardLink(path, target) => {
                    let kind = if matches!(item, Item::Symlink(..)) {
                        tar::EntryType::Symlink
                    } else {
                        tar::EntryType::Link
                    };
                    header.set_entry_type(kind);
                    header.set_mode(0o777);
                    header.set_size(0);
                    builder.append_link(&mut header, path, target).unwrap();
                }
            }
        }
        builder.into_inner().unwrap()
    }

    fn sha(bytes: &[u8]) -> String {
        crate::archive::sha256_digest(bytes)
    }

    #[test]
    fn unpacks_files_links_and_whiteouts() {
        let dir = tempfile::tempdir().unwrap();
        let tar = layer_tar(&[
            Item::Dir("etc/"),
            Item::File("etc/app.conf", b"conf", 0o4750),
            Item::Symlink("etc/link", "/etc/app.conf"),
            Item::HardLink("etc/hard", "etc/app.conf"),
            Item::File("etc/.wh.removed", b"", 0o644),
            Item::File("var/cache/.wh..wh..opq", b"", 0o644),
        ]);
        let blob = dir.path().join("layer.tar");
        fs::write(&blob, &tar).unwrap();
        let dest = dir.path().join("out");
        fs::create_dir(&dest).unwrap();
        let digests = unpack(&blob, &dest).unwrap();
        assert_eq!(
            digests,
            LayerDigests {
                blob: sha(&tar),
                diff_id: sha(&tar)
            }
        );

        let conf = fs::metadata(dest.join("etc/app.conf")).unwrap();
        assert_eq!(
            conf.permissions().mode() & 0o7777,
            0o4750,
            "setuid bit and mode kept"
        );
        assert_eq!((conf.uid(), conf.gid()), (1000, 1000), "ownership kept");
        assert_eq!(
            fs::metadata(dest.join("etc")).unwrap().permissions().mode() & 0o777,
            0o750
        );
        assert_eq!(
            fs::read_link(dest.join("etc/link")).unwrap(),
            Path::new("/etc/app.conf")
        );
        assert_eq!(
            fs::metadata(dest.join("etc/hard")).unwrap().ino(),
            conf.ino(),
            "hard link shares the inode"
        );
        let whiteout = fs::symlink_metadata(dest.join("etc/removed")).unwrap();
        assert!(
            whiteout.file_type().is_char_device() && whiteout.rdev() == 0,
            "overlayfs whiteout is char 0/0"
        );
        assert!(!dest.join("etc/.wh.removed").exists());
        assert_eq!(
            xattr::get(dest.join("var/cache"), "trusted.overlay.opaque")
                .unwrap()
                .as_deref(),
            Some(&b"y"[..])
        );
        assert!(!dest.join("var/cache/.wh..wh..opq").exists());
    }

    #[test]
    fn gzip_layers_have_two_digests() {
        let dir = tempfile::tempdir().unwrap();
        let tar = layer_tar(&[Item::File("hello", b"hi", 0o644)]);
        let mut gz = GzEncoder::new(Vec::new(), Compression::fast());
        io::Write::write_all(&mut gz, &tar).unwrap();
        let gz = gz.finish().unwrap();
        let blob = dir.path().join("layer.tar.gz");
        fs::write(&blob, &gz).unwrap();
        let dest = dir.path().join("out");
        fs::create_dir(&dest).unwrap();
        assert_eq!(
            unpack(&blob, &dest).unwrap(),
            LayerDigests {
                blob: sha(&gz),
                diff_id: sha(&tar)
            }
        );
        assert_eq!(fs::read(dest.join("hello")).unwrap(), b"hi");
    }

    /// A one-file tar with any name: tar::Builder refuses `..` and absolute names.
    fn raw_tar(name: &str) -> Vec<u8> {
        let mut header = tar::Header::new_old();
        header.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        header.set_size(1);
        header.set_mode(0o644);
        header.set_cksum();
        let mut tar = header.as_bytes().to_vec();
        tar.extend_from_slice(&[b'x'; 512]);
        tar.extend_from_slice(&[0; 1024]);
        tar
    }

    #[test]
    fn escaping_entries_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("outside");
        fs::create_dir(&outside).unwrap();
        fs::write(outside.join("precious"), b"keep").unwrap();
        let cases = [
            raw_tar("../escape"),
            raw_tar("/abs/escape"),
            layer_tar(&[Item::HardLink("evil", "../../etc/shadow")]),
            // A whiteout written through a symlink would delete a file outside the layer.
            layer_tar(&[
                Item::Symlink("etc", outside.to_str().unwrap()),
                Item::File("etc/.wh.precious", b"", 0o644),
            ]),
            layer_tar(&[
                Item::Symlink("etc", outside.to_str().unwrap()),
                Item::File("etc/.wh..wh..opq", b"", 0o644),
            ]),
        ];
        for (i, tar) in cases.iter().enumerate() {
            let blob = dir.path().join(format!("{i}.tar"));
            fs::write(&blob, tar).unwrap();
            let dest = dir.path().join(format!("out{i}"));
            fs::create_dir(&dest).unwrap();
            assert!(
                matches!(unpack(&blob, &dest), Err(ImageError::InvalidArchive(_))),
                "case {i}"
            );
        }
        assert!(!dir.path().join("escape").exists());
        assert_eq!(fs::read(outside.join("precious")).unwrap(), b"keep");
        assert_eq!(
            xattr::get(&outside, "trusted.overlay.opaque").unwrap(),
            None
        );
    }
}
