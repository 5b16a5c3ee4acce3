//! `POST /v1/chat/completions`, plain and streamed.

use actix_web::{HttpRequest, HttpResponse, post, web};
use sandbox_core::contract::openai::{CHUNK_OBJECT, ChatCompletionChunk, ChunkChoice, Delta};
use sandbox_core::{Engine, JobRequest, Limits, Prompt, Usage};
use serde_json::{Value, json};

use super::sse::{self, SseSender};
use crate::error::ApiError;
use crate::openai::choice::{ChoiceEvent, ChoiceReader, OutputKind};
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
    let engine = state.engine()?;
    let reader = ChoiceReader::new(first, plan.kind);
    let position = reader.position().unwrap_or(0);
    let id = format!("chatcmpl-{}", rid.trim_start_matches("req_"));
    let mut builder = HttpResponse::Ok();
    builder.insert_header(("x-queue-position", position.to_string()));
    if body.stream {
        let include_usage = body
            .stream_options
            .as_ref()
            .is_some_and(|o| o.include_usage);
        let state = state.into_inner();
        return Ok(sse::respond(builder, move |tx| async move {
            stream(tx, state, plan, reader, id, rid, include_usage).await;
        }));
    }

    let mut choices = Vec::new();
    let mut usage = Usage::default();
    let mut all_timings = Vec::new();
    let mut reader = Some(reader);
    for i in 0..plan.n {
        let mut r =
            ChoiceReader::for_choice(&mut reader, &state.service, &plan.job, i, plan.kind, &rid)
                .await?;
        let mut text = String::new();
        let mut logprobs = Vec::new();
        while let Some(ev) = r.next().await {
            match ev.map_err(|e| ApiError::from_engine(&e, &rid))? {
                ChoiceEvent::Queued { .. } => {}
                ChoiceEvent::Content {
                    text: t,
                    logprobs: l,
                } => {
                    text.push_str(&t);
                    logprobs.extend(l.iter().map(|lp| logprob_json(engine, lp)));
                }
                ChoiceEvent::Finish {
                    finish_reason,
                    tool_calls,
                    usage: u,
                    timings,
                } => {
                    state.metrics.job(&u, &timings);
                    all_timings.push(timings_json(&timings));
                    convert::add_usage(&mut usage, &u, i == 0);
                    let mut message =
                        json!({"role": "assistant", "content": text, "refusal": null});
                    if let Some(calls) = &tool_calls {
                        message["content"] = Value::Null;
                        message["tool_calls"] = tool_calls_json(calls);
                    }
                    choices.push(json!({
                        "index": i,
                        "message": message,
                        "logprobs": plan.job.logprobs.map(|_| json!({"content": logprobs})),
                        "finish_reason": finish_reason,
                    }));
                    break;
                }
            }
        }
    }
    Ok(builder.json(json!({
        "id": id,
        "object": "chat.completion",
        "created": unix_now(),
        "model": state.model_id,
        "choices": choices,
        "usage": usage_json(&usage),
        "system_fingerprint": null,
        "timings": all_timings,
    })))
}

async fn stream(
    tx: SseSender,
    state: std::sync::Arc<AppState>,
    plan: Plan,
    first: ChoiceReader,
    id: String,
    rid: String,
    include_usage: bool,
) {
    let Ok(engine) = state.engine() else { return };
    let created = unix_now();
    let chunk = |choices: Vec<ChunkChoice>| ChatCompletionChunk {
        id: id.clone(),
        object: CHUNK_OBJECT.into(),
        created,
        model: state.model_id.clone(),
        system_fingerprint: None,
        choices,
        usage: None,
    };
    let part = |index: u32, delta: Delta, logprobs: Option<Value>, finish: Option<&str>| {
        chunk(vec![ChunkChoice {
            index,
            delta,
            logprobs,
            finish_reason: finish.map(str::to_owned),
        }])
    };
    let mut usage = Usage::default();
    let mut first = Some(first);
    for i in 0..plan.n {
        let next =
            ChoiceReader::for_choice(&mut first, &state.service, &plan.job, i, plan.kind, &rid);
        let mut reader = match next.await {
            Ok(r) => r,
            Err(e) => {
                tx.fail(&e).await;
                return;
            }
        };
        let role = Delta {
            role: Some("assistant".into()),
            content: Some(String::new()),
            ..Delta::default()
        };
        if !tx.json(&part(i, role, None, None)).await {
            return;
        }
        while let Some(ev) = reader.next().await {
            let ev = match ev {
                Ok(ev) => ev,
                Err(e) => {
                    tx.fail(&ApiError::from_engine(&e, &rid)).await;
                    return;
                }
            };
            let sent = match ev {
                ChoiceEvent::Queued { position } => tx.queue_position(position).await,
                ChoiceEvent::Content { text, logprobs } => {
                    let lp = plan.job.logprobs.map(|_| {
                        json!({"content": logprobs.iter().map(|lp| logprob_json(engine, lp)).collect::<Vec<_>>()})
                    });
                    let delta = Delta {
                        content: Some(text),
                        ..Delta::default()
                    };
                    tx.json(&part(i, delta, lp, None)).await
                }
                ChoiceEvent::Finish {
                    finish_reason,
                    tool_calls,
                    usage: u,
                    timings,
                } => {
                    state.metrics.job(&u, &timings);
                    convert::add_usage(&mut usage, &u, i == 0);
                    if let Some(calls) = &tool_calls {
                        let delta = Delta {
                            tool_calls: Some(tool_calls_json(calls)),
                            ..Delta::default()
                        };
                        if !tx.json(&part(i, delta, None, None)).await {
                            return;
                        }
                    }
                    tx.json(&part(i, Delta::default(), None, Some(finish_reason)))
                        .await
                }
            };
            if !sent {
                return;
            }
        }
    }
    if include_usage {
        let mut last = chunk(Vec::new());
        last.usage = Some(usage_json(&usage));
        if !tx.json(&last).await {
            return;
        }
    }
    let _ = tx.done().await;
}
