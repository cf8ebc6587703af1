//! Image references, normalized as Docker and containerd do.

use oci_spec::distribution::Reference;

use crate::ImageError;

/// What a reference asks the store for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Lookup {
    /// `docker.io/library/name:tag`: the key of the store's index.
    Tag(String),
    /// `name@sha256:...`: an image of that repository by manifest or config digest.
    Digest { repository: String, digest: String },
    /// A bare image id, `sha256:<hex>` or just the hex, as `docker images` shows it.
    Id(String),
}

fn is_sha256_hex(text: &str) -> bool {
    text.len() == 64
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Parse a reference the way kubelet hands it over (`sample-app:v1`,
/// `library/sample-app`, `ghcr.io/o/app@sha256:...`).
pub(crate) fn parse(reference: &str) -> Result<Lookup, ImageError> {
    let bare_id = reference.strip_prefix("sha256:").unwrap_or(reference);
    if is_sha256_hex(bare_id) {
        return Ok(Lookup::Id(format!("sha256:{bare_id}")));
    }
    let parsed = Reference::try_from(reference).map_err(|error| ImageError::InvalidReference {
        reference: reference.to_string(),
        reason: error.to_string(),
    })?;
    let repository = format!("{}/{}", parsed.registry(), parsed.repository());
    match (parsed.digest(), parsed.tag()) {
        (Some(digest), _) => Ok(Lookup::Digest {
            repository,
            digest: digest.to_string(),
        }),
        (None, Some(tag)) => Ok(Lookup::Tag(format!("{repository}:{tag}"))),
        // The parser adds `latest` when neither is given; this arm is for safety only.
        (None, None) => Ok(Lookup::Tag(format!("{repository}:latest"))),
    }
}

/// `sample-app:v1` → `docker.io/library/sample-app:v1`; `name@sha256:...` keeps its digest.
pub fn normalize_reference(reference: &str) -> Result<String, ImageError> {
    Ok(match parse(reference)? {
        Lookup::Tag(key) => key,
        Lookup::Digest { repository, digest } => format!("{repository}@{digest}"),
        Lookup::Id(id) => id,
    })
}

/// Split a normalized `repository:tag` key.
pub(crate) fn split_tag(key: &str) -> (&str, &str) {
    let name_start = key.rfind('/').map_or(0, |slash| slash + 1);
    match key[name_start..].rfind(':') {
        Some(colon) => (&key[..name_start + colon], &key[name_start + colon + 1..]),
        None => (key, "latest"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "6fcad6effa425583b0e8fe735a544fce5b10f3d385be09055f63616fb1895023";

    #[test]
    fn familiar_names_normalize_like_docker() {
        for same in [
            "sample-app:v1",
            "library/sample-app:v1",
            "docker.io/library/sample-app:v1",
            "index.docker.io/sample-app:v1",
        ] {
            assert_eq!(
                normalize_reference(same).unwrap(),
                "docker.io/library/sample-app:v1",
                "{same}"
            );
        }
        assert_eq!(
            normalize_reference("sample-app").unwrap(),
            "docker.io/library/sample-app:latest"
        );
        assert_eq!(
            normalize_reference("me/app").unwrap(),
            "docker.io/me/app:latest"
        );
        assert_eq!(
            normalize_reference("localhost:5000/app").unwrap(),
            "localhost:5000/app:latest"
        );
        assert_eq!(
            normalize_reference("localhost/app:1").unwrap(),
            "localhost/app:1"
        );
        assert_eq!(
            normalize_reference("ghcr.io/o/app:1.2").unwrap(),
            "ghcr.io/o/app:1.2"
        );
    }

    #[test]
    fn digests_and_ids() {
        assert_eq!(
            parse(&format!("sample-app@sha256:{HEX}")).unwrap(),
            Lookup::Digest {
                repository: "docker.io/library/sample-app".into(),
                digest: format!("sha256:{HEX}")
            }
        );
        // A tag next to a digest is ignored, as Docker does when pulling.
        assert!(matches!(
            parse(&format!("sample-app:v1@sha256:{HEX}")).unwrap(),
            Lookup::Digest { .. }
        ));
        assert_eq!(
            parse(&format!("sha256:{HEX}")).unwrap(),
            Lookup::Id(format!("sha256:{HEX}"))
        );
        assert_eq!(parse(HEX).unwrap(), Lookup::Id(format!("sha256:{HEX}")));
    }

    #[test]
    fn malformed_references_are_refused() {
        for bad in [
            "",
            "Sample-App:v1",
            "app:",
            "app@sha256:abc",
            "app:v1 ",
            "a//b",
            "app:-x",
        ] {
            assert!(
                matches!(parse(bad), Err(ImageError::InvalidReference { .. })),
                "{bad:?} should be refused"
            );
        }
    }

    #[test]
    fn keys_split_into_repository_and_tag() {
        assert_eq!(
            split_tag("docker.io/library/app:v1"),
            ("docker.io/library/app", "v1")
        );
        assert_eq!(
            split_tag("localhost:5000/app:v1"),
            ("localhost:5000/app", "v1")
        );
        assert_eq!(
            split_tag("localhost:5000/app"),
            ("localhost:5000/app", "latest")
        );
    }
}
