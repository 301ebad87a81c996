//! Publishing a plugin build into a plugins directory as one unit, so a host never pairs a
//! manifest with another build's component.
//!
//! The rule: each build lives in its own hidden directory `.<name>.<hash>/` holding `plugin.toml`
//! and `plugin.wasm`; `<name>` is a symlink to the current build, replaced atomically (a new link is
//! created beside it and renamed over it). The loader resolves the link once and reads both files
//! from the build it points at. The previous build is kept so a load that resolved the link just
//! before a swap still finds its files; older builds are removed. Publishing the build that is
//! already current changes nothing.
//!
//! `cargo xtask build-plugins` and the host's uploads both publish through this module, so the
//! build tool and the host follow one rule.

use std::io;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::manifest::{COMPONENT_FILE, MANIFEST_FILE};

/// Publishes `manifest` + `component` as plugin `name` under `plugins_dir` (created if missing);
/// returns the build dir.
pub fn publish(plugins_dir: &Path, name: &str, manifest: &[u8], component: &[u8]) -> io::Result<PathBuf> {
    let mut digest = Sha256::new();
    digest.update(manifest);
    digest.update(component);
    let build_name = format!(".{name}.{}", &hex::encode(digest.finalize())[..16]);
    let build_dir = plugins_dir.join(&build_name);
    let link = plugins_dir.join(name);
    let previous = std::fs::read_link(&link).ok();
    if previous.as_deref() == Some(Path::new(&build_name)) && build_dir.is_dir() {
        return Ok(build_dir);
    }
    if !build_dir.is_dir() {
        std::fs::create_dir_all(plugins_dir)?;
        let staging = plugins_dir.join(format!("{build_name}.staging-{}", uuid::Uuid::now_v7().simple()));
        std::fs::create_dir_all(&staging)?;
        std::fs::write(staging.join(MANIFEST_FILE), manifest)?;
        std::fs::write(staging.join(COMPONENT_FILE), component)?;
        std::fs::rename(&staging, &build_dir)?;
    }

    if link.is_dir() && previous.is_none() {
        // A plain directory from an older layout: move it aside once.
        std::fs::rename(&link, plugins_dir.join(format!(".{name}.replaced-{}", uuid::Uuid::now_v7().simple())))?;
    }
    let new_link = plugins_dir.join(format!(".{name}.link-{}", uuid::Uuid::now_v7().simple()));
    symlink_dir(Path::new(&build_name), &new_link)?;
    std::fs::rename(&new_link, &link)?;

    remove_old_builds(plugins_dir, name, &build_name, previous.as_deref());
    Ok(build_dir)
}

/// Removes the symlink of plugin `name` (its builds are cleaned up by the next publish).
pub fn unpublish(plugins_dir: &Path, name: &str) -> io::Result<()> {
    let link = plugins_dir.join(name);
    if std::fs::read_link(&link).is_ok() { std::fs::remove_file(link) } else { std::fs::remove_dir_all(link) }
}

/// Removes plugin `name` and every build of it, for a build tool whose source of the plugin is
/// gone (a host unpublishes instead, keeping builds a load may still be reading).
pub fn remove_plugin(plugins_dir: &Path, name: &str) -> io::Result<()> {
    unpublish(plugins_dir, name)?;
    remove_old_builds(plugins_dir, name, "", None);
    Ok(())
}

fn remove_old_builds(plugins_dir: &Path, name: &str, current: &str, previous: Option<&Path>) {
    let prefix = format!(".{name}.");
    let previous = previous.and_then(|p| p.file_name()).map(|n| n.to_string_lossy().into_owned());
    let Ok(entries) = std::fs::read_dir(plugins_dir) else { return };
    for entry in entries.flatten() {
        let file_name = entry.file_name().to_string_lossy().into_owned();
        let keep = file_name == current || Some(&file_name) == previous.as_ref();
        if file_name.starts_with(&prefix) && !keep {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

#[cfg(unix)]
fn symlink_dir(target: &Path, link: &Path) -> io::Result<()> {
    std::os::unix::fs::symlink(target, link)
}

#[cfg(windows)]
fn symlink_dir(target: &Path, link: &Path) -> io::Result<()> {
    std::os::windows::fs::symlink_dir(target, link)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publishing_swaps_the_link_and_keeps_only_current_and_previous_builds() {
        let dir = tempfile::TempDir::new().unwrap();
        for version in ["1", "2", "3"] {
            publish(dir.path(), "hello", version.as_bytes(), b"wasm").unwrap();
            let current = std::fs::read(dir.path().join("hello").join(MANIFEST_FILE)).unwrap();
            assert_eq!(current, version.as_bytes());
        }
        let builds = std::fs::read_dir(dir.path())
            .unwrap()
            .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().starts_with(".hello."))
            .count();
        assert_eq!(builds, 2, "current and previous build are kept");

        unpublish(dir.path(), "hello").unwrap();
        assert!(!dir.path().join("hello").exists());
    }

    #[test]
    fn publishing_the_current_build_again_changes_nothing() {
        let dir = tempfile::TempDir::new().unwrap();
        publish(dir.path(), "hello", b"1", b"wasm").unwrap();
        let second = publish(dir.path(), "hello", b"2", b"wasm").unwrap();
        let link_before = std::fs::read_link(dir.path().join("hello")).unwrap();

        let again = publish(dir.path(), "hello", b"2", b"wasm").unwrap();

        assert_eq!(again, second);
        assert_eq!(std::fs::read_link(dir.path().join("hello")).unwrap(), link_before);
        let builds = std::fs::read_dir(dir.path())
            .unwrap()
            .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().starts_with(".hello."))
            .count();
        assert_eq!(builds, 2, "the previous build is still kept for a load that resolved the old link");
    }

    #[test]
    fn publishing_creates_the_plugins_directory() {
        let dir = tempfile::TempDir::new().unwrap();
        let plugins = dir.path().join("not/yet/there");

        publish(&plugins, "hello", b"m", b"c").unwrap();

        assert_eq!(std::fs::read(plugins.join("hello").join(MANIFEST_FILE)).unwrap(), b"m");
    }

    #[test]
    fn a_plain_directory_is_replaced_by_the_first_publish() {
        let dir = tempfile::TempDir::new().unwrap();
        std::fs::create_dir_all(dir.path().join("hello")).unwrap();
        std::fs::write(dir.path().join("hello").join(MANIFEST_FILE), "old").unwrap();

        publish(dir.path(), "hello", b"new", b"wasm").unwrap();

        assert_eq!(std::fs::read(dir.path().join("hello").join(MANIFEST_FILE)).unwrap(), b"new");
    }
}
