//! Every plugin's own tests (`plugins/<name>/tests/*.rs`), each against a real host started by
//! `autoflow_testkit::TestHost`. `build.rs` finds them.

include!(concat!(env!("OUT_DIR"), "/plugin_tests.rs"));

const _: () = assert!(
    same(GENERATED_IN, env!("CARGO_MANIFEST_DIR")),
    "the plugin test list was generated in another checkout sharing this target directory: run \
     `cargo clean -p autoflow-testkit` and build again"
);

/// String equality, at compile time.
const fn same(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}
