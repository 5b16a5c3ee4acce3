//! Wiring: configuration → service → HTTP server, and the shutdown sequence.

use std::sync::Arc;
use std::time::Duration;

use actix_web::error::JsonPayloadError;
use actix_web::middleware::from_fn;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use sandbox_core::download::{ModelStore, StoreConfig};
use sandbox_core::systemd::{self, Notifier};
use sandbox_core::{ModelState, Service};

use crate::auth::ApiKeys;
use crate::config::{ApiConfig, ModelSource};
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::middleware::{authenticate, observe};
use crate::openai::wire::unix_now;
use crate::routes::{chat, completions, models, system};
use crate::state::AppState;

fn json_config(limit: usize) -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(limit)
        .error_handler(move |err, _req| {
            let api = match &err {
                JsonPayloadError::Overflow { limit }
                | JsonPayloadError::OverflowKnownLength { limit, .. } => {
                    ApiError::too_large(*limit)
                }
                JsonPayloadError::ContentType => ApiError::invalid(
                    None,
                    "the request body must be JSON sent with Content-Type: application/json",
                ),
                JsonPayloadError::Deserialize(e) if e.is_data() => {
                    ApiError::invalid(None, format!("invalid request body: {e}"))
                }
                JsonPayloadError::Deserialize(e) => {
                    ApiError::invalid(None, format!("the request body is not valid JSON: {e}"))
                }
                other => ApiError::invalid(None, format!("cannot read the request body: {other}")),
            };
            api.into()
        })
}

async fn not_found(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::not_found(format!(
        "Unknown request URL: {} {}",
        req.method(),
        req.path()
    )))
}

/// Tells systemd (`Type=notify`, through `$NOTIFY_SOCKET`; nothing without it) that the
/// port is bound, and starts on this runtime the tasks that send the model's state as
/// `STATUS=` lines and `WATCHDOG=1` while the runtime runs and the engine thread (once
/// there is one) shows progress within the period.
fn notify_systemd(notifier: &Notifier, service: &Arc<Service>) {
    notifier.ready();
    actix_web::rt::spawn(systemd::forward_status(
        notifier.clone(),
        service.subscribe(),
        ModelState::status_line,
    ));
    let service = Arc::clone(service);
    actix_web::rt::spawn(systemd::run_watchdog(notifier.clone(), move |period| {
        systemd::heartbeat_verdict(service.heartbeat_age(), period)
    }));
}

/// The model service, the model's download (if it comes from the hub) and load
/// started in the background.
fn start_model(cfg: &ApiConfig) -> Arc<Service> {
    let service = Service::new();
    match cfg.source() {
        ModelSource::Local(_) => service.load_in_background(cfg.engine.clone()),
        ModelSource::Hub(model) => {
            let store = ModelStore::new(StoreConfig::from_env());
            tracing::info!(repo = %model.repo, file = %model.file, revision = %model.revision,
                cache = %store.config().cache_dir.display(), "model from the Hugging Face hub");
            service.fetch_and_load_in_background(store, model, cfg.engine.clone());
        }
    }
    service
}

/// The routes: `/health` and `/ready` open, `/metrics` and `/v1` behind the keys,
/// every request logged and counted.
fn app(
    state: web::Data<AppState>,
    limit: usize,
) -> App<
    impl actix_web::dev::ServiceFactory<
        actix_web::dev::ServiceRequest,
        Config = (),
        Response = actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    App::new()
        .app_data(state)
        .app_data(json_config(limit))
        .service(system::health)
        .service(system::ready)
        .service(
            web::resource("/metrics")
                .wrap(from_fn(authenticate))
                .route(web::get().to(system::metrics)),
        )
        .service(
            web::scope("/v1")
                .wrap(from_fn(authenticate))
                .service(models::list)
                .service(models::retrieve)
                .service(chat::completions)
                .service(completions::completions),
        )
        .default_service(web::to(not_found))
        .wrap(from_fn(observe))
}

/// Starts loading the model, binds, serves until SIGTERM/SIGINT, then stops the engine.
pub async fn run(cfg: ApiConfig) -> std::io::Result<()> {
    let notifier = Notifier::from_env();
    let service = start_model(&cfg);
    let keys = ApiKeys::new(&cfg.api_keys);
    if keys.is_open() {
        tracing::warn!(
            listen = %cfg.listen,
            "no API key configured: anyone who can reach this address can use the API"
        );
    }
    let state = web::Data::new(AppState {
        service: Arc::clone(&service),
        model_id: cfg.served_model_id(),
        strict_model_ids: cfg.strict_model_ids,
        keys,
        metrics: Arc::new(Metrics::default()),
        started: unix_now(),
    });
    let limit = cfg.max_body_bytes;
    let server = HttpServer::new(move || app(state.clone(), limit))
        // Streamed tokens are small writes: without TCP_NODELAY, Nagle's algorithm holds
        // each one back until the client's delayed ACK (~40 ms).
        .on_connect(|conn, _ext| {
            if let Some(tcp) = conn.downcast_ref::<actix_web::rt::net::TcpStream>() {
                let _ = tcp.set_nodelay(true);
            }
        })
        // A client that closes its side (FIN: what an SDK's timeout or retry does) has given
        // up on the answer; by default actix keeps serving a half-closed connection, and a
        // plain request then held the engine for nobody until its last token.
        .h1_allow_half_closed(false)
        // The stop sequence is ours (`stop_on_signal`): actix's own would only wait, then
        // cut every connection off without a word.
        .disable_signals()
        // Room for the grace period plus writing the last events and error bodies.
        .shutdown_timeout(cfg.shutdown_grace_seconds + 5)
        .bind(cfg.listen)?;
    for addr in server.addrs() {
        tracing::info!(listen = %addr, model_id = %cfg.served_model_id(), "sandbox-api listening");
    }
    let signals = systemd::StopSignals::watch()?;
    notify_systemd(&notifier, &service);
    let server = server.run();
    let grace = Duration::from_secs(cfg.shutdown_grace_seconds);
    actix_web::rt::spawn(stop_on_signal(
        signals,
        server.handle(),
        Arc::clone(&service),
        notifier.clone(),
        grace,
    ));
    let served = server.await;
    notifier.stopping();
    served?;
    tracing::info!("HTTP server stopped");
    Ok(())
}

/// The stop sequence, on SIGTERM, SIGINT or SIGQUIT: close the listening socket (new
/// connections are refused at once), fail the waiting jobs (503 with `Retry-After`, or
/// an error event and `[DONE]` in a stream), give the running job `grace` to finish,
/// then stop the engine, which fails it the same way. The HTTP server ends once those
/// answers are written.
async fn stop_on_signal(
    mut signals: systemd::StopSignals,
    server: actix_web::dev::ServerHandle,
    service: Arc<Service>,
    notifier: Notifier,
    grace: Duration,
) {
    let signal = signals.recv().await;
    tracing::info!(
        signal,
        grace_s = grace.as_secs(),
        "stopping: no new connections or jobs; the running job has the grace period"
    );
    notifier.stopping();
    notifier.status("stopping");
    let stopped = actix_web::rt::spawn(server.stop(true));
    service.drain();
    let deadline = tokio::time::Instant::now() + grace;
    while service.is_busy() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if service.is_busy() {
        tracing::warn!(
            grace_s = grace.as_secs(),
            "the running job did not finish within the grace period; cancelling it"
        );
    }
    let stopping = Arc::clone(&service);
    let joined = tokio::time::timeout(
        Duration::from_secs(10),
        tokio::task::spawn_blocking(move || stopping.shutdown()),
    )
    .await;
    if joined.is_err() {
        tracing::warn!("the engine did not stop within 10 s");
    }
    let _ = stopped.await;
}
