//! Tool calls on real models in each format: the format found from the chat template,
//! forced calls that always parse and match the tool's schema, a lazy grammar that lets
//! the model write freely until it opens a call, and history with calls and results.

mod common;

use std::path::PathBuf;

use sandbox_core::tools::{CallStream, ToolChoice, ToolFormat, ToolRequest, ToolSpec};
use sandbox_core::{
    ChatMessage, Engine, EngineConfig, FinishReason, FunctionCall, JobRequest, Limits,
    SamplingParams, ToolCall,
};
use serde_json::{Value, json};

fn template(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../scripts/fixtures/templates")
        .join(name)
}

fn smollm2_with(template_file: Option<PathBuf>) -> Engine {
    Engine::start(&EngineConfig {
        model_path: common::smollm2(),
        n_ctx: 2048,
        n_threads: 1,
        queue_capacity: 4,
        chat_template_file: template_file,
        ..EngineConfig::default()
    })
    .expect("engine starts")
}

fn weather() -> ToolRequest {
    let parameters = json!({
        "type": "object",
        "properties": {
            "city": {"type": "string", "enum": ["Paris", "Oslo", "Lima"]},
            "days": {"type": "integer", "minimum": 1, "maximum": 7},
        },
        "required": ["city", "days"],
    });
    let tool = |name: &str| {
        json!({"type": "function", "function": {
            "name": name, "description": "Weather forecast for a city", "parameters": parameters}})
    };
    ToolRequest {
        tools: vec![tool("get_weather"), tool("get_forecast")],
        specs: ["get_weather", "get_forecast"]
            .map(|name| ToolSpec {
                name: name.into(),
                parameters: Some(parameters.clone()),
            })
            .to_vec(),
        choice: ToolChoice::Required,
        parallel: true,
    }
}

/// Runs a chat with tools; returns the shown text, the ending and the finish reason.
fn run(
    engine: &Engine,
    messages: Vec<ChatMessage>,
    tools: &ToolRequest,
    max_tokens: usize,
) -> (String, sandbox_core::tools::Ending, FinishReason) {
    let mut sampling = SamplingParams::greedy();
    let job = engine
        .tool_job(messages, Some(tools), &mut sampling)
        .expect("tool job");
    let out = engine
        .submit(JobRequest {
            prompt: job.prompt,
            sampling,
            limits: Limits {
                max_tokens: Some(max_tokens),
                ..Limits::default()
            },
            logprobs: None,
        })
        .expect("submit")
        .wait()
        .expect("runs");
    let mut stream = CallStream::new(job.reading);
    let shown = stream.push(&out.text);
    let cut_off = out.finish_reason == FinishReason::Length;
    (shown, stream.finish(cut_off), out.finish_reason)
}

fn assert_valid_calls(ending: &sandbox_core::tools::Ending, names: &[&str]) {
    let calls = ending.calls.as_ref().expect("calls");
    assert!(!calls.is_empty());
    for call in calls {
        assert!(names.contains(&call.name.as_str()), "{call:?}");
        let args: Value = serde_json::from_str(&call.arguments).expect("arguments are JSON");
        assert!(
            ["Paris", "Oslo", "Lima"].contains(&args["city"].as_str().unwrap_or("")),
            "{args}"
        );
        let days = args["days"].as_i64().expect("days");
        assert!((1..=7).contains(&days), "{args}");
    }
}

fn ask() -> Vec<ChatMessage> {
    vec![ChatMessage::new(
        "user",
        "What's the weather in Paris for the next 3 days?",
    )]
}

#[test]
fn each_template_gets_its_format() {
    assert!(matches!(
        smollm2_with(None).tool_format(),
        ToolFormat::Generic { system_role: true }
    ));
    assert_eq!(
        smollm2_with(Some(template("hermes-tools.jinja"))).tool_format(),
        &ToolFormat::Hermes
    );
    assert_eq!(
        smollm2_with(Some(template("llama3-tools.jinja"))).tool_format(),
        &ToolFormat::Llama3
    );
    let mistral = common::engine(common::tiny_mistral(), 2048, 4);
    assert!(matches!(mistral.tool_format(), ToolFormat::Mistral { .. }));
}

#[test]
fn forced_calls_parse_and_match_the_schema_in_every_format() {
    for file in [None, Some("hermes-tools.jinja"), Some("llama3-tools.jinja")] {
        let engine = smollm2_with(file.map(template));
        let mut tools = weather();
        let (shown, ending, _) = run(&engine, ask(), &tools, 120);
        assert_eq!(shown, "", "{file:?}");
        assert_valid_calls(&ending, &["get_weather", "get_forecast"]);

        tools.choice = ToolChoice::Named(1);
        let (_, ending, _) = run(&engine, ask(), &tools, 120);
        assert_valid_calls(&ending, &["get_forecast"]);
        assert_eq!(ending.calls.unwrap().len(), 1, "a named choice is one call");
    }
    let mistral = common::engine(common::tiny_mistral(), 2048, 4);
    let (_, ending, _) = run(&mistral, ask(), &weather(), 200);
    assert_valid_calls(&ending, &["get_weather", "get_forecast"]);
}

#[test]
fn a_forced_call_cut_off_by_max_tokens_is_a_partial_call() {
    for file in [None, Some("hermes-tools.jinja")] {
        let engine = smollm2_with(file.map(template));
        let mut tools = weather();
        tools.choice = ToolChoice::Named(0);
        let (shown, ending, reason) = run(&engine, ask(), &tools, 12);
        assert_eq!(reason, FinishReason::Length);
        assert_eq!(shown, "");
        assert_eq!(ending.text, "", "no markup shown as text");
        let calls = ending.calls.expect("a partial call");
        assert!(
            "get_weather".starts_with(&calls[0].name) && !calls[0].name.is_empty(),
            "{calls:?}"
        );
    }
}

#[test]
fn the_generic_format_describes_the_tools_and_rewrites_the_history() {
    let engine = smollm2_with(None);
    let tools = weather();
    let mut call = ChatMessage::new("assistant", "");
    call.content = None;
    call.tool_calls = Some(vec![ToolCall {
        id: "abcdefghi".into(),
        kind: "function".into(),
        function: FunctionCall {
            name: "get_weather".into(),
            arguments: json!({"city": "Paris", "days": 3}),
        },
    }]);
    let mut result = ChatMessage::new("tool", r#"{"forecast": "sunny"}"#);
    result.tool_call_id = Some("abcdefghi".into());
    let mut messages = ask();
    messages.extend([call, result]);
    let mut sampling = SamplingParams::greedy();
    let mut auto = tools.clone();
    auto.choice = ToolChoice::Auto;
    let job = engine
        .tool_job(messages.clone(), Some(&auto), &mut sampling)
        .unwrap();
    let sandbox_core::Prompt::Chat {
        messages: rendered,
        tools: None,
    } = &job.prompt
    else {
        panic!(
            "a generic chat renders no tools through the template: {:?}",
            job.prompt
        )
    };
    let text = engine.render_chat(rendered, None).unwrap();
    assert!(
        text.contains("<tools>") && text.contains("\"name\":\"get_forecast\""),
        "{text}"
    );
    assert!(
        text.contains("<tool_call>\n{\"name\":\"get_weather\""),
        "{text}"
    );
    assert!(
        text.contains("<tool_response>\n{\"forecast\": \"sunny\"}"),
        "{text}"
    );
    assert!(!text.contains("<|im_start|>tool"), "{text}");
    assert!(sampling.grammar.is_some() && sampling.grammar_triggers == ["<tool_call>"]);

    // The answer after the result is text: the lazy grammar never started.
    let out = engine
        .submit(JobRequest {
            prompt: job.prompt,
            sampling,
            limits: Limits {
                max_tokens: Some(24),
                ..Limits::default()
            },
            logprobs: None,
        })
        .unwrap()
        .wait()
        .unwrap();
    assert!(!out.text.is_empty());
}

#[test]
fn tool_choice_none_hides_text_format_tools() {
    let engine = smollm2_with(Some(template("hermes-tools.jinja")));
    let mut tools = weather();
    tools.choice = ToolChoice::None;
    let mut sampling = SamplingParams::greedy();
    let job = engine.tool_job(ask(), Some(&tools), &mut sampling).unwrap();
    assert!(matches!(
        job.prompt,
        sandbox_core::Prompt::Chat { tools: None, .. }
    ));
    assert!(sampling.grammar.is_none());
}

/// A lazy grammar leaves the text before its trigger alone and holds what follows; a
/// token that completes the trigger with text the grammar refuses ends the grammar
/// instead of the process.
#[test]
fn lazy_grammars_start_at_their_trigger_and_survive_a_refused_token() {
    let engine = common::engine(common::smollm2(), 2048, 4);
    let job = |sampling: SamplingParams| JobRequest {
        prompt: sandbox_core::Prompt::Chat {
            messages: vec![ChatMessage::new(
                "user",
                "What is the capital of France? Answer in one word.",
            )],
            tools: None,
        },
        sampling,
        limits: Limits {
            max_tokens: Some(24),
            ..Limits::default()
        },
        logprobs: None,
    };
    let free = engine
        .submit(job(SamplingParams::greedy()))
        .unwrap()
        .wait()
        .unwrap();
    let at = free
        .text
        .find("Paris")
        .unwrap_or_else(|| panic!("the model names Paris: {:?}", free.text));

    let mut held = SamplingParams::greedy();
    held.grammar = Some(r#"root ::= "Paris" " is lovely.""#.into());
    held.grammar_triggers = vec!["Par".into()];
    let out = engine.submit(job(held)).unwrap().wait().unwrap();
    assert_eq!(out.text, format!("{}Paris is lovely.", &free.text[..at]));

    let mut refused = SamplingParams::greedy();
    refused.grammar = Some(r#"root ::= "Parx""#.into());
    refused.grammar_triggers = vec!["Par".into()];
    let out = engine.submit(job(refused)).unwrap().wait().unwrap();
    assert_eq!(
        out.text, free.text,
        "the refused grammar leaves the answer as it was"
    );
}

/// Mistral's call opens with a control token, which sets off the lazy grammar: pushed
/// to write it first, the random-weight model still writes a well-formed call.
#[test]
fn mistrals_control_token_sets_off_the_lazy_grammar() {
    let engine = common::engine(common::tiny_mistral(), 2048, 4);
    let ToolFormat::Mistral { marker } = *engine.tool_format() else {
        panic!("tiny Mistral has the Mistral format")
    };
    let mut tools = weather();
    tools.choice = ToolChoice::Auto;
    let mut sampling = SamplingParams::greedy();
    let job = engine.tool_job(ask(), Some(&tools), &mut sampling).unwrap();
    assert_eq!(sampling.grammar_trigger_tokens, [marker]);
    sampling.logit_bias.push((marker, 100.0));
    let out = engine
        .submit(JobRequest {
            prompt: job.prompt,
            sampling,
            limits: Limits {
                max_tokens: Some(200),
                ..Limits::default()
            },
            logprobs: None,
        })
        .unwrap()
        .wait()
        .unwrap();
    let mut stream = CallStream::new(job.reading);
    assert_eq!(stream.push(&out.text), "");
    let ending = stream.finish(out.finish_reason == FinishReason::Length);
    assert_valid_calls(&ending, &["get_weather", "get_forecast"]);
}
