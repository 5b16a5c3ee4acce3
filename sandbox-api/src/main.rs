//! `sandbox-api`: the command line of the API server (the server is the library).
#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;
use sandbox_api::config::{ApiConfig, ConfigError, ServeArgs};
use sandbox_api::{pull, server};

/// AI Sandbox API server: an OpenAI API v1-compatible endpoint (chat completions,
/// completions, models) served by one local GGUF model through one queue.
///
/// Apps keep working by changing only their base URL (http://HOST:PORT/v1) and key.
/// Every option can also come from the environment variable shown, or from a TOML file
/// given with --config. GET /health tells the process is alive; GET /ready tells
/// whether the model answers yet (the port opens at once, while the model loads).
#[derive(Parser)]
#[command(version, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(clap::Subcommand)]
enum Command {
    /// Manage the model.
    Model {
        #[command(subcommand)]
        action: ModelCommand,
    },
    /// Print the configuration these flags, variables and file give, as a TOML file
    /// would say it (API keys hidden), and exit.
    Config {
        #[command(flatten)]
        args: ServeArgs,
    },
}

#[derive(clap::Subcommand)]
enum ModelCommand {
    /// Download the configured model into the Hugging Face cache (verified) and print
    /// its path; serving later starts without any network request.
    Pull {
        #[command(flatten)]
        args: ServeArgs,
        /// Also keep the progress (then the outcome, with a machine-readable error kind)
        /// as JSON in this file, replaced atomically about once a second.
        #[arg(long)]
        progress_file: Option<std::path::PathBuf>,
    },
}

fn invalid(e: &ConfigError) -> ExitCode {
    tracing::error!(error = %e, "invalid configuration");
    eprintln!("sandbox-api: {e}");
    ExitCode::from(2)
}

fn main() -> ExitCode {
    sandbox_core::config_file::init_logging("info,llama-cpp-2=warn");
    let cli = Cli::parse();
    match &cli.command {
        Some(Command::Model {
            action:
                ModelCommand::Pull {
                    args,
                    progress_file,
                },
        }) => match ApiConfig::load_unchecked(args) {
            Ok(cfg) => pull::run(&cfg, progress_file.as_deref()),
            Err(e) => invalid(&e),
        },
        Some(Command::Config { args }) => match ApiConfig::load_unchecked(args) {
            Ok(cfg) => {
                print!("{}", cfg.shown());
                ExitCode::SUCCESS
            }
            Err(e) => invalid(&e),
        },
        None => match ApiConfig::load(&cli.serve) {
            // Still one thread here, as process-wide settings need.
            Ok(cfg) => match sandbox_core::apply_process_settings(&cfg.engine)
                .map_err(std::io::Error::other)
                .and_then(|()| actix_web::rt::System::new().block_on(server::run(cfg)))
            {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!(error = %e, "server failed");
                    eprintln!("sandbox-api: {e}");
                    ExitCode::FAILURE
                }
            },
            Err(e) => invalid(&e),
        },
    }
}
