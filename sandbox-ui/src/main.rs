//! `sandbox-ui`: the browser chat of AI Sandbox. Not built yet: this shell only
//! answers `--help` so that deployments can already reference the binary.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;

/// AI Sandbox browser chat: login, streamed answers and server-side history, talking to
/// sandbox-api so that chat and API share one model and one queue.
///
/// This build contains only the command-line shell; the UI itself is not implemented yet.
#[derive(Parser)]
#[command(version)]
struct Args {}

fn main() -> ExitCode {
    let _ = Args::parse();
    eprintln!("sandbox-ui: the browser chat is not part of this build yet");
    ExitCode::FAILURE
}
