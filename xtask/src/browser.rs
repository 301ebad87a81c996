//! The browser the console's end-to-end test drives: Debian's Chromium (`apt-get install
//! chromium` when it is missing and this runs as root), and playwright-core from
//! `host/tests/console/package-lock.json`, installed with `npm ci` beside the build output. Nothing
//! is downloaded by Playwright itself.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};

use crate::{status, target_dir};

/// Where Debian's package puts Chromium; `AUTOFLOW_CHROMIUM` names another.
const DEBIAN_CHROMIUM: &str = "/usr/bin/chromium";

/// What the console test needs, or nothing (it then says it skipped).
pub struct BrowserTools {
    found: Option<(PathBuf, PathBuf)>,
}

impl BrowserTools {
    /// Names the tools to a test run: `AUTOFLOW_TEST_NODE_MODULES` and `AUTOFLOW_TEST_CHROMIUM`.
    pub fn set_env(&self, command: &mut Command) {
        if let Some((node_modules, chromium)) = &self.found {
            command.env("AUTOFLOW_TEST_NODE_MODULES", node_modules).env("AUTOFLOW_TEST_CHROMIUM", chromium);
        }
    }
}

/// Installs what is missing. Under CI a tool that cannot be installed fails the run; elsewhere
/// the console test is skipped, saying why.
pub fn test_browser(root: &Path, required: bool) -> Result<BrowserTools> {
    match chromium().and_then(|chromium| Ok((node_modules(root)?, chromium))) {
        Ok(found) => Ok(BrowserTools { found: Some(found) }),
        Err(error) if required => Err(error),
        Err(error) => {
            eprintln!("xtask: the console's browser test will be skipped: {error:#}");
            Ok(BrowserTools { found: None })
        }
    }
}

fn chromium() -> Result<PathBuf> {
    if let Some(path) = std::env::var_os("AUTOFLOW_CHROMIUM").filter(|path| !path.is_empty()) {
        return Ok(path.into());
    }
    let path = PathBuf::from(DEBIAN_CHROMIUM);
    if path.is_file() {
        return Ok(path);
    }
    xtask::debian::install("chromium")
        .context("the console's browser test needs Chromium; or name one in AUTOFLOW_CHROMIUM")?;
    Ok(path)
}

/// `node_modules` with playwright-core, reinstalled only when the lock file changed.
fn node_modules(root: &Path) -> Result<PathBuf> {
    let source = root.join("host/tests/console");
    let lock = std::fs::read_to_string(source.join("package-lock.json"))
        .with_context(|| format!("cannot read {}", source.join("package-lock.json").display()))?;
    let dir = target_dir(root).join("test-node");
    let modules = dir.join("node_modules");
    let stamp = dir.join("installed-package-lock.json");
    if modules.join("playwright-core").is_dir()
        && std::fs::read_to_string(&stamp).is_ok_and(|installed| installed == lock)
    {
        return Ok(modules);
    }
    eprintln!("xtask: installing playwright-core for the console's browser test into {}", dir.display());
    std::fs::create_dir_all(&dir)?;
    for file in ["package.json", "package-lock.json"] {
        std::fs::copy(source.join(file), dir.join(file)).with_context(|| format!("copying {file}"))?;
    }
    let npm = ["ci", "--no-audit", "--no-fund", "--ignore-scripts"];
    status(Command::new("npm").args(npm).current_dir(&dir), "npm ci (host/tests/console/package-lock.json)")?;
    std::fs::write(&stamp, lock).with_context(|| format!("cannot write {}", stamp.display()))?;
    Ok(modules)
}
