//! The image store: import archives, list and resolve images (layout in the crate docs).

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};
use nix::sys::signal::kill;
use nix::unistd::{Pid, syncfs};
use oci_spec::image::ImageConfiguration;
use serde::{Deserialize, Serialize};

use crate::archive::{self, ArchiveImage, invalid, io_err, sha256_digest, sha256_hex};
use crate::reference::{self, Lookup};
use crate::{Image, ImageConfig, ImageError, ImageSource, layer, table};

/// One row of `podium image ls`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageSummary {
    /// Normalized, e.g. `docker.io/library/sample-app`.
    pub repository: String,
    pub tag: String,
    /// `sha256:<hex of the config blob>`.
    pub id: String,
    /// Bytes of the image as archived: manifest, config and (possibly compressed) layers.
    pub size_bytes: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Index {
    /// Normalized `repository:tag` → image.
    images: BTreeMap<String, IndexEntry>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct IndexEntry {
    id: String,
    /// The manifest's digest when the archive had one (OCI layouts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    manifest_digest: Option<String>,
    /// Diff-ids (`sha256:` of the uncompressed layer tars), lowest first.
    layers: Vec<String>,
    size: u64,
}

/// The node's local image store.
pub struct ImageStore {
    root: PathBuf,
}

fn sync_dir(dir: &Path) -> Result<(), ImageError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(format!("syncing {}", dir.display())))
}

impl ImageStore {
    /// Open (creating if absent) the store at `root` (podium passes `<data-dir>/images`).
    pub fn open(root: impl Into<PathBuf>) -> Result<Self, ImageError> {
        let root = root.into();
        for dir in ["layers", "configs", "tmp"] {
            let path = root.join(dir);
            fs::create_dir_all(&path).map_err(io_err(format!("creating {}", path.display())))?;
        }
        Ok(ImageStore { root })
    }

    fn layer_dir(&self, diff_id: &str) -> Result<PathBuf, ImageError> {
        Ok(self.root.join("layers").join(sha256_hex(diff_id)?))
    }

    fn config_path(&self, id: &str) -> Result<PathBuf, ImageError> {
        Ok(self
            .root
            .join("configs")
            .join(format!("{}.json", sha256_hex(id)?)))
    }

    /// A staging directory in `tmp/`, named after this process so a later import can
    /// tell it from the staging of an import still running elsewhere.
    fn staging_dir(&self) -> Result<tempfile::TempDir, ImageError> {
        tempfile::Builder::new()
            .prefix(&format!("{}.", std::process::id()))
            .tempdir_in(self.root.join("tmp"))
            .map_err(io_err("creating a staging directory"))
    }

    /// Remove what crashed imports left in `tmp/`.
    fn remove_abandoned_staging(&self) {
        let Ok(entries) = fs::read_dir(self.root.join("tmp")) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let pid = name
                .to_str()
                .and_then(|n| n.split('.').next())
                .and_then(|p| p.parse::<i32>().ok());
            // kill(0) would probe our own process group, hence the `pid > 0`.
            let alive = pid.is_some_and(|pid| {
                pid > 0 && kill(Pid::from_raw(pid), None) != Err(nix::errno::Errno::ESRCH)
            });
            if !alive {
                // Best effort: a leftover that cannot be removed now is retried next import.
                let _ = fs::remove_dir_all(entry.path()).or_else(|_| fs::remove_file(entry.path()));
            }
        }
    }

    fn read_index(&self) -> Result<Index, ImageError> {
        match fs::read(self.root.join("index.json")) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| ImageError::Io {
                context: "reading the image index".into(),
                source: io::Error::new(io::ErrorKind::InvalidData, e),
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Index::default()),
            Err(e) => Err(ImageError::Io {
                context: "reading the image index".into(),
                source: e,
            }),
        }
    }

    /// Replace `index.json` atomically; the caller holds the index lock.
    fn write_index(&self, index: &Index) -> Result<(), ImageError> {
        let bytes = serde_json::to_vec_pretty(index).map_err(|e| ImageError::Io {
            context: "encoding the image index".into(),
            source: e.into(),
        })?;
        let mut file = tempfile::NamedTempFile::new_in(&self.root)
            .map_err(io_err("writing the image index"))?;
        file.write_all(&bytes)
            .map_err(io_err("writing the image index"))?;
        file.as_file()
            .sync_all()
            .map_err(io_err("syncing the image index"))?;
        file.persist(self.root.join("index.json"))
            .map_err(|e| ImageError::Io {
                context: "replacing the image index".into(),
                source: e.error,
            })?;
        sync_dir(&self.root)
    }

    /// Apply `change` to the index under an exclusive `flock`, so concurrent imports
    /// (separate `podium image import` processes) never lose each other's updates.
    fn update_index(&self, change: impl FnOnce(&mut Index)) -> Result<(), ImageError> {
        let lock_file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.root.join("index.lock"))
            .map_err(io_err("opening index.lock"))?;
        let _lock = Flock::lock(lock_file, FlockArg::LockExclusive).map_err(|(_, errno)| {
            ImageError::Io {
                context: "locking the image index".into(),
                source: errno.into(),
            }
        })?;
        let mut index = self.read_index()?;
        change(&mut index);
        self.write_index(&index)
    }

    /// Import a `docker save` tar (manifest.json + layer tars, Docker >= 25 writes an OCI
    /// layout inside too) or an OCI image-layout archive, plain or gzip-compressed
    /// layers. Returns what was imported. Importing the same archive twice is fine; a
    /// tag that moves to a new image is re-pointed.
    pub fn import(&self, archive: &Path) -> Result<Vec<ImageSummary>, ImageError> {
        self.remove_abandoned_staging();
        let work = self.staging_dir()?;
        archive::extract(archive, work.path())?;
        let images = archive::read_images(work.path())?;
        // Names are checked before any layer is unpacked, so a refused archive costs little.
        let mut named = Vec::new();
        for image in images {
            if image.references.is_empty() {
                return Err(invalid(
                    "the archive holds an image without a name; save it by name (docker save NAME:TAG), not by id",
                ));
            }
            let keys = image
                .references
                .iter()
                .map(|r| match reference::parse(r) {
                    Ok(Lookup::Tag(key)) => Ok(key),
                    _ => Err(invalid(format!(
                        "the archive names an image {r:?}, which is not a NAME:TAG reference"
                    ))),
                })
                .collect::<Result<Vec<_>, _>>()?;
            named.push((image, keys));
        }
        let mut updates = Vec::new();
        let mut imported = Vec::new();
        for (image, keys) in named {
            let entry = self.store_image(&image)?;
            for key in keys {
                let (repository, tag) = reference::split_tag(&key);
                imported.push(ImageSummary {
                    repository: repository.to_string(),
                    tag: tag.to_string(),
                    id: entry.id.clone(),
                    size_bytes: entry.size,
                });
                updates.push((key, entry.clone()));
            }
        }
        self.update_index(|index| index.images.extend(updates))?;
        Ok(imported)
    }

    /// Verify and place one image's config and layers; returns its index entry.
    fn store_image(&self, image: &ArchiveImage) -> Result<IndexEntry, ImageError> {
        let config_bytes = fs::read(&image.config.path)
            .map_err(io_err(format!("reading {}", image.config.path.display())))?;
        let id = sha256_digest(&config_bytes);
        if let Some(expected) = &image.config.digest
            && *expected != id
        {
            return Err(invalid(format!(
                "the image config has digest {id}, but the archive names it {expected}"
            )));
        }
        let config = ImageConfiguration::from_reader(config_bytes.as_slice())
            .map_err(|e| invalid(format!("image config {id}: {e}")))?;
        let diff_ids = config.rootfs().diff_ids();
        if diff_ids.len() != image.layers.len() {
            return Err(invalid(format!(
                "image {id}: the config lists {} layers, the manifest {}",
                diff_ids.len(),
                image.layers.len()
            )));
        }
        let mut size = image.manifest_size + config_bytes.len() as u64;
        for (blob, diff_id) in image.layers.iter().zip(diff_ids) {
            size += fs::metadata(&blob.path)
                .map_err(io_err(format!("reading {}", blob.path.display())))?
                .len();
            self.place_layer(blob, diff_id)?;
        }
        let config_path = self.config_path(&id)?;
        if !config_path.exists() {
            let mut file = tempfile::NamedTempFile::new_in(self.root.join("configs"))
                .map_err(io_err("writing the image config"))?;
            file.write_all(&config_bytes)
                .map_err(io_err("writing the image config"))?;
            file.as_file()
                .sync_all()
                .map_err(io_err("syncing the image config"))?;
            file.persist(&config_path).map_err(|e| ImageError::Io {
                context: "placing the image config".into(),
                source: e.error,
            })?;
            sync_dir(&self.root.join("configs"))?;
        }
        Ok(IndexEntry {
            id,
            manifest_digest: image.manifest_digest.clone(),
            layers: diff_ids.clone(),
            size,
        })
    }

    /// Unpack a layer into `layers/<diff-id>` unless an earlier import already did.
    fn place_layer(&self, blob: &archive::Blob, diff_id: &str) -> Result<(), ImageError> {
        let target = self.layer_dir(diff_id)?;
        if target.exists() {
            return Ok(());
        }
        let staging = self.staging_dir()?;
        let digests = layer::unpack(&blob.path, staging.path())?;
        if let Some(expected) = &blob.digest
            && *expected != digests.blob
        {
            return Err(invalid(format!(
                "layer blob {expected} has digest {}",
                digests.blob
            )));
        }
        if digests.diff_id != diff_id {
            return Err(invalid(format!(
                "layer {} unpacks to {}, but the image config says {diff_id}",
                blob.path.display(),
                digests.diff_id
            )));
        }
        // The index will point at this layer: its files must reach the disk before the
        // rename makes it visible.
        let staging_dir = File::open(staging.path()).map_err(io_err("opening the staged layer"))?;
        syncfs(&staging_dir).map_err(|errno| ImageError::Io {
            context: "syncing the staged layer".into(),
            source: errno.into(),
        })?;
        let staged = staging.keep();
        match fs::rename(&staged, &target) {
            Ok(()) => sync_dir(&self.root.join("layers")),
            // A concurrent import placed the same layer first; its copy is as good.
            Err(_) if target.exists() => fs::remove_dir_all(&staged)
                .map_err(io_err(format!("removing {}", staged.display()))),
            Err(e) => {
                let _ = fs::remove_dir_all(&staged);
                Err(ImageError::Io {
                    context: format!("placing layer {diff_id}"),
                    source: e,
                })
            }
        }
    }

    /// Every tagged image, sorted by reference.
    pub fn list(&self) -> Result<Vec<ImageSummary>, ImageError> {
        Ok(self
            .read_index()?
            .images
            .into_iter()
            .map(|(key, entry)| {
                let (repository, tag) = reference::split_tag(&key);
                ImageSummary {
                    repository: repository.to_string(),
                    tag: tag.to_string(),
                    id: entry.id,
                    size_bytes: entry.size,
                }
            })
            .collect())
    }

    /// Render `list()` as `crictl images` does (IMAGE  TAG  IMAGE ID  SIZE): what
    /// `podium image ls` prints.
    pub fn render_table(images: &[ImageSummary]) -> String {
        table::render(images)
    }

    fn find(&self, reference: &str) -> Result<IndexEntry, ImageError> {
        let index = self.read_index()?;
        let not_found = || ImageError::NotFound(reference.to_string());
        match reference::parse(reference)? {
            Lookup::Tag(key) => index.images.get(&key).cloned().ok_or_else(not_found),
            Lookup::Digest { repository, digest } => {
                let matches = |entry: &IndexEntry| {
                    entry.id == digest || entry.manifest_digest.as_deref() == Some(&digest)
                };
                // Prefer the named repository; content with that digest is the same anywhere.
                let same_repository = index.images.iter().find(|(key, entry)| {
                    reference::split_tag(key).0 == repository && matches(entry)
                });
                same_repository
                    .or_else(|| index.images.iter().find(|(_, entry)| matches(entry)))
                    .map(|(_, entry)| entry.clone())
                    .ok_or_else(not_found)
            }
            Lookup::Id(id) => index
                .images
                .values()
                .find(|entry| entry.id == id)
                .cloned()
                .ok_or_else(not_found),
        }
    }
}

impl ImageSource for ImageStore {
    fn resolve(&self, reference: &str) -> Result<Image, ImageError> {
        let entry = self.find(reference)?;
        let config_path = self.config_path(&entry.id)?;
        let config = ImageConfiguration::from_file(&config_path).map_err(|e| ImageError::Io {
            context: format!("reading {}", config_path.display()),
            source: io::Error::new(io::ErrorKind::InvalidData, e.to_string()),
        })?;
        let layers = entry
            .layers
            .iter()
            .map(|diff_id| self.layer_dir(diff_id))
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(missing) = layers.iter().find(|layer| !layer.is_dir()) {
            return Err(ImageError::Io {
                context: format!(
                    "image {reference}: layer {} is missing; import the image again",
                    missing.display()
                ),
                source: io::ErrorKind::NotFound.into(),
            });
        }
        let process = config.config().clone().unwrap_or_default();
        let non_empty = |value: &Option<String>| value.clone().filter(|v| !v.is_empty());
        Ok(Image {
            id: entry.id,
            layers,
            config: ImageConfig {
                entrypoint: process.entrypoint().clone().unwrap_or_default(),
                cmd: process.cmd().clone().unwrap_or_default(),
                env: process.env().clone().unwrap_or_default(),
                working_dir: non_empty(process.working_dir()),
                user: non_empty(process.user()),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::FileTypeExt;

    use flate2::Compression;
    use flate2::write::GzEncoder;
    use serde_json::json;

    use super::*;
    use crate::layer::tests::{Item, layer_tar};

    fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (name, data) in files {
            let mut header = tar::Header::new_gnu();
            header.set_size(data.len() as u64);
            header.set_mode(0o644);
            header.set_mtime(0);
            builder.append_data(&mut header, name, *data).unwrap();
        }
        builder.into_inner().unwrap()
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut gz = GzEncoder::new(Vec::new(), Compression::fast());
        gz.write_all(bytes).unwrap();
        gz.finish().unwrap()
    }

    fn hex(digest: &str) -> &str {
        digest.strip_prefix("sha256:").unwrap()
    }

    fn config_json(diff_ids: &[String], cmd: &str) -> Vec<u8> {
        serde_json::to_vec(&json!({
            "architecture": "amd64", "os": "linux",
            "config": {"Entrypoint": ["/bin/sh", "-c"], "Cmd": [cmd], "Env": ["PATH=/bin"], "WorkingDir": "/srv", "User": ""},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        }))
        .unwrap()
    }

    /// A legacy `docker save` archive (Docker < 25) with the given tags and layer tars.
    fn docker_save(dir: &Path, file: &str, tags: &[&str], layers: &[Vec<u8>]) -> PathBuf {
        let diff_ids: Vec<String> = layers.iter().map(|l| sha256_digest(l)).collect();
        let config = config_json(&diff_ids, "serve");
        let config_name = format!("{}.json", hex(&sha256_digest(&config)));
        let layer_names: Vec<String> = (0..layers.len())
            .map(|i| format!("v1id{i}/layer.tar"))
            .collect();
        let manifest = json!([{"Config": config_name, "RepoTags": tags, "Layers": layer_names}]);
        let manifest = serde_json::to_vec(&manifest).unwrap();
        let mut files: Vec<(&str, &[u8])> =
            vec![("manifest.json", &manifest), (&config_name, &config)];
        for (name, layer) in layer_names.iter().zip(layers) {
            files.push((name, layer));
        }
        let path = dir.join(file);
        fs::write(&path, tar_of(&files)).unwrap();
        path
    }

    /// An OCI image layout archive: a nested index with an amd64 and an arm64 manifest
    /// (plus an attestation), gzip layers, named only on the outer descriptor.
    fn oci_layout(dir: &Path, name: &str, layers: &[Vec<u8>]) -> (PathBuf, String) {
        let mut blobs: Vec<(String, Vec<u8>)> = Vec::new();
        let mut add = |bytes: Vec<u8>| -> (String, u64) {
            let digest = sha256_digest(&bytes);
            let size = bytes.len() as u64;
            blobs.push((format!("blobs/sha256/{}", hex(&digest)), bytes));
            (digest, size)
        };
        let diff_ids: Vec<String> = layers.iter().map(|l| sha256_digest(l)).collect();
        let (config_digest, config_size) = add(config_json(&diff_ids, "oci"));
        let layer_descriptors: Vec<_> = layers
            .iter()
            .map(|l| {
                let (digest, size) = add(gzip(l));
                json!({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": digest, "size": size})
            })
            .collect();
        let manifest = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config_size},
            "layers": layer_descriptors});
        let (manifest_digest, manifest_size) = add(serde_json::to_vec(&manifest).unwrap());
        let (here, elsewhere) = if std::env::consts::ARCH == "aarch64" {
            ("arm64", "amd64")
        } else {
            ("amd64", "arm64")
        };
        // The other platform's manifest points at a blob that is not in the archive: choosing it would fail.
        let missing = format!("sha256:{}", "e".repeat(64));
        let nested = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": missing, "size": 1, "platform": {"architecture": elsewhere, "os": "linux"}},
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": manifest_digest, "size": manifest_size, "platform": {"architecture": here, "os": "linux"}},
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": missing, "size": 1, "platform": {"architecture": "unknown", "os": "unknown"}},
        ]});
        let (nested_digest, nested_size) = add(serde_json::to_vec(&nested).unwrap());
        let index = json!({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.index.v1+json",
            "digest": nested_digest, "size": nested_size, "annotations": {"org.opencontainers.image.ref.name": name}}]});
        let index = serde_json::to_vec(&index).unwrap();
        let mut files: Vec<(&str, &[u8])> = vec![
            ("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#),
            ("index.json", &index),
        ];
        for (path, bytes) in &blobs {
            files.push((path, bytes));
        }
        let path = dir.join("oci.tar.gz");
        fs::write(&path, gzip(&tar_of(&files))).unwrap();
        (path, manifest_digest)
    }

    fn open_store(dir: &Path) -> ImageStore {
        ImageStore::open(dir.join("images")).unwrap()
    }

    #[test]
    fn imports_docker_save_and_resolves_every_spelling() {
        let dir = tempfile::tempdir().unwrap();
        let store = open_store(dir.path());
        let base = layer_tar(&[
            Item::Dir("srv/"),
            Item::File("srv/index.html", b"Hello", 0o644),
            Item::File("srv/old", b"x", 0o644),
        ]);
        let top = layer_tar(&[Item::File("srv/.wh.old", b"", 0o644)]);
        let archive = docker_save(
            dir.path(),
            "a.tar",
            &["sample-app:v1", "me/other"],
            &[base.clone(), top.clone()],
        );
        let imported = store.import(&archive).unwrap();
        let names: Vec<_> = imported
            .iter()
            .map(|s| format!("{}:{}", s.repository, s.tag))
            .collect();
        assert_eq!(
            names,
            [
                "docker.io/library/sample-app:v1",
                "docker.io/me/other:latest"
            ]
        );

        let image = store.resolve("sample-app:v1").unwrap();
        assert_eq!(image.id, imported[0].id);
        assert_eq!(image.config.entrypoint, ["/bin/sh", "-c"]);
        assert_eq!(image.config.cmd, ["serve"]);
        assert_eq!(image.config.env, ["PATH=/bin"]);
        assert_eq!(image.config.working_dir.as_deref(), Some("/srv"));
        assert_eq!(image.config.user, None);
        assert_eq!(image.layers.len(), 2);
        assert_eq!(
            fs::read_to_string(image.layers[0].join("srv/index.html")).unwrap(),
            "Hello"
        );
        assert!(
            fs::symlink_metadata(image.layers[1].join("srv/old"))
                .unwrap()
                .file_type()
                .is_char_device()
        );

        for same in [
            "docker.io/library/sample-app:v1",
            "library/sample-app:v1",
            &format!("sample-app@{}", image.id),
            &image.id,
        ] {
            assert_eq!(store.resolve(same).unwrap(), image, "{same}");
        }
        assert_eq!(store.resolve("me/other").unwrap(), image);
        assert!(
            matches!(store.resolve("sample-app"), Err(ImageError::NotFound(_))),
            "no :latest was imported"
        );
        assert!(matches!(
            store.resolve("Bad Name"),
            Err(ImageError::InvalidReference { .. })
        ));
        let table = ImageStore::render_table(&store.list().unwrap());
        assert!(
            table.starts_with("IMAGE ")
                && table.contains("docker.io/me/other")
                && table.lines().count() == 3,
            "{table}"
        );
    }

    #[test]
    fn reimport_is_idempotent_and_a_moved_tag_is_repointed() {
        let dir = tempfile::tempdir().unwrap();
        let store = open_store(dir.path());
        let v1 = layer_tar(&[Item::File("index.html", b"one", 0o644)]);
        let archive = docker_save(dir.path(), "v1.tar", &["app:v1"], std::slice::from_ref(&v1));
        let first = store.import(&archive).unwrap();
        assert_eq!(store.import(&archive).unwrap(), first);
        assert_eq!(store.list().unwrap(), first);

        let v2 = layer_tar(&[Item::File("index.html", b"two", 0o644)]);
        let moved = store
            .import(&docker_save(dir.path(), "v2.tar", &["app:v1"], &[v2]))
            .unwrap();
        assert_ne!(moved[0].id, first[0].id);
        let image = store.resolve("app:v1").unwrap();
        assert_eq!(image.id, moved[0].id);
        assert_eq!(
            fs::read_to_string(image.layers[0].join("index.html")).unwrap(),
            "two"
        );
        assert_eq!(store.list().unwrap().len(), 1);
        // The old image's layer stays: a running container may still use it.
        assert!(
            store
                .layer_dir(&sha256_digest(&v1))
                .unwrap()
                .join("index.html")
                .exists()
        );
        assert!(
            matches!(store.resolve(&first[0].id), Err(ImageError::NotFound(_))),
            "untagged ids are not resolvable"
        );
        assert_eq!(
            fs::read_dir(dir.path().join("images/tmp")).unwrap().count(),
            0,
            "staging cleaned up"
        );
    }

    #[test]
    fn imports_oci_layouts_by_platform_with_manifest_digests() {
        let dir = tempfile::tempdir().unwrap();
        let store = open_store(dir.path());
        let layer = layer_tar(&[Item::File("bin/app", b"#!", 0o755)]);
        let (archive, manifest_digest) =
            oci_layout(dir.path(), "registry.local:5000/team/app:2.0", &[layer]);
        let imported = store.import(&archive).unwrap();
        assert_eq!(imported.len(), 1, "one image for this platform");
        assert_eq!(
            (imported[0].repository.as_str(), imported[0].tag.as_str()),
            ("registry.local:5000/team/app", "2.0")
        );
        let image = store.resolve("registry.local:5000/team/app:2.0").unwrap();
        assert_eq!(image.config.cmd, ["oci"]);
        assert!(image.layers[0].join("bin/app").is_file());
        assert_eq!(
            store
                .resolve(&format!("registry.local:5000/team/app@{manifest_digest}"))
                .unwrap(),
            image
        );
    }

    #[test]
    fn corrupt_or_unnamed_archives_are_refused_and_leave_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = open_store(dir.path());
        let junk = dir.path().join("junk.tar");
        fs::write(&junk, tar_of(&[("hello.txt", b"hi")])).unwrap();
        assert!(matches!(
            store.import(&junk),
            Err(ImageError::InvalidArchive(_))
        ));
        let not_tar = dir.path().join("not.tar");
        fs::write(
            &not_tar,
            b"this is not a tar archive at all, just some bytes",
        )
        .unwrap();
        assert!(store.import(&not_tar).is_err());

        // A layer whose content does not match the config's diff-id.
        let layer = layer_tar(&[Item::File("a", b"1", 0o644)]);
        let config = config_json(&[format!("sha256:{}", "0".repeat(64))], "x");
        let manifest = serde_json::to_vec(
            &json!([{"Config": "c.json", "RepoTags": ["x:1"], "Layers": ["l.tar"]}]),
        )
        .unwrap();
        let tampered = dir.path().join("tampered.tar");
        fs::write(
            &tampered,
            tar_of(&[
                ("manifest.json", &manifest),
                ("c.json", &config),
                ("l.tar", &layer),
            ]),
        )
        .unwrap();
        assert!(
            matches!(store.import(&tampered), Err(ImageError::InvalidArchive(m)) if m.contains("unpacks to"))
        );

        // A config whose file name (its digest) does not match its content.
        let diff = sha256_digest(&layer);
        let config = config_json(&[diff], "x");
        let wrong_name = format!("{}.json", "1".repeat(64));
        let manifest = serde_json::to_vec(
            &json!([{"Config": wrong_name, "RepoTags": ["x:1"], "Layers": ["l.tar"]}]),
        )
        .unwrap();
        let renamed = dir.path().join("renamed.tar");
        fs::write(
            &renamed,
            tar_of(&[
                ("manifest.json", &manifest),
                (&wrong_name, &config),
                ("l.tar", &layer),
            ]),
        )
        .unwrap();
        assert!(matches!(
            store.import(&renamed),
            Err(ImageError::InvalidArchive(_))
        ));

        // An image saved by id has no name to resolve it by.
        let unnamed = docker_save(dir.path(), "unnamed.tar", &[], &[layer]);
        assert!(
            matches!(store.import(&unnamed), Err(ImageError::InvalidArchive(m)) if m.contains("without a name"))
        );

        assert_eq!(
            fs::read_dir(dir.path().join("images/layers"))
                .unwrap()
                .count(),
            0
        );
        assert_eq!(
            fs::read_dir(dir.path().join("images/tmp")).unwrap().count(),
            0
        );
        assert!(store.list().unwrap().is_empty());
    }

    #[test]
    fn staging_of_dead_processes_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        let store = open_store(dir.path());
        let tmp = dir.path().join("images/tmp");
        // Neither pid 0 nor one above any pid_max names a live importer; our own pid is alive.
        fs::create_dir_all(tmp.join("0.crashed/layer")).unwrap();
        fs::create_dir_all(tmp.join(format!("{}.crashed", i32::MAX))).unwrap();
        fs::create_dir_all(tmp.join("not-a-pid")).unwrap();
        let ours = tmp.join(format!("{}.running", std::process::id()));
        fs::create_dir_all(&ours).unwrap();
        store.remove_abandoned_staging();
        let left: Vec<_> = fs::read_dir(&tmp)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert_eq!(left, [ours]);
    }

    #[test]
    fn concurrent_imports_keep_every_tag() {
        let dir = tempfile::tempdir().unwrap();
        let shared = layer_tar(&[Item::File("shared", b"same layer in every image", 0o644)]);
        let archives: Vec<PathBuf> = (0..4)
            .map(|i| {
                let own = layer_tar(&[Item::File("own", format!("image {i}").as_bytes(), 0o644)]);
                docker_save(
                    dir.path(),
                    &format!("{i}.tar"),
                    &[&format!("app{i}:v1")],
                    &[shared.clone(), own],
                )
            })
            .collect();
        let root = dir.path().join("images");
        std::thread::scope(|scope| {
            for archive in &archives {
                let root = root.clone();
                scope.spawn(move || ImageStore::open(root).unwrap().import(archive).unwrap());
            }
        });
        let store = ImageStore::open(&root).unwrap();
        assert_eq!(store.list().unwrap().len(), 4);
        for i in 0..4 {
            let image = store.resolve(&format!("app{i}:v1")).unwrap();
            assert_eq!(
                fs::read_to_string(image.layers[1].join("own")).unwrap(),
                format!("image {i}")
            );
        }
    }
}
