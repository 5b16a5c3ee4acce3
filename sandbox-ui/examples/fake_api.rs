//! A stand-in for sandbox-api for the browser tests: `/ready` says ready, and every
//! chat completion streams the same given answer in 7-character pieces. It is built
//! from the same contract types sandbox-api writes (`sandbox_core::contract`), so a
//! change of the wire format changes the fake with it; it serves answers the small
//! test model cannot be made to write (HTML injection attempts, exact Markdown).
//!
//! `fake_api PORT ANSWER_FILE`
#![forbid(unsafe_code)]

use std::process::ExitCode;

use actix_web::web::Bytes;
use actix_web::{App, HttpResponse, HttpServer, get, post, web};
use sandbox_core::contract::openai::{
    ChatCompletionChunk, ChatCompletionRequest, Delta, ErrorBody, ErrorObject,
};
use sandbox_core::contract::ready::{QueueInfo, Ready};
use sandbox_core::contract::sse;

#[get("/ready")]
async fn ready() -> HttpResponse {
    HttpResponse::Ok().json(Ready::Ready {
        model: "fake".into(),
        queue: Some(QueueInfo {
            waiting: 0,
            running: false,
            capacity: 32,
            estimated_wait_seconds: 0.0,
        }),
        details: None,
    })
}

fn chunk(delta: Delta, finish: Option<&str>) -> String {
    sse::data(&ChatCompletionChunk::part(
        "chatcmpl-fake",
        0,
        "fake",
        0,
        delta,
        None,
        finish,
    ))
}

/// Reads the UI's request as the real API does (a body that is not a chat-completion
/// request is refused by actix's JSON extractor), and only streams.
#[post("/v1/chat/completions")]
async fn chat(answer: web::Data<String>, req: web::Json<ChatCompletionRequest>) -> HttpResponse {
    if !req.options.stream || req.messages.is_empty() {
        return HttpResponse::BadRequest().json(ErrorBody {
            error: ErrorObject {
                message: "the fake API serves streamed requests with messages only".into(),
                kind: "invalid_request_error".into(),
                param: None,
                code: None,
            },
        });
    }
    let mut events = vec![chunk(Delta::opening(), None)];
    let chars: Vec<char> = answer.chars().collect();
    for piece in chars.chunks(7) {
        events.push(chunk(Delta::text(piece.iter().collect::<String>()), None));
    }
    events.push(chunk(Delta::default(), Some("stop")));
    events.push(sse::DONE.to_owned());
    let body = futures_util::stream::iter(
        events
            .into_iter()
            .map(|e| Ok::<_, actix_web::Error>(Bytes::from(e))),
    );
    HttpResponse::Ok()
        .insert_header(("content-type", "text/event-stream"))
        .streaming(body)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(port), Some(file)) = (
        args.first().and_then(|p| p.parse::<u16>().ok()),
        args.get(1),
    ) else {
        eprintln!("usage: fake_api PORT ANSWER_FILE");
        return ExitCode::from(2);
    };
    let answer = match std::fs::read_to_string(file) {
        Ok(a) => web::Data::new(a),
        Err(e) => {
            eprintln!("fake_api: cannot read {file}: {e}");
            return ExitCode::from(2);
        }
    };
    let served = actix_web::rt::System::new().block_on(async move {
        HttpServer::new(move || {
            App::new()
                .app_data(answer.clone())
                .service(ready)
                .service(chat)
        })
        .workers(1)
        .bind(("127.0.0.1", port))?
        .run()
        .await
    });
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fake_api: {e}");
            ExitCode::FAILURE
        }
    }
}
