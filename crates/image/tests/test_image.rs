//! The repository's test-image script builds an archive this store imports and resolves.

use std::process::Command;

use podium_image::{ImageSource, ImageStore};

#[test]
fn build_test_image_script_produces_an_importable_server_image() {
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("v1.tar");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/build-test-image");
    let status = Command::new(script)
        .args(["--tag", "sample-app:v1", "--message", "Hello, World!", "--output"])
        .arg(&archive)
        .status()
        .expect("scripts/build-test-image must run (python3, apt-get or a cached busybox-static)");
    assert!(status.success(), "scripts/build-test-image failed");
    let store = ImageStore::open(dir.path().join("images")).unwrap();
    let imported = store.import(&archive).unwrap();
    assert_eq!((imported[0].repository.as_str(), imported[0].tag.as_str()), ("docker.io/library/sample-app", "v1"));
    let image = store.resolve("sample-app:v1").unwrap();
    assert_eq!(image.config.entrypoint, vec!["/bin/busybox", "httpd"]);
    assert_eq!(std::fs::read_to_string(image.layers[0].join("www/index.html")).unwrap(), "Hello, World!");
    assert!(image.layers[0].join("bin/busybox").metadata().unwrap().len() > 100_000);
}
