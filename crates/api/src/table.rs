//! `meta.k8s.io/v1` Table rendering (helper in progress).
