//! Validation of OpenAI request fields and their translation into engine terms.

use sandbox_core::contract::openai::{Content, GenerationOptions, Message, ResponseFormat, Stop};
use sandbox_core::{
    ChatMessage, Engine, FunctionCall, JobRequest, SamplingParams, ToolCall, Usage,
};
use serde_json::Value;

use crate::error::ApiError;

/// Most choices one request may ask for (they run one after another).
pub const MAX_N: u32 = 8;

fn check_range(name: &str, v: Option<f32>, lo: f32, hi: f32) -> Result<(), ApiError> {
    match v {
        Some(x) if !(lo..=hi).contains(&x) || x.is_nan() => Err(ApiError::invalid(
            Some(name),
            format!("{name} must be between {lo} and {hi}, got {x}"),
        )),
        _ => Ok(()),
    }
}

/// Sampling settings. Unset fields keep llama.cpp's defaults (temperature 0.8,
/// top-k 40, top-p 0.95, min-p 0.05); temperature 0 means greedy.
pub fn sampling(f: &GenerationOptions, engine: &Engine) -> Result<SamplingParams, ApiError> {
    check_range("temperature", f.temperature, 0.0, 2.0)?;
    check_range("top_p", f.top_p, 0.0, 1.0)?;
    check_range("min_p", f.min_p, 0.0, 1.0)?;
    check_range("presence_penalty", f.presence_penalty, -2.0, 2.0)?;
    check_range("frequency_penalty", f.frequency_penalty, -2.0, 2.0)?;
    if f.top_p == Some(0.0) {
        return Err(ApiError::invalid(
            Some("top_p"),
            "top_p must be greater than 0",
        ));
    }
    let mut p = SamplingParams::default();
    if let Some(t) = f.temperature {
        p.temperature = t;
    }
    if let Some(v) = f.top_p {
        p.top_p = v;
    }
    if let Some(v) = f.top_k {
        p.top_k = v;
    }
    if let Some(v) = f.min_p {
        p.min_p = v;
    }
    // Any 64-bit seed is accepted; llama.cpp takes 32 bits.
    p.seed = f.seed.map(|s| (s as u64 ^ ((s as u64) >> 32)) as u32);
    p.presence_penalty = f.presence_penalty.unwrap_or(0.0);
    p.frequency_penalty = f.frequency_penalty.unwrap_or(0.0);
    if let Some(bias) = &f.logit_bias {
        let n_vocab = engine.model_info().n_vocab;
        for (k, &v) in bias {
            let id: i32 = k.parse().map_err(|_| {
                ApiError::invalid(
                    Some("logit_bias"),
                    format!("logit_bias keys must be token ids, got {k:?}"),
                )
            })?;
            if id < 0 || id as u32 >= n_vocab {
                return Err(ApiError::invalid(
                    Some("logit_bias"),
                    format!("token id {id} is outside the vocabulary of {n_vocab} tokens"),
                ));
            }
            check_range("logit_bias", Some(v), -100.0, 100.0)?;
            // OpenAI documents -100 as a ban and 100 as exclusive selection.
            let v = if v <= -100.0 { f32::NEG_INFINITY } else { v };
            p.logit_bias.push((id, v));
        }
    }
    Ok(p)
}

/// Longest stop string, in characters. Matching holds back text that might start one,
/// and the worst case of that check grows with the square of its length; nobody needs
/// a longer stop sequence than this.
pub const MAX_STOP_CHARS: usize = 1000;

/// Stop strings (at most 4, as OpenAI, each at most [`MAX_STOP_CHARS`] long).
pub fn stops(stop: Option<&Stop>) -> Result<Vec<String>, ApiError> {
    let list = match stop {
        None => Vec::new(),
        Some(Stop::One(s)) => vec![s.clone()],
        Some(Stop::Many(v)) => v.clone(),
    };
    if list.len() > 4 {
        return Err(ApiError::invalid(
            Some("stop"),
            "at most 4 stop sequences are allowed",
        ));
    }
    if let Some(long) = list.iter().find(|s| s.chars().count() > MAX_STOP_CHARS) {
        return Err(ApiError::invalid(
            Some("stop"),
            format!(
                "a stop sequence is {} characters long; at most {MAX_STOP_CHARS} are supported",
                long.chars().count()
            ),
        ));
    }
    Ok(list.into_iter().filter(|s| !s.is_empty()).collect())
}

/// `n`, checked.
pub fn choices(n: Option<u32>) -> Result<u32, ApiError> {
    match n.unwrap_or(1) {
        0 => Err(ApiError::invalid(Some("n"), "n must be at least 1")),
        n if n > MAX_N => Err(ApiError::invalid(
            Some("n"),
            format!("n must be at most {MAX_N} (choices are generated one after another)"),
        )),
        n => Ok(n),
    }
}

/// `max_tokens`, checked (`None` = as many as fit).
pub fn max_tokens(v: Option<u32>, param: &str) -> Result<Option<usize>, ApiError> {
    match v {
        Some(0) => Err(ApiError::invalid(
            Some(param),
            format!("{param} must be at least 1"),
        )),
        other => Ok(other.map(|n| n as usize)),
    }
}

/// A grammar for `response_format`, if it asks for JSON.
pub fn response_grammar(format: Option<&ResponseFormat>) -> Result<Option<String>, ApiError> {
    let schema = match format {
        None | Some(ResponseFormat::Text) => return Ok(None),
        Some(ResponseFormat::JsonObject) => serde_json::json!({"type": "object"}),
        Some(ResponseFormat::JsonSchema { json_schema }) => match &json_schema.schema {
            Some(s) => s.clone(),
            None => serde_json::json!({"type": "object"}),
        },
    };
    sandbox_core::grammar_from_schema(&schema)
        .map(Some)
        .map_err(|e| ApiError::invalid(Some("response_format"), e.to_string()))
}

/// The most messages one request may hold: far more than any context holds, and a
/// bound on the template's work (100,000 one-character messages held a worker 240 s).
pub const MAX_MESSAGES: usize = 2048;

/// OpenAI messages as chat-template messages.
pub fn messages(input: &[Message]) -> Result<Vec<ChatMessage>, ApiError> {
    if input.is_empty() {
        return Err(ApiError::invalid(
            Some("messages"),
            "messages must contain at least one message",
        ));
    }
    if input.len() > MAX_MESSAGES {
        return Err(ApiError::invalid(
            Some("messages"),
            format!(
                "messages has {} entries; at most {MAX_MESSAGES} are supported",
                input.len()
            ),
        ));
    }
    input
        .iter()
        .enumerate()
        .map(|(i, m)| message(i, m))
        .collect()
}

fn message(i: usize, m: &Message) -> Result<ChatMessage, ApiError> {
    let param = format!("messages[{i}]");
    let role = match m.role.as_str() {
        "developer" | "system" => "system",
        r @ ("user" | "assistant" | "tool") => r,
        other => {
            return Err(ApiError::invalid(
                Some(&format!("{param}.role")),
                format!(
                    "unknown role {other:?}; expected system, developer, user, assistant or tool"
                ),
            ));
        }
    };
    let content = match &m.content {
        None => None,
        Some(Content::Text(t)) => Some(t.clone()),
        Some(Content::Parts(parts)) => Some(text_parts(&param, parts)?),
    };
    if content.is_none() && m.tool_calls.is_none() {
        return Err(ApiError::invalid(
            Some(&format!("{param}.content")),
            format!("{param} has no content"),
        ));
    }
    if role == "tool" && m.tool_call_id.is_none() {
        return Err(ApiError::invalid(
            Some(&format!("{param}.tool_call_id")),
            "a tool message needs the tool_call_id it answers",
        ));
    }
    let tool_calls = match &m.tool_calls {
        None => None,
        Some(calls) => Some(
            calls
                .iter()
                .map(|c| {
                    let arguments = serde_json::from_str(&c.function.arguments).map_err(|e| {
                        ApiError::invalid(
                            Some(&format!("{param}.tool_calls")),
                            format!("tool call arguments must be JSON text: {e}"),
                        )
                    })?;
                    Ok(ToolCall {
                        id: c.id.clone(),
                        kind: "function".into(),
                        function: FunctionCall {
                            name: c.function.name.clone(),
                            arguments,
                        },
                    })
                })
                .collect::<Result<Vec<_>, ApiError>>()?,
        ),
    };
    Ok(ChatMessage {
        role: role.into(),
        content,
        tool_calls,
        tool_call_id: m.tool_call_id.clone(),
        name: m.name.clone(),
    })
}

fn text_parts(param: &str, parts: &[Value]) -> Result<String, ApiError> {
    let mut texts = Vec::with_capacity(parts.len());
    for part in parts {
        match part.get("type").and_then(Value::as_str) {
            Some("text") => match part.get("text").and_then(Value::as_str) {
                Some(t) => texts.push(t),
                None => {
                    return Err(ApiError::invalid(
                        Some(&format!("{param}.content")),
                        "a text part needs a text string",
                    ));
                }
            },
            Some(kind @ ("image_url" | "input_image" | "image")) => {
                return Err(ApiError::unsupported(
                    &format!("{param}.content"),
                    format!("{kind} parts are not supported: this model reads text only"),
                ));
            }
            Some(kind @ ("input_audio" | "audio" | "file")) => {
                return Err(ApiError::unsupported(
                    &format!("{param}.content"),
                    format!("{kind} parts are not supported: this model reads text only"),
                ));
            }
            other => {
                return Err(ApiError::invalid(
                    Some(&format!("{param}.content")),
                    format!("unknown content part type {other:?}"),
                ));
            }
        }
    }
    Ok(texts.join("\n"))
}

/// The job of choice `i` of `n`: with a seed, each choice gets its own (else all would
/// be the same).
pub fn choice_job(job: &JobRequest, i: u32) -> JobRequest {
    let mut job = job.clone();
    job.sampling.seed = job.sampling.seed.map(|s| s.wrapping_add(i));
    job
}

/// Adds one choice's usage to a request's: the prompt counts once, completions add up.
pub fn add_usage(total: &mut Usage, choice: &Usage, first: bool) {
    if first {
        total.prompt_tokens = choice.prompt_tokens;
        total.cached_prompt_tokens = choice.cached_prompt_tokens;
    }
    total.completion_tokens += choice.completion_tokens;
}
