//! How each format writes tool calls in the model's output: where a call opens, and
//! how the calls are read back, whole or cut off by a length limit.

use serde_json::Value;

use super::partial_json::{Member, object_members};

/// Mistral's control token before its list of calls.
pub const MISTRAL_OPENER: &str = "[TOOL_CALLS]";
/// The tag around each call in Hermes-style (and the generic) format.
pub const TAG_OPENER: &str = "<tool_call>";
/// The tag after each call in Hermes-style format.
pub const TAG_CLOSER: &str = "</tool_call>";
/// Llama 3's tag before a call of a built-in tool; its JSON calls may follow it.
pub const PYTHON_TAG: &str = "<|python_tag|>";

/// The written form of tool calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallSyntax {
    /// `[TOOL_CALLS] [{"name": …, "arguments": {…}}, …]`.
    Mistral,
    /// `<tool_call>{"name": …, "arguments": {…}}</tool_call>`, one block per call.
    Tagged,
    /// `{"name": …, "parameters": {…}}` as the whole answer.
    Llama3,
}

/// A call read from the output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedCall {
    /// The function's name.
    pub name: String,
    /// The arguments as JSON text (cut off for a call stopped by a length limit).
    pub arguments: String,
}

/// Where a call opens in the output seen so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Opening {
    /// At this byte.
    At(usize),
    /// Not yet; the text from this byte on may still become the opening.
    Maybe(usize),
    /// Never in this answer.
    Never,
}

impl CallSyntax {
    /// The key that holds the arguments.
    pub(crate) fn arguments_key(self) -> &'static str {
        match self {
            Self::Llama3 => "parameters",
            Self::Mistral | Self::Tagged => "arguments",
        }
    }

    /// Looks for the start of a call in `text`, the output not yet shown as content;
    /// `after_text` says whether content was shown before it.
    pub(crate) fn opening(self, text: &str, after_text: bool) -> Opening {
        let rest = text.trim_start();
        let lead = text.len() - rest.len();
        match self {
            Self::Mistral | Self::Tagged => {
                let opener = if self == Self::Mistral {
                    MISTRAL_OPENER
                } else {
                    TAG_OPENER
                };
                if let Some(i) = text.find(opener) {
                    return Opening::At(i);
                }
                if rest.is_empty() && !after_text {
                    return Opening::Maybe(0);
                }
                let kept = (1..opener.len())
                    .rev()
                    .find(|&k| text.ends_with(&opener[..k]))
                    .unwrap_or(0);
                Opening::Maybe(text.len() - kept)
            }
            Self::Llama3 if after_text => Opening::Never,
            Self::Llama3 => {
                if rest.starts_with('{') || rest.starts_with(PYTHON_TAG) {
                    Opening::At(lead)
                } else if PYTHON_TAG.starts_with(rest) {
                    Opening::Maybe(0)
                } else {
                    Opening::Never
                }
            }
        }
    }

    /// The calls in `text` (from the opening on), if it is nothing but well-formed calls.
    pub fn parse(self, text: &str) -> Option<Vec<ParsedCall>> {
        let calls: Vec<Value> = match self {
            Self::Mistral => {
                let body = text.trim_start();
                let body = body.strip_prefix(MISTRAL_OPENER).unwrap_or(body);
                serde_json::from_str(body.trim()).ok()?
            }
            Self::Tagged => tagged_blocks(text)?
                .into_iter()
                .map(|block| serde_json::from_str(block).ok())
                .collect::<Option<_>>()?,
            Self::Llama3 => {
                let body = text.trim_start();
                let body = body.strip_prefix(PYTHON_TAG).unwrap_or(body);
                vec![serde_json::from_str(body.trim()).ok()?]
            }
        };
        if calls.is_empty() {
            return None;
        }
        calls.iter().map(|c| self.call(c)).collect()
    }

    fn call(self, call: &Value) -> Option<ParsedCall> {
        let name = call.get("name")?.as_str()?.to_owned();
        let arguments = call
            .get(self.arguments_key())
            .or_else(|| call.get("arguments"))
            .cloned()
            .unwrap_or_else(|| Value::Object(Default::default()));
        let arguments = match arguments {
            // Some models write the arguments as a JSON string, as OpenAI sends them.
            Value::String(s) if serde_json::from_str::<Value>(&s).is_ok() => s,
            Value::Object(_) => arguments.to_string(),
            _ => return None,
        };
        Some(ParsedCall { name, arguments })
    }

    /// What calls `text` holds when the model was stopped while writing it: every call
    /// begun, with its name as far as written and its arguments' text as it stands.
    pub fn parse_partial(self, text: &str) -> Vec<ParsedCall> {
        let text = text.trim_start();
        let mut objects = Vec::new();
        match self {
            Self::Mistral => {
                let body = text.strip_prefix(MISTRAL_OPENER).unwrap_or(text).trim_start();
                let mut rest = body.strip_prefix('[').unwrap_or(body);
                loop {
                    rest = rest.trim_start().trim_start_matches(',').trim_start();
                    if !rest.starts_with('{') {
                        break;
                    }
                    let (members, end) = object_members(rest);
                    objects.push(members);
                    match end {
                        Some(end) => rest = &rest[end..],
                        None => break,
                    }
                }
            }
            Self::Tagged => {
                for block in text.split(TAG_OPENER).skip(1) {
                    let body = block.trim_start();
                    if body.starts_with('{') {
                        objects.push(object_members(body).0);
                    }
                }
            }
            Self::Llama3 => {
                let body = text.strip_prefix(PYTHON_TAG).unwrap_or(text).trim_start();
                objects.push(object_members(body).0);
            }
        }
        objects
            .iter()
            .filter_map(|members| self.partial_call(members))
            .collect()
    }

    fn partial_call(self, members: &[Member<'_>]) -> Option<ParsedCall> {
        let name = members.iter().find(|m| m.key == "name")?;
        let name: String = if name.complete {
            serde_json::from_str(name.value).ok()?
        } else {
            // A name cut off inside its string: what was written of it.
            serde_json::from_str(&format!("{}\"", name.value)).ok()?
        };
        if name.is_empty() {
            return None;
        }
        let arguments = members
            .iter()
            .find(|m| m.key == self.arguments_key() || m.key == "arguments")
            .map_or(String::new(), |m| m.value.to_owned());
        Some(ParsedCall { name, arguments })
    }
}

/// The JSON texts of `<tool_call>…</tool_call>` blocks, when the text holds nothing
/// else; the last block's closing tag may be missing (the model ended there).
fn tagged_blocks(text: &str) -> Option<Vec<&str>> {
    let mut rest = text.trim();
    let mut blocks = Vec::new();
    while !rest.is_empty() {
        rest = rest.strip_prefix(TAG_OPENER)?;
        let (block, after) = rest.split_once(TAG_CLOSER).unwrap_or((rest, ""));
        blocks.push(block.trim());
        rest = after.trim_start();
    }
    (!blocks.is_empty()).then_some(blocks)
}

#[cfg(test)]
mod tests {
    use super::CallSyntax::{Llama3, Mistral, Tagged};
    use super::*;

    fn call(name: &str, arguments: &str) -> ParsedCall {
        ParsedCall {
            name: name.into(),
            arguments: arguments.into(),
        }
    }

    #[test]
    fn parses_each_syntax() {
        assert_eq!(
            Mistral.parse(r#"[TOOL_CALLS] [{"name": "get_weather", "arguments": {"city": "Paris"}}]"#),
            Some(vec![call("get_weather", r#"{"city":"Paris"}"#)])
        );
        assert_eq!(
            Mistral.parse(r#" [{"name": "f", "arguments": {}}]"#),
            Some(vec![call("f", "{}")])
        );
        assert_eq!(
            Tagged.parse(
                "<tool_call>\n{\"name\": \"a\", \"arguments\": {\"x\": 1}}\n</tool_call>\n\
                 <tool_call>{\"name\": \"b\", \"arguments\": \"{\\\"y\\\": 2}\"}"
            ),
            Some(vec![call("a", r#"{"x":1}"#), call("b", r#"{"y": 2}"#)])
        );
        assert_eq!(
            Llama3.parse(r#"{"name": "f", "parameters": {"q": "x"}}"#),
            Some(vec![call("f", r#"{"q":"x"}"#)])
        );
        assert_eq!(
            Llama3.parse(r#"<|python_tag|>{"name": "f", "arguments": {}}"#),
            Some(vec![call("f", "{}")])
        );
    }

    #[test]
    fn anything_else_is_not_a_call() {
        assert_eq!(Mistral.parse("The weather is nice."), None);
        assert_eq!(Mistral.parse(r#"[TOOL_CALLS] [{"arguments": {}}]"#), None);
        assert_eq!(Mistral.parse("[TOOL_CALLS] []"), None);
        assert_eq!(Tagged.parse("<tool_call>{\"name\": \"a\"}</tool_call> and more"), None);
        assert_eq!(Tagged.parse("<tool_call>{\"name\": "), None);
        assert_eq!(Llama3.parse(r#"{"name": "f", "parameters": [1]}"#), None);
    }

    #[test]
    fn partial_calls_keep_what_was_written() {
        assert_eq!(
            Mistral.parse_partial(
                r#"[TOOL_CALLS] [{"name": "a", "arguments": {"x": 1}}, {"name": "b", "arguments": {"y": "ab"#
            ),
            vec![call("a", r#"{"x": 1}"#), call("b", r#"{"y": "ab"#)]
        );
        assert_eq!(
            Tagged.parse_partial("<tool_call>\n{\"name\": \"get_wea"),
            vec![call("get_wea", "")]
        );
        assert_eq!(
            Llama3.parse_partial(r#"{"name": "f", "parameters": {"q"#),
            vec![call("f", r#"{"q"#)]
        );
        assert_eq!(Tagged.parse_partial("<tool_call>\n{\"na"), vec![]);
    }

    #[test]
    fn openings() {
        assert_eq!(Tagged.opening("  ", false), Opening::Maybe(0));
        assert_eq!(Tagged.opening("Sure. <tool", false), Opening::Maybe(6));
        assert_eq!(Tagged.opening("Sure. <tool_call>{", false), Opening::At(6));
        assert_eq!(Tagged.opening("Hello", false), Opening::Maybe(5));
        assert_eq!(Mistral.opening(" [TOOL", false), Opening::Maybe(1));
        assert_eq!(Mistral.opening("[TOOL_CALLS] [", false), Opening::At(0));
        assert_eq!(Llama3.opening(" {\"na", false), Opening::At(1));
        assert_eq!(Llama3.opening("<|pyth", false), Opening::Maybe(0));
        assert_eq!(Llama3.opening("Hi", false), Opening::Never);
        assert_eq!(Llama3.opening("{", true), Opening::Never);
    }
}
