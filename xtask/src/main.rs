//! Project automation, run as `cargo xtask <task>`:
//! `build-plugins` builds every plugin component and lays it out where the host looks,
//! `run` builds plugins then serves them, `test` builds plugins then runs every test.

mod plugins;
#[allow(dead_code, reason = "the build tool publishes but never unpublishes")]
#[path = "../../host/src/plugins/publish.rs"]
mod publish;

use std::path::PathBuf;
use std::process::{Command, ExitCode};

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "Autoflow project tasks")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Build every plugin under plugins/ for wasm32-wasip2 into dist/plugins (test plugins into dist/test-plugins).
    BuildPlugins {
        /// Optimised, size-reduced components.
        #[arg(long)]
        release: bool,
        /// Keep running and rebuild whenever plugin sources (or the WIT contract) change; a host
        /// running with `cargo xtask run` picks each new build up by itself.
        #[arg(long)]
        watch: bool,
    },
    /// Build the plugins, then run `autoflow serve` with them (embedded database unless DATABASE_URL is set).
    Run {
        /// Build host and plugins with optimisations.
        #[arg(long)]
        release: bool,
        /// Extra arguments for `autoflow serve`, after `--`.
        #[arg(last = true)]
        serve_args: Vec<String>,
    },
    /// Build the plugins, then run every test: on the embedded backend, and on PostgreSQL too when DATABASE_URL is set.
    Test,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.task {
        Task::BuildPlugins { release, watch: false } => plugins::build_all(&repo_root(), release),
        Task::BuildPlugins { release, watch: true } => plugins::watch(&repo_root(), release),
        Task::Run { release, serve_args } => run(release, &serve_args),
        Task::Test => test(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("xtask: error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn repo_root() -> PathBuf {
    // `cargo run` sets the variable for the process too. Prefer that value: a binary reused from a
    // shared target directory may have been compiled in another checkout.
    let manifest_dir =
        std::env::var_os("CARGO_MANIFEST_DIR").map_or_else(|| env!("CARGO_MANIFEST_DIR").into(), PathBuf::from);
    manifest_dir.parent().expect("xtask lives one level below the repository root").to_owned()
}

fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

fn run(release: bool, serve_args: &[String]) -> Result<()> {
    let root = repo_root();
    plugins::build_all(&root, release)?;
    let mut command = cargo();
    command.current_dir(&root).args(["run", "--package", "autoflow-host", "--bin", "autoflow"]);
    if release {
        command.arg("--release");
    }
    command.args(["--", "serve"]).args(serve_args);
    status(&mut command, "the host")
}

fn test() -> Result<()> {
    let root = repo_root();
    plugins::build_all(&root, false)?;

    eprintln!("xtask: running every test on the embedded backend (SQLite, no Redis)");
    let mut embedded = cargo();
    embedded.current_dir(&root).args(["test", "--workspace"]).env_remove("DATABASE_URL").env_remove("REDIS_URL");
    status(&mut embedded, "tests on the embedded backend")?;

    match std::env::var("DATABASE_URL") {
        Ok(url) if !url.is_empty() => {
            eprintln!(
                "xtask: running the host's behavioural suite on DATABASE_URL (PostgreSQL), with REDIS_URL if set"
            );
            let mut postgres = cargo();
            postgres.current_dir(&root).args(["test", "--package", "autoflow-host", "--test", "api"]);
            status(&mut postgres, "tests on PostgreSQL")
        }
        _ => {
            eprintln!("xtask: DATABASE_URL is not set: the PostgreSQL run of the suite was skipped");
            Ok(())
        }
    }
}

/// Runs a command to completion, failing with `what` named if it does not succeed.
fn status(command: &mut Command, what: &str) -> Result<()> {
    let status = command.status().with_context(|| format!("could not start {what}"))?;
    if !status.success() {
        bail!("{what} failed ({status})");
    }
    Ok(())
}
