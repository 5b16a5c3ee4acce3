//! Function calling on every model. Each model gets tools in the format it was trained
//! on where its chat template has one (Mistral's `[TOOL_CALLS]`, the `<tool_call>`
//! tags of Hermes and Qwen, Llama 3's JSON), and a generic format otherwise, described
//! to the model in its system message. Whatever the format, a grammar holds every call
//! to the offered tools and their parameters: from the first token when the call is
//! forced, and from the moment the model opens a call when it may choose (a lazy
//! grammar), so a model that answers in text writes freely.

mod generic;
mod grammar;
mod partial_json;
mod stream;
mod syntax;

use serde_json::Value;

pub use stream::{CallStream, Ending, Reading};
pub use syntax::{CallSyntax, ParsedCall};

use crate::job::Prompt;
use crate::template::{ChatMessage, ChatTemplate};
use crate::{EngineError, GrammarError, ModelInfo, SamplingParams, TokenId};
use syntax::{MISTRAL_OPENER, TAG_OPENER};

/// How a model reads tools and writes calls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToolFormat {
    /// Mistral v0.3 and later: the template renders the tools; calls follow the
    /// `[TOOL_CALLS]` control token as a JSON list.
    Mistral {
        /// The `[TOOL_CALLS]` token.
        marker: TokenId,
    },
    /// Hermes, Qwen 2.5 and other ChatML tool templates: the template renders the
    /// tools and results; each call is a `<tool_call>` block.
    Hermes,
    /// Llama 3.1 and later: the template renders the tools; a call is the answer's
    /// whole text, `{"name": …, "parameters": {…}}`.
    Llama3,
    /// A template without tools: see the `generic` module.
    Generic {
        /// Whether the template takes a system message.
        system_role: bool,
    },
}

impl ToolFormat {
    /// The format of a model, from its vocabulary and its chat template's source.
    pub(crate) fn detect(
        info: &ModelInfo,
        source: Option<&str>,
        template: Option<&ChatTemplate>,
    ) -> Self {
        let source = source.unwrap_or_default();
        let renders_tools = source.contains("tools");
        let marker = info
            .special_tokens
            .iter()
            .find(|t| t.text == MISTRAL_OPENER)
            .map(|t| t.id);
        match marker {
            Some(marker) if renders_tools => Self::Mistral { marker },
            _ if renders_tools && source.contains(TAG_OPENER) => Self::Hermes,
            _ if renders_tools
                && source.contains("<|start_header_id|>")
                && source.contains("parameters") =>
            {
                Self::Llama3
            }
            _ => Self::Generic {
                system_role: template.is_none_or(|t| {
                    t.render(
                        &[ChatMessage::new("system", "s"), ChatMessage::new("user", "u")],
                        None,
                    )
                    .is_ok()
                }),
            },
        }
    }

    /// The written form of this format's calls.
    pub fn syntax(&self) -> CallSyntax {
        match self {
            Self::Mistral { .. } => CallSyntax::Mistral,
            Self::Hermes | Self::Generic { .. } => CallSyntax::Tagged,
            Self::Llama3 => CallSyntax::Llama3,
        }
    }

    /// A short name for logs and `/ready`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Mistral { .. } => "mistral",
            Self::Hermes => "hermes",
            Self::Llama3 => "llama3",
            Self::Generic { .. } => "generic",
        }
    }
}

/// A function the model may call, as far as the grammar needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolSpec {
    /// Its name.
    pub name: String,
    /// A JSON Schema of its arguments (`None`: any object).
    pub parameters: Option<Value>,
}

/// Whether and how the model must call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ToolChoice {
    /// The model may not call (it still sees the tools where the format allows).
    None,
    /// The model decides.
    Auto,
    /// The model must call one or more of the tools.
    Required,
    /// The model must call the tool at this index, once.
    Named(usize),
}

/// The tools of one chat request.
#[derive(Debug, Clone)]
pub struct ToolRequest {
    /// The tools as OpenAI sends them (`{"type": "function", "function": {…}}`), which
    /// is also what chat templates expect.
    pub tools: Vec<Value>,
    /// The same tools for the grammar, in the same order.
    pub specs: Vec<ToolSpec>,
    /// Whether the model must call.
    pub choice: ToolChoice,
    /// Whether one answer may make several calls.
    pub parallel: bool,
}

/// Why a tool request cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    /// A tool's parameters schema cannot be turned into a grammar.
    #[error("a tool's parameters schema cannot be enforced: {0}")]
    Schema(#[from] GrammarError),
    /// The chat could not be rendered or tokenized.
    #[error(transparent)]
    Prompt(#[from] EngineError),
}

/// A chat with tools as the engine runs it.
#[derive(Debug)]
pub struct ToolJob {
    /// The prompt.
    pub prompt: Prompt,
    /// How the answer is read.
    pub reading: Reading,
}

impl crate::Engine {
    /// The prompt and reading of a chat that may use tools, in this model's format; sets
    /// the grammar in `sampling` where calls must follow one. Without `tools` only the
    /// history is adapted (a generic-format model still sees earlier calls as text).
    pub fn tool_job(
        &self,
        messages: Vec<ChatMessage>,
        tools: Option<&ToolRequest>,
        sampling: &mut SamplingParams,
    ) -> Result<ToolJob, ToolError> {
        let format = self.tool_format();
        let syntax = format.syntax();
        let chat = |messages, tools: Option<&ToolRequest>| Prompt::Chat {
            messages,
            tools: tools.map(|t| t.tools.clone()),
        };
        let Some(request) = tools else {
            let messages = match format {
                ToolFormat::Generic { system_role } => {
                    generic::rewrite(messages, None, *system_role)
                }
                _ => messages,
            };
            return Ok(text_job(Prompt::Chat {
                messages,
                tools: None,
            }));
        };
        let forced = match request.choice {
            ToolChoice::None => {
                return Ok(match format {
                    ToolFormat::Mistral { marker } => {
                        sampling.logit_bias.push((*marker, f32::NEG_INFINITY));
                        text_job(chat(messages, Some(request)))
                    }
                    // The other formats open a call with text no bias can ban: the
                    // model is not shown the tools at all.
                    _ => return self.tool_job(messages, None, sampling),
                });
            }
            ToolChoice::Auto => None,
            ToolChoice::Required => Some(&request.specs[..]),
            ToolChoice::Named(i) => Some(std::slice::from_ref(&request.specs[i])),
        };
        let several = request.parallel && !matches!(request.choice, ToolChoice::Named(_));
        let (messages, template_tools) = match format {
            ToolFormat::Generic { system_role } => {
                let text = generic::instructions(&request.tools, forced.is_some());
                (generic::rewrite(messages, Some(text), *system_role), None)
            }
            _ => (messages, Some(&request.tools[..])),
        };
        let Some(specs) = forced else {
            // A JSON `response_format` keeps its own grammar; calls are then read as
            // the model writes them.
            if sampling.grammar.is_none() {
                sampling.grammar =
                    Some(grammar::call_grammar(syntax, &request.specs, several, true)?);
                match format {
                    ToolFormat::Mistral { marker } => sampling.grammar_trigger_tokens.push(*marker),
                    ToolFormat::Llama3 => sampling.grammar_triggers.push("{\"name\"".into()),
                    ToolFormat::Hermes | ToolFormat::Generic { .. } => {
                        sampling.grammar_triggers.push(TAG_OPENER.into());
                    }
                }
            }
            return Ok(ToolJob {
                prompt: Prompt::Chat {
                    messages,
                    tools: template_tools.map(<[Value]>::to_vec),
                },
                reading: Reading::MaybeCalls(syntax),
            });
        };
        let prompt = match format {
            // The control token goes into the prompt; the grammar holds the list after it.
            ToolFormat::Mistral { marker } => {
                let mut tokens = self.chat_tokens(&messages, template_tools)?;
                tokens.push(*marker);
                sampling.grammar = Some(grammar::call_grammar(syntax, specs, several, false)?);
                Prompt::Tokens(tokens)
            }
            _ => {
                sampling.grammar = Some(grammar::call_grammar(syntax, specs, several, true)?);
                Prompt::Chat {
                    messages,
                    tools: template_tools.map(<[Value]>::to_vec),
                }
            }
        };
        Ok(ToolJob {
            prompt,
            reading: Reading::Calls(syntax),
        })
    }
}

fn text_job(prompt: Prompt) -> ToolJob {
    ToolJob {
        prompt,
        reading: Reading::Text,
    }
}
