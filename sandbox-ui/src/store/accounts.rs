//! Accounts and login sessions: argon2 password hashes, random session tokens.

use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};

use super::{Session, Store, StoreError, User, decode, encode, now, random_token};

impl Store {
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
}
