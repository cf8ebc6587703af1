//! OpenAPI v3 documents (helper in progress).
