//! The Python tools the tests use (`xtask/test-requirements.txt`), in a virtualenv of their own
//! beside the build output, made or brought up to date before the tests run.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};

use crate::{status, target_dir};

/// The virtualenv's interpreter with every requirement installed; reinstalls only when the
/// requirements file changed since the last install.
pub fn test_python(root: &Path) -> Result<PathBuf> {
    let requirements = root.join("xtask/test-requirements.txt");
    let wanted =
        std::fs::read_to_string(&requirements).with_context(|| format!("cannot read {}", requirements.display()))?;
    let venv = target_dir(root).join("test-venv");
    let python = venv.join("bin/python");
    let stamp = venv.join("installed-requirements.txt");
    if python.is_file() && std::fs::read_to_string(&stamp).is_ok_and(|installed| installed == wanted) {
        return Ok(python);
    }
    eprintln!("xtask: installing the tests' Python tools into {}", venv.display());
    let system = std::env::var_os("PYTHON").unwrap_or_else(|| "python3".into());
    status(
        Command::new(system).args(["-m", "venv"]).arg(&venv),
        "creating the tests' Python virtualenv (python3 -m venv)",
    )?;
    let install = [std::ffi::OsStr::new("-m"), "pip".as_ref(), "install".as_ref(), "--quiet".as_ref(), "-r".as_ref()];
    status(Command::new(&python).args(install).arg(&requirements), "installing xtask/test-requirements.txt with pip")?;
    std::fs::write(&stamp, wanted).with_context(|| format!("cannot write {}", stamp.display()))?;
    Ok(python)
}
