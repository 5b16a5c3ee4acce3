//! `POST /v1/completions`: legacy text completion, plain and streamed.

use std::sync::Arc;

use actix_web::{HttpRequest, HttpResponse, post, web};
use sandbox_core::{Engine, JobRequest, Limits, Prompt, TokenLogprob, Usage};
use serde_json::{Map, Value, json};

use super::generate::{Choice, Generation, Shape, Streamed};
use crate::error::ApiError;
use crate::openai::choice::OutputKind;
use crate::openai::convert;
use crate::openai::tools::ParsedCall;
use crate::openai::types::{CompletionRequest, PromptField};
use crate::state::{AppState, off_io, request_id, timings_json, unix_now};

/// OpenAI's default for this endpoint.
const DEFAULT_MAX_TOKENS: usize = 16;

fn prompt(field: &PromptField) -> Result<(Prompt, Option<String>), ApiError> {
    let one = |what: &str| {
        ApiError::unsupported(
            "prompt",
            format!("only one prompt per request is supported, got several {what}"),
        )
    };
    Ok(match field {
        PromptField::Text(t) => (Prompt::Text(t.clone()), Some(t.clone())),
        PromptField::Texts(v) if v.len() == 1 => (Prompt::Text(v[0].clone()), Some(v[0].clone())),
        PromptField::Texts(_) => return Err(one("strings")),
        PromptField::Tokens(t) => (Prompt::Tokens(t.clone()), None),
        PromptField::TokenLists(v) if v.len() == 1 => (Prompt::Tokens(v[0].clone()), None),
        PromptField::TokenLists(_) => return Err(one("token lists")),
    })
}

fn job(
    body: &CompletionRequest,
    engine: &Engine,
) -> Result<(JobRequest, Option<String>), ApiError> {
    if body.suffix.as_deref().is_some_and(|s| !s.is_empty()) {
        return Err(ApiError::unsupported(
            "suffix",
            "suffix (fill-in-the-middle) is not supported",
        ));
    }
    if body.best_of.is_some_and(|b| b > 1) {
        return Err(ApiError::unsupported(
            "best_of",
            "best_of is not supported; use n",
        ));
    }
    if body.logprobs.is_some_and(|k| k > 5) {
        return Err(ApiError::invalid(
            Some("logprobs"),
            "logprobs must be at most 5",
        ));
    }
    let (prompt, text) = prompt(&body.prompt)?;
    let sampling = convert::sampling(&convert::sampling_fields!(body), engine)?;
    let job = JobRequest {
        prompt,
        sampling,
        limits: Limits {
            max_tokens: Some(
                convert::max_tokens(body.max_tokens, "max_tokens")?.unwrap_or(DEFAULT_MAX_TOKENS),
            ),
            stop: convert::stops(body.stop.as_ref())?,
            ..Limits::default()
        },
        logprobs: body.logprobs.map(|k| k as usize),
    };
    Ok((job, text))
}

/// Legacy logprobs: parallel arrays of tokens, their logprobs, top alternatives and
/// character offsets.
fn legacy_logprobs(engine: &Engine, lps: &[TokenLogprob], offset: usize) -> Value {
    let mut tokens = Vec::new();
    let mut token_logprobs = Vec::new();
    let mut top = Vec::new();
    let mut offsets = Vec::new();
    let mut at = offset;
    for lp in lps {
        let t = engine.token_text(lp.token);
        offsets.push(at);
        at += t.chars().count();
        tokens.push(Value::from(t));
        token_logprobs.push(Value::from(lp.logprob));
        let mut m = Map::new();
        for &(id, l) in &lp.top {
            m.insert(engine.token_text(id), Value::from(l));
        }
        top.push(Value::Object(m));
    }
    json!({"tokens": tokens, "token_logprobs": token_logprobs, "top_logprobs": top, "text_offset": offsets})
}

fn usage_json(u: &Usage) -> Value {
    json!({
        "prompt_tokens": u.prompt_tokens,
        "completion_tokens": u.completion_tokens,
        "total_tokens": u.prompt_tokens + u.completion_tokens,
    })
}

#[post("/completions")]
pub async fn completions(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Json<CompletionRequest>,
) -> Result<HttpResponse, ApiError> {
    let rid = request_id(&req);
    state.engine()?;
    state.check_model(&body.model)?;
    let n = convert::choices(body.n)?;
    let body = std::sync::Arc::new(body.into_inner());
    let (st, b, r) = (state.clone(), std::sync::Arc::clone(&body), rid.clone());
    let (job, prompt_text, first) = off_io(&rid, move || {
        let engine = st.engine()?;
        let (job, prompt_text) = job(&b, engine)?;
        let first = engine
            .submit(convert::choice_job(&job, 0))
            .map_err(|e| ApiError::from_engine(&e, &r))?;
        Ok((job, prompt_text, first))
    })
    .await?;
    let echo = if body.echo {
        prompt_text.unwrap_or_default()
    } else {
        String::new()
    };
    let state = state.into_inner();
    let shape = TextShape {
        state: Arc::clone(&state),
        id: format!("cmpl-{}", rid.trim_start_matches("req_")),
        created: unix_now(),
        logprobs: job.logprobs.is_some(),
        offset: echo.chars().count(),
        echo,
    };
    let generation = Generation::new(state, job, OutputKind::Text, n, first, rid);
    let streamed = body
        .stream
        .then(|| Streamed::from(body.stream_options.as_ref()));
    generation.respond(shape, streamed).await
}

/// Legacy text completions as OpenAI writes them.
struct TextShape {
    state: Arc<AppState>,
    id: String,
    created: u64,
    logprobs: bool,
    /// The prompt, when `echo` asked for it before each choice's text.
    echo: String,
    /// Where the next text starts in the choice (for logprobs' `text_offset`).
    offset: usize,
}

impl TextShape {
    fn chunk(&self, index: u32, text: &str, logprobs: Value, finish: Value) -> Value {
        json!({
            "id": self.id,
            "object": "text_completion",
            "created": self.created,
            "model": self.state.model_id,
            "choices": [{"text": text, "index": index, "logprobs": logprobs, "finish_reason": finish}],
        })
    }

    fn logprobs(&self, lps: &[TokenLogprob], offset: usize) -> Value {
        match self.state.engine() {
            Ok(engine) if self.logprobs => legacy_logprobs(engine, lps, offset),
            _ => Value::Null,
        }
    }
}

impl Shape for TextShape {
    type Chunk = Value;

    fn response(&self, choices: Vec<Choice>, usage: &Usage) -> Value {
        let start = self.echo.chars().count();
        let timings: Vec<Value> = choices.iter().map(|c| timings_json(&c.timings)).collect();
        let choices: Vec<Value> = choices
            .iter()
            .map(|c| {
                json!({
                    "text": format!("{}{}", self.echo, c.text),
                    "index": c.index,
                    "logprobs": self.logprobs(&c.logprobs, start),
                    "finish_reason": c.finish_reason,
                })
            })
            .collect();
        json!({
            "id": self.id,
            "object": "text_completion",
            "created": self.created,
            "model": self.state.model_id,
            "choices": choices,
            "usage": usage_json(usage),
            "timings": timings,
        })
    }

    fn opening(&mut self, index: u32) -> Option<Value> {
        self.offset = self.echo.chars().count();
        (!self.echo.is_empty()).then(|| self.chunk(index, &self.echo, Value::Null, Value::Null))
    }

    fn content(&mut self, index: u32, text: &str, logprobs: &[TokenLogprob]) -> Value {
        let lp = self.logprobs(logprobs, self.offset);
        self.offset += text.chars().count();
        self.chunk(index, text, lp, Value::Null)
    }

    fn finish(&mut self, index: u32, finish_reason: &str, _: Option<&[ParsedCall]>) -> Vec<Value> {
        vec![self.chunk(index, "", Value::Null, Value::from(finish_reason))]
    }

    fn usage(&self, usage: &Usage) -> Value {
        let mut last = self.chunk(0, "", Value::Null, Value::Null);
        last["choices"] = json!([]);
        last["usage"] = usage_json(usage);
        last
    }
}
