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
    telemetry::init();
    match run(cli.command).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error:#}");
            ExitCode::FAILURE
        }
    }
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
