//! `apiextensions.k8s.io/v1`: CustomResourceDefinitions, and the kinds they define.

pub mod custom_resource;
pub mod custom_resource_definition;
pub mod schema;
