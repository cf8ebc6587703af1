//! Linux host operations.
