//! Real archives through the store: the repository's test-image script and a `docker save`.
//!
//! Needs root (layers keep ownership; whiteouts are device nodes) and, for the script,
//! apt-get access or a cached busybox-static package.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use podium_image::{ImageSource, ImageStore};

const MESSAGE: &str = "Hello, World!";

/// Run scripts/build-test-image, failing with its own output when it cannot build.
fn build_test_image(dir: &Path, tag: &str) -> PathBuf {
    let archive = dir.join("image.tar");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/build-test-image");
    let output = Command::new(&script)
        .args(["--tag", tag, "--message", MESSAGE, "--output"])
        .arg(&archive)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    assert!(
        output.status.success(),
        "scripts/build-test-image could not build the test image (it needs apt-get access or a cached \
         busybox-static in ~/.cache/podium):\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    archive
}

/// The same archive without its OCI layout: what the legacy-format reader sees.
fn strip_oci_layout(archive: &Path, dir: &Path) -> PathBuf {
    let unpacked = dir.join("unpacked");
    std::fs::create_dir_all(&unpacked).unwrap();
    tar::Archive::new(std::fs::File::open(archive).unwrap())
        .unpack(&unpacked)
        .unwrap();
    std::fs::remove_file(unpacked.join("oci-layout")).unwrap();
    std::fs::remove_file(unpacked.join("index.json")).unwrap();
    let stripped = dir.join("docker-only.tar");
    let mut builder = tar::Builder::new(std::fs::File::create(&stripped).unwrap());
    builder.append_dir_all(".", &unpacked).unwrap();
    builder.finish().unwrap();
    stripped
}

#[test]
fn build_test_image_script_produces_an_importable_server_image() {
    let dir = tempfile::tempdir().unwrap();
    let archive = build_test_image(dir.path(), "sample-app:v1");
    let store = ImageStore::open(dir.path().join("images")).unwrap();
    let imported = store.import(&archive).unwrap();
    assert_eq!(imported.len(), 1);
    assert_eq!(
        (imported[0].repository.as_str(), imported[0].tag.as_str()),
        ("docker.io/library/sample-app", "v1")
    );

    let image = store.resolve("sample-app:v1").unwrap();
    assert_eq!(image.id, imported[0].id);
    assert_eq!(image.config.entrypoint, ["/bin/busybox", "httpd"]);
    assert_eq!(image.config.cmd, ["-f", "-v", "-p", "8080", "-h", "/www"]);
    assert_eq!(image.config.env, ["PATH=/bin"]);
    assert_eq!(image.config.working_dir.as_deref(), Some("/"));
    assert_eq!(image.layers.len(), 1);
    let layer = &image.layers[0];
    assert_eq!(
        std::fs::read_to_string(layer.join("www/index.html")).unwrap(),
        MESSAGE
    );
    let busybox = layer.join("bin/busybox").metadata().unwrap();
    assert!(
        busybox.len() > 500_000 && busybox.permissions().mode() & 0o111 != 0,
        "a real busybox binary"
    );
    assert_eq!(
        std::fs::read(layer.join("bin/busybox")).unwrap()[..4],
        *b"\x7fELF"
    );
    assert_eq!(
        std::fs::read_link(layer.join("bin/sh")).unwrap(),
        Path::new("busybox")
    );
    assert_eq!(
        layer.join("tmp").metadata().unwrap().permissions().mode() & 0o7777,
        0o1777
    );

    // The legacy manifest.json in the same archive describes the same image.
    let other = ImageStore::open(dir.path().join("images-docker")).unwrap();
    let legacy = other
        .import(&strip_oci_layout(&archive, dir.path()))
        .unwrap();
    assert_eq!(legacy[0].id, image.id);
    assert_eq!(
        other
            .resolve("docker.io/library/sample-app:v1")
            .unwrap()
            .config,
        image.config
    );
}

/// Start the image's own command chrooted into its layer, in a network namespace of its
/// own, and fetch `/` with the image's wget: the server must answer the message and log
/// the request.
#[test]
fn test_image_serves_its_message_and_logs_each_request() {
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dir.path().join("images")).unwrap();
    store
        .import(&build_test_image(dir.path(), "sample-app:v1"))
        .unwrap();
    let image = store.resolve("sample-app:v1").unwrap();
    let command: Vec<String> = image
        .config
        .entrypoint
        .iter()
        .chain(&image.config.cmd)
        .cloned()
        .collect();
    let log = dir.path().join("server.log");
    // The shell is pid 1 of a new pid namespace: when it exits, however it exits, the
    // kernel kills the server too. The chroot has no /dev, so output is discarded outside it.
    let script = format!(
        r#"set -e
ip link set lo up
chroot "$0" env -i PATH=/bin {command} >"$1" 2>&1 &
tries=0
until body=$(chroot "$0" /bin/wget -q -O - http://127.0.0.1:8080/ 2>/dev/null); do
  tries=$((tries+1)); [ $tries -lt 50 ] || {{ echo "the server did not answer" >&2; exit 1; }}
  sleep 0.1
done
chroot "$0" /bin/wget -q -O - http://127.0.0.1:8080/ >/dev/null
sleep 0.2
printf '%s' "$body""#,
        command = command.join(" ")
    );
    let output = Command::new("timeout")
        .args([
            "60",
            "unshare",
            "--net",
            "--pid",
            "--fork",
            "--kill-child",
            "sh",
            "-c",
            &script,
        ])
        .arg(&image.layers[0])
        .arg(&log)
        .output()
        .expect("run unshare");
    assert!(
        output.status.success(),
        "serving failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&output.stdout), MESSAGE);
    let log = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        log.lines()
            .filter(|line| line.contains("response:200"))
            .count(),
        2,
        "one line per request:\n{log}"
    );
}

/// `docker save podium-fixture:v1` from Docker 20.10 (legacy format: `<id>/layer.tar`,
/// `<config hex>.json`, `repositories`), built `FROM scratch` with two `COPY` layers.
#[test]
fn real_docker_save_archive_imports() {
    let fixture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/docker-save-20.10.tar");
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dir.path().join("images")).unwrap();
    let imported = store.import(&fixture).unwrap();
    // `docker images --no-trunc` showed this id.
    let docker_id = "sha256:6fcad6effa425583b0e8fe735a544fce5b10f3d385be09055f63616fb1895023";
    assert_eq!(imported[0].id, docker_id);
    assert_eq!(
        (imported[0].repository.as_str(), imported[0].tag.as_str()),
        ("docker.io/library/podium-fixture", "v1")
    );

    let image = store
        .resolve(&format!("podium-fixture@{docker_id}"))
        .unwrap();
    assert_eq!(image.config.entrypoint, ["/bin/true"]);
    assert_eq!(image.config.cmd, ["--flag"]);
    assert!(image.config.env.contains(&"GREETING=hi".to_string()));
    assert_eq!(image.config.working_dir.as_deref(), Some("/data"));
    assert_eq!(image.layers.len(), 2);
    let data = image.layers[0].join("data");
    assert_eq!(
        std::fs::read_to_string(data.join("a.txt")).unwrap(),
        "hello from docker\n"
    );
    assert_eq!(
        data.join("a.txt").metadata().unwrap().permissions().mode() & 0o777,
        0o640
    );
    assert_eq!(
        std::fs::read_link(data.join("link")).unwrap(),
        Path::new("a.txt")
    );
    assert_eq!(
        data.join("hard").metadata().unwrap().ino(),
        data.join("a.txt").metadata().unwrap().ino()
    );
    assert_eq!(
        std::fs::read_to_string(image.layers[1].join("second.txt")).unwrap(),
        "hello from docker\n"
    );
}
