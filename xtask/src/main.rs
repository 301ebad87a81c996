//! Project automation, run as `cargo xtask <task>`:
//! `build-plugins` builds every plugin component and lays it out where the host looks,
//! `run` builds plugins then serves them, `test` builds plugins then runs every test, `lint` checks
//! formatting and clippy in both workspaces and builds every bench, `bench` runs the benches and
//! writes `bench/report.md`.

mod browser;
mod python;

use std::path::PathBuf;
use std::process::{Command, ExitCode};

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use xtask::{bench, plugins, scaffold};

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
    /// Build the plugins, then run every test: the SDK's, the host's on the embedded backend, and
    /// the host's on PostgreSQL (+ Redis) too when DATABASE_URL is set. Under CI=true both
    /// DATABASE_URL and REDIS_URL are required.
    Test,
    /// Create a working plugin under plugins/<NAME>: manifest, Cargo.toml, handler and a test
    /// against a real host; add it to the plugins workspace.
    NewPlugin {
        /// The plugin's name: 1-63 characters of a-z, 0-9 and '-', starting with a letter.
        name: String,
        /// A task plugin (one background task) instead of a feature (HTTP routes).
        #[arg(long)]
        task: bool,
    },
    /// Build the plugins (release), run every bench in release and write bench/report.md,
    /// bench/report.json and the README's performance table. PostgreSQL and Redis are measured too
    /// when DATABASE_URL and REDIS_URL are set.
    Bench {
        /// Only write bench/report.md and the README's table again from bench/report.json.
        #[arg(long)]
        render_only: bool,
    },
    /// Check formatting and `cargo clippy --all-targets -- -D warnings` in the host and plugins
    /// workspaces, and build every bench so none can rot.
    Lint,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.task {
        Task::BuildPlugins { release, watch: false } => plugins::build_all(&repo_root(), release),
        Task::BuildPlugins { release, watch: true } => plugins::watch(&repo_root(), release),
        Task::Run { release, serve_args } => run(release, &serve_args),
        Task::Test => test(),
        Task::NewPlugin { name, task } => new_plugin(&name, task),
        Task::Lint => lint(),
        Task::Bench { render_only: true } => bench::render(&repo_root()),
        Task::Bench { render_only: false } => {
            plugins::build_all(&repo_root(), true).and_then(|()| bench::run(&repo_root(), &mut cargo))
        }
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

/// Where cargo puts build output for this checkout.
fn target_dir(root: &std::path::Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from)
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

/// Whether this runs under CI, where a missing service fails the run instead of skipping.
fn under_ci() -> bool {
    std::env::var("CI").is_ok_and(|ci| !ci.is_empty() && ci != "false" && ci != "0")
}

fn service_url(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|url| !url.is_empty())
}

fn test() -> Result<()> {
    let root = repo_root();
    let (database, redis) = (service_url("DATABASE_URL"), service_url("REDIS_URL"));
    if under_ci() && (database.is_none() || redis.is_none()) {
        bail!("CI=true needs both DATABASE_URL and REDIS_URL: the production-backend suite must run, not be skipped");
    }
    plugins::build_all(&root, false)?;
    let python = python::test_python(&root)?;
    let browser = browser::test_browser(&root, under_ci())?;

    eprintln!("xtask: running the SDK's unit tests");
    let mut sdk = cargo();
    sdk.current_dir(root.join("plugins")).args(["test", "--package", "autoflow-sdk", "--target", &host_target()?]);
    status(&mut sdk, "the SDK's tests")?;

    eprintln!("xtask: running every test on the embedded backend (SQLite, no Redis)");
    let mut embedded = cargo();
    embedded.current_dir(&root).args(["test", "--workspace"]).env_remove("DATABASE_URL").env_remove("REDIS_URL");
    embedded.env("AUTOFLOW_TEST_PASS", "embedded").env("AUTOFLOW_TEST_PYTHON", &python);
    browser.set_env(&mut embedded);
    status(&mut embedded, "tests on the embedded backend")?;

    if database.is_none() {
        eprintln!("xtask: DATABASE_URL is not set: the PostgreSQL run of the suite was skipped");
        return Ok(());
    }
    eprintln!("xtask: running the host's behavioural suite on DATABASE_URL (PostgreSQL), with REDIS_URL if set");
    let mut postgres = cargo();
    postgres.current_dir(&root).args(["test", "--package", "autoflow-host", "--test", "api"]);
    postgres.env("AUTOFLOW_TEST_PASS", "production").env("AUTOFLOW_TEST_PYTHON", &python);
    browser.set_env(&mut postgres);
    status(&mut postgres, "tests on PostgreSQL")
}

fn new_plugin(name: &str, task: bool) -> Result<()> {
    let kind = if task { scaffold::Kind::Task } else { scaffold::Kind::Feature };
    let created = scaffold::new_plugin(&repo_root(), name, kind)?;
    eprintln!("xtask: created plugins/{name} and added it to plugins/Cargo.toml:");
    for file in created.files {
        eprintln!("  {file}");
    }
    eprintln!("next: `cargo xtask run` serves it (or `cargo xtask build-plugins --watch` beside a running host), then");
    eprintln!("  {}", created.try_it);
    eprintln!("and `cargo xtask test` runs its test (plugins/{name}/tests/) against a real host.");
    Ok(())
}

fn lint() -> Result<()> {
    let root = repo_root();
    // Clippy in the plugins workspace checks wasm code: a fresh machine needs the target first.
    plugins::ensure_wasm_target()?;
    for workspace in [root.clone(), root.join("plugins")] {
        let name = workspace.display().to_string();
        status(cargo().current_dir(&workspace).args(["fmt", "--all", "--check"]), &format!("cargo fmt in {name}"))?;
        let clippy = ["clippy", "--all-targets", "--", "-D", "warnings"];
        status(cargo().current_dir(&workspace).args(clippy), &format!("cargo clippy in {name}"))?;
    }
    // Plugins' tests (compiled by the testkit) and the new-plugin templates are in no cargo target's
    // module tree, so `cargo fmt` does not see them.
    let mut loose = Vec::new();
    for (dir, under) in [("plugins", "tests"), ("xtask/templates", "")] {
        for entry in std::fs::read_dir(root.join(dir))? {
            let dir = entry?.path().join(under);
            for file in std::fs::read_dir(&dir).into_iter().flatten() {
                let file = file?.path();
                if file.extension().is_some_and(|ext| ext == "rs") {
                    loose.push(file);
                }
            }
        }
    }
    status(
        Command::new("rustfmt").args(["--edition", "2024", "--check"]).args(&loose),
        "rustfmt on plugin tests and templates",
    )?;
    let benches = ["build", "--package", "autoflow-host", "--benches"];
    status(cargo().current_dir(&root).args(benches), "building the benches")
}

/// The target triple of this machine, for the SDK's tests (the plugins workspace builds wasm).
fn host_target() -> Result<String> {
    let output = Command::new("rustc").arg("-vV").output().context("could not run rustc -vV")?;
    let text = String::from_utf8_lossy(&output.stdout);
    text.lines()
        .find_map(|line| line.strip_prefix("host: "))
        .map(str::to_owned)
        .context("rustc -vV names no host target")
}

/// Runs a command to completion, failing with `what` named if it does not succeed.
fn status(command: &mut Command, what: &str) -> Result<()> {
    let status = command.status().with_context(|| format!("could not start {what}"))?;
    if !status.success() {
        bail!("{what} failed ({status})");
    }
    Ok(())
}
