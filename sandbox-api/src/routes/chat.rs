//! `POST /v1/chat/completions`, plain and streamed.

use std::sync::Arc;

use actix_web::{HttpRequest, HttpResponse, post, web};
use sandbox_core::contract::openai::{CHUNK_OBJECT, ChatCompletionChunk, ChunkChoice, Delta};
use sandbox_core::{Engine, JobRequest, Limits, Prompt, TokenLogprob, Usage};
use serde_json::{Value, json};

use super::generate::{Choice, Generation, Shape, Streamed};
use crate::error::ApiError;
use crate::openai::choice::OutputKind;
use crate::openai::convert;
use crate::openai::tools::{self, ParsedCall, ToolMode};
use crate::openai::types::ChatCompletionRequest;
use crate::state::{AppState, logprob_json, off_io, request_id, timings_json, unix_now};

/// Everything needed to run the request's choices.
struct Plan {
    job: JobRequest,
    kind: OutputKind,
    n: u32,
}

fn plan(body: &ChatCompletionRequest, engine: &Engine, rid: &str) -> Result<Plan, ApiError> {
    let messages = convert::messages(&body.messages)?;
    let n = convert::choices(body.n)?;
    let max_tokens = match body.max_completion_tokens {
        Some(v) => convert::max_tokens(Some(v), "max_completion_tokens")?,
        None => convert::max_tokens(body.max_tokens, "max_tokens")?,
    };
    let mut sampling = convert::sampling(&convert::sampling_fields!(body), engine)?;
    let logprobs = match (body.logprobs, body.top_logprobs) {
        (_, Some(k)) if k > 20 => {
            return Err(ApiError::invalid(
                Some("top_logprobs"),
                "top_logprobs must be at most 20",
            ));
        }
        (false, Some(_)) => {
            return Err(ApiError::invalid(
                Some("top_logprobs"),
                "top_logprobs requires logprobs to be true",
            ));
        }
        (true, k) => Some(k.unwrap_or(0) as usize),
        (false, None) => None,
    };
    sampling.grammar = convert::response_grammar(body.response_format.as_ref())?;
    let tool_plan = tools::plan(
        body.tools.as_deref(),
        body.tool_choice.as_ref(),
        body.parallel_tool_calls.unwrap_or(true),
        engine,
    )?;
    if body.continue_final_message && tool_plan.is_some() {
        return Err(ApiError::invalid(
            Some("continue_final_message"),
            "continue_final_message cannot be combined with tools",
        ));
    }
    let (prompt, kind) = match tool_plan {
        None if body.continue_final_message => (
            Prompt::Continue {
                messages,
                tools: None,
            },
            OutputKind::Text,
        ),
        None => (
            Prompt::Chat {
                messages,
                tools: None,
            },
            OutputKind::Text,
        ),
        Some(p) => match p.mode {
            ToolMode::Auto => (
                Prompt::Chat {
                    messages,
                    tools: Some(p.tools),
                },
                OutputKind::MaybeToolCalls,
            ),
            ToolMode::Banned(marker) => {
                sampling.logit_bias.push((marker, f32::NEG_INFINITY));
                (
                    Prompt::Chat {
                        messages,
                        tools: Some(p.tools),
                    },
                    OutputKind::Text,
                )
            }
            ToolMode::Forced { grammar, marker } => {
                if sampling.grammar.is_some() {
                    return Err(ApiError::invalid(
                        Some("response_format"),
                        "response_format cannot be combined with a required tool call",
                    ));
                }
                sampling.grammar = Some(grammar);
                let mut tokens = engine
                    .chat_tokens(&messages, Some(&p.tools))
                    .map_err(|e| ApiError::from_engine(&e, rid))?;
                tokens.push(marker);
                (Prompt::Tokens(tokens), OutputKind::ToolCalls)
            }
        },
    };
    Ok(Plan {
        job: JobRequest {
            prompt,
            sampling,
            limits: Limits {
                max_tokens,
                stop: convert::stops(body.stop.as_ref())?,
                ..Limits::default()
            },
            logprobs,
        },
        kind,
        n,
    })
}

fn tool_calls_json(calls: &[ParsedCall]) -> Value {
    Value::Array(
        calls
            .iter()
            .enumerate()
            .map(|(i, c)| {
                json!({
                    "index": i,
                    "id": c.id,
                    "type": "function",
                    "function": {"name": c.name, "arguments": c.arguments},
                })
            })
            .collect(),
    )
}

fn usage_json(u: &Usage) -> Value {
    json!({
        "prompt_tokens": u.prompt_tokens,
        "completion_tokens": u.completion_tokens,
        "total_tokens": u.prompt_tokens + u.completion_tokens,
        "prompt_tokens_details": {"cached_tokens": u.cached_prompt_tokens},
    })
}

#[post("/chat/completions")]
pub async fn completions(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Json<ChatCompletionRequest>,
) -> Result<HttpResponse, ApiError> {
    let rid = request_id(&req);
    state.engine()?;
    state.check_model(&body.model)?;
    let body = std::sync::Arc::new(body.into_inner());
    let (st, b, r) = (state.clone(), std::sync::Arc::clone(&body), rid.clone());
    let (plan, first) = off_io(&rid, move || {
        let engine = st.engine()?;
        let plan = plan(&b, engine, &r)?;
        let first = engine
            .submit(convert::choice_job(&plan.job, 0))
            .map_err(|e| ApiError::from_engine(&e, &r))?;
        Ok((plan, first))
    })
    .await?;
    let state = state.into_inner();
    let shape = ChatShape {
        state: Arc::clone(&state),
        id: format!("chatcmpl-{}", rid.trim_start_matches("req_")),
        created: unix_now(),
        logprobs: plan.job.logprobs.is_some(),
    };
    let generation = Generation::new(state, plan.job, plan.kind, plan.n, first, rid);
    let streamed = body
        .stream
        .then(|| Streamed::from(body.stream_options.as_ref()));
    generation.respond(shape, streamed).await
}

/// Chat completions as OpenAI writes them.
struct ChatShape {
    state: Arc<AppState>,
    id: String,
    created: u64,
    logprobs: bool,
}

impl ChatShape {
    fn chunk(&self, choices: Vec<ChunkChoice>) -> ChatCompletionChunk {
        ChatCompletionChunk {
            id: self.id.clone(),
            object: CHUNK_OBJECT.into(),
            created: self.created,
            model: self.state.model_id.clone(),
            system_fingerprint: None,
            choices,
            usage: None,
        }
    }

    fn part(
        &self,
        index: u32,
        delta: Delta,
        logprobs: Option<Value>,
        finish: Option<&str>,
    ) -> ChatCompletionChunk {
        let model = &self.state.model_id;
        ChatCompletionChunk::part(
            &self.id,
            self.created,
            model,
            index,
            delta,
            logprobs,
            finish,
        )
    }

    /// `{"content": [...]}` when log-probabilities were asked for.
    fn logprobs(&self, lps: &[TokenLogprob]) -> Option<Value> {
        let engine = self.state.engine().ok()?;
        self.logprobs.then(|| {
            json!({"content": lps.iter().map(|lp| logprob_json(engine, lp)).collect::<Vec<_>>()})
        })
    }
}

impl Shape for ChatShape {
    type Chunk = ChatCompletionChunk;

    fn response(&self, choices: Vec<Choice>, usage: &Usage) -> Value {
        let timings: Vec<Value> = choices.iter().map(|c| timings_json(&c.timings)).collect();
        let choices: Vec<Value> = choices
            .iter()
            .map(|c| {
                let mut message = json!({"role": "assistant", "content": c.text, "refusal": null});
                if let Some(calls) = &c.tool_calls {
                    message["content"] = Value::Null;
                    message["tool_calls"] = tool_calls_json(calls);
                }
                json!({
                    "index": c.index,
                    "message": message,
                    "logprobs": self.logprobs(&c.logprobs),
                    "finish_reason": c.finish_reason,
                })
            })
            .collect();
        json!({
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.state.model_id,
            "choices": choices,
            "usage": usage_json(usage),
            "system_fingerprint": null,
            "timings": timings,
        })
    }

    fn opening(&mut self, index: u32) -> Option<ChatCompletionChunk> {
        let role = Delta {
            role: Some("assistant".into()),
            content: Some(String::new()),
            ..Delta::default()
        };
        Some(self.part(index, role, None, None))
    }

    fn content(
        &mut self,
        index: u32,
        text: &str,
        logprobs: &[TokenLogprob],
    ) -> ChatCompletionChunk {
        let delta = Delta {
            content: Some(text.to_owned()),
            ..Delta::default()
        };
        self.part(index, delta, self.logprobs(logprobs), None)
    }

    fn finish(
        &mut self,
        index: u32,
        finish_reason: &str,
        tool_calls: Option<&[ParsedCall]>,
    ) -> Vec<ChatCompletionChunk> {
        let mut out = Vec::new();
        if let Some(calls) = tool_calls {
            let delta = Delta {
                tool_calls: Some(tool_calls_json(calls)),
                ..Delta::default()
            };
            out.push(self.part(index, delta, None, None));
        }
        out.push(self.part(index, Delta::default(), None, Some(finish_reason)));
        out
    }

    fn usage(&self, usage: &Usage) -> ChatCompletionChunk {
        let mut last = self.chunk(Vec::new());
        last.usage = Some(usage_json(usage));
        last
    }
}
