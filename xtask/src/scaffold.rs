//! `cargo xtask new-plugin <name> [--task]`: a working plugin to start from — manifest, Cargo.toml,
//! handler and a test against a real host — added to the plugins workspace. It builds, loads and
//! answers as created; the templates live in `xtask/templates/`.

use std::fs;
use std::path::Path;

use anyhow::{Context, Result, bail};
use autoflow_spec::PluginName;

/// What the plugin does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// HTTP routes over a records collection of each user's own items.
    Feature,
    /// One background task.
    Task,
}

/// What [`new_plugin`] made.
pub struct Created {
    /// The files written, relative to the repository root.
    pub files: Vec<String>,
    /// A command that shows the plugin answering once it is served.
    pub try_it: String,
}

const CARGO_TOML: &str = include_str!("../templates/Cargo.toml");
const FEATURE: [&str; 3] = [
    include_str!("../templates/feature/plugin.toml"),
    include_str!("../templates/feature/lib.rs"),
    include_str!("../templates/feature/test.rs"),
];
const TASK: [&str; 3] = [
    include_str!("../templates/task/plugin.toml"),
    include_str!("../templates/task/lib.rs"),
    include_str!("../templates/task/test.rs"),
];

/// Creates plugin `name` of `kind` under `root/plugins/` and adds it to the plugins workspace.
pub fn new_plugin(root: &Path, name: &str, kind: Kind) -> Result<Created> {
    PluginName::parse(name).map_err(|reason| anyhow::anyhow!("{reason}; e.g. `bookmarks` or `send-invoice`"))?;
    let plugins = root.join("plugins");
    let dir = plugins.join(name);
    if dir.exists() {
        bail!("plugins/{name} already exists: choose another name, or remove the directory first");
    }
    let workspace = plugins.join("Cargo.toml");
    let members = fs::read_to_string(&workspace).with_context(|| format!("reading {}", workspace.display()))?;
    let members = with_member(&members, name)?;

    let ([manifest, code, test], description) = match kind {
        Kind::Feature => (FEATURE, "Each user's own items."),
        Kind::Task => (TASK, "One background task."),
    };
    let fill = |template: &str| template.replace("__NAME__", name).replace("__DESCRIPTION__", description);
    let files = [
        ("Cargo.toml".to_owned(), fill(CARGO_TOML)),
        ("plugin.toml".to_owned(), fill(manifest)),
        ("src/lib.rs".to_owned(), fill(code)),
        ("tests/api.rs".to_owned(), fill(test)),
    ];
    for (file, text) in &files {
        let path = dir.join(file);
        fs::create_dir_all(path.parent().expect("a file in the plugin's directory"))?;
        fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    fs::write(&workspace, members).with_context(|| format!("adding {name} to {}", workspace.display()))?;

    let sign_in = "TOKEN=$(curl -s localhost:3000/auth/login -H 'content-type: application/json' \
                   -d '{\"email\":\"…\",\"password\":\"…\"}' | jq -r .token)   # a user from `autoflow users create`";
    let try_it = match kind {
        Kind::Feature => format!(
            "{sign_in}\n  curl -s localhost:3000/api/{name} -H \"authorization: Bearer $TOKEN\" -H 'content-type: \
             application/json' -d '{{\"text\":\"first\"}}'"
        ),
        Kind::Task => format!(
            "{sign_in}   (with the write:tasks permission)\n  curl -s localhost:3000/api/tasks -H \"authorization: \
             Bearer $TOKEN\" -H 'content-type: application/json' -d '{{\"name\":\"{name}\",\"payload\":{{\"message\":\"hi\"}}}}'"
        ),
    };
    let mut written: Vec<String> = files.iter().map(|(file, _)| format!("plugins/{name}/{file}")).collect();
    written.push("plugins/Cargo.toml (workspace members)".to_owned());
    Ok(Created { files: written, try_it })
}

/// The plugins workspace manifest `text` with `name` added to `members = [...]`.
fn with_member(text: &str, name: &str) -> Result<String> {
    let mut table: toml::Table = toml::from_str(text).context("plugins/Cargo.toml does not parse")?;
    let members = table
        .get_mut("workspace")
        .and_then(|workspace| workspace.get_mut("members"))
        .and_then(toml::Value::as_array_mut)
        .context("plugins/Cargo.toml has no [workspace] members list")?;
    if members.iter().any(|member| member.as_str() == Some(name)) {
        bail!("plugins/Cargo.toml already lists `{name}` as a member");
    }
    // Edit the line itself so the file's comments and layout stay as written.
    let line = text
        .lines()
        .find(|line| line.trim_start().starts_with("members") && line.trim_end().ends_with(']'))
        .context("plugins/Cargo.toml's members list is not on one line: add the plugin to it by hand")?;
    let added = format!("{}, \"{name}\"]", line.trim_end().strip_suffix(']').expect("checked above"));
    members.push(name.into());
    Ok(text.replacen(line, &added, 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_member_is_added_to_the_one_line_list_keeping_the_rest() {
        let text =
            "# comment\n[workspace]\nmembers = [\"sdk\", \"hello\"]\n\n[workspace.package]\nedition = \"2024\"\n";
        let added = with_member(text, "bookmarks").unwrap();
        assert_eq!(added, text.replace("\"hello\"]", "\"hello\", \"bookmarks\"]"));
        let error = with_member(&added, "bookmarks").unwrap_err().to_string();
        assert!(error.contains("already lists `bookmarks`"), "{error}");
    }

    #[test]
    fn a_bad_name_or_an_existing_plugin_is_refused_with_the_fix() {
        let root = tempfile::TempDir::new().unwrap();
        fs::create_dir_all(root.path().join("plugins/notes")).unwrap();
        fs::write(root.path().join("plugins/Cargo.toml"), "[workspace]\nmembers = [\"notes\"]\n").unwrap();

        let bad = new_plugin(root.path(), "Bookmarks", Kind::Feature).err().unwrap().to_string();
        assert!(
            bad.contains("must be 1-63 characters of a-z, 0-9 and '-'") && bad.contains("e.g. `bookmarks`"),
            "{bad}"
        );
        let taken = new_plugin(root.path(), "notes", Kind::Task).err().unwrap().to_string();
        assert_eq!(taken, "plugins/notes already exists: choose another name, or remove the directory first");
    }
}
