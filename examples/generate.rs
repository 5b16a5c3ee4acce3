//! One prompt in, tokens out as they come, then the usage and timings.
#![forbid(unsafe_code)]

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use sandbox_core::{ChatMessage, JobEvent, JobRequest, Limits, Prompt, SamplingParams};

/// Generate a completion for one prompt with the AI Sandbox engine, printing tokens as
/// they are produced and the timings at the end.
#[derive(Parser)]
struct Args {
    /// The prompt.
    prompt: String,
    /// GGUF model file (default: the SmolLM2 test model in .fixtures/).
    #[arg(long)]
    model: Option<PathBuf>,
    /// Treat the prompt as a user message and apply the model's chat template.
    #[arg(long)]
    chat: bool,
    /// Most tokens to generate.
    #[arg(long, default_value_t = 128)]
    max_tokens: usize,
    /// Sampling temperature; 0 is greedy.
    #[arg(long, default_value_t = 0.0)]
    temperature: f32,
    /// Random seed for sampling.
    #[arg(long)]
    seed: Option<u32>,
    /// Stop before this string (repeatable).
    #[arg(long)]
    stop: Vec<String>,
    /// Context window in tokens.
    #[arg(long, default_value_t = 4096)]
    ctx: u32,
}

fn main() -> ExitCode {
    sandbox_examples::run(run)
}

fn run(args: Args) -> Result<(), String> {
    let engine = sandbox_examples::start_engine(args.model, args.ctx, 0)?;
    let prompt = if args.chat {
        Prompt::Chat {
            messages: vec![ChatMessage::new("user", args.prompt)],
            tools: None,
        }
    } else {
        Prompt::Text(args.prompt)
    };
    let mut handle = engine
        .submit(JobRequest {
            prompt,
            sampling: SamplingParams {
                temperature: args.temperature,
                seed: args.seed,
                ..SamplingParams::default()
            },
            limits: Limits {
                max_tokens: Some(args.max_tokens),
                stop: args.stop,
                ..Limits::default()
            },
            logprobs: None,
        })
        .map_err(|e| e.to_string())?;
    let mut out = std::io::stdout().lock();
    while let Some(event) = handle.next_event_blocking() {
        match event {
            JobEvent::Token { text, .. } | JobEvent::Tail { text } => {
                let _ = write!(out, "{text}");
                let _ = out.flush();
            }
            JobEvent::Done {
                finish_reason,
                usage,
                timings,
            } => {
                let _ = writeln!(out);
                eprintln!(
                    "\n[{:?}] prompt {} tokens ({} cached), completion {} tokens | prefill {:.1} ms ({:.1} tok/s), decode {:.1} ms ({:.1} tok/s)",
                    finish_reason,
                    usage.prompt_tokens,
                    usage.cached_prompt_tokens,
                    usage.completion_tokens,
                    timings.prefill.as_secs_f64() * 1e3,
                    timings.prefill_tokens_per_second(&usage),
                    timings.decode.as_secs_f64() * 1e3,
                    timings.decode_tokens_per_second(&usage),
                );
            }
            JobEvent::Failed { error } => return Err(error.to_string()),
            JobEvent::Queued { .. } | JobEvent::Started { .. } => {}
        }
    }
    Ok(())
}
