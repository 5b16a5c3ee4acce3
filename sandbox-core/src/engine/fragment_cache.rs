//! Tokens of prompt fragments seen before. Every chat request carries the whole
//! conversation, and llama.cpp's tokenizer takes about 2.5 µs a token (2 cores,
//! SmolLM2): 1.7 ms for a 640-token chat, more with each turn, paid before the request
//! is queued (on an H200 the client's time to first token grew by 2.3 ms over 10 turns
//! while prefill stayed flat). A prompt is tokenized fragment by fragment (the text
//! between control tokens, mostly one message each, see `control_text`), each on its
//! own, so a fragment's tokens depend on its text alone and a fragment seen before is
//! reused as it was.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use llama_sys::TokenId;

/// What one entry costs beyond its text and tokens (the map's slot, two allocations'
/// headers), counted so that many short fragments are bounded too.
const ENTRY_BYTES: usize = 64;

/// Bytes (text and tokens) one generation holds before it becomes the old one: two
/// generations bound the cache at about twice this, many long conversations' worth (a
/// 32,000-token one is about 260 KB).
const GENERATION_BYTES: usize = 4 << 20;

/// The cache, shared by the threads that prepare requests. The lock is held for
/// lookups and inserts only, never while tokenizing.
#[derive(Debug)]
pub(super) struct FragmentCache {
    limit: usize,
    inner: Mutex<Generations>,
}

/// Recent fragments, and those of the generation before; a hit in the old one moves
/// to the new one, so what is in use survives and the rest ages out whole.
#[derive(Debug, Default)]
struct Generations {
    current: HashMap<String, Arc<[TokenId]>>,
    previous: HashMap<String, Arc<[TokenId]>>,
    current_bytes: usize,
}

impl Default for FragmentCache {
    fn default() -> Self {
        Self::with_limit(GENERATION_BYTES)
    }
}

impl FragmentCache {
    fn with_limit(limit: usize) -> Self {
        Self {
            limit,
            inner: Mutex::new(Generations::default()),
        }
    }

    /// The tokens of `text`, from the cache or from `tokenize`, whose result is kept.
    pub(super) fn tokens<E>(
        &self,
        text: &str,
        tokenize: impl FnOnce(&str) -> Result<Vec<TokenId>, E>,
    ) -> Result<Arc<[TokenId]>, E> {
        if let Some(hit) = self.lock().get(text, self.limit) {
            return Ok(hit);
        }
        let tokens: Arc<[TokenId]> = tokenize(text)?.into();
        self.lock().keep(text.to_owned(), Arc::clone(&tokens), self.limit);
        Ok(tokens)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Generations> {
        // The maps stay consistent whatever a panicking holder did: each change is one
        // map operation.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Generations {
    fn get(&mut self, text: &str, limit: usize) -> Option<Arc<[TokenId]>> {
        if let Some(hit) = self.current.get(text) {
            return Some(Arc::clone(hit));
        }
        let (key, hit) = self.previous.remove_entry(text)?;
        self.keep(key, Arc::clone(&hit), limit);
        Some(hit)
    }

    /// Keeps `tokens` in the current generation, which first becomes the old one when
    /// it is full: each generation holds at most `limit` bytes. A fragment larger than
    /// that is not kept.
    fn keep(&mut self, text: String, tokens: Arc<[TokenId]>, limit: usize) {
        let bytes = cost(&text, &tokens);
        if bytes > limit {
            return;
        }
        if self.current_bytes + bytes > limit {
            self.previous = std::mem::take(&mut self.current);
            self.current_bytes = 0;
        }
        if self.current.insert(text, tokens).is_none() {
            self.current_bytes += bytes;
        }
    }
}

fn cost(text: &str, tokens: &[TokenId]) -> usize {
    ENTRY_BYTES + text.len() + std::mem::size_of_val(tokens)
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::convert::Infallible;

    use super::*;

    fn len(g: &Generations) -> usize {
        g.current.len() + g.previous.len()
    }

    /// A stand-in tokenizer: one token per byte, counting its calls.
    fn counting(calls: &Cell<usize>) -> impl Fn(&str) -> Result<Vec<TokenId>, Infallible> + '_ {
        move |t: &str| {
            calls.set(calls.get() + 1);
            Ok(t.bytes().map(TokenId::from).collect())
        }
    }

    fn text(c: char) -> String {
        std::iter::repeat_n(c, 64).collect()
    }

    #[test]
    fn a_fragment_seen_before_is_not_tokenized_again() {
        let cache = FragmentCache::default();
        let calls = Cell::new(0);
        let (a, b) = (text('a'), text('b'));
        let first = cache.tokens(&a, counting(&calls)).unwrap();
        assert_eq!(cache.tokens(&a, counting(&calls)).unwrap(), first);
        assert_eq!(calls.get(), 1);
        assert_eq!(cache.tokens(&b, counting(&calls)).unwrap()[0], TokenId::from(b'b'));
        assert_eq!(calls.get(), 2);
        // Short ones too: llama.cpp's tokenizer costs microseconds a call, whatever
        // the length, and a chat has dozens.
        cache.tokens("\n", counting(&calls)).unwrap();
        cache.tokens("\n", counting(&calls)).unwrap();
        assert_eq!(calls.get(), 3);
        assert_eq!(len(&cache.lock()), 3);
    }

    #[test]
    fn failures_are_not_kept() {
        let cache = FragmentCache::default();
        let a = text('a');
        assert!(cache.tokens(&a, |_| Err::<Vec<TokenId>, _>("no")).is_err());
        assert_eq!(cache.tokens(&a, |_| Ok::<_, ()>(vec![7])).unwrap().as_ref(), [7]);
    }

    #[test]
    fn old_fragments_age_out_and_used_ones_stay() {
        // Room for two fragments a generation.
        let one = cost(&text('a'), &[0; 64]);
        let cache = FragmentCache::with_limit(2 * one);
        let calls = Cell::new(0);
        let t: Vec<String> = "abcde".chars().map(text).collect();
        cache.tokens(&t[0], counting(&calls)).unwrap();
        cache.tokens(&t[1], counting(&calls)).unwrap();
        // A third starts a new generation; a and b are the old one.
        cache.tokens(&t[2], counting(&calls)).unwrap();
        // a is used, so it moves to the new generation (now c and a)...
        cache.tokens(&t[0], counting(&calls)).unwrap();
        assert_eq!(calls.get(), 3);
        // ...and d starts another: b, never used again, is gone; c and a remain.
        cache.tokens(&t[3], counting(&calls)).unwrap();
        assert_eq!(len(&cache.lock()), 3);
        cache.tokens(&t[0], counting(&calls)).unwrap();
        cache.tokens(&t[2], counting(&calls)).unwrap();
        assert_eq!(calls.get(), 4);
        cache.tokens(&t[1], counting(&calls)).unwrap();
        assert_eq!(calls.get(), 5);
        // One fragment larger than a generation is not kept.
        let huge: String = std::iter::repeat_n('h', 2 * one).collect();
        cache.tokens(&huge, counting(&calls)).unwrap();
        cache.tokens(&huge, counting(&calls)).unwrap();
        assert_eq!(calls.get(), 7);
        assert!(!cache.lock().current.contains_key(&huge));
        // Never more than two generations' worth, however fragments come and go.
        for round in 0..3 {
            for s in &t {
                cache.tokens(s, counting(&calls)).unwrap();
                let g = cache.lock();
                assert!(g.current_bytes <= 2 * one, "round {round}");
                assert!(len(&g) <= 4, "round {round}");
            }
        }
    }
}
