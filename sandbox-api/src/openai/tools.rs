//! Function calling in Mistral's format: the model's chat template renders the tools;
//! the model answers `[TOOL_CALLS] [{"name": ..., "arguments": {...}}]`, which becomes
//! OpenAI `tool_calls`. `tool_choice: "required"` or a named function is enforced by
//! starting the answer with `[TOOL_CALLS]` and constraining the rest with a grammar.

use rand::Rng;
use rand::distr::Alphanumeric;
use sandbox_core::contract::openai::{FunctionCall, Tool, ToolCall, ToolChoice};
use sandbox_core::{Engine, TokenId};
use serde_json::{Value, json};

use crate::error::ApiError;

/// The control token that opens a tool call.
pub const TOOL_CALLS: &str = "[TOOL_CALLS]";

/// How a request uses tools.
#[derive(Debug, Clone)]
pub enum ToolMode {
    /// The model sees the tools but may not call them.
    Banned(TokenId),
    /// The model decides.
    Auto,
    /// The answer is a call; `grammar` constrains it.
    Forced { grammar: String, marker: TokenId },
}

/// Tools for the template plus the mode.
#[derive(Debug, Clone)]
pub struct ToolPlan {
    pub tools: Vec<Value>,
    pub mode: ToolMode,
}

/// Works out the tool plan of a request, or explains why it cannot be served.
///
/// `parallel` (OpenAI's `parallel_tool_calls`, default true) allows several calls in
/// one answer; a named `tool_choice` always means exactly one call.
pub fn plan(
    tools: Option<&[Tool]>,
    choice: Option<&ToolChoice>,
    parallel: bool,
    engine: &Engine,
) -> Result<Option<ToolPlan>, ApiError> {
    let tools = tools.unwrap_or_default();
    let choice_name = |c: &ToolChoice| match c {
        ToolChoice::Mode(m) => m.clone(),
        ToolChoice::Named(_) => "a named function".into(),
    };
    if tools.is_empty() {
        return match choice {
            Some(ToolChoice::Mode(m)) if m == "none" || m == "auto" => Ok(None),
            None => Ok(None),
            Some(c) => Err(ApiError::invalid(
                Some("tool_choice"),
                format!("tool_choice is {} but no tools were given", choice_name(c)),
            )),
        };
    }
    for t in tools {
        if t.kind != "function" {
            return Err(ApiError::invalid(
                Some("tools"),
                format!("unsupported tool type {:?}", t.kind),
            ));
        }
    }
    let marker = engine
        .model_info()
        .special_tokens
        .iter()
        .find(|t| t.text == TOOL_CALLS)
        .map(|t| t.id);
    let Some(marker) = marker else {
        return match choice {
            Some(ToolChoice::Mode(m)) if m == "none" => Ok(None),
            _ => Err(ApiError::unsupported(
                "tools",
                "this model has no function-calling format (no [TOOL_CALLS] token); send the request without tools",
            )),
        };
    };
    let rendered: Vec<Value> = tools.iter().map(|t| json!(t)).collect();
    let mode = match choice {
        None => ToolMode::Auto,
        Some(ToolChoice::Mode(m)) => match m.as_str() {
            "auto" => ToolMode::Auto,
            "none" => ToolMode::Banned(marker),
            "required" => ToolMode::Forced {
                grammar: call_grammar(tools, parallel)?,
                marker,
            },
            other => {
                return Err(ApiError::invalid(
                    Some("tool_choice"),
                    format!(
                        "tool_choice must be none, auto, required or a function, got {other:?}"
                    ),
                ));
            }
        },
        Some(ToolChoice::Named(n)) => {
            let Some(tool) = tools.iter().find(|t| t.function.name == n.function.name) else {
                return Err(ApiError::invalid(
                    Some("tool_choice"),
                    format!(
                        "tool_choice names {:?}, which is not among the tools",
                        n.function.name
                    ),
                ));
            };
            ToolMode::Forced {
                grammar: call_grammar(std::slice::from_ref(tool), false)?,
                marker,
            }
        }
    };
    Ok(Some(ToolPlan {
        tools: rendered,
        mode,
    }))
}

/// A grammar for ` [{"name": <one of the tools>, "arguments": <its parameters>}, ...]`.
fn call_grammar(tools: &[Tool], parallel: bool) -> Result<String, ApiError> {
    let variants: Vec<Value> = tools
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let parameters = t
                .function
                .parameters
                .clone()
                .unwrap_or_else(|| json!({"type": "object"}));
            json!({
                "type": "object",
                "properties": {
                    "name": {"const": t.function.name},
                    // Its own "#" references keep pointing at its own root.
                    "arguments": sandbox_core::schema::embed(
                        &parameters,
                        &format!("#/items/anyOf/{i}/properties/arguments"),
                    ),
                },
                "required": ["name", "arguments"],
                "additionalProperties": false,
            })
        })
        .collect();
    let mut schema = json!({"type": "array", "minItems": 1, "items": {"anyOf": variants}});
    if !parallel {
        schema["maxItems"] = json!(1);
    }
    let grammar = sandbox_core::grammar_from_schema(&schema).map_err(|e| {
        ApiError::invalid(
            Some("tools"),
            format!("a tool's parameters schema cannot be enforced: {e}"),
        )
    })?;
    // Mistral writes a space between [TOOL_CALLS] and the array.
    Ok(format!(
        "root ::= \" \"? calls\n{}",
        grammar.replacen("root ::=", "calls ::=", 1)
    ))
}

/// Parses the model's output as tool calls; `None` when it is not a well-formed call.
pub fn parse_calls(output: &str) -> Option<Vec<ToolCall>> {
    let body = output.trim_start();
    let body = body.strip_prefix(TOOL_CALLS).unwrap_or(body).trim();
    let calls: Vec<Value> = serde_json::from_str(body).ok()?;
    if calls.is_empty() {
        return None;
    }
    calls
        .into_iter()
        .enumerate()
        .map(|(i, c)| {
            let name = c.get("name")?.as_str()?.to_owned();
            let arguments = c.get("arguments").cloned().unwrap_or_else(|| json!({}));
            Some(ToolCall {
                index: u32::try_from(i).ok(),
                id: call_id(),
                kind: "function".into(),
                function: FunctionCall {
                    name,
                    arguments: arguments.to_string(),
                },
            })
        })
        .collect()
}

/// Whether `text` could still become the start of a tool call.
pub fn may_start_call(text: &str) -> bool {
    let t = text.trim_start();
    TOOL_CALLS.starts_with(t) || t.starts_with(TOOL_CALLS)
}

/// A Mistral tool-call id: 9 alphanumeric characters.
pub fn call_id() -> String {
    rand::rng()
        .sample_iter(&Alphanumeric)
        .take(9)
        .map(char::from)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_mistral_tool_calls() {
        let calls = parse_calls(
            r#"[TOOL_CALLS] [{"name": "get_weather", "arguments": {"city": "Paris"}}]"#,
        )
        .unwrap();
        assert_eq!(calls.len(), 1);
        assert_eq!(calls[0].function.name, "get_weather");
        assert_eq!(calls[0].function.arguments, r#"{"city":"Paris"}"#);
        assert_eq!(calls[0].id.len(), 9);
        assert!(calls[0].id.chars().all(|c| c.is_ascii_alphanumeric()));
        assert!(parse_calls(" [{\"name\": \"f\", \"arguments\": {}}]").is_some());
        assert!(parse_calls("The weather is nice.").is_none());
        assert!(parse_calls("[TOOL_CALLS] [{\"arguments\": {}}]").is_none());
    }

    #[test]
    fn call_prefix_detection() {
        assert!(may_start_call(""));
        assert!(may_start_call(" [TOOL"));
        assert!(may_start_call("[TOOL_CALLS] [{"));
        assert!(!may_start_call("Hello"));
    }
}
