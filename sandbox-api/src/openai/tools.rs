//! OpenAI's `tools`, `tool_choice` and `parallel_tool_calls`, checked and put in the
//! engine's terms (`sandbox_core::tools` serves them in the model's own format), and
//! the calls the model made put back in OpenAI's.

use rand::Rng;
use rand::distr::Alphanumeric;
use sandbox_core::contract::openai::{FunctionCall, Tool, ToolCall, ToolChoice};
use sandbox_core::tools::{self, ParsedCall, ToolRequest, ToolSpec};
use serde_json::json;

use crate::error::ApiError;

/// The request's tools in engine terms; `None` when it offers none.
///
/// `parallel` (OpenAI's `parallel_tool_calls`, default true) allows several calls in
/// one answer; a named `tool_choice` always means exactly one call.
pub fn request(
    tools: Option<&[Tool]>,
    choice: Option<&ToolChoice>,
    parallel: bool,
) -> Result<Option<ToolRequest>, ApiError> {
    let tools = tools.unwrap_or_default();
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
    let choice = match choice {
        None => tools::ToolChoice::Auto,
        Some(ToolChoice::Mode(m)) => match m.as_str() {
            "auto" => tools::ToolChoice::Auto,
            "none" => tools::ToolChoice::None,
            "required" => tools::ToolChoice::Required,
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
            let Some(i) = tools
                .iter()
                .position(|t| t.function.name == n.function.name)
            else {
                return Err(ApiError::invalid(
                    Some("tool_choice"),
                    format!(
                        "tool_choice names {:?}, which is not among the tools",
                        n.function.name
                    ),
                ));
            };
            tools::ToolChoice::Named(i)
        }
    };
    Ok(Some(ToolRequest {
        tools: tools.iter().map(|t| json!(t)).collect(),
        specs: tools
            .iter()
            .map(|t| ToolSpec {
                name: t.function.name.clone(),
                parameters: t.function.parameters.clone(),
            })
            .collect(),
        choice,
        parallel,
    }))
}

fn choice_name(c: &ToolChoice) -> String {
    match c {
        ToolChoice::Mode(m) => m.clone(),
        ToolChoice::Named(_) => "a named function".into(),
    }
}

/// The model's calls as OpenAI tool calls, each with a fresh id.
pub fn wire_calls(calls: Vec<ParsedCall>) -> Vec<ToolCall> {
    calls
        .into_iter()
        .enumerate()
        .map(|(i, c)| ToolCall {
            index: u32::try_from(i).ok(),
            id: call_id(),
            kind: "function".into(),
            function: FunctionCall {
                name: c.name,
                arguments: c.arguments,
            },
        })
        .collect()
}

/// A tool-call id: 9 alphanumeric characters, the form Mistral's template requires
/// when the id comes back with the result (and any other format accepts).
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
    fn calls_get_mistral_style_ids_and_indexes() {
        let calls = wire_calls(vec![
            ParsedCall {
                name: "a".into(),
                arguments: "{}".into(),
            },
            ParsedCall {
                name: "b".into(),
                arguments: "{\"x\":1}".into(),
            },
        ]);
        assert_eq!(calls[1].index, Some(1));
        assert_eq!(calls[1].function.arguments, "{\"x\":1}");
        assert!(
            calls
                .iter()
                .all(|c| c.id.len() == 9 && c.id.chars().all(|c| c.is_ascii_alphanumeric()))
        );
    }
}
