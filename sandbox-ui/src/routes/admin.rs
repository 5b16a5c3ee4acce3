//! The administrator's page: accounts (add, reset a password, remove) and the server's
//! status (model, quantization, context, GPU memory, queue, the last answers' speed),
//! read from sandbox-api's `/ready` and `/metrics`. Every other user gets a 403 page.

use actix_web::{HttpRequest, HttpResponse, get, post, web};
use sandbox_core::contract::ready::Ready;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::{PageError, UiError};
use crate::session::LoggedIn;
use crate::state::{AppState, blocking};
use crate::store::{MIN_PASSWORD, StoreError, random_token, valid_user_name};

/// What the page says after an action.
#[derive(Default)]
struct Outcome {
    error: Option<String>,
    notice: Option<String>,
    /// A password made here, shown this once.
    new_password: Option<(String, String)>,
}

impl Outcome {
    fn error(message: impl Into<String>) -> Self {
        Self {
            error: Some(message.into()),
            ..Self::default()
        }
    }

    fn notice(message: impl Into<String>) -> Self {
        Self {
            notice: Some(message.into()),
            ..Self::default()
        }
    }
}

fn admin(state: &AppState, who: &LoggedIn) -> Result<(), PageError> {
    if state.store.is_admin(who.user())? {
        Ok(())
    } else {
        Err(UiError::AdminOnly.into())
    }
}

/// A password for someone else to change: 16 hex digits of a session token (64 bits,
/// from the OS's generator), short enough to type from a message.
fn generated_password() -> String {
    random_token()
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(16)
        .collect()
}

async fn page(
    state: &AppState,
    who: &LoggedIn,
    outcome: Outcome,
) -> Result<HttpResponse, PageError> {
    let users: Vec<Value> = state
        .store
        .users()?
        .into_iter()
        .map(|u| {
            let chats = state.store.conversations(&u.name).map_or(0, |c| c.len());
            json!({"name": u.name, "admin": u.admin, "created": u.created, "chats": chats,
                   "me": u.name == who.user()})
        })
        .collect();
    let (ready, totals) = state.api.serving().await;
    let status = match ready {
        Some(Ready::Ready {
            model,
            queue,
            details,
        }) => json!({"state": "ready", "model": model, "queue": queue, "details": details}),
        Some(other) => json!({"state": "not_ready", "body": other}),
        None => json!({"state": "unreachable"}),
    };
    Ok(state.pages.render(
        "admin.html",
        json!({
            "user": who.user(),
            "csrf": who.0.csrf,
            "users": users,
            "status": status,
            "totals": totals,
            "error": outcome.error,
            "notice": outcome.notice,
            "new_password": outcome.new_password.map(|(name, pw)| json!({"name": name, "password": pw})),
            "min_password": MIN_PASSWORD,
        }),
    )?)
}

/// `GET /admin`.
#[get("/admin")]
pub async fn show(state: web::Data<AppState>, who: LoggedIn) -> Result<HttpResponse, PageError> {
    admin(&state, &who)?;
    page(&state, &who, Outcome::default()).await
}

#[derive(Debug, Deserialize)]
struct AddForm {
    csrf: String,
    name: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    admin: Option<String>,
}

/// `POST /admin/users`: a new account, with the password given or one made here.
#[post("/admin/users")]
pub async fn add(
    req: HttpRequest,
    state: web::Data<AppState>,
    who: LoggedIn,
    form: web::Form<AddForm>,
) -> Result<HttpResponse, PageError> {
    who.check(&req, Some(&form.csrf))?;
    admin(&state, &who)?;
    let Some(name) = valid_user_name(&form.name).map(str::to_owned) else {
        let error = "A user name needs 1 to 64 letters, digits or other printable characters.";
        return page(&state, &who, Outcome::error(error)).await;
    };
    let given = !form.password.is_empty();
    if given && form.password.chars().count() < MIN_PASSWORD {
        let error = format!(
            "A password needs at least {MIN_PASSWORD} characters (or leave it empty to have one made)."
        );
        return page(&state, &who, Outcome::error(error)).await;
    }
    let password = if given {
        form.password.clone()
    } else {
        generated_password()
    };
    let make_admin = form.admin.is_some();
    let (store, n, pw) = (state.store.clone(), name.clone(), password.clone());
    let created = blocking(move || -> Result<(), StoreError> {
        store.create_user(&n, &pw)?;
        if make_admin {
            store.set_admin(&n, true)?;
        }
        Ok(())
    })
    .await?;
    let outcome = match created {
        Ok(()) => {
            tracing::info!(admin = make_admin, "account created");
            Outcome {
                notice: Some(format!("The account {name} was created.")),
                new_password: (!given).then_some((name, password)),
                ..Outcome::default()
            }
        }
        Err(StoreError::UserExists(_)) => {
            Outcome::error(format!("There is already an account named {name}."))
        }
        Err(e) => return Err(UiError::from(e).into()),
    };
    page(&state, &who, outcome).await
}

/// An action on one account (its name in the form, not the path: a name may hold any
/// printable character, `/` included).
#[derive(Debug, Deserialize)]
struct ActionForm {
    csrf: String,
    name: String,
}

/// `POST /admin/password`: a new password for `name`, made here and shown once; the
/// user's browsers are logged out.
#[post("/admin/password")]
pub async fn reset_password(
    req: HttpRequest,
    state: web::Data<AppState>,
    who: LoggedIn,
    form: web::Form<ActionForm>,
) -> Result<HttpResponse, PageError> {
    who.check(&req, Some(&form.csrf))?;
    admin(&state, &who)?;
    let name = form.into_inner().name;
    let password = generated_password();
    let keep = if name == who.user() {
        who.0.token.clone()
    } else {
        String::new()
    };
    let (store, n, pw) = (state.store.clone(), name.clone(), password.clone());
    blocking(move || -> Result<(), StoreError> {
        store.set_password(&n, &pw)?;
        store.delete_sessions_of(&n, &keep)
    })
    .await?
    .map_err(UiError::from)?;
    tracing::info!("password reset by an administrator");
    let outcome = Outcome {
        notice: Some(format!(
            "The password of {name} was reset; their other browsers were logged out."
        )),
        new_password: Some((name, password)),
        ..Outcome::default()
    };
    page(&state, &who, outcome).await
}

/// `POST /admin/delete`: the account `name`, its sessions and its chats.
#[post("/admin/delete")]
pub async fn delete(
    req: HttpRequest,
    state: web::Data<AppState>,
    who: LoggedIn,
    form: web::Form<ActionForm>,
) -> Result<HttpResponse, PageError> {
    who.check(&req, Some(&form.csrf))?;
    admin(&state, &who)?;
    let name = form.into_inner().name;
    if name == who.user() {
        let error = "You cannot remove your own account here.";
        return page(&state, &who, Outcome::error(error)).await;
    }
    let (store, n) = (state.store.clone(), name.clone());
    let removed = blocking(move || store.delete_user(&n)).await?;
    let outcome = match removed {
        Ok(()) => {
            tracing::info!("account removed");
            Outcome::notice(format!("The account {name} and its chats were removed."))
        }
        Err(StoreError::LastAdmin) => Outcome::error("The last administrator cannot be removed."),
        Err(e) => return Err(UiError::from(e).into()),
    };
    page(&state, &who, outcome).await
}
