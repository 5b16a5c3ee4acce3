//! The conversion to a GBNF grammar, by llama.cpp, on a thread with a large stack.

use serde_json::Value;

use super::{LIMITS, SchemaError, patterns, prepare};

/// Why a schema gives no grammar.
#[derive(Debug, thiserror::Error)]
pub enum GrammarError {
    /// Refused before conversion (see [`SchemaError`]).
    #[error(transparent)]
    Schema(#[from] SchemaError),
    /// llama.cpp's converter refused it, in its words.
    #[error("{0}")]
    Conversion(String),
    /// The converter failed without a message (a panic, or no thread to run it on).
    #[error("the JSON schema could not be converted")]
    Crashed,
}

/// The stack of the conversion thread: room for the converter's recursion within
/// [`LIMITS`] many times over; only the pages it touches are ever allocated.
const CONVERT_STACK_MB: usize = 256;

/// Checks `schema` against [`LIMITS`], then converts it to a GBNF grammar with llama.cpp
/// on a thread with a large stack. CPU-bound: call it off the I/O threads.
pub fn grammar_from_schema(schema: &Value) -> Result<String, GrammarError> {
    let mut prepared = prepare(schema, &LIMITS)?;
    with_large_stack(CONVERT_STACK_MB, move || {
        let convert = |s: &Value| {
            llama_sys::json_schema_to_gbnf(s).map_err(|e| GrammarError::Conversion(e.to_string()))
        };
        patterns::anchor_patterns(&mut prepared, &convert)?;
        convert(&prepared)
    })
    .unwrap_or(Err(GrammarError::Crashed))
}

/// Runs `f` on a thread of its own with a stack of `stack_mb` MiB and waits for it: C++
/// recursion cannot be bounded from here, only given room. A panic in `f` comes back
/// as `None`.
pub fn with_large_stack<T: Send + 'static>(
    stack_mb: usize,
    f: impl FnOnce() -> T + Send + 'static,
) -> Option<T> {
    std::thread::Builder::new()
        .name("schema-convert".into())
        .stack_size(stack_mb << 20)
        .spawn(f)
        .ok()?
        .join()
        .ok()
}

