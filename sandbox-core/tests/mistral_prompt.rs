//! The production prompt format: chats rendered with Mistral-7B-Instruct-v0.3's own
//! template and tokenized by llama.cpp must equal mistral-common's reference tokens.

mod common;

use sandbox_core::{ChatMessage, EngineError};
use serde::Deserialize;

#[derive(Deserialize)]
struct Reference {
    chats: Vec<ChatCase>,
    raw: Vec<RawCase>,
}

#[derive(Deserialize)]
struct ChatCase {
    messages: Vec<ChatMessage>,
    tokens: Vec<i32>,
    text: String,
}

#[derive(Deserialize)]
struct RawCase {
    text: String,
    tokens: Vec<i32>,
}

fn reference() -> Reference {
    let path = common::fixture("mistral-v0.3-reference.json");
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

#[test]
fn chat_prompts_equal_mistral_common_tokens() {
    let engine = common::engine(common::tiny_mistral(), 1024, 4);
    let reference = reference();
    assert!(reference.chats.len() >= 5);
    for case in &reference.chats {
        let got = engine.chat_tokens(&case.messages, None).unwrap();
        assert_eq!(
            got,
            case.tokens,
            "chat {:?}\nrendered: {:?}\nreference text: {}",
            case.messages,
            engine.render_chat(&case.messages, None).unwrap(),
            case.text
        );
    }
}

#[test]
fn plain_text_tokenizes_like_sentencepiece() {
    let engine = common::engine(common::tiny_mistral(), 1024, 4);
    for case in reference().raw {
        let got = engine.tokenize(&case.text, false).unwrap();
        assert_eq!(got, case.tokens, "text {:?}", case.text);
        assert_eq!(engine.detokenize(&got).unwrap(), case.text);
    }
}

#[test]
fn system_message_goes_into_the_last_user_turn() {
    let engine = common::engine(common::tiny_mistral(), 1024, 4);
    let text = engine
        .render_chat(
            &[
                ChatMessage::new("system", "S"),
                ChatMessage::new("user", "U1"),
                ChatMessage::new("assistant", "A1"),
                ChatMessage::new("user", "U2"),
            ],
            None,
        )
        .unwrap();
    assert_eq!(text, "<s>[INST] U1[/INST] A1</s>[INST] S\n\nU2[/INST]");
}

#[test]
fn template_errors_carry_the_templates_message() {
    let engine = common::engine(common::tiny_mistral(), 1024, 4);
    let err = engine
        .chat_tokens(
            &[ChatMessage::new("user", "a"), ChatMessage::new("user", "b")],
            None,
        )
        .unwrap_err();
    match err {
        EngineError::Template(msg) => assert_eq!(
            msg,
            "After the optional system message, conversation roles must alternate user/assistant/user/assistant/..."
        ),
        other => panic!("expected a template error, got {other:?}"),
    }
}

#[test]
fn metadata_is_read_from_the_gguf() {
    let engine = common::engine(common::tiny_mistral(), 1024, 4);
    let info = engine.model_info();
    assert_eq!(info.architecture, "llama");
    assert_eq!(info.n_vocab, 32768);
    assert_eq!(info.n_ctx_train, 32768);
    assert_eq!(
        info.bos.as_ref().map(|t| (t.id, t.text.as_str())),
        Some((1, "<s>"))
    );
    assert_eq!(
        info.eos.as_ref().map(|t| (t.id, t.text.as_str())),
        Some((2, "</s>"))
    );
    assert!(info.end_of_generation.contains(&2));
    assert!(info.add_bos && info.add_space_prefix);
    let inst = info
        .special_tokens
        .iter()
        .find(|t| t.text == "[INST]")
        .map(|t| t.id);
    assert_eq!(inst, Some(3));
    assert!(
        info.chat_template
            .as_deref()
            .unwrap()
            .contains("[AVAILABLE_TOOLS]")
    );
    assert_eq!(engine.n_ctx(), 1024);
}

#[test]
fn gguf_shape_is_read_without_loading_weights() {
    let shape = sandbox_core::diagnostics::GgufShape::read(&common::tiny_mistral()).unwrap();
    assert_eq!(shape.architecture, "llama");
    assert_eq!(
        (shape.n_layer, shape.n_head, shape.n_head_kv, shape.n_embd),
        (2, 4, 2, 64)
    );
    // 2 (K and V) × 2 layers × 2 KV heads × 16 dims × 2 bytes.
    assert_eq!(shape.kv_bytes_per_token(), 256);
    assert!(
        sandbox_core::diagnostics::gpu_devices().is_empty(),
        "the CPU build sees no GPU"
    );
}
