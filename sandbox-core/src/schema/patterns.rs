//! `pattern`s as llama.cpp's converter needs them, or refused.
//!
//! JSON Schema's `pattern` matches anywhere in the string; the converter translates
//! only patterns anchored at both ends (`^…$`) and silently accepts any string for
//! every other one, or for syntax it cannot translate (lookaround, backreferences,
//! anchors inside). It also writes the pattern's characters into the JSON string
//! unescaped, so its `.` and `[^…]` would let the model write a bare `"` and leave the
//! string (and the schema) behind. So an open end is made explicit with any run of
//! plain string characters, `.` and negated classes are kept to plain string
//! characters, and a pattern the converter still gives up on is refused with the
//! reason, rather than ignored.

use serde_json::{Value, json};

use super::{GrammarError, SchemaError};

/// Why a valid regular expression is refused.
pub(super) const UNENFORCEABLE: &str = "it uses regular-expression syntax that cannot be \
    enforced while generating (supported: literals, escapes, ., [...], (...), (?:...), |, *, \
    +, ?, {m,n}; not lookaround, backreferences or anchors inside)";

/// Rewrites every `pattern` of `schema` (not those inside `enum`, `const` and other
/// data) to its anchored form, checking with `convert` that each one is enforced.
pub(super) fn anchor_patterns(
    schema: &mut Value,
    convert: &dyn Fn(&Value) -> Result<String, GrammarError>,
) -> Result<(), GrammarError> {
    // What the converter writes when it gives up on a pattern (unanchored is one way);
    // worked out only for a schema that has a pattern, not for every schema.
    let gave_up = std::cell::OnceCell::new();
    visit(schema, "#", &|path, pattern| {
        let gave_up = match gave_up.get() {
            Some(g) => g,
            None => {
                let g = convert(&json!({"type": "string", "pattern": "a"}))?;
                gave_up.get_or_init(|| g)
            }
        };
        let anchored = anchored(pattern);
        let grammar = convert(&json!({"type": "string", "pattern": anchored})).map_err(|e| {
            SchemaError::BadPattern {
                path: path.to_string(),
                reason: e.to_string(),
            }
        })?;
        if &grammar == gave_up {
            return Err(SchemaError::BadPattern {
                path: path.to_string(),
                reason: UNENFORCEABLE.into(),
            }
            .into());
        }
        Ok(anchored)
    })
}

fn visit(
    v: &mut Value,
    path: &str,
    anchor: &dyn Fn(&str, &str) -> Result<String, GrammarError>,
) -> Result<(), GrammarError> {
    match v {
        Value::Object(o) => {
            if let Some(Value::String(_)) = o.get("pattern")
                && let Some(k) = ["minLength", "maxLength", "format"]
                    .into_iter()
                    .find(|k| o.contains_key(*k))
            {
                // The converter builds the string from the pattern alone.
                return Err(SchemaError::BadPattern {
                    path: path.to_string(),
                    reason: format!(
                        "\"{k}\" next to a pattern cannot be enforced; put the length in the \
                         pattern instead (for example ^[a-z]{{1,5}}$, {{m,n}} repeats)"
                    ),
                }
                .into());
            }
            if let Some(Value::String(p)) = o.get_mut("pattern") {
                *p = anchor(path, p)?;
            }
            for (k, child) in o.iter_mut() {
                if !matches!(k.as_str(), "enum" | "const" | "default" | "examples") {
                    visit(child, &format!("{path}/{k}"), anchor)?;
                }
            }
        }
        Value::Array(a) => {
            for (i, child) in a.iter_mut().enumerate() {
                visit(child, &format!("{path}/{i}"), anchor)?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// A character the model may write inside a JSON string without escaping it.
const PLAIN: &str = r#"[^"\\\x00-\x1F]"#;
/// What a negated class must exclude as well, to stay within [`PLAIN`].
const NOT_PLAIN: &str = r#""\\\x00-\x1F"#;

/// `p` anchored at both ends with the meaning JSON Schema gives it (an end without `^`
/// or `$` may be preceded or followed by anything), with every `.` and `[^…]` kept to
/// [`PLAIN`] characters.
fn anchored(p: &str) -> String {
    let p = plain_only(p);
    let p = p.as_str();
    let start = p.starts_with('^');
    // A `$` preceded by an odd number of backslashes is a literal dollar.
    let end = p.ends_with('$')
        && p[..p.len() - 1]
            .chars()
            .rev()
            .take_while(|&c| c == '\\')
            .count()
            % 2
            == 0;
    if start && end {
        return p.to_string();
    }
    let core = &p[usize::from(start)..p.len() - usize::from(end)];
    let any = format!("{PLAIN}*");
    format!(
        "^{}({core}){}$",
        if start { "" } else { &any },
        if end { "" } else { &any }
    )
}

/// `p` with `.` (outside classes) replaced by [`PLAIN`] and [`NOT_PLAIN`] added to
/// every negated class; escapes are copied as they are.
fn plain_only(p: &str) -> String {
    let mut out = String::with_capacity(p.len());
    let mut chars = p.chars().peekable();
    let mut in_class = false;
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                out.push(c);
                out.extend(chars.next());
            }
            '[' if !in_class => {
                in_class = true;
                out.push(c);
                if chars.peek() == Some(&'^') {
                    chars.next();
                    out.push('^');
                    out.push_str(NOT_PLAIN);
                }
            }
            ']' if in_class => {
                in_class = false;
                out.push(c);
            }
            '.' if !in_class => out.push_str(PLAIN),
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_ends_get_any_text() {
        let any = |s: &str| s.replace('~', &format!("{PLAIN}*"));
        assert_eq!(anchored("^[a-z]+$"), "^[a-z]+$");
        assert_eq!(anchored("abc"), any("^~(abc)~$"));
        assert_eq!(anchored("^abc"), any("^(abc)~$"));
        assert_eq!(anchored("abc$"), any("^~(abc)$"));
        assert_eq!(anchored("a|b"), any("^~(a|b)~$"));
        // An escaped dollar is text; an escaped backslash before $ is not.
        assert_eq!(anchored("^cost\\$"), any("^(cost\\$)~$"));
        assert_eq!(anchored("^dir\\\\$"), "^dir\\\\$");
        assert_eq!(anchored(""), any("^~()~$"));
    }

    #[test]
    fn dots_and_negated_classes_cannot_leave_the_string() {
        assert_eq!(plain_only("^a.b$"), format!("^a{PLAIN}b$"));
        assert_eq!(plain_only("^[^a]+$"), format!("^[^{NOT_PLAIN}a]+$"));
        // Escaped dots, dots in classes and escaped brackets stay as they are.
        assert_eq!(plain_only(r"^\.[.]\[^x$"), r"^\.[.]\[^x$");
        assert_eq!(plain_only("^[a^]$"), "^[a^]$");
    }

    fn convert(v: &Value) -> String {
        llama_sys::json_schema_to_gbnf(v).unwrap_or_else(|e| panic!("{v}: {e}"))
    }

    /// What this module works around, checked against the llama.cpp we link: if one
    /// of these starts failing, the converter improved and the workaround can go.
    #[test]
    fn the_converter_ignores_open_patterns_and_lengths_next_to_a_pattern() {
        let gave_up = convert(&json!({"type": "string", "pattern": "a"}));
        let any = |p: &str| convert(&json!({"type": "string", "pattern": p})) == gave_up;
        assert!(any("abc") && any("^(?=a)b$") && any("^a\\1$"));
        assert!(!any(&anchored("abc")) && !any("^[a-z]{2,5}$"));
        assert_eq!(
            convert(&json!({"type": "string", "pattern": "^[a-z]+$", "maxLength": 5})),
            convert(&json!({"type": "string", "pattern": "^[a-z]+$"}))
        );
    }

    #[test]
    fn patterns_are_anchored_in_place_or_refused_with_the_path() {
        let convert = |v: &Value| Ok(convert(v));
        let mut s = json!({"properties": {"a": {"type": "string", "pattern": "x+"},
                                          "e": {"enum": [{"pattern": "kept"}]}}});
        anchor_patterns(&mut s, &convert).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s["properties"]["a"]["pattern"], format!("^{PLAIN}*(x+){PLAIN}*$"));
        assert_eq!(s["properties"]["e"]["enum"][0]["pattern"], "kept");
        let mut s = json!({"items": {"type": "string", "pattern": "(?<=a)b"}});
        let err = anchor_patterns(&mut s, &convert).map(|_| ()).unwrap_err().to_string();
        assert!(err.contains("at #/items ") && err.contains("lookaround"), "{err}");
        let mut s = json!({"type": "string", "pattern": "^a+$", "minLength": 2});
        let err = anchor_patterns(&mut s, &convert).map(|_| ()).unwrap_err().to_string();
        assert!(err.contains("\"minLength\" next to a pattern"), "{err}");
    }
}
