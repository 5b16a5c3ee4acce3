//! Accounts and login sessions: argon2 password hashes, random session tokens.

use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};

use super::{Session, Store, StoreError, User, decode, encode, now, random_token};

/// The shortest password accepted anywhere (page, CLI).
pub const MIN_PASSWORD: usize = 8;

/// A login name as typed, trimmed, if it can be one: 1 to 64 printable characters.
pub fn valid_user_name(name: &str) -> Option<&str> {
    let name = name.trim();
    (!name.is_empty() && name.chars().count() <= 64 && !name.chars().any(char::is_control))
        .then_some(name)
}

impl Store {
    fn hash(password: &str) -> Result<String, StoreError> {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| StoreError::Hash(e.to_string()))
    }

    /// Creates an account; the first one is the administrator.
    pub fn create_user(&self, name: &str, password: &str) -> Result<User, StoreError> {
        let user = User {
            name: name.to_owned(),
            password_hash: Self::hash(password)?,
            created: now(),
            admin: self.users.is_empty(),
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

    /// Every account, oldest first.
    pub fn users(&self) -> Result<Vec<User>, StoreError> {
        let mut users = self
            .users
            .iter()
            .map(|kv| decode::<User>(&kv?.1))
            .collect::<Result<Vec<_>, _>>()?;
        users.sort_by(|a, b| a.created.cmp(&b.created).then_with(|| a.name.cmp(&b.name)));
        Ok(users)
    }

    /// Whether `name` is an administrator.
    pub fn is_admin(&self, name: &str) -> Result<bool, StoreError> {
        Ok(match self.users.get(name)? {
            Some(bytes) => decode::<User>(&bytes)?.admin,
            None => false,
        })
    }

    /// Makes `name` an administrator (or not); the last administrator stays one.
    pub fn set_admin(&self, name: &str, admin: bool) -> Result<(), StoreError> {
        let mut user: User = decode(&self.users.get(name)?.ok_or(StoreError::NotFound("user"))?)?;
        if !admin && user.admin && self.users()?.iter().filter(|u| u.admin).count() == 1 {
            return Err(StoreError::LastAdmin);
        }
        user.admin = admin;
        self.users.insert(name, encode(&user)?)?;
        self.flush()
    }

    /// A database whose accounts predate the administrator flag: the oldest account
    /// becomes the administrator, as the first account of a new database is.
    pub(super) fn ensure_admin(&self) -> Result<(), StoreError> {
        let users = self.users()?;
        if users.iter().any(|u| u.admin) {
            return Ok(());
        }
        match users.first() {
            Some(oldest) => self.set_admin(&oldest.name, true),
            None => Ok(()),
        }
    }

    /// Removes an account with its sessions and chats; never the last administrator.
    pub fn delete_user(&self, name: &str) -> Result<(), StoreError> {
        let user: User = decode(&self.users.get(name)?.ok_or(StoreError::NotFound("user"))?)?;
        if user.admin && self.users()?.iter().filter(|u| u.admin).count() == 1 {
            return Err(StoreError::LastAdmin);
        }
        // The account goes first: a crash in between leaves chats nobody can open,
        // never a login whose chats are half gone.
        self.users.remove(name)?;
        self.flush()?;
        self.delete_sessions_of(name, "")?;
        for c in self.conversations(name)? {
            self.delete_conversation(name, c.id)?;
        }
        Ok(())
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
}
