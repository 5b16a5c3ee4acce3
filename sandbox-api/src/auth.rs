//! Bearer-key authentication with constant-time comparison.

use sandbox_core::config_file::secrets_equal;

/// The accepted keys. Empty means the server runs open.
#[derive(Debug, Clone, Default)]
pub struct ApiKeys(Vec<Vec<u8>>);

impl ApiKeys {
    /// Keys from configuration.
    pub fn new(keys: &[String]) -> Self {
        Self(keys.iter().map(|k| k.as_bytes().to_vec()).collect())
    }

    /// Whether no key is configured.
    pub fn is_open(&self) -> bool {
        self.0.is_empty()
    }

    /// Checks an `Authorization` header value. Every configured key is compared in
    /// full, so the time taken does not reveal how much of a guess was right.
    pub fn accepts(&self, authorization: Option<&str>) -> bool {
        if self.is_open() {
            return true;
        }
        let Some(presented) = authorization.and_then(bearer_credentials) else {
            return false;
        };
        let presented = presented.trim().as_bytes();
        self.0
            .iter()
            .fold(false, |ok, key| ok | secrets_equal(key, presented))
    }
}

/// The credentials of a `Bearer` authorization; the scheme name is case-insensitive
/// (RFC 9110 section 11.1), so `bearer` and `BEARER` work too.
fn bearer_credentials(header: &str) -> Option<&str> {
    let (scheme, rest) = header.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then_some(rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_exact_keys_pass() {
        let keys = ApiKeys::new(&["alpha".into(), "beta-key".into()]);
        assert!(keys.accepts(Some("Bearer alpha")));
        assert!(keys.accepts(Some("Bearer beta-key")));
        assert!(!keys.accepts(Some("Bearer alph")));
        assert!(!keys.accepts(Some("Bearer alphaa")));
        assert!(!keys.accepts(Some("Bearer ")));
        assert!(!keys.accepts(Some("alpha")));
        assert!(keys.accepts(Some("bearer alpha")));
        assert!(keys.accepts(Some("BEARER beta-key")));
        assert!(!keys.accepts(Some("Basic alpha")));
        assert!(!keys.accepts(Some("Bearer")));
        assert!(!keys.accepts(None));
        assert!(ApiKeys::new(&[]).accepts(None));
    }
}
