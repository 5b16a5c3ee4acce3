//! `POST /v1/chat/completions`, plain and streamed.

use std::sync::Arc;

use actix_web::{HttpRequest, HttpResponse, post, web};
use sandbox_core::contract::openai::{
    ASSISTANT, AssistantMessage, COMPLETION_OBJECT, ChatChoice, ChatCompletion,
    ChatCompletionChunk, ChatCompletionRequest, ChatLogprobs, Delta, Timings, ToolCall,
};
use sandbox_core::tools::{Reading, ToolChoice, ToolError, ToolJob};
use sandbox_core::{Engine, JobRequest, Limits, Prompt, TokenLogprob, Usage};

use super::generate::{Choice, Generation, Shape};
use crate::error::ApiError;
use crate::openai::convert;
use crate::openai::tools;
use crate::openai::wire::{self, unix_now};
use crate::state::{AppState, off_io, request_id};

/// Everything needed to run the request's choices.
struct Plan {
    job: JobRequest,
    reading: Reading,
    n: u32,
}

/// `logprobs` and `top_logprobs` as the engine's alternatives per token (`None`: no
/// log-probabilities).
fn logprobs(body: &ChatCompletionRequest) -> Result<Option<usize>, ApiError> {
    match (body.logprobs, body.top_logprobs) {
        (_, Some(k)) if k > 20 => Err(ApiError::invalid(
            Some("top_logprobs"),
            "top_logprobs must be at most 20",
        )),
        (false, Some(_)) => Err(ApiError::invalid(
            Some("top_logprobs"),
            "top_logprobs requires logprobs to be true",
        )),
        (true, k) => Ok(Some(k.unwrap_or(0) as usize)),
        (false, None) => Ok(None),
    }
}

fn plan(body: &ChatCompletionRequest, engine: &Engine, rid: &str) -> Result<Plan, ApiError> {
    let messages = convert::messages(&body.messages)?;
    let n = convert::choices(body.options.n)?;
    let max_tokens = match body.max_completion_tokens {
        Some(v) => convert::max_tokens(Some(v), "max_completion_tokens")?,
        None => convert::max_tokens(body.options.max_tokens, "max_tokens")?,
    };
    let mut sampling = convert::sampling(&body.options, engine)?;
    let logprobs = logprobs(body)?;
    sampling.grammar = convert::response_grammar(body.response_format.as_ref())?;
    let tools = tools::request(
        body.tools.as_deref(),
        body.tool_choice.as_ref(),
        body.parallel_tool_calls.unwrap_or(true),
    )?;
    if body.continue_final_message && tools.is_some() {
        return Err(ApiError::invalid(
            Some("continue_final_message"),
            "continue_final_message cannot be combined with tools",
        ));
    }
    let forced = tools
        .as_ref()
        .is_some_and(|t| matches!(t.choice, ToolChoice::Required | ToolChoice::Named(_)));
    if forced && sampling.grammar.is_some() {
        return Err(ApiError::invalid(
            Some("response_format"),
            "response_format cannot be combined with a required tool call",
        ));
    }
    let ToolJob { prompt, reading } = if body.continue_final_message {
        ToolJob {
            prompt: Prompt::Continue {
                messages,
                tools: None,
            },
            reading: Reading::Text,
        }
    } else {
        engine
            .tool_job(messages, tools.as_ref(), &mut sampling)
            .map_err(|e| match e {
                ToolError::Schema(_) => ApiError::invalid(Some("tools"), e.to_string()),
                ToolError::Prompt(e) => ApiError::from_engine(&e, rid),
            })?
    };
    Ok(Plan {
        job: JobRequest {
            prompt,
            sampling,
            limits: Limits {
                max_tokens,
                stop: convert::stops(body.options.stop.as_ref())?,
                ..Limits::default()
            },
            logprobs,
        },
        reading,
        n,
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
    let generation = Generation::new(state, plan.job, plan.reading, plan.n, first, rid);
    generation.respond(shape, &body.options).await
}

/// Chat completions as OpenAI writes them.
struct ChatShape {
    state: Arc<AppState>,
    id: String,
    created: u64,
    logprobs: bool,
}

impl ChatShape {
    fn part(
        &self,
        index: u32,
        delta: Delta,
        logprobs: Option<ChatLogprobs>,
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

    /// The entries of `lps`, when log-probabilities were asked for.
    fn logprobs(&self, lps: &[TokenLogprob]) -> Option<ChatLogprobs> {
        let engine = self.state.engine().ok()?;
        self.logprobs.then(|| ChatLogprobs {
            content: lps.iter().map(|lp| wire::logprob(engine, lp)).collect(),
        })
    }
}

impl Shape for ChatShape {
    type Response = ChatCompletion;
    type Chunk = ChatCompletionChunk;

    fn response(&self, choices: Vec<Choice>, usage: &Usage) -> ChatCompletion {
        let timings = wire::timings(choices.iter().map(|c| (&c.usage, &c.timings)));
        let choices = choices
            .into_iter()
            .map(|c| ChatChoice {
                index: c.index,
                logprobs: self.logprobs(&c.logprobs),
                finish_reason: c.finish_reason.to_owned(),
                message: AssistantMessage {
                    role: ASSISTANT.into(),
                    // With calls, content is whatever the model said before them.
                    content: (c.tool_calls.is_none() || !c.text.trim().is_empty())
                        .then_some(c.text),
                    refusal: None,
                    tool_calls: c.tool_calls,
                },
            })
            .collect();
        ChatCompletion {
            id: self.id.clone(),
            object: COMPLETION_OBJECT.into(),
            created: self.created,
            model: self.state.model_id.clone(),
            choices,
            usage: wire::usage(usage, true),
            system_fingerprint: None,
            timings,
        }
    }

    fn opening(&mut self, index: u32) -> Option<ChatCompletionChunk> {
        Some(self.part(index, Delta::opening(), None, None))
    }

    fn content(
        &mut self,
        index: u32,
        text: &str,
        logprobs: &[TokenLogprob],
    ) -> ChatCompletionChunk {
        self.part(index, Delta::text(text), self.logprobs(logprobs), None)
    }

    fn finish(
        &mut self,
        index: u32,
        finish_reason: &str,
        tool_calls: Option<&[ToolCall]>,
        timings: Timings,
    ) -> Vec<ChatCompletionChunk> {
        let mut out = Vec::new();
        if let Some(calls) = tool_calls {
            let delta = Delta {
                tool_calls: Some(calls.to_vec()),
                ..Delta::default()
            };
            out.push(self.part(index, delta, None, None));
        }
        let mut last = self.part(index, Delta::default(), None, Some(finish_reason));
        last.timings = Some(timings);
        out.push(last);
        out
    }

    fn usage(&self, usage: &Usage) -> ChatCompletionChunk {
        let model = &self.state.model_id;
        let mut last = ChatCompletionChunk::new(&self.id, self.created, model, Vec::new());
        last.usage = Some(wire::usage(usage, true));
        last
    }
}
