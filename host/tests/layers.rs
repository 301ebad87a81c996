//! The host's layers import downward only: every `crate::…` path in `src/` must name a module in
//! a lower layer than the file's own (or its own module). Keeps the map in the README true.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The layers, lowest first. Modules in one group may not import each other.
const LAYERS: &[&[&str]] = &[
    // The `autoflow-spec` crate, re-exported: it depends on nothing in the host.
    &["spec"],
    &["private_fs", "telemetry"],
    &["config", "contract"],
    &["db"],
    &["services"],
    &["runtime"],
    &["capabilities"],
    &["plugins"],
    &["tasks"],
    &["http"],
    &["startup", "cli"],
    &["admin_client", "user_commands"],
];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|group| group.contains(&module))
}

fn rust_files(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, found);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            found.push(path);
        }
    }
}

/// The top-level module a file belongs to (`None` for the crate roots).
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let relative = file.strip_prefix(src).unwrap();
    let first = relative.components().next()?.as_os_str().to_string_lossy().into_owned();
    let module = first.strip_suffix(".rs").unwrap_or(&first).to_owned();
    (module != "lib" && module != "main").then_some(module)
}

/// The top-level modules `code` names through `crate::` paths, comments aside.
fn imports(code: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for line in code.lines().filter(|line| !line.trim_start().starts_with("//")) {
        for (at, _) in line.match_indices("crate::") {
            let preceded_by_ident = line[..at].chars().next_back().is_some_and(|c| c.is_alphanumeric() || c == '_');
            if preceded_by_ident {
                continue;
            }
            let rest = &line[at + "crate::".len()..];
            let name: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
            if !name.is_empty() {
                found.insert(name);
            }
        }
    }
    found
}

#[test]
fn host_modules_import_only_lower_layers() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    let mut violations = Vec::new();
    for file in &files {
        let Some(module) = module_of(&src, file) else { continue };
        let Some(layer) = layer_of(&module) else {
            violations.push(format!("{}: module `{module}` is in no layer of this test", file.display()));
            continue;
        };
        for imported in imports(&std::fs::read_to_string(file).unwrap()) {
            if imported == module {
                continue;
            }
            match layer_of(&imported) {
                Some(target) if target < layer => {}
                Some(_) => violations.push(format!(
                    "{}: `{module}` imports `crate::{imported}`, which is not in a lower layer",
                    file.strip_prefix(&src).unwrap().display()
                )),
                None => violations.push(format!("{}: `crate::{imported}` is in no layer", file.display())),
            }
        }
    }
    assert!(violations.is_empty(), "layering violations:\n  {}", violations.join("\n  "));
}

#[test]
fn the_import_scan_sees_paths_and_skips_comments() {
    let code = "use crate::db::Database;\n/// See [`crate::http`].\nlet x = $crate::plugins::X;\nmy_crate::tasks::Y;";
    assert_eq!(imports(code), BTreeSet::from(["db".to_owned(), "plugins".to_owned()]));
}
