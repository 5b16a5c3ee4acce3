//! `sandbox-api`: AI Sandbox's OpenAI API v1 server. One model, one queue, one
//! generation at a time; authenticated with bearer keys.
#![forbid(unsafe_code)]

mod auth;
mod config;
mod error;
mod metrics;
mod middleware;
mod openai;
mod pull;
mod routes;
mod server;
mod state;

use std::process::ExitCode;

use clap::Parser;

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
    serve: config::ServeArgs,
}

#[derive(clap::Subcommand)]
enum Command {
    /// Manage the model.
    Model {
        #[command(subcommand)]
        action: ModelCommand,
    },
}

#[derive(clap::Subcommand)]
enum ModelCommand {
    /// Download the configured model into the Hugging Face cache (verified) and print
    /// its path; serving later starts without any network request.
    Pull {
        #[command(flatten)]
        args: config::ServeArgs,
        /// Also keep the progress (then the outcome, with a machine-readable error kind)
        /// as JSON in this file, replaced atomically about once a second.
        #[arg(long)]
        progress_file: Option<std::path::PathBuf>,
    },
}

fn main() -> ExitCode {
    sandbox_core::config_file::init_logging("info,llama-cpp-2=warn");
    let cli = Cli::parse();
    if let Some(Command::Model {
        action: ModelCommand::Pull {
            args,
            progress_file,
        },
    }) = &cli.command
    {
        return match config::ApiConfig::load_unchecked(args) {
            Ok(cfg) => pull::run(&cfg, progress_file.as_deref()),
            Err(e) => {
                eprintln!("sandbox-api: {e}");
                ExitCode::from(2)
            }
        };
    }
    let cfg = match config::ApiConfig::load(&cli.serve) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "invalid configuration");
            eprintln!("sandbox-api: {e}");
            return ExitCode::from(2);
        }
    };
    let result = actix_web::rt::System::new().block_on(server::run(cfg));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "server failed");
            eprintln!("sandbox-api: {e}");
            ExitCode::FAILURE
        }
    }
}
