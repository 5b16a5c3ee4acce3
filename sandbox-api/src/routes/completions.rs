//! `POST /v1/completions`: legacy text completion, plain and streamed.

use std::sync::Arc;

use actix_web::{HttpRequest, HttpResponse, post, web};
use sandbox_core::contract::openai::{
    CompletionRequest, LegacyLogprobs, PromptField, TEXT_COMPLETION_OBJECT, TextChoice,
    TextCompletion, Timings, ToolCall,
};
use sandbox_core::{Engine, JobRequest, Limits, Prompt, TokenLogprob, Usage};

use super::generate::{Choice, Generation, Shape};
use crate::error::ApiError;
use crate::openai::convert;
use crate::openai::wire::{self, unix_now};
use crate::state::{AppState, off_io, request_id};
use sandbox_core::tools::Reading;

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
    let sampling = convert::sampling(&body.options, engine)?;
    let job = JobRequest {
        prompt,
        sampling,
        limits: Limits {
            max_tokens: Some(
                convert::max_tokens(body.options.max_tokens, "max_tokens")?
                    .unwrap_or(DEFAULT_MAX_TOKENS),
            ),
            stop: convert::stops(body.options.stop.as_ref())?,
            ..Limits::default()
        },
        logprobs: body.logprobs.map(|k| k as usize),
    };
    Ok((job, text))
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
    let n = convert::choices(body.options.n)?;
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
    let generation = Generation::new(state, job, Reading::Text, n, first, rid);
    generation.respond(shape, &body.options).await
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
    fn completion(&self, choices: Vec<TextChoice>) -> TextCompletion {
        TextCompletion {
            id: self.id.clone(),
            object: TEXT_COMPLETION_OBJECT.into(),
            created: self.created,
            model: self.state.model_id.clone(),
            choices,
            usage: None,
            timings: None,
        }
    }

    fn chunk(
        &self,
        index: u32,
        text: &str,
        logprobs: Option<LegacyLogprobs>,
        finish: Option<&str>,
    ) -> TextCompletion {
        self.completion(vec![TextChoice {
            text: text.to_owned(),
            index,
            logprobs,
            finish_reason: finish.map(str::to_owned),
        }])
    }

    fn logprobs(&self, lps: &[TokenLogprob], offset: usize) -> Option<LegacyLogprobs> {
        match self.state.engine() {
            Ok(engine) if self.logprobs => Some(wire::legacy_logprobs(engine, lps, offset)),
            _ => None,
        }
    }
}

impl Shape for TextShape {
    type Response = TextCompletion;
    type Chunk = TextCompletion;

    fn response(&self, choices: Vec<Choice>, usage: &Usage) -> TextCompletion {
        let start = self.echo.chars().count();
        let timings = wire::timings(choices.iter().map(|c| (&c.usage, &c.timings)));
        let choices = choices
            .iter()
            .map(|c| TextChoice {
                text: format!("{}{}", self.echo, c.text),
                index: c.index,
                logprobs: self.logprobs(&c.logprobs, start),
                finish_reason: Some(c.finish_reason.to_owned()),
            })
            .collect();
        TextCompletion {
            usage: Some(wire::usage(usage, false)),
            timings: Some(timings),
            ..self.completion(choices)
        }
    }

    fn opening(&mut self, index: u32) -> Option<TextCompletion> {
        self.offset = self.echo.chars().count();
        (!self.echo.is_empty()).then(|| self.chunk(index, &self.echo, None, None))
    }

    fn content(&mut self, index: u32, text: &str, logprobs: &[TokenLogprob]) -> TextCompletion {
        let lp = self.logprobs(logprobs, self.offset);
        self.offset += text.chars().count();
        self.chunk(index, text, lp, None)
    }

    fn finish(
        &mut self,
        index: u32,
        finish_reason: &str,
        _: Option<&[ToolCall]>,
        timings: Timings,
    ) -> Vec<TextCompletion> {
        let last = self.chunk(index, "", None, Some(finish_reason));
        vec![TextCompletion {
            timings: Some(timings),
            ..last
        }]
    }

    fn usage(&self, usage: &Usage) -> TextCompletion {
        TextCompletion {
            usage: Some(wire::usage(usage, false)),
            ..self.completion(Vec::new())
        }
    }
}
