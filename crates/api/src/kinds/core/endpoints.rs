//! Endpoints (`v1`): written by the endpoints controller; upstream's `printEndpoints`.

use serde_json::{Value, json};

use crate::kinds::{Kind, typed_as};
use crate::table::{AGE, Column, Doc, NAME, arr, col, n, name_and_age, s};

pub struct Endpoints;

impl Kind for Endpoints {
    typed_as!(k8s_openapi::api::core::v1::Endpoints);

    fn columns(&self) -> &[Column] {
        ENDPOINTS
    }

    fn row(&self, o: &Value, now: jiff::Timestamp) -> (Vec<Value>, Option<Value>) {
        let [name, age] = name_and_age(o, now);
        (vec![name, json!(endpoints_text(o)), age], None)
    }
}

const ENDPOINTS: &[Column] = &[
    NAME,
    col(
        "Endpoints",
        "string",
        0,
        Doc::Field("io.k8s.api.core.v1.Endpoints", "subsets"),
    ),
    AGE,
];

/// Go's `net.JoinHostPort`: brackets around IPv6 addresses.
fn join_host_port(host: &str, port: i64) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Upstream's `formatEndpoints` with all ports: at most three `ip:port`, then `+ N more...`.
fn endpoints_text(ep: &Value) -> String {
    const MAX: usize = 3;
    let subsets = arr(ep, "/subsets");
    if subsets.is_empty() {
        return "<none>".into();
    }
    let mut list: Vec<String> = Vec::new();
    let mut more = false;
    let mut count = 0;
    for subset in subsets {
        let addresses = arr(subset, "/addresses");
        let ports = arr(subset, "/ports");
        if ports.is_empty() {
            count += addresses.len();
            for a in addresses {
                if list.len() == MAX {
                    more = true;
                    break;
                }
                list.push(s(a, "/ip").to_string());
            }
            continue;
        }
        for p in ports {
            count += addresses.len();
            for a in addresses {
                if list.len() == MAX {
                    more = true;
                    break;
                }
                list.push(join_host_port(s(a, "/ip"), n(p, "/port")));
            }
        }
    }
    let joined = list.join(",");
    if more {
        format!("{joined} + {} more...", count - MAX)
    } else {
        joined
    }
}
