//! Finds every plugin's tests (`plugins/<name>/tests/*.rs`) and generates the modules that
//! `tests/plugins.rs` includes, so a new plugin's tests run without registering them anywhere.
//! Looked for again when anything in a plugin's directory changes, or the workspace's members do.
//!
//! The generated modules name the test files by absolute path, so they also record the checkout
//! they were made for: `tests/plugins.rs` refuses to compile them in another checkout sharing the
//! target directory rather than run that checkout's tests.

use std::fmt::Write as _;
use std::path::Path;

fn main() {
    let manifest_dir = env!("CARGO_MANIFEST_DIR");
    let plugins = Path::new(manifest_dir).join("../plugins").canonicalize().unwrap();
    println!("cargo::rerun-if-changed={}", plugins.join("Cargo.toml").display());
    let mut dirs: Vec<_> = std::fs::read_dir(&plugins).unwrap().filter_map(|e| Some(e.ok()?.path())).collect();
    dirs.sort();
    let mut generated =
        format!("/// The checkout these modules were generated in.\nconst GENERATED_IN: &str = {manifest_dir:?};\n");
    for dir in dirs.iter().filter(|dir| dir.join("plugin.toml").is_file()) {
        println!("cargo::rerun-if-changed={}", dir.display());
        let tests = dir.join("tests");
        if !tests.is_dir() {
            continue;
        }
        let mut files: Vec<_> = std::fs::read_dir(&tests)
            .unwrap()
            .filter_map(|e| Some(e.ok()?.path()))
            .filter(|path| path.extension().is_some_and(|ext| ext == "rs"))
            .collect();
        files.sort();
        let plugin = module_name(dir);
        writeln!(generated, "mod {plugin} {{").unwrap();
        for file in files {
            writeln!(generated, "    #[path = {:?}]\n    mod {};", file.display().to_string(), module_name(&file))
                .unwrap();
        }
        writeln!(generated, "}}").unwrap();
    }
    let out = Path::new(&std::env::var("OUT_DIR").unwrap()).join("plugin_tests.rs");
    std::fs::write(out, generated).unwrap();
}

/// A file or directory name as a Rust module name (`send-email` → `send_email`).
fn module_name(path: &Path) -> String {
    path.file_stem().unwrap().to_string_lossy().replace('-', "_")
}
