//! `POST /v1/completions`: legacy text completion, plain and streamed.

use actix_web::{HttpRequest, HttpResponse, post, web};
use sandbox_core::{Engine, JobRequest, Limits, Prompt, TokenLogprob, Usage};
use serde_json::{Map, Value, json};

use super::sse::{self, SseSender};
use crate::error::ApiError;
use crate::openai::choice::{ChoiceEvent, ChoiceReader, OutputKind};
use crate::openai::convert;
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
    let engine = state.engine()?;
    let echo = if body.echo {
        prompt_text.unwrap_or_default()
    } else {
        String::new()
    };
    let first = ChoiceReader::new(first, OutputKind::Text);
    let mut builder = HttpResponse::Ok();
    builder.insert_header((
        "x-queue-position",
        first.position().unwrap_or(0).to_string(),
    ));
    let id = format!("cmpl-{}", rid.trim_start_matches("req_"));
    if body.stream {
        let include_usage = body
            .stream_options
            .as_ref()
            .is_some_and(|o| o.include_usage);
        let state = state.into_inner();
        return Ok(sse::respond(builder, move |tx| async move {
            stream(tx, state, job, n, first, id, rid, echo, include_usage).await;
        }));
    }
    let mut choices = Vec::new();
    let mut usage = Usage::default();
    let mut all_timings = Vec::new();
    let mut first = Some(first);
    for i in 0..n {
        let mut reader =
            ChoiceReader::for_choice(&mut first, &state.service, &job, i, OutputKind::Text, &rid)
                .await?;
        let mut text = echo.clone();
        let mut lps = Vec::new();
        while let Some(ev) = reader.next().await {
            match ev.map_err(|e| ApiError::from_engine(&e, &rid))? {
                ChoiceEvent::Queued { .. } => {}
                ChoiceEvent::Content { text: t, logprobs } => {
                    text.push_str(&t);
                    lps.extend(logprobs);
                }
                ChoiceEvent::Finish {
                    finish_reason,
                    usage: u,
                    timings,
                    ..
                } => {
                    state.metrics.job(&u, &timings);
                    all_timings.push(timings_json(&timings));
                    convert::add_usage(&mut usage, &u, i == 0);
                    choices.push(json!({
                        "text": text,
                        "index": i,
                        "logprobs": job.logprobs.map(|_| legacy_logprobs(engine, &lps, echo.chars().count())),
                        "finish_reason": finish_reason,
                    }));
                    break;
                }
            }
        }
    }
    Ok(builder.json(json!({
        "id": id,
        "object": "text_completion",
        "created": unix_now(),
        "model": state.model_id,
        "choices": choices,
        "usage": usage_json(&usage),
        "timings": all_timings,
    })))
}

#[allow(clippy::too_many_arguments)]
async fn stream(
    tx: SseSender,
    state: std::sync::Arc<AppState>,
    job: JobRequest,
    n: u32,
    first: ChoiceReader,
    id: String,
    rid: String,
    echo: String,
    include_usage: bool,
) {
    let Ok(engine) = state.engine() else { return };
    let created = unix_now();
    let chunk = |i: u32, text: &str, logprobs: Value, finish: Value| {
        json!({
            "id": id,
            "object": "text_completion",
            "created": created,
            "model": state.model_id,
            "choices": [{"text": text, "index": i, "logprobs": logprobs, "finish_reason": finish}],
        })
    };
    let mut usage = Usage::default();
    let mut first = Some(first);
    for i in 0..n {
        let mut reader = match ChoiceReader::for_choice(
            &mut first,
            &state.service,
            &job,
            i,
            OutputKind::Text,
            &rid,
        )
        .await
        {
            Ok(r) => r,
            Err(e) => {
                tx.fail(&e).await;
                return;
            }
        };
        if !echo.is_empty() && !tx.json(&chunk(i, &echo, Value::Null, Value::Null)).await {
            return;
        }
        let mut offset = echo.chars().count();
        while let Some(ev) = reader.next().await {
            let sent = match ev {
                Err(e) => {
                    tx.fail(&ApiError::from_engine(&e, &rid)).await;
                    return;
                }
                Ok(ChoiceEvent::Queued { position }) => tx.queue_position(position).await,
                Ok(ChoiceEvent::Content { text, logprobs }) => {
                    let lp = job
                        .logprobs
                        .map_or(Value::Null, |_| legacy_logprobs(engine, &logprobs, offset));
                    offset += text.chars().count();
                    tx.json(&chunk(i, &text, lp, Value::Null)).await
                }
                Ok(ChoiceEvent::Finish {
                    finish_reason,
                    usage: u,
                    timings,
                    ..
                }) => {
                    state.metrics.job(&u, &timings);
                    convert::add_usage(&mut usage, &u, i == 0);
                    tx.json(&chunk(i, "", Value::Null, Value::from(finish_reason)))
                        .await
                }
            };
            if !sent {
                return;
            }
        }
    }
    if include_usage {
        let mut last = json!({"id": id, "object": "text_completion", "created": created, "model": state.model_id, "choices": []});
        last["usage"] = usage_json(&usage);
        if !tx.json(&last).await {
            return;
        }
    }
    let _ = tx.done().await;
}
