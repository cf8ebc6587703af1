//! Link the `podium` binary as a fixed-address (non-PIE) executable.
//!
//! Why: a position-independent executable is relocated at every start, and its
//! relocated read-only data (`.data.rel.ro`: the protobuf schema, the kind and resource
//! tables, every `&'static str` inside a static) becomes private, dirty memory in each
//! process. Podium runs one shim process per container from this same binary, so every
//! shim paid for that copy (about 0.8 MB). Linked at a fixed address the pages stay
//! clean file-backed mappings shared by all of them. Kubernetes' own Go binaries are
//! non-PIE for the same reason; ASLR still randomises the heap, stacks, mmaps and
//! shared libraries.
//!
//! Only the final link of this binary changes: `-no-pie` in a global RUSTFLAGS would
//! rebuild every dependency for nothing.
fn main() {
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo:rustc-link-arg-bins=-no-pie");
    }
}
