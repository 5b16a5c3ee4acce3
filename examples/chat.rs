//! A terminal chat through the library: type a message, read the streamed answer.
#![forbid(unsafe_code)]

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use sandbox_core::{ChatMessage, JobEvent, JobRequest, Limits, Prompt, SamplingParams};

/// Chat with a model in the terminal. Each turn reuses the cached prompt of the last
/// one. Commands: /reset starts over, /quit (or Ctrl-D) leaves.
#[derive(Parser)]
struct Args {
    /// GGUF model file (default: the SmolLM2 test model in .fixtures/).
    #[arg(long)]
    model: Option<PathBuf>,
    /// System prompt.
    #[arg(long)]
    system: Option<String>,
    /// Sampling temperature; 0 is greedy.
    #[arg(long, default_value_t = 0.7)]
    temperature: f32,
    /// Most tokens per answer.
    #[arg(long, default_value_t = 512)]
    max_tokens: usize,
    /// Context window in tokens.
    #[arg(long, default_value_t = 4096)]
    ctx: u32,
    /// Print token counts and speed after each answer.
    #[arg(long)]
    stats: bool,
}

fn main() -> ExitCode {
    sandbox_examples::run(run)
}

fn run(args: Args) -> Result<(), String> {
    let engine = sandbox_examples::start_engine(args.model.clone(), args.ctx, 0)?;
    let name = engine
        .model_info()
        .name
        .clone()
        .unwrap_or_else(|| "model".into());
    eprintln!("Chatting with {name}. /reset starts over, /quit leaves.");
    let fresh = || -> Vec<ChatMessage> {
        args.system
            .iter()
            .map(|s| ChatMessage::new("system", s.clone()))
            .collect()
    };
    let mut history = fresh();
    let stdin = std::io::stdin();
    let mut out = std::io::stdout();
    loop {
        print!("> ");
        let _ = out.flush();
        let mut line = String::new();
        if stdin
            .lock()
            .read_line(&mut line)
            .map_err(|e| e.to_string())?
            == 0
        {
            println!();
            return Ok(());
        }
        let line = line.trim();
        match line {
            "" => continue,
            "/quit" | "/exit" => return Ok(()),
            "/reset" => {
                history = fresh();
                eprintln!("(conversation cleared)");
                continue;
            }
            _ => {}
        }
        history.push(ChatMessage::new("user", line));
        let job = JobRequest {
            prompt: Prompt::Chat {
                messages: history.clone(),
                tools: None,
            },
            sampling: SamplingParams {
                temperature: args.temperature,
                ..SamplingParams::default()
            },
            limits: Limits {
                max_tokens: Some(args.max_tokens),
                ..Limits::default()
            },
            logprobs: None,
        };
        let mut handle = match engine.submit(job) {
            Ok(h) => h,
            Err(e) => {
                // Typically the context is full: say so and let the user /reset.
                eprintln!("error: {e}");
                history.pop();
                continue;
            }
        };
        let mut answer = String::new();
        while let Some(event) = handle.next_event_blocking() {
            match event {
                JobEvent::Token { text, .. } | JobEvent::Tail { text } => {
                    print!("{text}");
                    let _ = out.flush();
                    answer.push_str(&text);
                }
                JobEvent::Done { usage, timings, .. } => {
                    println!();
                    if args.stats {
                        eprintln!(
                            "({} prompt tokens, {} cached, {} generated, {:.1} tok/s)",
                            usage.prompt_tokens,
                            usage.cached_prompt_tokens,
                            usage.completion_tokens,
                            timings.decode_tokens_per_second(&usage)
                        );
                    }
                }
                JobEvent::Failed { error } => eprintln!("\nerror: {error}"),
                JobEvent::Queued { .. } | JobEvent::Started { .. } => {}
            }
        }
        history.push(ChatMessage::new("assistant", answer));
    }
}
