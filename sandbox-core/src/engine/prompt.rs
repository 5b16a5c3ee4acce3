//! The prompt side of the engine: chat templates, tokens, and what a request becomes
//! before it is queued (its tokens, its room in the context, its sampler checked).

use std::ops::Range;

use llama_sys::{Sampler, TokenId};

use super::Engine;
use crate::control_text::{self, Fragment};
use crate::job::{JobRequest, Prompt};
use crate::queue::PreparedJob;
use crate::template::ChatMessage;
use crate::EngineError;

impl Engine {
    /// Renders a chat with the model's template (the exact prompt text the model sees).
    pub fn render_chat(
        &self,
        messages: &[ChatMessage],
        tools: Option<&[serde_json::Value]>,
    ) -> Result<String, EngineError> {
        self.render_chat_with_cue(messages, tools, true)
    }

    fn render_chat_with_cue(
        &self,
        messages: &[ChatMessage],
        tools: Option<&[serde_json::Value]>,
        cue: bool,
    ) -> Result<String, EngineError> {
        let template = self.template.as_ref().ok_or_else(|| {
            EngineError::InvalidRequest(
                "this model has no chat template; send a text prompt instead".into(),
            )
        })?;
        template.render_with_cue(messages, tools, cue)
    }

    /// Tokenizes plain text the way a text prompt is tokenized.
    pub fn tokenize(&self, text: &str, add_bos: bool) -> Result<Vec<TokenId>, EngineError> {
        Ok(self.model.tokenize(text, add_bos)?)
    }

    /// A rendered prompt tokenized the way llama.cpp parses a whole prompt, where any
    /// control-token text becomes a control token ([`Engine::chat_tokens`] does so only
    /// for the template's own text). For comparisons and diagnostics.
    pub fn tokenize_prompt_text(&self, text: &str) -> Result<Vec<TokenId>, EngineError> {
        Ok(self.model.tokenize_prompt(text)?)
    }

    /// The prompt tokens a chat becomes.
    pub fn chat_tokens(
        &self,
        messages: &[ChatMessage],
        tools: Option<&[serde_json::Value]>,
    ) -> Result<Vec<TokenId>, EngineError> {
        let (text, protected) = self.rendered(messages, tools, true)?;
        self.prompt_tokens(&text, &protected)
    }

    /// The prompt tokens of a chat whose final assistant message the model goes on
    /// with ([`Prompt::Continue`]).
    pub fn continuation_tokens(
        &self,
        messages: &[ChatMessage],
        tools: Option<&[serde_json::Value]>,
    ) -> Result<Vec<TokenId>, EngineError> {
        let (text, protected) = self.open_final_turn(messages, tools)?;
        self.prompt_tokens(&text, &protected)
    }

    /// The rendered chat and the byte ranges of message contents that spell control
    /// tokens, which must stay text (control_text.rs).
    fn rendered(
        &self,
        messages: &[ChatMessage],
        tools: Option<&[serde_json::Value]>,
        cue: bool,
    ) -> Result<(String, Vec<Range<usize>>), EngineError> {
        Ok(match self.control.guard(messages, tools)? {
            None => (self.render_chat_with_cue(messages, tools, cue)?, Vec::new()),
            Some(guarded) => control_text::assemble(
                &self.render_chat_with_cue(&guarded, tools, cue)?,
                messages,
            ),
        })
    }

    /// The chat rendered up to the end of its final assistant message's text. Whatever
    /// a template writes after a turn (`</s>`, `<|im_end|>`, a new cue) differs from one
    /// to the next, so the chat is rendered with a mark in place of that text and cut
    /// at the mark; the text (trailing white space dropped, which the model writes as
    /// the start of its next word) goes back in, always tokenized as text.
    fn open_final_turn(
        &self,
        messages: &[ChatMessage],
        tools: Option<&[serde_json::Value]>,
    ) -> Result<(String, Vec<Range<usize>>), EngineError> {
        const MARK: &str = "\u{F8FE}continue-here\u{F8FE}";
        let Some(last) = messages.last().filter(|m| m.role == "assistant") else {
            return Err(EngineError::InvalidRequest(
                "to continue a message, the last message must be the assistant's".into(),
            ));
        };
        let content = last.content.as_deref().unwrap_or_default().trim_end();
        let mut marked = messages.to_vec();
        if let Some(m) = marked.last_mut() {
            m.content = Some(MARK.into());
        }
        let (mut text, mut protected) = self.rendered(&marked, tools, false)?;
        let at = text.rfind(MARK).ok_or_else(|| {
            EngineError::Template(
                "this chat template does not show the assistant's last message, so it cannot be continued".into(),
            )
        })?;
        text.truncate(at);
        protected.retain(|r| r.end <= at);
        let start = text.len();
        text.push_str(content);
        protected.push(start..text.len());
        Ok((text, protected))
    }

    fn prompt_tokens(&self, text: &str, protected: &[Range<usize>]) -> Result<Vec<TokenId>, EngineError> {
        let mut tokens = Vec::with_capacity(text.len() / 3 + 2);
        for fragment in self.control.fragments(text, protected) {
            match fragment {
                Fragment::Control(id) => tokens.push(id),
                Fragment::Text(t) => tokens.extend_from_slice(
                    &self.fragments.tokens(t, |t| self.model.tokenize_fragment(t))?,
                ),
            }
        }
        let info = self.model.info();
        if let Some(bos) = info.bos.as_ref().filter(|_| info.add_bos)
            && tokens.first() != Some(&bos.id)
        {
            tokens.insert(0, bos.id);
        }
        Ok(tokens)
    }

    /// The text of one token as the model would print it (control tokens included),
    /// lossily decoded when the token is part of a multi-byte character.
    pub fn token_text(&self, token: TokenId) -> String {
        self.model
            .token_bytes(token, true)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// The raw bytes of one token (for logprob `bytes` fields).
    pub fn token_bytes(&self, token: TokenId) -> Vec<u8> {
        self.model.token_bytes(token, true).unwrap_or_default()
    }

    /// Decodes tokens to text.
    pub fn detokenize(&self, tokens: &[TokenId]) -> Result<String, EngineError> {
        Ok(self.model.detokenize(tokens)?)
    }

    pub(super) fn prepare(&self, request: JobRequest) -> Result<PreparedJob, EngineError> {
        let info = self.model.info();
        let (tokens, is_chat) = match &request.prompt {
            Prompt::Text(text) => (self.model.tokenize(text, true)?, false),
            Prompt::Tokens(tokens) => {
                for &t in tokens {
                    self.model.check_token(t)?;
                }
                (tokens.clone(), false)
            }
            Prompt::Chat { messages, tools } => {
                (self.chat_tokens(messages, tools.as_deref())?, true)
            }
            Prompt::Continue { messages, tools } => {
                (self.continuation_tokens(messages, tools.as_deref())?, false)
            }
        };
        if tokens.is_empty() {
            return Err(EngineError::InvalidRequest("the prompt is empty".into()));
        }
        let n_ctx = self.n_ctx as usize;
        let room = n_ctx.saturating_sub(tokens.len());
        let max_tokens = match request.limits.max_tokens {
            Some(0) => {
                return Err(EngineError::InvalidRequest(
                    "max_tokens must be at least 1".into(),
                ));
            }
            Some(n) if tokens.len() + n > n_ctx => {
                return Err(EngineError::ContextOverflow {
                    prompt_tokens: tokens.len(),
                    max_tokens: n,
                    n_ctx: self.n_ctx,
                });
            }
            Some(n) => n,
            None if room == 0 => {
                return Err(EngineError::ContextOverflow {
                    prompt_tokens: tokens.len(),
                    max_tokens: 1,
                    n_ctx: self.n_ctx,
                });
            }
            None => room,
        };
        let mut sampling = request.sampling;
        if request.limits.ignore_eos {
            let eog = &info.end_of_generation;
            sampling
                .logit_bias
                .extend(eog.iter().map(|&t| (t, f32::NEG_INFINITY)));
        }
        Ok(PreparedJob {
            tokens,
            sampler: Sampler::new(&self.model, &sampling)?,
            max_tokens,
            limits: request.limits,
            logprobs: request.logprobs,
            strip_leading_space: is_chat && info.add_space_prefix,
        })
    }
}
