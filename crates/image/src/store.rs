//! The image store: import, list, resolve.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, BufReader, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::io::AsRawFd;
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{Image, ImageConfig, ImageError, ImageSource};

fn io_err(context: impl Into<String>) -> impl FnOnce(io::Error) -> ImageError {
    let context = context.into();
    move |source| ImageError::Io { context, source }
}

fn invalid(message: impl Into<String>) -> ImageError {
    ImageError::InvalidArchive(message.into())
}

/// One row of `podium image ls`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageSummary {
    pub repository: String,
    pub tag: String,
    pub id: String,
    pub size_bytes: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Index {
    /// Normalized reference → entry.
    images: BTreeMap<String, Entry>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Entry {
    id: String,
    /// Diff-ids (`sha256:...` of the uncompressed layer tars), lowest first.
    layers: Vec<String>,
    size: u64,
}

/// `sample-app:v1` → `docker.io/library/sample-app:v1`, as Docker and containerd name images.
pub fn normalize_reference(reference: &str) -> String {
    let (name, digest) = match reference.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (reference, None),
    };
    let last = name.rsplit('/').next().unwrap_or(name);
    let (repo, tag) = match last.rsplit_once(':') {
        Some((_, tag)) => (&name[..name.len() - tag.len() - 1], Some(tag)),
        None => (name, None),
    };
    let first = repo.split('/').next().unwrap_or("");
    let has_domain = repo.contains('/') && (first.contains('.') || first.contains(':') || first == "localhost");
    let full = if has_domain {
        repo.to_string()
    } else if repo.contains('/') {
        format!("docker.io/{repo}")
    } else {
        format!("docker.io/library/{repo}")
    };
    match (digest, tag) {
        (Some(d), _) => format!("{full}@{d}"),
        (None, Some(t)) => format!("{full}:{t}"),
        (None, None) => format!("{full}:latest"),
    }
}

fn hex_of(digest: &str) -> Result<&str, ImageError> {
    let hex = digest.strip_prefix("sha256:").ok_or_else(|| invalid(format!("unsupported digest {digest:?}: only sha256")))?;
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(invalid(format!("malformed digest {digest:?}")));
    }
    Ok(hex)
}

/// A reader that hashes what passes through it.
struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// Open a layer or archive, transparently gunzipping it.
fn open_maybe_gzip(path: &Path) -> Result<Box<dyn Read>, ImageError> {
    let mut file = File::open(path).map_err(io_err(format!("opening {}", path.display())))?;
    let mut magic = [0u8; 2];
    let n = file.read(&mut magic).map_err(io_err(format!("reading {}", path.display())))?;
    let file = File::open(path).map_err(io_err(format!("opening {}", path.display())))?;
    if n == 2 && magic == [0x1f, 0x8b] {
        Ok(Box::new(flate2::read::GzDecoder::new(BufReader::new(file))))
    } else {
        Ok(Box::new(BufReader::new(file)))
    }
}

fn safe_relative(path: &Path) -> bool {
    path.components().all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
}

/// overlayfs whiteout: a 0/0 character device. No crate wraps mknod for this; it is one call.
fn make_whiteout(path: &Path) -> io::Result<()> {
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).map_err(|_| io::Error::other("path with NUL"))?;
    // SAFETY: `c` is a valid NUL-terminated path; mknod does not keep the pointer.
    let rc = unsafe { libc::mknod(c.as_ptr(), libc::S_IFCHR, libc::makedev(0, 0)) };
    if rc == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
}

/// overlayfs opaque directory marker.
fn make_opaque(dir: &Path) -> io::Result<()> {
    fs::create_dir_all(dir)?;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).map_err(|_| io::Error::other("path with NUL"))?;
    let name = c"trusted.overlay.opaque";
    // SAFETY: valid NUL-terminated strings and a 1-byte value that outlives the call.
    let rc = unsafe { libc::setxattr(c.as_ptr(), name.as_ptr(), b"y".as_ptr().cast(), 1, 0) };
    if rc == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
}

/// Unpack one layer tar into `dest`, converting OCI whiteouts to overlayfs ones.
/// Returns the sha256 of the uncompressed tar.
fn unpack_layer(source: Box<dyn Read>, dest: &Path) -> Result<String, ImageError> {
    let mut reader = HashingReader { inner: source, hasher: Sha256::new() };
    {
        let mut archive = tar::Archive::new(&mut reader);
        archive.set_preserve_permissions(true);
        archive.set_preserve_ownerships(true);
        archive.set_unpack_xattrs(true);
        archive.set_overwrite(true);
        for entry in archive.entries().map_err(io_err("reading layer"))? {
            let mut entry = entry.map_err(io_err("reading layer entry"))?;
            let path = entry.path().map_err(io_err("layer entry path"))?.into_owned();
            if !safe_relative(&path) {
                return Err(invalid(format!("layer entry {} escapes the layer", path.display())));
            }
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            let parent = dest.join(path.parent().unwrap_or(Path::new("")));
            if name == ".wh..wh..opq" {
                make_opaque(&parent).map_err(io_err(format!("marking {} opaque", parent.display())))?;
                continue;
            }
            if let Some(hidden) = name.strip_prefix(".wh.") {
                fs::create_dir_all(&parent).map_err(io_err(format!("creating {}", parent.display())))?;
                make_whiteout(&parent.join(hidden)).map_err(io_err(format!("whiteout {hidden}")))?;
                continue;
            }
            if matches!(entry.header().entry_type(), tar::EntryType::Block | tar::EntryType::Char | tar::EntryType::Fifo) {
                // Device nodes come from the runtime's /dev, never from images.
                continue;
            }
            entry.unpack_in(dest).map_err(io_err(format!("unpacking {}", path.display())))?;
        }
    }
    // Drain any padding after the tar's end so the digest covers the whole stream.
    io::copy(&mut reader, &mut io::sink()).map_err(io_err("reading layer"))?;
    Ok(format!("sha256:{:x}", reader.hasher.finalize()))
}

#[derive(Deserialize)]
struct DockerManifest {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "RepoTags", default)]
    repo_tags: Option<Vec<String>>,
    #[serde(rename = "Layers")]
    layers: Vec<String>,
}

/// One image found in an archive: its config file, layer files and names.
struct Found {
    config: PathBuf,
    layers: Vec<PathBuf>,
    references: Vec<String>,
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T, ImageError> {
    let bytes = fs::read(path).map_err(io_err(format!("reading {}", path.display())))?;
    serde_json::from_slice(&bytes).map_err(|e| invalid(format!("{}: {e}", path.display())))
}

fn blob(dir: &Path, digest: &str) -> Result<PathBuf, ImageError> {
    Ok(dir.join("blobs").join("sha256").join(hex_of(digest)?))
}

/// What images an unpacked archive holds (docker save's manifest.json, else OCI layout).
fn find_images(dir: &Path) -> Result<Vec<Found>, ImageError> {
    let docker = dir.join("manifest.json");
    if docker.exists() {
        let manifests: Vec<DockerManifest> = read_json(&docker)?;
        return manifests
            .into_iter()
            .map(|m| {
                let rel = |p: &str| -> Result<PathBuf, ImageError> {
                    let p = Path::new(p);
                    if safe_relative(p) { Ok(dir.join(p)) } else { Err(invalid(format!("path {} escapes the archive", p.display()))) }
                };
                Ok(Found {
                    config: rel(&m.config)?,
                    layers: m.layers.iter().map(|l| rel(l)).collect::<Result<_, _>>()?,
                    references: m.repo_tags.unwrap_or_default(),
                })
            })
            .collect();
    }
    let index = dir.join("index.json");
    if !index.exists() {
        return Err(invalid("neither manifest.json (docker save) nor index.json (OCI image layout) found"));
    }
    let index: serde_json::Value = read_json(&index)?;
    let mut found = Vec::new();
    let mut pending: Vec<serde_json::Value> = index["manifests"].as_array().cloned().unwrap_or_default();
    while let Some(descriptor) = pending.pop() {
        let digest = descriptor["digest"].as_str().ok_or_else(|| invalid("index entry without digest"))?;
        let doc: serde_json::Value = read_json(&blob(dir, digest)?)?;
        if doc.get("manifests").is_some() {
            // A nested index (multi-platform): take its linux/amd64-or-only manifests.
            pending.extend(doc["manifests"].as_array().cloned().unwrap_or_default());
            continue;
        }
        let annotations = &descriptor["annotations"];
        let mut references = Vec::new();
        if let Some(name) = annotations["io.containerd.image.name"].as_str() {
            references.push(name.to_string());
        } else if let Some(name) = annotations["org.opencontainers.image.ref.name"].as_str() {
            references.push(name.to_string());
        }
        let config = blob(dir, doc["config"]["digest"].as_str().ok_or_else(|| invalid("manifest without config"))?)?;
        let layers = doc["layers"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|l| blob(dir, l["digest"].as_str().unwrap_or("")))
            .collect::<Result<_, _>>()?;
        found.push(Found { config, layers, references });
    }
    Ok(found)
}

/// An exclusive lock on the index, held while it is rewritten.
struct IndexLock(File);

impl IndexLock {
    fn acquire(root: &Path) -> Result<Self, ImageError> {
        let file = File::create(root.join("index.lock")).map_err(io_err("creating index.lock"))?;
        // SAFETY: flock on a valid open descriptor.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
        if rc != 0 {
            return Err(ImageError::Io { context: "locking the image index".into(), source: io::Error::last_os_error() });
        }
        Ok(IndexLock(file))
    }
}

impl Drop for IndexLock {
    fn drop(&mut self) {
        // SAFETY: unlocking our own descriptor.
        unsafe { libc::flock(self.0.as_raw_fd(), libc::LOCK_UN) };
    }
}

/// The local image store.
pub struct ImageStore {
    root: PathBuf,
}

impl ImageStore {
    /// Open (creating if absent) the store at `root`.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self, ImageError> {
        let root = root.into();
        for dir in ["layers", "configs", "tmp"] {
            fs::create_dir_all(root.join(dir)).map_err(io_err(format!("creating {}", root.join(dir).display())))?;
        }
        Ok(ImageStore { root })
    }

    fn read_index(&self) -> Result<Index, ImageError> {
        match fs::read(self.root.join("index.json")) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| invalid(format!("image index is corrupt: {e}"))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Index::default()),
            Err(e) => Err(ImageError::Io { context: "reading the image index".into(), source: e }),
        }
    }

    fn write_index(&self, index: &Index) -> Result<(), ImageError> {
        let tmp = self.root.join(format!("index.json.{}", std::process::id()));
        let mut file = File::create(&tmp).map_err(io_err("writing the image index"))?;
        file.write_all(&serde_json::to_vec_pretty(index).map_err(|e| invalid(e.to_string()))?).map_err(io_err("writing the image index"))?;
        file.sync_all().map_err(io_err("syncing the image index"))?;
        fs::rename(&tmp, self.root.join("index.json")).map_err(io_err("replacing the image index"))?;
        File::open(&self.root).and_then(|d| d.sync_all()).map_err(io_err("syncing the image store"))?;
        Ok(())
    }

    /// Import every image of a `docker save` or OCI-layout archive.
    pub fn import(&self, archive: &Path) -> Result<Vec<ImageSummary>, ImageError> {
        let work = tempdir_in(&self.root.join("tmp"))?;
        let result = self.import_into(archive, &work);
        let _ = fs::remove_dir_all(&work);
        result
    }

    fn import_into(&self, archive: &Path, work: &Path) -> Result<Vec<ImageSummary>, ImageError> {
        let mut outer = tar::Archive::new(open_maybe_gzip(archive)?);
        for entry in outer.entries().map_err(io_err(format!("reading {}", archive.display())))? {
            let mut entry = entry.map_err(io_err("reading archive entry"))?;
            let path = entry.path().map_err(io_err("archive entry path"))?.into_owned();
            if !safe_relative(&path) {
                return Err(invalid(format!("archive entry {} escapes the archive", path.display())));
            }
            entry.unpack_in(work).map_err(io_err(format!("extracting {}", path.display())))?;
        }
        let mut imported = Vec::new();
        let mut updates = Vec::new();
        for image in find_images(work)? {
            let config_bytes = fs::read(&image.config).map_err(io_err(format!("reading {}", image.config.display())))?;
            let id = format!("sha256:{:x}", Sha256::digest(&config_bytes));
            let config: serde_json::Value = serde_json::from_slice(&config_bytes).map_err(|e| invalid(format!("image config: {e}")))?;
            let diff_ids: Vec<String> = config["rootfs"]["diff_ids"].as_array().into_iter().flatten().filter_map(|d| d.as_str().map(str::to_string)).collect();
            if diff_ids.len() != image.layers.len() {
                return Err(invalid(format!("the config lists {} layers, the manifest {}", diff_ids.len(), image.layers.len())));
            }
            let mut size = config_bytes.len() as u64;
            for (layer, diff_id) in image.layers.iter().zip(&diff_ids) {
                let hex = hex_of(diff_id)?;
                let target = self.root.join("layers").join(hex);
                size += fs::metadata(layer).map(|m| m.len()).unwrap_or(0);
                if target.exists() {
                    continue;
                }
                let staging = tempdir_in(&self.root.join("tmp"))?;
                let digest = unpack_layer(open_maybe_gzip(layer)?, &staging);
                let digest = match digest {
                    Ok(d) => d,
                    Err(e) => {
                        let _ = fs::remove_dir_all(&staging);
                        return Err(e);
                    }
                };
                if &digest != diff_id {
                    let _ = fs::remove_dir_all(&staging);
                    return Err(invalid(format!("layer {} has digest {digest}, but the config says {diff_id}", layer.display())));
                }
                match fs::rename(&staging, &target) {
                    Ok(()) => {}
                    // Another import placed the same layer first: keep theirs.
                    Err(_) if target.exists() => {
                        let _ = fs::remove_dir_all(&staging);
                    }
                    Err(e) => return Err(ImageError::Io { context: format!("placing layer {hex}"), source: e }),
                }
            }
            let config_path = self.root.join("configs").join(format!("{}.json", hex_of(&id)?));
            let tmp = config_path.with_extension("tmp");
            fs::write(&tmp, &config_bytes).map_err(io_err("writing the image config"))?;
            fs::rename(&tmp, &config_path).map_err(io_err("writing the image config"))?;
            if image.references.is_empty() {
                return Err(invalid("the archive has an image without a name (docker save IMAGE:TAG, not an image ID)"));
            }
            for reference in &image.references {
                let normalized = normalize_reference(reference);
                updates.push((normalized.clone(), Entry { id: id.clone(), layers: diff_ids.clone(), size }));
                let (repository, tag) = split_reference(&normalized);
                imported.push(ImageSummary { repository, tag, id: id.clone(), size_bytes: size });
            }
        }
        let _lock = IndexLock::acquire(&self.root)?;
        let mut index = self.read_index()?;
        for (reference, entry) in updates {
            index.images.insert(reference, entry);
        }
        self.write_index(&index)?;
        Ok(imported)
    }

    pub fn list(&self) -> Result<Vec<ImageSummary>, ImageError> {
        Ok(self
            .read_index()?
            .images
            .into_iter()
            .map(|(reference, entry)| {
                let (repository, tag) = split_reference(&reference);
                ImageSummary { repository, tag, id: entry.id, size_bytes: entry.size }
            })
            .collect())
    }

    /// `podium image ls` output, shaped like `crictl images`.
    pub fn render_table(images: &[ImageSummary]) -> String {
        let rows: Vec<[String; 4]> = images
            .iter()
            .map(|i| [i.repository.clone(), i.tag.clone(), i.id.trim_start_matches("sha256:").chars().take(13).collect(), human_size(i.size_bytes)])
            .collect();
        let header = ["IMAGE".to_string(), "TAG".into(), "IMAGE ID".into(), "SIZE".into()];
        let mut widths = header.clone().map(|h| h.len());
        for row in &rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.len());
            }
        }
        let mut out = String::new();
        for row in std::iter::once(&header).chain(rows.iter()) {
            let line: Vec<String> = row.iter().zip(widths).map(|(c, w)| format!("{c:<w$}")).collect();
            out.push_str(line.join("   ").trim_end());
            out.push('\n');
        }
        out
    }
}

fn split_reference(reference: &str) -> (String, String) {
    let last = reference.rsplit('/').next().unwrap_or(reference);
    match last.rsplit_once(':') {
        Some((_, tag)) => (reference[..reference.len() - tag.len() - 1].to_string(), tag.to_string()),
        None => (reference.to_string(), "latest".into()),
    }
}

fn human_size(bytes: u64) -> String {
    let b = bytes as f64;
    if b >= 1e9 {
        format!("{:.3}GB", b / 1e9)
    } else if b >= 1e6 {
        format!("{:.3}MB", b / 1e6)
    } else if b >= 1e3 {
        format!("{:.3}kB", b / 1e3)
    } else {
        format!("{bytes}B")
    }
}

fn tempdir_in(parent: &Path) -> Result<PathBuf, ImageError> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    let dir = parent.join(format!("{}-{}-{nanos}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed)));
    fs::create_dir_all(&dir).map_err(io_err(format!("creating {}", dir.display())))?;
    Ok(dir)
}

impl ImageSource for ImageStore {
    fn resolve(&self, reference: &str) -> Result<Image, ImageError> {
        let normalized = normalize_reference(reference);
        let index = self.read_index()?;
        let entry = match index.images.get(&normalized) {
            Some(e) => e.clone(),
            None => {
                // name@sha256:<id> resolves by image id.
                let digest = normalized.split_once('@').map(|(_, d)| d);
                match digest.and_then(|d| index.images.values().find(|e| e.id == d)) {
                    Some(e) => e.clone(),
                    None => return Err(ImageError::NotFound(reference.to_string())),
                }
            }
        };
        let config: serde_json::Value = read_json(&self.root.join("configs").join(format!("{}.json", hex_of(&entry.id)?)))?;
        let c = &config["config"];
        let strings = |v: &serde_json::Value| -> Vec<String> { v.as_array().into_iter().flatten().filter_map(|s| s.as_str().map(str::to_string)).collect() };
        let non_empty = |v: &serde_json::Value| v.as_str().filter(|s| !s.is_empty()).map(str::to_string);
        let layers = entry.layers.iter().map(|d| Ok(self.root.join("layers").join(hex_of(d)?))).collect::<Result<Vec<_>, ImageError>>()?;
        Ok(Image {
            id: entry.id,
            layers,
            config: ImageConfig {
                entrypoint: strings(&c["Entrypoint"]),
                cmd: strings(&c["Cmd"]),
                env: strings(&c["Env"]),
                working_dir: non_empty(&c["WorkingDir"]),
                user: non_empty(&c["User"]),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_normalize_like_docker() {
        assert_eq!(normalize_reference("sample-app:v1"), "docker.io/library/sample-app:v1");
        assert_eq!(normalize_reference("sample-app"), "docker.io/library/sample-app:latest");
        assert_eq!(normalize_reference("library/sample-app:v1"), "docker.io/library/sample-app:v1");
        assert_eq!(normalize_reference("docker.io/library/sample-app:v1"), "docker.io/library/sample-app:v1");
        assert_eq!(normalize_reference("localhost:5000/app"), "localhost:5000/app:latest");
        assert_eq!(normalize_reference("ghcr.io/o/app:1.2"), "ghcr.io/o/app:1.2");
        assert_eq!(normalize_reference("app@sha256:ab"), "docker.io/library/app@sha256:ab");
    }

    fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (name, data) in files {
            let mut header = tar::Header::new_gnu();
            header.set_size(data.len() as u64);
            header.set_mode(0o755);
            header.set_uid(0);
            header.set_gid(0);
            header.set_mtime(0);
            header.set_cksum();
            builder.append_data(&mut header, name, *data).unwrap();
        }
        builder.into_inner().unwrap()
    }

    fn docker_archive(dir: &Path, tag: &str, message: &str) -> PathBuf {
        let layer = tar_of(&[("www/index.html", message.as_bytes()), ("bin/.wh.old", b"")]);
        let diff = format!("sha256:{:x}", Sha256::digest(&layer));
        let config = serde_json::json!({"config": {"Cmd": ["/bin/httpd"], "Env": ["PATH=/bin"], "WorkingDir": "/"}, "rootfs": {"type": "layers", "diff_ids": [diff]}});
        let config = serde_json::to_vec(&config).unwrap();
        let manifest = serde_json::json!([{"Config": "config.json", "RepoTags": [tag], "Layers": ["layer.tar"]}]);
        let archive = tar_of(&[("manifest.json", &serde_json::to_vec(&manifest).unwrap()), ("config.json", &config), ("layer.tar", &layer)]);
        let path = dir.join(format!("{}.tar", tag.replace(':', "_")));
        fs::write(&path, archive).unwrap();
        path
    }

    #[test]
    fn import_list_resolve_and_retag() {
        let dir = tempfile::tempdir().unwrap();
        let store = ImageStore::open(dir.path().join("images")).unwrap();
        let imported = store.import(&docker_archive(dir.path(), "sample-app:v1", "Hello")).unwrap();
        assert_eq!(imported[0].repository, "docker.io/library/sample-app");
        let image = store.resolve("sample-app:v1").unwrap();
        assert_eq!(image.config.cmd, vec!["/bin/httpd"]);
        assert_eq!(fs::read_to_string(image.layers[0].join("www/index.html")).unwrap(), "Hello");
        use std::os::unix::fs::FileTypeExt;
        assert!(fs::symlink_metadata(image.layers[0].join("bin/old")).unwrap().file_type().is_char_device(), "whiteout converted");
        // The same tag moved to a new image.
        store.import(&docker_archive(dir.path(), "sample-app:v1", "Bye")).unwrap();
        let moved = store.resolve("docker.io/library/sample-app:v1").unwrap();
        assert_ne!(moved.id, image.id);
        assert_eq!(store.list().unwrap().len(), 1);
        assert!(matches!(store.resolve("nope:v1"), Err(ImageError::NotFound(_))));
        assert!(ImageStore::render_table(&store.list().unwrap()).starts_with("IMAGE"));
        assert!(store.resolve(&format!("sample-app@{}", moved.id)).is_ok());
    }

    #[test]
    fn bad_archives_are_refused_and_leave_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = ImageStore::open(dir.path().join("images")).unwrap();
        let junk = dir.path().join("junk.tar");
        fs::write(&junk, tar_of(&[("hello.txt", b"hi")])).unwrap();
        assert!(matches!(store.import(&junk), Err(ImageError::InvalidArchive(_))));
        // A layer whose digest does not match its config.
        let layer = tar_of(&[("a", b"1")]);
        let config = serde_json::json!({"config": {}, "rootfs": {"diff_ids": [format!("sha256:{}", "0".repeat(64))]}});
        let manifest = serde_json::json!([{"Config": "c.json", "RepoTags": ["x:1"], "Layers": ["l.tar"]}]);
        let bad = dir.path().join("bad.tar");
        fs::write(&bad, tar_of(&[("manifest.json", &serde_json::to_vec(&manifest).unwrap()), ("c.json", &serde_json::to_vec(&config).unwrap()), ("l.tar", &layer)])).unwrap();
        assert!(matches!(store.import(&bad), Err(ImageError::InvalidArchive(_))));
        assert_eq!(fs::read_dir(dir.path().join("images/layers")).unwrap().count(), 0);
        assert_eq!(fs::read_dir(dir.path().join("images/tmp")).unwrap().count(), 0);
        assert!(store.list().unwrap().is_empty());
    }
}
