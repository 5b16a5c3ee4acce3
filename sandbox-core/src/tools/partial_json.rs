//! Reading JSON that the model may not have finished: the members of an object whose
//! text is cut off, as raw slices, so that a tool call stopped by a length limit still
//! shows its name and the arguments written so far.

/// One top-level member of an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member<'a> {
    /// The key, decoded.
    pub key: String,
    /// The value's text as written (cut off if `complete` is false).
    pub value: &'a str,
    /// Whether the value ended before the text did.
    pub complete: bool,
}

/// The members of the object at the start of `text` (which must begin with `{`), and
/// the byte just past its closing `}` when it has one.
pub fn object_members(text: &str) -> (Vec<Member<'_>>, Option<usize>) {
    let b = text.as_bytes();
    let mut members = Vec::new();
    if b.first() != Some(&b'{') {
        return (members, None);
    }
    let mut i = 1;
    loop {
        i = skip_ws(b, i);
        match b.get(i) {
            None => return (members, None),
            Some(b'}') => return (members, Some(i + 1)),
            Some(b',') => {
                i += 1;
                continue;
            }
            Some(b'"') => {}
            Some(_) => return (members, None),
        }
        let Some(key_end) = string_end(b, i) else {
            return (members, None);
        };
        let Ok(key) = serde_json::from_str::<String>(&text[i..key_end]) else {
            return (members, None);
        };
        i = skip_ws(b, key_end);
        if b.get(i) != Some(&b':') {
            return (members, None);
        }
        let start = skip_ws(b, i + 1);
        let (end, complete) = value_end(b, start);
        members.push(Member {
            key,
            value: text[start..end].trim_end(),
            complete,
        });
        if !complete {
            return (members, None);
        }
        i = end;
    }
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while b.get(i).is_some_and(u8::is_ascii_whitespace) {
        i += 1;
    }
    i
}

/// The byte past the closing quote of the string opening at `i`, if it closes.
fn string_end(b: &[u8], i: usize) -> Option<usize> {
    let mut escaped = false;
    for (j, &c) in b.iter().enumerate().skip(i + 1) {
        match (escaped, c) {
            (true, _) => escaped = false,
            (false, b'\\') => escaped = true,
            (false, b'"') => return Some(j + 1),
            _ => {}
        }
    }
    None
}

/// Where the value starting at `i` ends (at the `,` or `}` after it), and whether it
/// did before the text ran out.
fn value_end(b: &[u8], i: usize) -> (usize, bool) {
    let mut depth = 0usize;
    let mut j = i;
    while j < b.len() {
        match b[j] {
            b'"' => match string_end(b, j) {
                Some(end) => {
                    j = end;
                    continue;
                }
                None => return (b.len(), false),
            },
            b'{' | b'[' => depth += 1,
            b'}' | b']' if depth == 0 => return (j, true),
            b'}' | b']' => depth -= 1,
            b',' if depth == 0 => return (j, true),
            _ => {}
        }
        j += 1;
    }
    (b.len(), false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_whole_object() {
        let text = r#"{"name": "f", "arguments": {"a": [1, "}"], "b": "x,y"}} tail"#;
        let (m, end) = object_members(text);
        assert_eq!(m.len(), 2);
        assert_eq!((m[0].key.as_str(), m[0].value), ("name", r#""f""#));
        assert_eq!(m[1].value, r#"{"a": [1, "}"], "b": "x,y"}"#);
        assert!(m.iter().all(|m| m.complete));
        assert_eq!(&text[end.unwrap()..], " tail");
    }

    #[test]
    fn reads_what_a_cut_off_object_has() {
        let (m, end) = object_members(r#"{"name": "get_weather", "arguments": {"city": "Par"#);
        assert_eq!(end, None);
        assert_eq!(m[0].value, r#""get_weather""#);
        assert!(m[0].complete);
        assert_eq!(m[1].value, r#"{"city": "Par"#);
        assert!(!m[1].complete);

        let (m, _) = object_members(r#"{"name": "get_we"#);
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].value, r#""get_we"#);
        assert!(!m[0].complete);
        assert_eq!(object_members(r#"{"na"#).0, vec![]);
        assert_eq!(object_members("x").0, vec![]);
    }

    #[test]
    fn escaped_quotes_do_not_end_strings() {
        let (m, end) = object_members(r#"{"k\"ey": "a\"}b", "n": 1}"#);
        assert_eq!(m[0].key, "k\"ey");
        assert_eq!(m[0].value, r#""a\"}b""#);
        assert_eq!(m[1].value, "1");
        assert!(end.is_some());
    }
}
