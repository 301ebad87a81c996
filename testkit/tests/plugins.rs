//! Every plugin's own tests (`plugins/<name>/tests/*.rs`), each against a real host started by
//! `autoflow_testkit::TestHost`. `build.rs` finds them.

include!(concat!(env!("OUT_DIR"), "/plugin_tests.rs"));
