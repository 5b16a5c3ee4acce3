//! Chat history in sled: users (argon2 password hashes), sessions, conversations and
//! their messages. Writes that must survive a crash (a user's message before it goes to
//! the model, each streamed stretch of an answer) are flushed to disk before returning.

mod export;
mod title;

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use rand::Rng;
use serde::{Deserialize, Serialize};

pub use export::{to_json, to_markdown};
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
        Ok(Self {
            users: db.open_tree("users")?,
            sessions: db.open_tree("sessions")?,
            conversations: db.open_tree("conversations")?,
            messages: db.open_tree("messages")?,
            db,
        })
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

    fn hash(password: &str) -> Result<String, StoreError> {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| StoreError::Hash(e.to_string()))
    }

    /// Creates an account.
    pub fn create_user(&self, name: &str, password: &str) -> Result<User, StoreError> {
        let user = User {
            name: name.to_owned(),
            password_hash: Self::hash(password)?,
            created: now(),
        };
        let inserted =
            self.users
                .compare_and_swap(name, None as Option<&[u8]>, Some(encode(&user)?))?;
        if inserted.is_err() {
            return Err(StoreError::UserExists(name.to_owned()));
        }
        self.flush()?;
        Ok(user)
    }

    /// Whether any account exists.
    pub fn has_users(&self) -> Result<bool, StoreError> {
        Ok(!self.users.is_empty())
    }

    /// Account names.
    pub fn user_names(&self) -> Result<Vec<String>, StoreError> {
        self.users
            .iter()
            .keys()
            .map(|k| Ok(String::from_utf8_lossy(&k?).into_owned()))
            .collect()
    }

    /// Whether `password` is the user's (false for unknown users, after the same work).
    pub fn verify_password(&self, name: &str, password: &str) -> Result<bool, StoreError> {
        let Some(bytes) = self.users.get(name)? else {
            // Hash anyway so that unknown names take as long as wrong passwords.
            let _ = Self::hash(password);
            return Ok(false);
        };
        let user: User = decode(&bytes)?;
        let parsed = PasswordHash::new(&user.password_hash)
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        Ok(Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok())
    }

    /// Replaces a user's password.
    pub fn set_password(&self, name: &str, password: &str) -> Result<(), StoreError> {
        let mut user: User = decode(&self.users.get(name)?.ok_or(StoreError::NotFound("user"))?)?;
        user.password_hash = Self::hash(password)?;
        self.users.insert(name, encode(&user)?)?;
        self.flush()
    }

    /// Starts a session lasting `ttl_seconds`.
    pub fn create_session(&self, user: &str, ttl_seconds: u64) -> Result<Session, StoreError> {
        let session = Session {
            token: random_token(),
            user: user.to_owned(),
            csrf: random_token(),
            expires: now() + ttl_seconds,
        };
        self.sessions
            .insert(session.token.as_bytes(), encode(&session)?)?;
        self.flush()?;
        Ok(session)
    }

    /// The live session with this token; expired ones are removed.
    pub fn session(&self, token: &str) -> Result<Option<Session>, StoreError> {
        let Some(bytes) = self.sessions.get(token)? else {
            return Ok(None);
        };
        let s: Session = decode(&bytes)?;
        if s.expires <= now() {
            self.sessions.remove(token)?;
            return Ok(None);
        }
        Ok(Some(s))
    }

    /// Ends a session.
    pub fn delete_session(&self, token: &str) -> Result<(), StoreError> {
        self.sessions.remove(token)?;
        self.flush()
    }

    /// Ends every session of `user` but `keep` (after a password change).
    pub fn delete_sessions_of(&self, user: &str, keep: &str) -> Result<(), StoreError> {
        for kv in self.sessions.iter() {
            let (k, v) = kv?;
            let s: Session = decode(&v)?;
            if s.user == user && s.token != keep {
                self.sessions.remove(k)?;
            }
        }
        self.flush()
    }

    /// Marks answers left `streaming` by a crash or restart as failed (their text is
    /// kept); returns how many. Run at start-up, before anything streams.
    pub fn recover_interrupted(&self) -> Result<usize, StoreError> {
        let mut n = 0;
        for kv in self.messages.iter() {
            let (k, v) = kv?;
            let mut m: Message = decode(&v)?;
            if m.status == MessageStatus::Streaming {
                m.status = MessageStatus::Failed;
                m.error = Some(
                    "interrupted: the chat server restarted while this answer was being written"
                        .into(),
                );
                self.messages.insert(k, encode(&m)?)?;
                n += 1;
            }
        }
        if n > 0 {
            self.flush()?;
        }
        Ok(n)
    }

    /// Starts a conversation.
    pub fn create_conversation(&self, user: &str, title: &str) -> Result<Conversation, StoreError> {
        let t = now();
        let c = Conversation {
            id: self.db.generate_id()?,
            user: user.to_owned(),
            title: title.to_owned(),
            title_auto: false,
            created: t,
            updated: t,
            system_prompt: None,
            temperature: None,
            max_tokens: None,
        };
        self.save_conversation(&c)?;
        Ok(c)
    }

    /// Stores a conversation's settings and title.
    pub fn save_conversation(&self, c: &Conversation) -> Result<(), StoreError> {
        self.conversations
            .insert(conversation_key(&c.user, c.id), encode(c)?)?;
        self.flush()
    }

    /// A user's conversation.
    pub fn conversation(&self, user: &str, id: u64) -> Result<Conversation, StoreError> {
        let bytes = self
            .conversations
            .get(conversation_key(user, id))?
            .ok_or(StoreError::NotFound("conversation"))?;
        decode(&bytes)
    }

    /// A user's conversations, most recently updated first.
    pub fn conversations(&self, user: &str) -> Result<Vec<Conversation>, StoreError> {
        let mut prefix = user.as_bytes().to_vec();
        prefix.push(0);
        let mut list = self
            .conversations
            .scan_prefix(prefix)
            .map(|kv| decode::<Conversation>(&kv?.1))
            .collect::<Result<Vec<_>, _>>()?;
        list.sort_by(|a, b| b.updated.cmp(&a.updated).then(b.id.cmp(&a.id)));
        Ok(list)
    }

    /// Deletes a conversation and its messages.
    pub fn delete_conversation(&self, user: &str, id: u64) -> Result<(), StoreError> {
        self.conversation(user, id)?;
        for kv in self.messages.scan_prefix(id.to_be_bytes()) {
            self.messages.remove(kv?.0)?;
        }
        self.conversations.remove(conversation_key(user, id))?;
        self.flush()
    }

    /// The messages of a conversation, in order.
    pub fn messages(&self, conversation: u64) -> Result<Vec<Message>, StoreError> {
        self.messages
            .scan_prefix(conversation.to_be_bytes())
            .map(|kv| decode(&kv?.1))
            .collect()
    }

    /// Appends a message and flushes it to disk before returning. `c` is refreshed
    /// from the stored record first, so a rename or settings change made meanwhile (in
    /// another tab) is kept.
    pub fn add_message(
        &self,
        c: &mut Conversation,
        role: &str,
        content: &str,
        status: MessageStatus,
    ) -> Result<Message, StoreError> {
        let seq = self
            .messages
            .scan_prefix(c.id.to_be_bytes())
            .keys()
            .next_back()
            .transpose()?
            .and_then(|k| <[u8; 8]>::try_from(&k[8..]).ok().map(u64::from_be_bytes))
            .map_or(0, |s| s + 1);
        let m = Message {
            conversation: c.id,
            seq,
            role: role.to_owned(),
            content: content.to_owned(),
            status,
            error: None,
            created: now(),
        };
        self.messages.insert(message_key(c.id, seq), encode(&m)?)?;
        if let Some(stored) = self.conversations.get(conversation_key(&c.user, c.id))? {
            *c = decode(&stored)?;
        }
        c.updated = m.created;
        if seq == 0 && role == "user" && (c.title_auto || c.title == DEFAULT_TITLE) {
            c.title = title_from(content);
            c.title_auto = true;
        }
        self.conversations
            .insert(conversation_key(&c.user, c.id), encode(c)?)?;
        self.flush()?;
        Ok(m)
    }

    /// Replaces a message's text and status (a streamed answer as it grows, then its
    /// end), flushed to disk. Only an existing message is replaced: an answer still
    /// being written when its conversation is deleted is not brought back.
    pub fn update_message(&self, m: &Message) -> Result<(), StoreError> {
        let bytes = encode(m)?;
        let before = self
            .messages
            .fetch_and_update(message_key(m.conversation, m.seq), |old| {
                old.map(|_| bytes.clone())
            })?;
        if before.is_none() {
            return Err(StoreError::NotFound("message"));
        }
        self.flush()
    }

    /// Removes the messages from `seq` on (regenerate, edit and resend).
    pub fn truncate(&self, conversation: u64, seq: u64) -> Result<(), StoreError> {
        for kv in self
            .messages
            .range(message_key(conversation, seq)..message_key(conversation, u64::MAX))
        {
            self.messages.remove(kv?.0)?;
        }
        self.flush()
    }
}

#[cfg(test)]
mod tests;
