//! The project's automation as a library: building and publishing plugins, reading what a build's
//! code describes, and scaffolding a new plugin. `src/main.rs` is the `cargo xtask` command line;
//! the testkit's tests use this library to build a scaffolded plugin the way an author would.

pub mod bench;
pub mod debian;
pub mod describe;
pub mod plugins;
pub mod scaffold;
