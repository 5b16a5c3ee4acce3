//! Chat templates: the GGUF's own Jinja `tokenizer.chat_template`, rendered with
//! minijinja configured like Hugging Face's `apply_chat_template` (trimmed blocks,
//! `raise_exception`, `tojson`, `strftime_now`, loop controls, Python string and dict
//! methods), so the prompt is the one the model was trained on.

use minijinja::{Environment, ErrorKind, Value};
use serde::{Deserialize, Serialize};

use crate::EngineError;

/// One message of a chat, shaped like OpenAI's and Hugging Face's messages.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// `system`, `user`, `assistant` or `tool`.
    pub role: String,
    /// The text; `None` for an assistant message that only calls tools.
    #[serde(default)]
    pub content: Option<String>,
    /// Tool calls made by an assistant message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCall>>,
    /// For a `tool` message: the id of the call it answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
    /// Optional author name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl ChatMessage {
    /// A message with text content.
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        Self {
            role: role.into(),
            content: Some(content.into()),
            tool_calls: None,
            tool_call_id: None,
            name: None,
        }
    }
}

/// A function call requested by the model, as chat templates expect it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    /// Call id (Mistral requires 9 alphanumeric characters).
    pub id: String,
    /// Always `function`.
    #[serde(rename = "type", default = "function_type")]
    pub kind: String,
    /// The function and its arguments.
    pub function: FunctionCall,
}

fn function_type() -> String {
    "function".into()
}

/// Name and arguments of a called function.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunctionCall {
    /// Function name.
    pub name: String,
    /// Arguments as a JSON value (templates serialise them with `tojson`).
    pub arguments: serde_json::Value,
}

const TEMPLATE_NAME: &str = "chat";
/// Marks errors raised by the template itself, so their message is passed on verbatim.
const RAISED: &str = "template raised: ";

/// A compiled chat template plus the special-token strings it refers to.
#[derive(Debug)]
pub struct ChatTemplate {
    env: Environment<'static>,
    bos_token: String,
    eos_token: String,
}

impl ChatTemplate {
    /// Compiles `source`; `bos_token`/`eos_token` are the texts of the model's BOS and
    /// EOS tokens, exposed to the template under those names.
    pub fn new(source: &str, bos_token: &str, eos_token: &str) -> Result<Self, EngineError> {
        let mut env = Environment::new();
        // Hugging Face renders with trim_blocks and lstrip_blocks; without them the
        // whitespace of the template leaks into the prompt.
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function("raise_exception", raise_exception);
        env.add_function("strftime_now", strftime_now);
        env.add_template_owned(TEMPLATE_NAME, source.to_owned())
            .map_err(|e| {
                EngineError::Template(format!("the chat template does not compile: {e}"))
            })?;
        Ok(Self {
            env,
            bos_token: bos_token.to_owned(),
            eos_token: eos_token.to_owned(),
        })
    }

    /// Renders a chat into prompt text, ending with the cue for the assistant's turn.
    /// `tools` (OpenAI-style tool definitions) is passed only when given, since
    /// templates test `tools is defined`.
    pub fn render(
        &self,
        messages: &[ChatMessage],
        tools: Option<&[serde_json::Value]>,
    ) -> Result<String, EngineError> {
        self.render_with_cue(messages, tools, true)
    }

    /// As [`Template::render`], with the assistant's cue (`add_generation_prompt`) only
    /// when `cue` is true.
    pub fn render_with_cue(
        &self,
        messages: &[ChatMessage],
        tools: Option<&[serde_json::Value]>,
        cue: bool,
    ) -> Result<String, EngineError> {
        if messages.is_empty() {
            return Err(EngineError::InvalidRequest(
                "a chat needs at least one message".into(),
            ));
        }
        let tmpl = self
            .env
            .get_template(TEMPLATE_NAME)
            .map_err(|e| EngineError::Template(e.to_string()))?;
        let mut ctx = serde_json::json!({
            "messages": messages,
            "bos_token": self.bos_token,
            "eos_token": self.eos_token,
            "add_generation_prompt": cue,
        });
        if let (Some(tools), Some(obj)) = (tools, ctx.as_object_mut()) {
            obj.insert("tools".into(), serde_json::Value::from(tools.to_vec()));
        }
        tmpl.render(Value::from_serialize(&ctx))
            .map_err(template_error)
    }
}

fn template_error(e: minijinja::Error) -> EngineError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
    while let Some(err) = source {
        if let Some(mj) = err.downcast_ref::<minijinja::Error>()
            && let Some(msg) = mj.detail().and_then(|d| d.strip_prefix(RAISED))
        {
            return EngineError::Template(msg.to_owned());
        }
        source = err.source();
    }
    EngineError::Template(format!("the chat template failed: {e}"))
}

fn raise_exception(message: String) -> Result<Value, minijinja::Error> {
    Err(minijinja::Error::new(
        ErrorKind::InvalidOperation,
        format!("{RAISED}{message}"),
    ))
}

fn strftime_now(format: String) -> String {
    chrono::Local::now().format(&format).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHATML: &str = "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}\
{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";

    #[test]
    fn renders_chatml_with_generation_prompt() {
        let t = ChatTemplate::new(CHATML, "", "").unwrap();
        let out = t.render(&[ChatMessage::new("user", "Hi")], None).unwrap();
        assert_eq!(
            out,
            "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
        );
    }

    #[test]
    fn raise_exception_message_is_passed_on_verbatim() {
        let src = "{% if messages|length > 1 %}{{ raise_exception('Roles must alternate!') }}{% endif %}ok";
        let t = ChatTemplate::new(src, "", "").unwrap();
        let err = t
            .render(
                &[ChatMessage::new("user", "a"), ChatMessage::new("user", "b")],
                None,
            )
            .unwrap_err();
        assert!(
            matches!(&err, EngineError::Template(m) if m == "Roles must alternate!"),
            "{err:?}"
        );
    }

    #[test]
    fn python_methods_tojson_strftime_and_loop_controls_work() {
        let src = "{% for k, v in {'a': 1}.items() %}{{ k }}={{ v|tojson }}{% endfor %}|\
{{ '  x  '.strip() }}|{% for m in messages %}{% if loop.index > 1 %}{% break %}{% endif %}{{ m.content.upper() }}{% endfor %}|\
{{ strftime_now('%Y') }}";
        let t = ChatTemplate::new(src, "", "").unwrap();
        let out = t
            .render(
                &[
                    ChatMessage::new("user", "first"),
                    ChatMessage::new("user", "second"),
                ],
                None,
            )
            .unwrap();
        let year = chrono::Local::now().format("%Y").to_string();
        assert_eq!(out, format!("a=1|x|FIRST|{year}"));
    }

    #[test]
    fn syntax_errors_are_reported_at_compile_time() {
        let err = ChatTemplate::new("{% for %}", "", "").unwrap_err();
        assert!(matches!(err, EngineError::Template(m) if m.contains("does not compile")));
    }

    #[test]
    fn tools_are_only_defined_when_given() {
        let src = "{% if tools is defined %}{{ tools|length }} tools{% else %}none{% endif %}";
        let t = ChatTemplate::new(src, "", "").unwrap();
        let msgs = [ChatMessage::new("user", "x")];
        assert_eq!(t.render(&msgs, None).unwrap(), "none");
        let tools = [serde_json::json!({"type": "function", "function": {"name": "f"}})];
        assert_eq!(t.render(&msgs, Some(&tools)).unwrap(), "1 tools");
    }
}
