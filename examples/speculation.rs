//! Speculative decoding by prompt lookup against plain decoding, on the same model and
//! the same greedy jobs: tokens/s of each, the speedup, how many guessed tokens were
//! kept, and whether the outputs are identical. They are, except where two tokens tie
//! within floating-point noise: a batch's logits differ from one token's in the last
//! bits, so a tie can fall either way (the column then names the first token that
//! differs; `sandbox-core/tests/speculation.rs` checks that such a token is a tie). Tasks: two that repeat their prompt (editing a code file, summarising with
//! quotes) and two free chats. Prints a Markdown table.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use sandbox_core::{ChatMessage, Completion, Engine, Prompt, SamplingParams};

/// Compare decoding with and without prompt-lookup drafts (default model: SmolLM2).
#[derive(Parser)]
struct Args {
    /// GGUF model file.
    #[arg(long)]
    model: Option<PathBuf>,
    /// Tokens guessed per step when drafting.
    #[arg(long, default_value_t = 8)]
    draft_tokens: u32,
    /// Most tokens per answer.
    #[arg(long, default_value_t = 256)]
    max_tokens: usize,
    /// Repetitions per figure (the median is shown).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Context window.
    #[arg(long, default_value_t = 4096)]
    ctx: u32,
    /// CPU threads (0 = all cores).
    #[arg(long, default_value_t = 0)]
    threads: u32,
}

const CODE: &str = r#"def load_orders(path):
    orders = []
    with open(path) as f:
        for line in f:
            fields = line.strip().split(",")
            if len(fields) != 3:
                continue
            customer, item, quantity = fields
            orders.append({"customer": customer, "item": item, "quantity": int(quantity)})
    return orders


def total_by_customer(orders):
    totals = {}
    for order in orders:
        totals[order["customer"]] = totals.get(order["customer"], 0) + order["quantity"]
    return totals
"#;

const ARTICLE: &str = "The harbour council met on Tuesday to discuss the new ferry timetable. \
    \"We cannot run boats every twenty minutes in winter,\" said the council's chair, Ana \
    Ribeiro. Fishermen asked for the old pier to stay open: \"The pier is where our nets \
    dry,\" one of them said. The council agreed to keep the pier open until March and to \
    publish the winter timetable next week.";

fn tasks() -> Vec<(&'static str, String)> {
    vec![
        (
            "edit a code file",
            format!(
                "Rename the function total_by_customer to totals_per_customer in this file and print the whole file:\n\n```python\n{CODE}```"
            ),
        ),
        (
            "summarise with quotes",
            format!(
                "Summarise this article in three sentences, quoting the chair and the fishermen word for word:\n\n{ARTICLE}"
            ),
        ),
        (
            "free chat: a story",
            "Tell me a story about a lighthouse keeper and a storm.".into(),
        ),
        (
            "free chat: advice",
            "How do I start learning to play the piano as an adult?".into(),
        ),
    ]
}

fn main() -> ExitCode {
    sandbox_examples::run(run)
}

fn answer(engine: &Engine, text: &str, max_tokens: usize) -> Result<Completion, String> {
    let prompt = Prompt::Chat {
        messages: vec![ChatMessage::new("user", text)],
        tools: None,
    };
    let job = sandbox_examples::job(prompt, SamplingParams::greedy(), max_tokens, false);
    engine
        .submit(job)
        .and_then(|h| h.wait())
        .map_err(|e| e.to_string())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn run(args: Args) -> Result<(), String> {
    let plain = sandbox_examples::start_engine_with(args.model.clone(), args.ctx, args.threads, 0)?;
    let drafting = sandbox_examples::start_engine_with(
        args.model.clone(),
        args.ctx,
        args.threads,
        args.draft_tokens,
    )?;
    println!(
        "model: {}, {} draft tokens, greedy, at most {} tokens, median of {} runs\n",
        plain.model_path().display(),
        args.draft_tokens,
        args.max_tokens,
        args.runs
    );
    println!(
        "| task | tokens | plain tok/s | drafting tok/s | speedup | guesses kept | identical |"
    );
    println!("|---|---|---|---|---|---|---|");
    for (name, text) in tasks() {
        let (mut a, mut b, mut kept, mut differs, mut tokens) =
            (Vec::new(), Vec::new(), String::new(), None, 0);
        for _ in 0..args.runs {
            let x = answer(&plain, &text, args.max_tokens)?;
            let y = answer(&drafting, &text, args.max_tokens)?;
            differs = differs.or_else(|| x.tokens.iter().zip(&y.tokens).position(|(p, q)| p != q));
            tokens = x.usage.completion_tokens;
            // Over the whole answer, time to first token included: what a reader waits.
            let rate = |c: &Completion| {
                c.usage.completion_tokens as f64
                    / (c.timings.prefill + c.timings.decode).as_secs_f64()
            };
            a.push(rate(&x));
            b.push(rate(&y));
            kept = format!(
                "{} of {}",
                y.usage.accepted_draft_tokens, y.usage.draft_tokens
            );
        }
        let (a, b) = (median(a), median(b));
        println!(
            "| {name} | {tokens} | {a:.1} | {b:.1} | {:.2}× | {kept} | {} |",
            b / a,
            differs.map_or_else(|| "yes".to_owned(), |i| format!("from token {i} on"))
        );
    }
    Ok(())
}
