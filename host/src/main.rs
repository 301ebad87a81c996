//! The `autoflow` binary: parses the command line and hands over to the library.

use std::process::ExitCode;

use autoflow_host::admin_client;
use autoflow_host::cli::{Cli, Command, PluginsCommand, UsersCommand};
use autoflow_host::config::Config;
use autoflow_host::db::Database;
use autoflow_host::startup::{Application, Host, shutdown_signal};
use autoflow_host::{telemetry, user_commands};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse_layered();
    let otlp_endpoint = match &cli.command {
        Command::Serve(args) => args.otlp_endpoint.clone(),
        Command::Worker(args) => args.serve.otlp_endpoint.clone(),
        _ => None,
    };
    let exporter = telemetry::init(otlp_endpoint.as_deref());
    let result = run(cli.command).await;
    if let Err(error) = &result {
        tracing::error!("{error:#}");
    }
    if let Some(exporter) = exporter {
        // The SDK's exporter blocks while it sends the last spans.
        let _ = tokio::task::spawn_blocking(move || exporter.shutdown()).await;
    }
    if result.is_ok() { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve(args) => {
            let app = Application::build(Config::from(*args)).await?;
            app.run_until_stopped(shutdown_signal()).await?;
        }
        Command::Worker(args) => {
            let config = Config::from(*args);
            anyhow::ensure!(config.workers.concurrency > 0, "--concurrency must be at least 1");
            Host::build(config).await?.run_until_stopped(shutdown_signal()).await;
        }
        Command::Migrate(args) => {
            let db = Database::connect(args.database_url.as_ref(), &args.data_dir).await?;
            db.migrate().await?;
            tracing::info!(database = %db.backend(), "migrations applied");
            db.close().await;
        }
        Command::Plugins(PluginsCommand::List(admin)) => print!("{}", admin_client::list(&admin).await?),
        Command::Plugins(PluginsCommand::Push { dir, admin }) => {
            println!("{}", admin_client::push(&dir, &admin).await?)
        }
        Command::Tasks(command) => println!("{}", admin_client::tasks(&command).await?.trim_end()),
        Command::Schedules(command) => println!("{}", admin_client::schedules(&command).await?.trim_end()),
        Command::Users(UsersCommand::Create { email, name, permissions, database }) => {
            let user = user_commands::create(email, name, permissions, &database).await?;
            println!("{}", serde_json::to_string_pretty(&user)?);
        }
    }
    Ok(())
}
