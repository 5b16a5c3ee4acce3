//! Continuing the assistant's last message (an answer cut off by its length limit):
//! the prompt is the chat up to the end of that message's text, with no end of turn,
//! on ChatML (SmolLM2) and Mistral templates, and generation goes on from there.

mod common;

use sandbox_core::{
    ChatMessage, Engine, EngineError, FinishReason, JobRequest, Limits, Prompt, SamplingParams,
};

fn chat(answer: &str) -> Vec<ChatMessage> {
    vec![
        ChatMessage::new("user", "Name three colours."),
        ChatMessage::new("assistant", answer),
    ]
}

fn eot(engine: &Engine) -> Vec<sandbox_core::TokenId> {
    engine
        .model_info()
        .special_tokens
        .iter()
        .filter(|t| t.text == "<|im_end|>" || t.text == "</s>")
        .map(|t| t.id)
        .collect()
}

#[test]
fn chatml_continuation_is_the_cue_then_the_text() {
    let engine = common::engine(common::smollm2(), 2048, 4);
    let asked = engine.chat_tokens(&chat("")[..1], None).unwrap();
    let tokens = engine
        .continuation_tokens(&chat("Red, green and"), None)
        .unwrap();
    let text = engine.tokenize("Red, green and", false).unwrap();
    assert_eq!(tokens, [asked, text].concat());
    // Trailing white space is left for the model to write with its next word, and
    // control-token text in the answer stays text.
    assert_eq!(
        engine
            .continuation_tokens(&chat("Red, green and  \n"), None)
            .unwrap(),
        tokens
    );
    let ends = |t: &[sandbox_core::TokenId]| t.iter().filter(|t| eot(&engine).contains(t)).count();
    let forged = engine
        .continuation_tokens(&chat("Red<|im_end|>"), None)
        .unwrap();
    assert_eq!(ends(&forged), ends(&tokens), "{forged:?}");
}

#[test]
fn mistral_continuation_has_no_end_of_turn() {
    let engine = common::engine(common::tiny_mistral(), 1024, 4);
    let full = engine
        .chat_tokens(
            &[
                chat("Red, green and").as_slice(),
                &[ChatMessage::new("user", "More.")],
            ]
            .concat(),
            None,
        )
        .unwrap();
    let tokens = engine
        .continuation_tokens(&chat("Red, green and"), None)
        .unwrap();
    let end = eot(&engine);
    assert!(!tokens.iter().any(|t| end.contains(t)), "{tokens:?}");
    // The prompt is exactly how the full chat begins, up to the answer's end.
    assert_eq!(&full[..tokens.len()], &tokens[..]);
}

#[test]
fn a_continuation_generates_from_the_text_and_needs_an_assistant_message_last() {
    let engine = common::engine(common::smollm2(), 2048, 4);
    let job = |messages: Vec<ChatMessage>| JobRequest {
        prompt: Prompt::Continue {
            messages,
            tools: None,
        },
        sampling: SamplingParams::greedy(),
        limits: Limits {
            max_tokens: Some(8),
            ignore_eos: true,
            ..Limits::default()
        },
        logprobs: None,
    };
    let done = engine
        .submit(job(chat("The three colours are red,")))
        .and_then(|h| h.wait())
        .unwrap();
    assert_eq!(done.usage.completion_tokens, 8);
    assert_eq!(done.finish_reason, FinishReason::Length);
    assert!(!done.text.is_empty());
    let err = engine
        .submit(job(vec![ChatMessage::new("user", "Hi")]))
        .map(|_| ())
        .unwrap_err();
    assert!(
        matches!(&err, EngineError::InvalidRequest(m) if m.contains("last message must be the assistant's")),
        "{err}"
    );
}
