//! Fills a history database for benchmarks: one account and N conversations of M
//! messages each, written through the same store the server uses.
//!
//! `cargo run --release -p sandbox-ui --example seed_history -- DIR [CONVERSATIONS] [MESSAGES]`
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use sandbox_ui::store::{MessageStatus, Store};

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let Some(dir) = args.next().map(PathBuf::from) else {
        eprintln!(
            "usage: seed_history DIR [CONVERSATIONS=1000] [MESSAGES=6] (user admin, password bench-password)"
        );
        return ExitCode::from(2);
    };
    let conversations: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(1000);
    let messages: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(6);
    match seed(&dir, conversations, messages) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("seed_history: {e}");
            ExitCode::FAILURE
        }
    }
}

fn seed(
    dir: &std::path::Path,
    conversations: usize,
    messages: usize,
) -> Result<(), Box<dyn std::error::Error>> {
    let store = Store::open(dir)?;
    if !store.has_users()? {
        store.create_user("admin", "bench-password")?;
    }
    let answer = "Here is a longer answer with some **Markdown**, a list:\n\n- one\n- two\n\nand a code block:\n\n```rust\nfn main() { println!(\"hi\"); }\n```\n";
    for i in 0..conversations {
        let mut c = store.create_conversation("admin", "New chat")?;
        for j in 0..messages / 2 {
            store.add_message(
                &mut c,
                "user",
                &format!("Question {j} of chat {i}: how do lighthouses work?"),
                MessageStatus::Complete,
            )?;
            store.add_message(&mut c, "assistant", answer, MessageStatus::Complete)?;
        }
    }
    store.flush()?;
    println!(
        "{conversations} conversations of {messages} messages in {}",
        dir.display()
    );
    Ok(())
}
