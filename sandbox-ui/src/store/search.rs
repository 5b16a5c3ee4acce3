//! Finding a user's conversations by their title or the text of their messages.

use memchr::memmem::Finder;
use serde::Serialize;

use super::{Message, Store, StoreError, decode};

/// Characters of context on each side of a match in a snippet.
const CONTEXT_CHARS: usize = 40;

/// A conversation that matches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SearchHit {
    /// Its id (a string: JavaScript numbers lose digits past 2^53).
    pub id: String,
    /// Its title.
    pub title: String,
    /// The first message that matched, around the match (none when the title did).
    pub snippet: Option<String>,
}

impl Store {
    /// `user`'s conversations whose title or messages contain `query` (case does not
    /// matter), most recent first, at most `limit`. An empty query finds nothing.
    pub fn search(
        &self,
        user: &str,
        query: &str,
        limit: usize,
    ) -> Result<Vec<SearchHit>, StoreError> {
        let needle = query.trim().to_lowercase();
        if needle.is_empty() {
            return Ok(Vec::new());
        }
        let prefilter = Prefilter::new(&needle);
        let mut lowered = Vec::new();
        let mut hits = Vec::new();
        for c in self.conversations(user)? {
            if hits.len() >= limit {
                break;
            }
            let snippet = if c.title.to_lowercase().contains(&needle) {
                None
            } else {
                match self.first_match(c.id, &needle, &prefilter, &mut lowered)? {
                    Some(s) => Some(s),
                    None => continue,
                }
            };
            hits.push(SearchHit {
                id: c.id.to_string(),
                title: c.title,
                snippet,
            });
        }
        Ok(hits)
    }

    /// The text around the first occurrence of `needle` (lowercase) in a message of
    /// the conversation.
    fn first_match(
        &self,
        conversation: u64,
        needle: &str,
        prefilter: &Prefilter,
        lowered: &mut Vec<u8>,
    ) -> Result<Option<String>, StoreError> {
        for kv in self.messages.scan_prefix(conversation.to_be_bytes()) {
            let (_, v) = kv?;
            if !prefilter.may_match(&v, lowered) {
                continue;
            }
            let m: Message = decode(&v)?;
            if let Some(s) = snippet(&m.content, needle) {
                return Ok(Some(s));
            }
        }
        Ok(None)
    }
}

/// A quick look at a stored message's bytes (its JSON) before decoding it: decoding
/// and lowercasing every message is what a search at 1,000 chats spends its time on.
/// It applies to a needle that reads the same in the JSON (ASCII, nothing JSON
/// escapes) and to messages in ASCII, and can only rule messages out; a message it
/// lets through is checked properly.
struct Prefilter(Option<Finder<'static>>);

impl Prefilter {
    fn new(needle: &str) -> Self {
        let plain =
            needle.is_ascii() && !needle.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20);
        Self(plain.then(|| Finder::new(needle.as_bytes()).into_owned()))
    }

    fn may_match(&self, json: &[u8], lowered: &mut Vec<u8>) -> bool {
        // Non-ASCII text may lowercase into ASCII (the Kelvin sign into "k"): only an
        // all-ASCII message can be ruled out by its bytes.
        let Some(finder) = self.0.as_ref().filter(|_| json.is_ascii()) else {
            return true;
        };
        lowered.clear();
        lowered.extend_from_slice(json);
        lowered.make_ascii_lowercase();
        finder.find(lowered).is_some()
    }
}

/// `text` around the first match of `needle` (lowercase), cut at whole characters,
/// with "…" where it was cut.
fn snippet(text: &str, needle: &str) -> Option<String> {
    // Lowercasing can change lengths (e.g. "İ"), so the match is found on a lowercase
    // copy character by character, keeping each character's place in the original.
    let chars: Vec<char> = text.chars().collect();
    let lower: Vec<String> = chars.iter().map(|c| c.to_lowercase().collect()).collect();
    let needle_chars: Vec<char> = needle.chars().collect();
    let start = (0..chars.len()).find(|&i| {
        let mut rest = needle_chars.as_slice();
        for piece in &lower[i..] {
            for c in piece.chars() {
                match rest.split_first() {
                    Some((&n, tail)) if n == c => rest = tail,
                    Some(_) => return false,
                    None => return true,
                }
            }
            if rest.is_empty() {
                return true;
            }
        }
        rest.is_empty()
    })?;
    let from = start.saturating_sub(CONTEXT_CHARS);
    let to = (start + needle_chars.len() + CONTEXT_CHARS).min(chars.len());
    let body: String = chars[from..to].iter().collect();
    let body = body.split_whitespace().collect::<Vec<_>>().join(" ");
    Some(format!(
        "{}{body}{}",
        if from > 0 { "…" } else { "" },
        if to < chars.len() { "…" } else { "" }
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snippets_show_the_match_in_context_whatever_the_case() {
        assert_eq!(
            snippet("Hello World", "world").as_deref(),
            Some("Hello World")
        );
        let long = format!("{} needle {}", "a".repeat(100), "b".repeat(100));
        let s = snippet(&long, "needle").unwrap_or_default();
        assert!(
            s.starts_with('…') && s.ends_with('…') && s.contains("needle"),
            "{s}"
        );
        assert_eq!(
            snippet("Straße nach Köln", "köln").as_deref(),
            Some("Straße nach Köln")
        );
        assert_eq!(snippet("no match here", "absent"), None);
        assert_eq!(
            snippet("line\n\nbreaks", "breaks").as_deref(),
            Some("line breaks")
        );
    }
}
