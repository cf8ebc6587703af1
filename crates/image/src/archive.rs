//! Reading an image archive: `docker save` output or an OCI image layout, plain or gzipped.

use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Component, Path, PathBuf};

use oci_spec::image::{Arch, Descriptor, ImageIndex, ImageManifest, MediaType, Os};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::ImageError;

pub(crate) fn io_err(context: impl Into<String>) -> impl FnOnce(io::Error) -> ImageError {
    let context = context.into();
    move |source| ImageError::Io { context, source }
}

pub(crate) fn invalid(message: impl Into<String>) -> ImageError {
    ImageError::InvalidArchive(message.into())
}

/// The hex part of a `sha256:<hex>` digest, refused unless well formed: it becomes a file name.
pub(crate) fn sha256_hex(digest: &str) -> Result<&str, ImageError> {
    let hex = digest.strip_prefix("sha256:").ok_or_else(|| {
        invalid(format!(
            "unsupported digest {digest:?}: only sha256 is supported"
        ))
    })?;
    if hex.len() != 64
        || !hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err(invalid(format!("malformed digest {digest:?}")));
    }
    Ok(hex)
}

pub(crate) fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(bytes))
}

/// A relative path with no `..`, root or prefix: it stays inside whatever it is joined to.
pub(crate) fn stays_inside(path: &Path) -> bool {
    path.components()
        .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
}

/// Open a file, transparently gunzipping it (`docker save | gzip` is common).
fn open_maybe_gzip(path: &Path) -> Result<Box<dyn Read>, ImageError> {
    let file = File::open(path).map_err(io_err(format!("opening {}", path.display())))?;
    let mut reader = BufReader::new(file);
    let head = reader
        .fill_buf()
        .map_err(io_err(format!("reading {}", path.display())))?;
    if head.starts_with(&[0x1f, 0x8b]) {
        Ok(Box::new(flate2::read::GzDecoder::new(reader)))
    } else {
        Ok(Box::new(reader))
    }
}

/// Extract the archive's files into `dir`, refusing entries that would land outside it.
pub(crate) fn extract(archive: &Path, dir: &Path) -> Result<(), ImageError> {
    let mut tar = tar::Archive::new(open_maybe_gzip(archive)?);
    let entries = tar
        .entries()
        .map_err(io_err(format!("reading {}", archive.display())))?;
    for entry in entries {
        let mut entry = entry.map_err(io_err(format!("reading {}", archive.display())))?;
        let path = entry
            .path()
            .map_err(io_err("reading an archive entry's path"))?
            .into_owned();
        if !stays_inside(&path) {
            return Err(invalid(format!(
                "archive entry {} escapes the archive",
                path.display()
            )));
        }
        if matches!(
            entry.header().entry_type(),
            tar::EntryType::Block | tar::EntryType::Char | tar::EntryType::Fifo
        ) {
            continue;
        }
        entry
            .unpack_in(dir)
            .map_err(io_err(format!("extracting {}", path.display())))?;
    }
    Ok(())
}

/// A file of the extracted archive and, when the archive names it, its expected digest.
#[derive(Debug, Clone)]
pub(crate) struct Blob {
    pub path: PathBuf,
    pub digest: Option<String>,
}

/// One image found in an archive.
#[derive(Debug)]
pub(crate) struct ArchiveImage {
    pub config: Blob,
    /// Known for OCI layouts; legacy `docker save` output has no manifest blob.
    pub manifest_digest: Option<String>,
    pub manifest_size: u64,
    /// Layer blobs, lowest first (possibly gzip-compressed).
    pub layers: Vec<Blob>,
    /// Names as written in the archive, not yet normalized.
    pub references: Vec<String>,
}

/// A path named by the archive's own metadata, checked to resolve inside the archive
/// even through symlinks (old `docker save` links duplicate layers to one another).
fn archive_file(dir: &Path, relative: &str) -> Result<PathBuf, ImageError> {
    let escapes = || invalid(format!("{relative:?} points outside the archive"));
    if !stays_inside(Path::new(relative)) {
        return Err(escapes());
    }
    let joined = dir.join(relative);
    let real = joined
        .canonicalize()
        .map_err(io_err(format!("{relative} (named by the archive)")))?;
    let root = dir
        .canonicalize()
        .map_err(io_err(format!("resolving {}", dir.display())))?;
    if !real.starts_with(&root) {
        return Err(escapes());
    }
    Ok(real)
}

/// `blobs/sha256/<hex>` of an OCI layout.
fn blob_path(dir: &Path, digest: &str) -> Result<PathBuf, ImageError> {
    archive_file(dir, &format!("blobs/sha256/{}", sha256_hex(digest)?))
}

/// Read a small JSON blob (index, manifest) and check it has the digest it is named by.
fn read_verified(dir: &Path, descriptor: &Descriptor) -> Result<Vec<u8>, ImageError> {
    let digest = descriptor.digest().to_string();
    let path = blob_path(dir, &digest)?;
    let bytes = fs::read(&path).map_err(io_err(format!("reading blob {digest}")))?;
    let actual = sha256_digest(&bytes);
    if actual != digest {
        return Err(invalid(format!("blob {digest} has digest {actual}")));
    }
    Ok(bytes)
}

/// What images the extracted archive at `dir` holds.
pub(crate) fn read_images(dir: &Path) -> Result<Vec<ArchiveImage>, ImageError> {
    // Docker >= 25 writes both; the OCI layout carries manifest digests, so it wins.
    if dir.join("oci-layout").exists() && dir.join("index.json").exists() {
        read_oci_layout(dir)
    } else if dir.join("manifest.json").exists() {
        read_docker_save(dir)
    } else {
        Err(invalid(
            "neither manifest.json (docker save) nor oci-layout and index.json (OCI image layout) found",
        ))
    }
}

#[derive(Deserialize)]
struct DockerSaveEntry {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "RepoTags", default)]
    repo_tags: Option<Vec<String>>,
    #[serde(rename = "Layers")]
    layers: Vec<String>,
}

/// The digest a `docker save` file name carries: `<hex>.json` configs and, since
/// Docker 25, `blobs/sha256/<hex>`. Legacy `<v1 id>/layer.tar` names carry none.
fn digest_in_name(relative: &str) -> Option<String> {
    let name = relative.strip_prefix("blobs/sha256/").unwrap_or(relative);
    let name = name.strip_suffix(".json").unwrap_or(name);
    let digest = format!("sha256:{name}");
    sha256_hex(&digest).is_ok().then_some(digest)
}

fn read_docker_save(dir: &Path) -> Result<Vec<ArchiveImage>, ImageError> {
    let bytes = fs::read(dir.join("manifest.json")).map_err(io_err("reading manifest.json"))?;
    let entries: Vec<DockerSaveEntry> =
        serde_json::from_slice(&bytes).map_err(|e| invalid(format!("manifest.json: {e}")))?;
    entries
        .into_iter()
        .map(|entry| {
            let blob = |relative: &str| -> Result<Blob, ImageError> {
                Ok(Blob {
                    path: archive_file(dir, relative)?,
                    digest: digest_in_name(relative),
                })
            };
            Ok(ArchiveImage {
                config: blob(&entry.config)?,
                manifest_digest: None,
                manifest_size: 0,
                layers: entry
                    .layers
                    .iter()
                    .map(|layer| blob(layer))
                    .collect::<Result<_, _>>()?,
                references: entry.repo_tags.unwrap_or_default(),
            })
        })
        .collect()
}

const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// containerd and Docker >= 25 put the full name here; OCI's own `ref.name` is often a bare tag.
const CONTAINERD_NAME: &str = "io.containerd.image.name";

/// Go's GOARCH name for this machine, which is what image platforms use.
fn host_arch() -> Arch {
    match std::env::consts::ARCH {
        "x86_64" => Arch::Amd64,
        "aarch64" => Arch::ARM64,
        other => Arch::from(other),
    }
}

/// The names a manifest descriptor gives its image.
fn descriptor_names(descriptor: &Descriptor) -> Result<Vec<String>, ImageError> {
    let Some(annotations) = descriptor.annotations() else {
        return Ok(Vec::new());
    };
    if let Some(name) = annotations.get(CONTAINERD_NAME) {
        return Ok(vec![name.clone()]);
    }
    match annotations.get(oci_spec::image::ANNOTATION_REF_NAME) {
        // `name:tag` or `registry/name`: a whole reference, as skopeo and podman write it.
        Some(name) if name.contains([':', '/']) => Ok(vec![name.clone()]),
        Some(tag) => Err(invalid(format!(
            "the image tagged {tag:?} has no repository name; set the {CONTAINERD_NAME} annotation or save it as name:tag"
        ))),
        None => Ok(Vec::new()),
    }
}

fn read_oci_layout(dir: &Path) -> Result<Vec<ArchiveImage>, ImageError> {
    let index = ImageIndex::from_file(dir.join("index.json"))
        .map_err(|e| invalid(format!("index.json: {e}")))?;
    let mut found = Vec::new();
    // Depth-first over nested indexes; a nested index's manifests inherit its names.
    let mut pending: Vec<(Descriptor, Vec<String>)> = index
        .manifests()
        .iter()
        .rev()
        .map(|d| (d.clone(), Vec::new()))
        .collect();
    let mut visited = 0usize;
    while let Some((descriptor, inherited)) = pending.pop() {
        visited += 1;
        if visited > 10_000 {
            return Err(invalid("the image index nests too deeply"));
        }
        if let Some(platform) = descriptor.platform()
            && (*platform.os() != Os::Linux || *platform.architecture() != host_arch())
        {
            // Other platforms, and BuildKit's attestations (`unknown/unknown`).
            continue;
        }
        let mut names = descriptor_names(&descriptor)?;
        if names.is_empty() {
            names = inherited;
        }
        match descriptor.media_type() {
            MediaType::ImageIndex => {}
            MediaType::Other(other) if other == DOCKER_MANIFEST_LIST => {}
            MediaType::ImageManifest => {
                found.push(read_oci_manifest(dir, &descriptor, names)?);
                continue;
            }
            MediaType::Other(other) if other == DOCKER_MANIFEST => {
                found.push(read_oci_manifest(dir, &descriptor, names)?);
                continue;
            }
            // Artifacts and anything else that is not a runnable image.
            _ => continue,
        }
        let nested = ImageIndex::from_reader(read_verified(dir, &descriptor)?.as_slice())
            .map_err(|e| invalid(format!("index {}: {e}", descriptor.digest())))?;
        pending.extend(
            nested
                .manifests()
                .iter()
                .rev()
                .map(|d| (d.clone(), names.clone())),
        );
    }
    if found.is_empty() {
        return Err(invalid(format!(
            "the OCI layout has no image for linux/{}",
            host_arch()
        )));
    }
    Ok(found)
}

fn read_oci_manifest(
    dir: &Path,
    descriptor: &Descriptor,
    references: Vec<String>,
) -> Result<ArchiveImage, ImageError> {
    let bytes = read_verified(dir, descriptor)?;
    let manifest = ImageManifest::from_reader(bytes.as_slice())
        .map_err(|e| invalid(format!("manifest {}: {e}", descriptor.digest())))?;
    let blob = |descriptor: &Descriptor| -> Result<Blob, ImageError> {
        if descriptor.media_type().to_string().contains("zstd") {
            return Err(invalid(format!(
                "layer {} is zstd-compressed; only plain and gzip layers are supported",
                descriptor.digest()
            )));
        }
        let digest = descriptor.digest().to_string();
        Ok(Blob {
            path: blob_path(dir, &digest)?,
            digest: Some(digest),
        })
    };
    Ok(ArchiveImage {
        config: blob(manifest.config())?,
        manifest_digest: Some(descriptor.digest().to_string()),
        manifest_size: bytes.len() as u64,
        layers: manifest
            .layers()
            .iter()
            .map(blob)
            .collect::<Result<_, _>>()?,
        references,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_must_be_well_formed_sha256() {
        let hex = "a".repeat(64);
        assert_eq!(sha256_hex(&format!("sha256:{hex}")).unwrap(), hex);
        for bad in [
            "sha512:aa",
            "sha256:../../etc",
            &format!("sha256:{}", "A".repeat(64)),
            &format!("sha256:{hex}0"),
        ] {
            assert!(sha256_hex(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn docker_save_names_carry_digests_only_when_content_addressed() {
        let hex = "b".repeat(64);
        assert_eq!(
            digest_in_name(&format!("{hex}.json")),
            Some(format!("sha256:{hex}"))
        );
        assert_eq!(
            digest_in_name(&format!("blobs/sha256/{hex}")),
            Some(format!("sha256:{hex}"))
        );
        assert_eq!(digest_in_name(&format!("{hex}/layer.tar")), None);
    }

    #[test]
    fn archive_paths_cannot_leave_the_archive() {
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("/etc/hostname", dir.path().join("layer.tar")).unwrap();
        fs::write(dir.path().join("ok.tar"), b"").unwrap();
        assert!(archive_file(dir.path(), "ok.tar").is_ok());
        assert!(matches!(
            archive_file(dir.path(), "layer.tar"),
            Err(ImageError::InvalidArchive(_))
        ));
        assert!(matches!(
            archive_file(dir.path(), "../x"),
            Err(ImageError::InvalidArchive(_))
        ));
        assert!(matches!(
            archive_file(dir.path(), "/etc/hostname"),
            Err(ImageError::InvalidArchive(_))
        ));
    }
}
