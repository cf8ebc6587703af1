//! Kubernetes API machinery with no I/O.
//!
//! * [`resource`]: the table of served resources, read by discovery, routing and OpenAPI.
//! * [`kinds`]: one module per kind, with everything special about it.
//! * [`strategy`]: per-kind decoding, defaults, validation and field selectors.
//! * [`selector`]: label and field selector parsing and matching.
//! * [`status`]: `metav1.Status` errors.
//! * [`quantity`]: resource quantities (`100m`, `128Mi`) as numbers.
//! * [`table`]: `meta.k8s.io/v1` Table rendering, the columns `kubectl get` prints.
//! * [`openapi`]: OpenAPI v3 documents generated from the k8s-openapi types.
//! * [`base64`]: `[]byte` fields as Go's `encoding/json` reads and writes them.

pub mod base64;
pub mod kinds;
pub mod openapi;
pub mod quantity;
pub mod resource;
pub mod selector;
pub mod status;
pub mod strategy;
pub mod table;
