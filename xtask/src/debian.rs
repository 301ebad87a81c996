//! Installing a Debian package a task needs (Chromium for the console's browser test, wrk for the
//! benches), with `apt-get`, reading the package lists first only if the install fails without.

use std::process::Command;

use anyhow::{Result, bail};

/// Whether `program` runs (`program --version`, whatever it answers).
pub fn has(program: &str) -> bool {
    Command::new(program).arg("--version").output().is_ok()
}

/// `apt-get install --yes --no-install-recommends <package>`, after `apt-get update` if the first
/// try fails (a fresh machine may not have read the package lists yet).
pub fn install(package: &str) -> Result<()> {
    eprintln!("xtask: installing Debian's `{package}`");
    let install = || {
        Command::new("apt-get")
            .args(["install", "--yes", "--no-install-recommends", package])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .is_ok_and(|status| status.success())
    };
    if install() {
        return Ok(());
    }
    let updated = Command::new("apt-get").arg("update").status().is_ok_and(|status| status.success());
    if !(updated && install()) {
        bail!("`apt-get install {package}` failed: install Debian's `{package}` package (as root)");
    }
    Ok(())
}
