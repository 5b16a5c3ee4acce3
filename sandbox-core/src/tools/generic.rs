//! Tools for a model whose chat template knows none: the tools and the call syntax are
//! described in the system message, and earlier calls and their results are written
//! into the conversation as text, in the `<tool_call>` syntax many open models learned
//! (Hermes, Qwen), so the template only ever sees plain user and assistant turns.

use serde_json::Value;

use super::syntax::{TAG_CLOSER, TAG_OPENER};
use crate::template::ChatMessage;

/// What the model is told the tools are and how to call them.
pub(crate) fn instructions(tools: &[Value], must_call: bool) -> String {
    let mut text = String::from(
        "You can call functions to answer. Each function is described below as JSON \
         (its name, what it does, and a JSON Schema of its arguments):\n<tools>\n",
    );
    for tool in tools {
        let function = tool.get("function").unwrap_or(tool);
        text.push_str(&function.to_string());
        text.push('\n');
    }
    text.push_str(&format!(
        "</tools>\n\nTo call a function, write one block per call, each holding a JSON \
         object with the function's name and its arguments:\n{TAG_OPENER}\n\
         {{\"name\": \"<function name>\", \"arguments\": {{<arguments>}}}}\n{TAG_CLOSER}\n\
         The results come back in <tool_response></tool_response> blocks. "
    ));
    text.push_str(if must_call {
        "Answer now with a function call."
    } else {
        "When no function is needed, answer in plain text."
    });
    text
}

/// The conversation with calls and results as text, the instructions (if any) in the
/// system message, and turns of the same role merged (templates that insist on
/// alternating turns would otherwise refuse a result followed by a question).
/// `system_role` says whether the template accepts a system message; without one the
/// instructions open the first user turn.
pub(crate) fn rewrite(
    messages: Vec<ChatMessage>,
    instructions: Option<String>,
    system_role: bool,
) -> Vec<ChatMessage> {
    let mut out: Vec<ChatMessage> = Vec::with_capacity(messages.len() + 1);
    for m in messages {
        let m = as_text(m);
        match out.last_mut() {
            Some(last) if last.role == m.role => {
                let joined = [last.content.take(), m.content]
                    .into_iter()
                    .flatten()
                    .filter(|t| !t.is_empty())
                    .collect::<Vec<_>>()
                    .join("\n\n");
                last.content = Some(joined);
            }
            _ => out.push(m),
        }
    }
    let Some(instructions) = instructions else {
        return out;
    };
    let prepend = |m: &mut ChatMessage| {
        m.content = Some(match m.content.take() {
            Some(t) if !t.is_empty() => format!("{t}\n\n{instructions}"),
            _ => instructions.clone(),
        });
    };
    match out.first_mut() {
        Some(first) if first.role == "system" => prepend(first),
        _ if system_role => out.insert(0, ChatMessage::new("system", instructions)),
        Some(first) => {
            first.content = Some(format!(
                "{instructions}\n\n{}",
                first.content.take().unwrap_or_default()
            ));
        }
        None => out.push(ChatMessage::new("user", instructions)),
    }
    out
}

fn as_text(m: ChatMessage) -> ChatMessage {
    match m.role.as_str() {
        "tool" => {
            let result = m.content.unwrap_or_default();
            ChatMessage::new("user", format!("<tool_response>\n{result}\n</tool_response>"))
        }
        "assistant" if m.tool_calls.is_some() => {
            let mut text = m.content.unwrap_or_default();
            for call in m.tool_calls.into_iter().flatten() {
                let body = serde_json::json!({
                    "name": call.function.name,
                    "arguments": call.function.arguments,
                });
                if !text.is_empty() {
                    text.push('\n');
                }
                text.push_str(&format!("{TAG_OPENER}\n{body}\n{TAG_CLOSER}"));
            }
            ChatMessage::new("assistant", text)
        }
        _ => ChatMessage {
            tool_calls: None,
            tool_call_id: None,
            ..m
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::template::{FunctionCall, ToolCall};

    #[test]
    fn calls_and_results_become_text_in_alternating_turns() {
        let mut call = ChatMessage::new("assistant", "");
        call.content = None;
        call.tool_calls = Some(vec![ToolCall {
            id: "call_1".into(),
            kind: "function".into(),
            function: FunctionCall {
                name: "get_weather".into(),
                arguments: serde_json::json!({"city": "Paris"}),
            },
        }]);
        let mut result = ChatMessage::new("tool", "{\"temp\": 21}");
        result.tool_call_id = Some("call_1".into());
        let msgs = vec![
            ChatMessage::new("user", "Weather in Paris?"),
            call,
            result,
            ChatMessage::new("user", "And in Lyon?"),
        ];
        let out = rewrite(msgs, Some("TOOLS".into()), true);
        let roles: Vec<&str> = out.iter().map(|m| m.role.as_str()).collect();
        assert_eq!(roles, ["system", "user", "assistant", "user"]);
        assert_eq!(out[0].content.as_deref(), Some("TOOLS"));
        assert_eq!(
            out[2].content.as_deref(),
            Some("<tool_call>\n{\"name\":\"get_weather\",\"arguments\":{\"city\":\"Paris\"}}\n</tool_call>")
        );
        assert_eq!(
            out[3].content.as_deref(),
            Some("<tool_response>\n{\"temp\": 21}\n</tool_response>\n\nAnd in Lyon?")
        );
        assert!(out.iter().all(|m| m.tool_calls.is_none() && m.tool_call_id.is_none()));
    }

    #[test]
    fn instructions_join_a_system_message_or_open_the_first_turn() {
        let with_system = rewrite(
            vec![ChatMessage::new("system", "Be brief."), ChatMessage::new("user", "Hi")],
            Some("TOOLS".into()),
            true,
        );
        assert_eq!(with_system[0].content.as_deref(), Some("Be brief.\n\nTOOLS"));
        let no_system_role = rewrite(vec![ChatMessage::new("user", "Hi")], Some("TOOLS".into()), false);
        assert_eq!(no_system_role.len(), 1);
        assert_eq!(no_system_role[0].content.as_deref(), Some("TOOLS\n\nHi"));
    }

    #[test]
    fn instructions_name_every_tool() {
        let tools = [serde_json::json!({"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}})];
        let text = instructions(&tools, false);
        assert!(text.contains(r#"{"name":"f","parameters":{"type":"object"}}"#), "{text}");
        assert!(text.contains("plain text"));
        assert!(instructions(&tools, true).contains("Answer now with a function call"));
    }
}
