//! One module per served kind, holding everything that is special about it: the typed
//! decode (k8s-openapi's type), defaults, validation, what create resets, the fields a
//! field selector may use, the Table columns `kubectl get` prints, and the OpenAPI schema.
//! Upstream keeps the same knowledge in each kind's `pkg/registry/<group>/<kind>` strategy,
//! `pkg/apis/<group>/v1/defaults.go`, `pkg/apis/<group>/validation` and
//! `pkg/printers/internalversion/printers.go`.
//!
//! A kind is a [`Kind`] implementation; the resource table ([`crate::resource`]) gives each
//! row its `Kind`, and the generic code (strategy, table, OpenAPI) asks it. Every method has
//! a default that fits a kind with nothing special (no defaults, no validation beyond the
//! name, `NAME`/`AGE` columns), so a kind implements only what it needs.

use schemars::JsonSchema;
use schemars::generate::SchemaGenerator;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::status::Cause;
use crate::table::{self, Column};

pub mod apiextensions;
pub mod apps;
pub mod autoscaling;
pub mod batch;
pub mod certificates;
pub mod coordination;
pub mod core;
pub mod discovery;
pub mod events;
pub mod networking;
pub mod policy;
pub mod rbac;
pub mod scheduling;
pub mod storage;
#[cfg(test)]
pub(crate) mod testing;

/// What is special about one kind. Implementations are stateless values (built-in kinds) or
/// built from run-time data (custom resources), and live for the whole process.
pub trait Kind: Send + Sync {
    /// Decode `object` as the kind's real type and encode it back: mistyped fields fail
    /// (the message says which), unknown fields are dropped.
    fn roundtrip(&self, object: &Value) -> Result<Value, String>;

    /// Register the kind's type with an OpenAPI schema generator; its schema name
    /// (`io.k8s.api.core.v1.Pod`), None for a kind without a schema.
    fn schema(&self, generator: &mut SchemaGenerator) -> Option<String>;

    /// Rewrite the object before the typed decode, for fields the wire format writes more
    /// leniently than the type reads (Go's base64). `None` when there is nothing to rewrite;
    /// the error says what is wrong, naming the field.
    fn before_decode(&self, _object: &Value) -> Result<Option<Value>, String> {
        Ok(None)
    }

    /// Maps of name → resource quantity the object holds (container resources, node
    /// capacity), checked after decoding as upstream's decoder checks them.
    fn quantity_maps<'a>(&self, _object: &'a Value) -> Vec<&'a Value> {
        Vec::new()
    }

    /// Fields `?fieldSelector=` may use (upstream's field label conversions).
    fn selectable_fields(&self) -> &'static [&'static str] {
        &["metadata.name", "metadata.namespace"]
    }

    /// Whether `metadata.generation` counts spec changes (what `observedGeneration` follows).
    fn tracks_generation(&self) -> bool {
        false
    }

    /// What a create resets: status is the system's to write.
    fn prepare_for_create(&self, _object: &mut Map<String, Value>) {}

    /// Fill in what the user left out, as upstream's `SetDefaults_*` do.
    fn apply_defaults(&self, _object: &mut Value) {}

    /// Whether names must be RFC 1123 labels (else DNS subdomains).
    fn name_is_dns_label(&self) -> bool {
        false
    }

    /// Add the problems of an object about to be stored (after defaults) to `causes`, with
    /// field paths; `old` is the stored object on update. Name and labels are checked by
    /// the caller.
    fn validate(&self, _object: &Value, _old: Option<&Value>, _causes: &mut Vec<Cause>) {}

    /// The Table columns, as upstream's printer declares them.
    fn columns(&self) -> &[Column] {
        table::GENERIC
    }

    /// One Table row's cells (one per column) and its row conditions.
    fn row(&self, object: &Value, now: jiff::Timestamp) -> (Vec<Value>, Option<Value>) {
        (table::name_and_age(object, now).to_vec(), None)
    }

    /// Whether a DELETE that removes the object answers with the object rather than a
    /// Success `Status`: upstream's registries that set `ReturnDeletedObject: true` (each
    /// kind's `pkg/registry/<group>/<kind>/storage/storage.go`). Typed clients depend on
    /// it: the Python client parses `delete_namespaced_service` as a `V1Service`.
    fn returns_deleted_object(&self) -> bool {
        false
    }

    /// Warnings about this object in particular (a part of it Podium does not act on),
    /// sent with its create or update.
    fn warnings(&self, _object: &Value) -> Vec<String> {
        Vec::new()
    }

    /// The stored form of an object of this version, for a version that shares storage
    /// with another (`autoscaling/v1` HPAs are stored as `v2`, `events.k8s.io/v1` Events as
    /// core Events), as upstream's conversion to the storage version.
    fn to_storage(&self, object: Value) -> Value {
        object
    }

    /// This version's form of a stored object: the inverse of [`Kind::to_storage`].
    fn from_storage(&self, stored: Value) -> Value {
        stored
    }

    /// Finalizers a DELETE adds, so that the object stays (terminating) until a controller
    /// has done its part and removed them (a CRD's objects are deleted first).
    fn finalizers_on_delete(&self) -> &'static [&'static str] {
        &[]
    }

    /// How the list at a field path merges under server-side apply, when the kind says so
    /// itself (a custom resource's schema); None: the built-in patch tags decide.
    fn list_type(&self, _path: &[&str]) -> Option<podium_patch::fields::ListType> {
        None
    }

    /// Whether strategic merge patches apply (they need the kind's Go type's patch tags;
    /// upstream answers 415 for custom resources).
    fn accepts_strategic_merge_patch(&self) -> bool {
        true
    }

    /// The API group whose name prefixes the storage keys (`/registry/<group>/<plural>/`),
    /// as upstream keys custom resources; None for built-in kinds (`/registry/<plural>/`).
    fn storage_group(&self) -> Option<&str> {
        None
    }

    /// Where `/scale` reads and writes replicas, for kinds whose scale is not upstream's
    /// built-in one (`.spec.replicas`, `.status.replicas`, `.spec.selector`).
    fn scale_paths(&self) -> Option<ScalePaths<'_>> {
        None
    }

    /// What Podium does not act on yet for objects of this kind, said in a `Warning:` on
    /// every create and update (e.g. no controller runs them). None when all is acted on.
    fn not_acted_on(&self) -> Option<&'static str> {
        None
    }
}

/// JSON pointers of a custom `/scale`: replicas asked and seen, and the label selector
/// (a string, in `kubectl get` form) if the kind has one.
pub struct ScalePaths<'a> {
    pub spec_replicas: &'a str,
    pub status_replicas: &'a str,
    pub label_selector: Option<&'a str>,
}

/// Decode as `T` and encode back.
pub(crate) fn roundtrip<T: DeserializeOwned + Serialize>(object: &Value) -> Result<Value, String> {
    let typed: T = serde_json::from_value(object.clone()).map_err(|e| e.to_string())?;
    serde_json::to_value(typed).map_err(|e| e.to_string())
}

/// Register `T` with a generator; its schema name.
pub(crate) fn schema_of<T: JsonSchema>(generator: &mut SchemaGenerator) -> Option<String> {
    generator.subschema_for::<T>();
    Some(T::schema_name().to_string())
}

/// The two [`Kind`] methods that name the kind's k8s-openapi type.
macro_rules! typed_as {
    ($type:ty) => {
        fn roundtrip(&self, object: &serde_json::Value) -> Result<serde_json::Value, String> {
            crate::kinds::roundtrip::<$type>(object)
        }
        fn schema(&self, generator: &mut schemars::generate::SchemaGenerator) -> Option<String> {
            crate::kinds::schema_of::<$type>(generator)
        }
    };
}
pub(crate) use typed_as;

/// A kind with no type and nothing special: objects pass as they are. For tests, and a
/// base for kinds whose shape is only known at run time.
pub struct Untyped;

impl Kind for Untyped {
    fn roundtrip(&self, object: &Value) -> Result<Value, String> {
        Ok(object.clone())
    }
    fn schema(&self, _generator: &mut SchemaGenerator) -> Option<String> {
        None
    }
}
