//! EndpointSlices (`discovery.k8s.io/v1`): written by the EndpointSlice controller;
//! upstream's `ValidateEndpointSlice` address type check and `printEndpointSlice`.

use serde_json::{Value, json};

use crate::kinds::{Kind, typed_as};
use crate::status::{Cause, cause};
use crate::table::{AGE, Column, Doc, NAME, arr, col, list_with_more, name_and_age, s};

pub struct EndpointSlice;

impl Kind for EndpointSlice {
    typed_as!(k8s_openapi::api::discovery::v1::EndpointSlice);

    fn validate(&self, object: &Value, _old: Option<&Value>, causes: &mut Vec<Cause>) {
        match object.get("addressType").and_then(Value::as_str) {
            None | Some("") => {
                causes.push(cause("FieldValueRequired", "addressType", "Required value"))
            }
            Some("IPv4" | "IPv6" | "FQDN") => {}
            Some(other) => causes.push(cause(
                "FieldValueNotSupported",
                "addressType",
                format!(
                    "Unsupported value: {other:?}: supported values: \"FQDN\", \"IPv4\", \"IPv6\""
                ),
            )),
        }
    }

    fn columns(&self) -> &[Column] {
        ENDPOINT_SLICE
    }

    fn row(&self, o: &Value, now: jiff::Timestamp) -> (Vec<Value>, Option<Value>) {
        let [name, age] = name_and_age(o, now);
        let cells = vec![
            name,
            json!(s(o, "/addressType")),
            json!(discovery_ports_text(o)),
            json!(discovery_endpoints_text(o)),
            age,
        ];
        (cells, None)
    }
}

const ENDPOINT_SLICE: &[Column] = &[
    NAME,
    col(
        "AddressType",
        "string",
        0,
        Doc::Field("io.k8s.api.discovery.v1.EndpointSlice", "addressType"),
    ),
    col(
        "Ports",
        "string",
        0,
        Doc::Field("io.k8s.api.discovery.v1.EndpointSlice", "ports"),
    ),
    col(
        "Endpoints",
        "string",
        0,
        Doc::Field("io.k8s.api.discovery.v1.EndpointSlice", "endpoints"),
    ),
    AGE,
];

/// Upstream `formatDiscoveryPorts`: each port's number, else its name, else `*`.
fn discovery_ports_text(slice: &Value) -> String {
    let ports = arr(slice, "/ports").iter().map(|p| match p.get("port") {
        Some(Value::Number(n)) => n.to_string(),
        _ => p
            .get("name")
            .and_then(Value::as_str)
            .map_or("*".into(), str::to_string),
    });
    list_with_more(ports.collect())
}

/// Upstream `formatDiscoveryEndpoints`: every address of every endpoint.
fn discovery_endpoints_text(slice: &Value) -> String {
    let addresses = arr(slice, "/endpoints")
        .iter()
        .flat_map(|e| arr(e, "/addresses"))
        .filter_map(Value::as_str)
        .map(str::to_string);
    list_with_more(addresses.collect())
}
