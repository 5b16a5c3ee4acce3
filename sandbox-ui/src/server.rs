//! Wiring: configuration → store, API client, templates → HTTP server.

use std::sync::Arc;
use std::time::Duration;

use actix_web::error::{JsonPayloadError, UrlencodedError};
use actix_web::middleware::from_fn;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use sandbox_core::systemd::{self, Notifier, Verdict};

use crate::api_client::ApiClient;
use crate::assets;
use crate::config::UiConfig;
use crate::error::{PageError, UiError};
use crate::generation::Generations;
use crate::login_limit::LoginLimiter;
use crate::middleware::observe;
use crate::pages::Pages;
use crate::routes::{admin, auth, chat, conversations, status};
use crate::session::LoggedIn;
use crate::state::AppState;
use crate::store::Store;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The history database.
    #[error("cannot open the history database in {dir}: {source}")]
    Store {
        /// Its folder.
        dir: String,
        /// The database's error.
        source: crate::store::StoreError,
    },
    /// The templates.
    #[error("a page template is broken: {0}")]
    Templates(String),
    /// The HTTP client.
    #[error("cannot set up the HTTP client: {0}")]
    Client(#[from] reqwest::Error),
    /// Binding or serving.
    #[error("cannot serve on {addr}: {source}")]
    Io {
        /// The address.
        addr: String,
        /// The socket error.
        source: std::io::Error,
    },
}

async fn not_found(req: HttpRequest, who: Option<LoggedIn>) -> Result<HttpResponse, PageError> {
    if who.is_none() {
        return Err(UiError::LoginRequired {
            next: req.path().to_owned(),
        }
        .into());
    }
    Err(UiError::NotFound("page").into())
}

/// Builds the state (opening the database, which also recovers interrupted answers).
pub fn state(cfg: UiConfig) -> Result<AppState, StartError> {
    let store_err = |source| StartError::Store {
        dir: cfg.data_dir.display().to_string(),
        source,
    };
    std::fs::create_dir_all(&cfg.data_dir)
        .map_err(|e| store_err(crate::store::StoreError::Db(e.into())))?;
    let store = Store::open(&cfg.data_dir).map_err(store_err)?;
    let recovered = store.recover_interrupted().map_err(store_err)?;
    if recovered > 0 {
        tracing::warn!(
            recovered,
            "answers interrupted by the last stop are marked failed; their text is kept"
        );
    }
    if !store.has_users().map_err(store_err)? {
        tracing::warn!(data_dir = %cfg.data_dir.display(), "no account exists yet: create one with `sandbox-ui user set NAME` (with the server stopped)");
    }
    Ok(AppState {
        api: ApiClient::new(&cfg.api_url, cfg.api_key.clone())?,
        login_limit: LoginLimiter::new(cfg.login_attempts_per_minute, Duration::from_secs(60)),
        generations: Arc::new(Generations::default()),
        pages: Pages::get().map_err(|e| StartError::Templates(e.to_string()))?,
        store,
        cfg,
    })
}

/// Tells systemd (`Type=notify`, through `$NOTIFY_SOCKET`; nothing without it) that the
/// port is bound, and starts on this runtime the tasks that send `STOPPING=1` on a stop
/// signal and `WATCHDOG=1` while the runtime runs and the history database answers a
/// read.
fn notify_systemd(notifier: &Notifier, store: Store, addr: std::net::SocketAddr) {
    notifier.ready();
    notifier.status(&format!("serving on {addr}"));
    actix_web::rt::spawn(systemd::notify_stopping_on_signal(notifier.clone()));
    actix_web::rt::spawn(systemd::run_watchdog(
        notifier.clone(),
        move |_| match store.probe() {
            Ok(()) => Verdict::Ping,
            Err(e) => Verdict::Withhold {
                reason: format!("the history database does not answer: {e}"),
            },
        },
    ));
}

/// Serves until SIGTERM/SIGINT, then flushes the database.
pub async fn run(cfg: UiConfig) -> Result<(), StartError> {
    let notifier = Notifier::from_env();
    let addr = cfg.listen;
    let state = web::Data::new(state(cfg)?);
    let store = state.store.clone();
    let data = state.clone();
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .app_data(
                web::JsonConfig::default()
                    .limit(1 << 20)
                    .error_handler(|e, _| {
                        let msg = match e {
                            JsonPayloadError::Deserialize(e) => format!("invalid request: {e}"),
                            other => format!("cannot read the request: {other}"),
                        };
                        UiError::BadRequest(msg).into()
                    }),
            )
            .app_data(
                web::FormConfig::default()
                    .limit(1 << 20)
                    .error_handler(|e, _| {
                        let msg = match e {
                            UrlencodedError::Parse(_) => {
                                "the form is incomplete; reload the page and try again".to_owned()
                            }
                            other => format!("cannot read the form: {other}"),
                        };
                        PageError(UiError::BadRequest(msg)).into()
                    }),
            )
            .wrap(from_fn(observe))
            .service(assets::serve)
            .service(status::health)
            .service(auth::login_page)
            .service(auth::login)
            .service(auth::logout)
            .service(auth::settings)
            .service(auth::change_password)
            .service(admin::show)
            .service(admin::add)
            .service(admin::reset_password)
            .service(admin::delete)
            .service(chat::new_chat)
            .service(chat::show)
            .service(chat::send)
            .service(chat::attach)
            .service(chat::stop)
            .service(conversations::rename)
            .service(conversations::delete)
            .service(conversations::settings)
            .service(conversations::export)
            .service(conversations::search)
            .service(conversations::show_version)
            .service(status::status)
            .default_service(web::to(not_found))
    })
    .shutdown_timeout(5)
    .bind(addr)
    .map_err(|source| StartError::Io {
        addr: addr.to_string(),
        source,
    })?;
    tracing::info!(listen = %addr, api = %state.cfg.api_url, data_dir = %state.cfg.data_dir.display(), "sandbox-ui serving");
    let bound = server.addrs().first().copied().unwrap_or(addr);
    notify_systemd(&notifier, store.clone(), bound);
    let result = server.run().await;
    notifier.stopping();
    if let Err(e) = store.flush() {
        tracing::error!(error = %e, "final flush failed");
    }
    result.map_err(|source| StartError::Io {
        addr: addr.to_string(),
        source,
    })
}
