//! ConfigMaps (`v1`): `binaryData` read as Go's base64 reads it; upstream's `printConfigMap`.

use serde_json::{Map, Value, json};

use crate::kinds::{Kind, typed_as};
use crate::table::{AGE, Column, Doc, NAME, col, name_and_age};

pub struct ConfigMap;

impl Kind for ConfigMap {
    typed_as!(k8s_openapi::api::core::v1::ConfigMap);

    fn before_decode(&self, object: &Value) -> Result<Option<Value>, String> {
        crate::kinds::core::secret::byte_fields("binaryData", false, object)
    }

    fn columns(&self) -> &[Column] {
        CONFIG_MAP
    }

    fn row(&self, o: &Value, now: jiff::Timestamp) -> (Vec<Value>, Option<Value>) {
        let [name, age] = name_and_age(o, now);
        let len = |field: &str| o.get(field).and_then(Value::as_object).map_or(0, Map::len);
        (
            vec![name, json!(len("data") + len("binaryData")), age],
            None,
        )
    }
}

const CONFIG_MAP: &[Column] = &[
    NAME,
    col(
        "Data",
        "string",
        0,
        Doc::Field("io.k8s.api.core.v1.ConfigMap", "data"),
    ),
    AGE,
];
