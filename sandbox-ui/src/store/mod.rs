//! Chat history in sled: users (argon2 password hashes), sessions, conversations and
//! their messages. Writes that must survive a crash (a user's message before it goes to
//! the model, each streamed stretch of an answer) are flushed to disk before returning.

mod accounts;
pub use accounts::{MIN_PASSWORD, valid_user_name};
mod export;
mod history;
mod search;
mod title;

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use rand::Rng;
use sandbox_core::contract::openai::Timings;
use serde::{Deserialize, Serialize};

pub use export::{to_json, to_markdown};
pub use search::SearchHit;
pub use title::title_from;

/// The title of a conversation before its first message.
pub const DEFAULT_TITLE: &str = "New chat";

/// The layout version this code writes; a database from a newer version is refused.
pub const SCHEMA_VERSION: u32 = 1;

/// What can go wrong with the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// sled failed (disk full, permissions, corruption).
    #[error("history database error: {0}")]
    Db(#[from] sled::Error),
    /// A record did not decode.
    #[error("a stored record is unreadable: {0}")]
    Corrupt(String),
    /// The database was written by a newer version.
    #[error(
        "the history database has schema version {found}; this build understands up to {SCHEMA_VERSION}"
    )]
    NewerSchema {
        /// Version found on disk.
        found: u32,
    },
    /// No such user, session, conversation or message.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// A user with that name exists.
    #[error("the user {0:?} already exists")]
    UserExists(String),
    /// The change would leave no administrator.
    #[error("the last administrator account cannot be removed or demoted")]
    LastAdmin,
    /// Hashing failed.
    #[error("password hashing failed: {0}")]
    Hash(String),
}

/// A login account.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct User {
    /// Login name.
    pub name: String,
    /// Argon2id PHC string.
    pub password_hash: String,
    /// Unix seconds.
    pub created: u64,
    /// May manage accounts and see the server's status. The first account is; a
    /// database from before this field makes its oldest account the administrator
    /// when it opens.
    #[serde(default)]
    pub admin: bool,
}

/// A logged-in browser.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Session {
    /// The cookie value.
    pub token: String,
    /// Whose.
    pub user: String,
    /// Token forms and fetches must echo.
    pub csrf: String,
    /// Unix seconds after which it is invalid.
    pub expires: u64,
}

/// A chat and its settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Conversation {
    /// Id (unique in the database).
    pub id: u64,
    /// Owner.
    pub user: String,
    /// Shown in the sidebar.
    pub title: String,
    /// Whether `title` was made from the first message (and may follow an edit of
    /// it) rather than chosen by the user.
    #[serde(default)]
    pub title_auto: bool,
    /// Unix seconds.
    pub created: u64,
    /// Unix seconds of the last message; the sidebar's order.
    pub updated: u64,
    /// Per-chat system prompt.
    pub system_prompt: Option<String>,
    /// Per-chat temperature.
    pub temperature: Option<f32>,
    /// Per-chat answer length limit.
    pub max_tokens: Option<u32>,
}

/// Where an answer stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MessageStatus {
    /// Finished normally (user messages are always complete).
    Complete,
    /// Still being written (or the writer crashed: what was shown is kept).
    Streaming,
    /// Stopped by the user.
    Stopped,
    /// Cut off by the answer length limit (or the model's context window); "Continue"
    /// goes on with it.
    Truncated,
    /// The model failed; `error` says why.
    Failed,
}

/// One message of a conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// Conversation id.
    pub conversation: u64,
    /// Position in the conversation.
    pub seq: u64,
    /// `user` or `assistant`.
    pub role: String,
    /// The text.
    pub content: String,
    /// Completion state.
    pub status: MessageStatus,
    /// Why it failed, if it did.
    pub error: Option<String>,
    /// Unix seconds.
    pub created: u64,
    /// How an answer was made (absent for questions, and for answers stored before
    /// details were kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<AnswerDetails>,
    /// The answer's other versions (Regenerate keeps the earlier ones), in the order
    /// they were written, without the one this message shows.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub versions: Vec<AnswerVersion>,
    /// Where the shown version stands among all of them (0: the first written).
    #[serde(default)]
    pub version: usize,
}

/// One version of an answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnswerVersion {
    /// The text.
    pub content: String,
    /// How it ended.
    pub status: MessageStatus,
    /// Why it failed, if it did.
    pub error: Option<String>,
    /// How it was made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<AnswerDetails>,
}

impl Message {
    /// How many versions the answer has (1 without a regeneration).
    pub fn version_count(&self) -> usize {
        self.versions.len() + 1
    }

    /// The version shown, as a version.
    fn shown(&self) -> AnswerVersion {
        AnswerVersion {
            content: self.content.clone(),
            status: self.status,
            error: self.error.clone(),
            details: self.details.clone(),
        }
    }

    /// Starts a new version (what a regeneration writes into): the one shown joins the
    /// others, and the message becomes empty and streaming, shown last.
    pub fn begin_version(&mut self) {
        let shown = self.shown();
        self.versions
            .insert(self.version.min(self.versions.len()), shown);
        self.version = self.versions.len();
        self.content.clear();
        self.status = MessageStatus::Streaming;
        self.error = None;
        self.details = None;
    }

    /// Shows version `index` (0-based, in the order written) instead of the one shown;
    /// false if there is no such version.
    pub fn show_version(&mut self, index: usize) -> bool {
        if index >= self.version_count() {
            return false;
        }
        if index == self.version {
            return true;
        }
        let shown = self.shown();
        self.versions
            .insert(self.version.min(self.versions.len()), shown);
        let v = self.versions.remove(index);
        self.content = v.content;
        self.status = v.status;
        self.error = v.error;
        self.details = v.details;
        self.version = index;
        true
    }
}

/// How an answer was made, from the API's own timings: shown under it and exported.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnswerDetails {
    /// Answer tokens (of every part, when it was continued).
    pub tokens: usize,
    /// Prompt tokens the model read for it (the rest came from its cache).
    pub prompt_tokens: usize,
    /// From the request reaching the model server to the first answer token, queue
    /// included (what the user waited), in milliseconds.
    pub first_token_ms: f64,
    /// Answer tokens per second, once writing.
    pub tokens_per_second: f64,
    /// Waiting behind other requests, in milliseconds.
    pub queue_ms: f64,
    /// OpenAI's finish reason: `stop` (the model ended it) or `length` (a limit did).
    pub finish_reason: String,
}

impl AnswerDetails {
    /// The details of a generation that ended for `finish_reason` with `t`.
    pub fn new(t: &Timings, finish_reason: &str) -> Self {
        Self {
            tokens: t.predicted_n,
            prompt_tokens: t.prompt_n,
            first_token_ms: t.queue_ms + t.prompt_ms,
            tokens_per_second: t.predicted_per_second,
            queue_ms: t.queue_ms,
            finish_reason: finish_reason.to_owned(),
        }
    }

    /// These details after a continuation that made `more`: the tokens add up, the
    /// rest is the continuation's.
    pub fn continued_by(&self, more: Self) -> Self {
        Self {
            tokens: self.tokens + more.tokens,
            ..more
        }
    }
}

/// The history database.
#[derive(Debug, Clone)]
pub struct Store {
    db: sled::Db,
    users: sled::Tree,
    sessions: sled::Tree,
    conversations: sled::Tree,
    messages: sled::Tree,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn encode<T: Serialize>(v: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(v).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// 256 random bits as hex (session tokens, CSRF tokens).
pub fn random_token() -> String {
    let bytes: [u8; 32] = rand::rng().random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn conversation_key(user: &str, id: u64) -> Vec<u8> {
    let mut k = user.as_bytes().to_vec();
    k.push(0);
    k.extend_from_slice(&id.to_be_bytes());
    k
}

fn message_key(conversation: u64, seq: u64) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&conversation.to_be_bytes());
    k[8..].copy_from_slice(&seq.to_be_bytes());
    k
}

impl Store {
    /// Opens (or creates) the database in `dir`.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        // sled's default page cache is 1 GiB; the history is small and the UI should
        // stay a few tens of MB next to the model.
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(8 << 20)
            .open()?;
        let meta = db.open_tree("meta")?;
        match meta.get("schema_version")? {
            None => {
                meta.insert("schema_version", &SCHEMA_VERSION.to_be_bytes())?;
            }
            Some(v) => {
                let found = <[u8; 4]>::try_from(v.as_ref())
                    .map(u32::from_be_bytes)
                    .map_err(|_| StoreError::Corrupt("schema_version".into()))?;
                if found > SCHEMA_VERSION {
                    return Err(StoreError::NewerSchema { found });
                }
            }
        }
        db.flush()?;
        let store = Self {
            users: db.open_tree("users")?,
            sessions: db.open_tree("sessions")?,
            conversations: db.open_tree("conversations")?,
            messages: db.open_tree("messages")?,
            db,
        };
        store.ensure_admin()?;
        Ok(store)
    }

    /// A cheap read (the first account record) that fails or hangs when the database
    /// does: the watchdog's sign of life.
    pub fn probe(&self) -> Result<(), StoreError> {
        self.users.first()?;
        Ok(())
    }

    /// Writes everything to disk.
    pub fn flush(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
