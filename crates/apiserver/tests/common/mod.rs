//! What the in-process API tests share: a bootstrapped server on a fresh store.

use std::sync::Arc;

use podium_apiserver::{ApiConfig, ApiServer};

/// A server on a new redb file in a temporary dir (kept alive by the returned guard).
pub async fn api_server() -> (ApiServer, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = podium_store::RedbStore::open(dir.path().join("db"))
        .unwrap()
        .shared();
    let server = ApiServer::new(
        Arc::new(store),
        ApiConfig {
            service_cidr: "10.43.0.0/16".into(),
            advertise_address: "127.0.0.1:6443".into(),
        },
    );
    server.bootstrap().await.unwrap();
    (server, dir)
}
