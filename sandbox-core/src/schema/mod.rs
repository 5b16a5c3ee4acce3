//! JSON Schemas from requests (`response_format`, tool parameters), checked and made
//! ready before llama.cpp turns them into a grammar.
//!
//! llama.cpp's converter recurses once per `$ref` hop and per nesting level, and its
//! handling of optional properties costs about the cube of their number: a 70 KB schema
//! with a 2,000-link `$ref` chain overflowed a worker's stack and took the process down,
//! and 2,000 optional properties took half a minute. So a schema is measured first, with
//! limits far above what real schemas use, and refused with a sentence naming the limit;
//! then a root reference (`"$ref": "#"`, a recursive schema) is rewritten into the
//! `#/$defs/...` form the converter resolves; `pattern`s are anchored the way the
//! converter needs, or refused when it could not enforce them (`patterns`); and the
//! conversion runs on a thread with a stack large enough for anything within the limits
//! ([`with_large_stack`]).

use std::collections::HashSet;

use serde_json::{Map, Value};

mod patterns;

/// How big a schema may be. Every limit is many times what a real tool or response
/// schema needs (OpenAI's own structured outputs allow 5,000 properties in total and 10
/// levels of nesting).
#[derive(Debug, Clone, Copy)]
pub struct SchemaLimits {
    /// Nesting of JSON values inside the schema.
    pub max_depth: usize,
    /// JSON values (objects, arrays, strings, numbers...) in the whole schema.
    pub max_values: usize,
    /// `$ref`s in the whole schema (each one is a recursion of the converter).
    pub max_refs: usize,
    /// Properties of one object that are not `required`.
    pub max_optional_properties: usize,
    /// Length of one `pattern`.
    pub max_pattern_len: usize,
}

/// The limits the API enforces.
pub const LIMITS: SchemaLimits = SchemaLimits {
    max_depth: 32,
    max_values: 20_000,
    max_refs: 256,
    max_optional_properties: 64,
    max_pattern_len: 1_000,
};

/// Why a schema is refused, in the caller's terms (the path is a JSON pointer into it).
// The fields are what each variant's message says they are.
#[allow(missing_docs)]
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SchemaError {
    /// Nested deeper than [`SchemaLimits::max_depth`].
    #[error("the schema is nested more than {limit} levels deep (at {path})")]
    TooDeep { path: String, limit: usize },
    /// More values than [`SchemaLimits::max_values`].
    #[error("the schema has more than {limit} values; make it smaller")]
    TooLarge { limit: usize },
    /// More `$ref`s than [`SchemaLimits::max_refs`].
    #[error("the schema has {count} $ref references; at most {limit} are supported")]
    TooManyRefs { count: usize, limit: usize },
    /// One object with too many optional properties.
    #[error(
        "the object at {path} has {count} optional properties; at most {limit} are supported \
         (list the others in \"required\", or split the object)"
    )]
    TooManyOptional {
        path: String,
        count: usize,
        limit: usize,
    },
    /// A `$ref` that does not point into this document.
    #[error("$ref \"{reference}\" at {path} is not supported: only references into the same schema (\"#\" or \"#/...\") are")]
    ExternalRef { path: String, reference: String },
    /// A reference cycle with nothing in between but `$ref` and `allOf`: llama.cpp's
    /// converter recurses through it forever (found by the schema fuzz).
    #[error(
        "the schema at {path} refers back to itself through \"$ref\"/\"allOf\" alone, \
         with no object or array in between, which cannot be turned into a grammar"
    )]
    CyclicRef { path: String },
    /// A `$ref` whose target is not there.
    #[error("$ref \"{reference}\" at {path} points at nothing in the schema")]
    DanglingRef { path: String, reference: String },
    /// Bounds no value can meet.
    #[error("{path}: {what}, so no value can match")]
    Unsatisfiable { path: String, what: String },
    /// A `pattern` that is not a regular expression, or too long.
    #[error("the pattern at {path} is not usable: {reason}")]
    BadPattern { path: String, reason: String },
    /// A keyword whose constraint the grammar cannot enforce.
    #[error("the keyword \"{keyword}\" at {path} is not supported (it cannot be enforced while generating)")]
    Unsupported { path: String, keyword: String },
}

/// Keywords llama.cpp's converter ignores: a schema using them would be enforced only
/// in part, so it is refused instead. (Annotations such as `title`, `description`,
/// `default` and `examples` constrain nothing and pass.)
const UNENFORCED: &[&str] = &[
    "not",
    "if",
    "then",
    "else",
    "dependentRequired",
    "dependentSchemas",
    "dependencies",
    "patternProperties",
    "propertyNames",
    "unevaluatedProperties",
    "unevaluatedItems",
    "uniqueItems",
    "contains",
    "minContains",
    "maxContains",
    "multipleOf",
    "minProperties",
    "maxProperties",
];

/// The name a root `$ref` is moved to (see [`prepare`]).
const ROOT_DEF: &str = "ais_root";

/// Checks `schema` against `limits` and returns the form to hand to the converter.
pub fn prepare(schema: &Value, limits: &SchemaLimits) -> Result<Value, SchemaError> {
    let mut walk = Walk {
        limits,
        values: 0,
        refs: Vec::new(),
        eager: Vec::new(),
    };
    walk.value(schema, "#", 0, false)?;
    // A chain of $refs that loops defines nothing; an allOf that expands into itself
    // never finishes converting.
    for (path, _) in &walk.refs {
        if let Err(path) = follow_refs(schema, path) {
            return Err(SchemaError::CyclicRef { path });
        }
    }
    for start in &walk.eager {
        if let Some(path) = eager_cycle(schema, start) {
            return Err(SchemaError::CyclicRef { path });
        }
    }
    if walk.refs.len() > limits.max_refs {
        return Err(SchemaError::TooManyRefs {
            count: walk.refs.len(),
            limit: limits.max_refs,
        });
    }
    let mut root_ref = false;
    for (path, reference) in &walk.refs {
        if reference == "#" {
            root_ref = true;
        } else if resolve(schema, reference).is_none() {
            return Err(SchemaError::DanglingRef {
                path: path.clone(),
                reference: reference.clone(),
            });
        }
    }
    Ok(if root_ref {
        lift_root(schema)
    } else {
        schema.clone()
    })
}

struct Walk<'a> {
    limits: &'a SchemaLimits,
    values: usize,
    /// (where, what) of every `$ref` met.
    refs: Vec<(String, String)>,
    /// Schemas with an `allOf`: where a reference cycle would be followed eagerly.
    eager: Vec<String>,
}

impl Walk<'_> {
    /// `in_schema`: whether `v` is a schema (its keys are keywords) rather than data
    /// (an `enum` list, a `const`, a `properties` map whose keys are names).
    fn value(&mut self, v: &Value, path: &str, depth: usize, data: bool) -> Result<(), SchemaError> {
        self.values += 1;
        if self.values > self.limits.max_values {
            return Err(SchemaError::TooLarge {
                limit: self.limits.max_values,
            });
        }
        if depth > self.limits.max_depth {
            return Err(SchemaError::TooDeep {
                path: path.to_string(),
                limit: self.limits.max_depth,
            });
        }
        match v {
            Value::Object(o) if !data => self.schema(o, path, depth),
            Value::Object(o) => {
                for (k, child) in o {
                    self.value(child, &format!("{path}/{}", escape(k)), depth + 1, true)?;
                }
                Ok(())
            }
            Value::Array(a) => {
                for (i, child) in a.iter().enumerate() {
                    self.value(child, &format!("{path}/{i}"), depth + 1, data)?;
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    fn schema(&mut self, o: &Map<String, Value>, path: &str, depth: usize) -> Result<(), SchemaError> {
        for keyword in UNENFORCED {
            if o.contains_key(*keyword) {
                return Err(SchemaError::Unsupported {
                    path: path.to_string(),
                    keyword: (*keyword).to_string(),
                });
            }
        }
        if o.contains_key("allOf") {
            self.eager.push(path.to_string());
        }
        if let Some(r) = o.get("$ref") {
            let reference = r.as_str().unwrap_or_default().to_string();
            if reference != "#" && !reference.starts_with("#/") {
                return Err(SchemaError::ExternalRef {
                    path: path.to_string(),
                    reference,
                });
            }
            self.refs.push((path.to_string(), reference));
        }
        check_bounds(o, path)?;
        if let Some(p) = o.get("pattern").and_then(Value::as_str) {
            check_pattern(p, path, self.limits)?;
        }
        if let Some(Value::Object(props)) = o.get("properties") {
            let required: Vec<&str> = o
                .get("required")
                .and_then(Value::as_array)
                .map(|r| r.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let optional = props
                .keys()
                .filter(|k| !required.contains(&k.as_str()))
                .count();
            if optional > self.limits.max_optional_properties {
                return Err(SchemaError::TooManyOptional {
                    path: path.to_string(),
                    count: optional,
                    limit: self.limits.max_optional_properties,
                });
            }
        }
        for (k, child) in o {
            let child_path = format!("{path}/{}", escape(k));
            match k.as_str() {
                // Maps from names to schemas.
                "properties" | "$defs" | "definitions" => match child {
                    Value::Object(m) => {
                        self.values += 1;
                        for (name, s) in m {
                            self.value(s, &format!("{child_path}/{}", escape(name)), depth + 2, false)?;
                        }
                    }
                    other => self.value(other, &child_path, depth + 1, true)?,
                },
                // Data, not schemas.
                "enum" | "const" | "default" | "examples" | "required" | "description"
                | "title" | "$comment" => self.value(child, &child_path, depth + 1, true)?,
                _ => self.value(child, &child_path, depth + 1, false)?,
            }
        }
        Ok(())
    }
}

/// Whether the `allOf` at `place` expands into itself. llama.cpp merges an `allOf`
/// eagerly: a member that is a `$ref` (or a chain of them) is replaced by its target's
/// properties, whose schemas are then converted inline under new rule names. If that
/// leads back to the same `allOf` without a lazy `$ref` in between (one outside an
/// `allOf`, which becomes a named, reusable rule), the conversion never ends. The first
/// place found to repeat is returned. Iterative, with a visited set.
fn eager_cycle(root: &Value, place: &str) -> Option<String> {
    let mut queue: Vec<String> = Vec::new();
    let mut seen: HashSet<String> = HashSet::new();
    for member in all_of_members(root, place) {
        match follow_refs(root, &member) {
            Ok(target) => queue.push(target),
            Err(repeated) => return Some(repeated),
        }
    }
    while let Some(node) = queue.pop() {
        if node == place {
            return Some(node);
        }
        if !seen.insert(node.clone()) {
            continue;
        }
        let Some(Value::Object(o)) = resolve(root, &node) else {
            continue;
        };
        for (key, child) in o {
            match (key.as_str(), child) {
                ("properties", Value::Object(m)) => {
                    queue.extend(m.keys().map(|k| format!("{node}/properties/{}", escape(k))));
                }
                ("items" | "additionalProperties", Value::Object(_)) => queue.push(format!("{node}/{key}")),
                ("anyOf" | "oneOf" | "prefixItems", Value::Array(a)) => {
                    queue.extend((0..a.len()).map(|i| format!("{node}/{key}/{i}")));
                }
                ("allOf", Value::Array(_)) => {
                    for member in all_of_members(root, &node) {
                        match follow_refs(root, &member) {
                            Ok(target) => queue.push(target),
                            Err(repeated) => return Some(repeated),
                        }
                    }
                }
                _ => {}
            }
        }
    }
    None
}

fn all_of_members(root: &Value, place: &str) -> Vec<String> {
    match resolve(root, place).and_then(|v| v.get("allOf")) {
        Some(Value::Array(a)) => (0..a.len()).map(|i| format!("{place}/allOf/{i}")).collect(),
        _ => Vec::new(),
    }
}

/// Where a chain of `$ref`s starting at `place` ends; `Err` with the place that repeats
/// when the chain is a loop.
fn follow_refs(root: &Value, place: &str) -> Result<String, String> {
    let mut at = place.to_string();
    let mut chain: HashSet<String> = HashSet::new();
    while let Some(Value::String(r)) = resolve(root, &at).and_then(|v| v.get("$ref")) {
        if !chain.insert(at.clone()) {
            return Err(at);
        }
        at = r.clone();
    }
    Ok(at)
}

/// Pairs of bounds that contradict each other.
fn check_bounds(o: &Map<String, Value>, path: &str) -> Result<(), SchemaError> {
    const PAIRS: &[(&str, &str)] = &[
        ("minimum", "maximum"),
        ("exclusiveMinimum", "exclusiveMaximum"),
        ("minimum", "exclusiveMaximum"),
        ("exclusiveMinimum", "maximum"),
        ("minLength", "maxLength"),
        ("minItems", "maxItems"),
    ];
    for (lo, hi) in PAIRS {
        let (Some(l), Some(h)) = (
            o.get(*lo).and_then(Value::as_f64),
            o.get(*hi).and_then(Value::as_f64),
        ) else {
            continue;
        };
        let exclusive = lo.starts_with("exclusive") || hi.starts_with("exclusive");
        if l > h || (exclusive && l >= h) {
            return Err(SchemaError::Unsatisfiable {
                path: path.to_string(),
                what: format!("{lo} {l} is above {hi} {h}"),
            });
        }
    }
    for key in ["minLength", "maxLength", "minItems", "maxItems"] {
        if let Some(v) = o.get(key).and_then(Value::as_f64)
            && v < 0.0
        {
            return Err(SchemaError::Unsatisfiable {
                path: path.to_string(),
                what: format!("{key} is negative ({v})"),
            });
        }
    }
    Ok(())
}

fn check_pattern(p: &str, path: &str, limits: &SchemaLimits) -> Result<(), SchemaError> {
    if p.len() > limits.max_pattern_len {
        return Err(SchemaError::BadPattern {
            path: path.to_string(),
            reason: format!(
                "it is {} characters long; at most {} are supported",
                p.len(),
                limits.max_pattern_len
            ),
        });
    }
    regex_syntax::Parser::new()
        .parse(p)
        .map(|_| ())
        .map_err(|e| SchemaError::BadPattern {
            path: path.to_string(),
            reason: match &e {
                regex_syntax::Error::Parse(a)
                    if matches!(
                        a.kind(),
                        regex_syntax::ast::ErrorKind::UnsupportedLookAround
                            | regex_syntax::ast::ErrorKind::UnsupportedBackreference
                    ) =>
                {
                    patterns::UNENFORCEABLE.to_string()
                }
                _ => format!("not a regular expression ({})", first_line(&e.to_string())),
            },
        })
}

fn first_line(s: &str) -> String {
    s.lines()
        .map(str::trim)
        .rfind(|l| l.starts_with("error:"))
        .unwrap_or_else(|| s.lines().next().unwrap_or_default())
        .to_string()
}

/// JSON pointer escaping of one key.
fn escape(k: &str) -> String {
    k.replace('~', "~0").replace('/', "~1")
}

fn unescape(k: &str) -> String {
    k.replace("~1", "/").replace("~0", "~")
}

/// The target of a local reference (`#/a/b`), if there is one.
fn resolve<'a>(root: &'a Value, reference: &str) -> Option<&'a Value> {
    let pointer = reference.strip_prefix('#')?;
    if pointer.is_empty() {
        return Some(root);
    }
    let mut target = root;
    for token in pointer.strip_prefix('/')?.split('/') {
        let token = unescape(token);
        target = match target {
            Value::Object(o) => o.get(&token)?,
            Value::Array(a) => a.get(token.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(target)
}

/// A schema that refers to its own root (`"$ref": "#"`), rewritten so that the root is
/// a definition: `{"$defs": {..., "ais_root": root}, "$ref": "#/$defs/ais_root"}`, with
/// every reference into the root moved along. llama.cpp resolves only `#/...`.
fn lift_root(schema: &Value) -> Value {
    let mut root = schema.clone();
    let mut defs = Map::new();
    let mut definitions = None;
    if let Value::Object(o) = &mut root {
        if let Some(Value::Object(d)) = o.remove("$defs") {
            defs = d;
        }
        definitions = o.remove("definitions");
    }
    rewrite_refs(&mut root);
    for d in defs.values_mut() {
        rewrite_refs(d);
    }
    let mut definitions = definitions;
    if let Some(d) = definitions.as_mut() {
        rewrite_refs(d);
    }
    defs.insert(ROOT_DEF.to_string(), root);
    let mut out = Map::new();
    out.insert("$defs".into(), Value::Object(defs));
    if let Some(d) = definitions {
        out.insert("definitions".into(), d);
    }
    out.insert("$ref".into(), Value::String(format!("#/$defs/{ROOT_DEF}")));
    Value::Object(out)
}

fn rewrite_refs(v: &mut Value) {
    match v {
        Value::Object(o) => {
            if let Some(Value::String(r)) = o.get_mut("$ref") {
                let moved = r.starts_with("#/$defs/") || r.starts_with("#/definitions/");
                if r == "#" {
                    *r = format!("#/$defs/{ROOT_DEF}");
                } else if !moved && let Some(rest) = r.strip_prefix("#/") {
                    *r = format!("#/$defs/{ROOT_DEF}/{rest}");
                }
            }
            for child in o.values_mut() {
                rewrite_refs(child);
            }
        }
        Value::Array(a) => a.iter_mut().for_each(rewrite_refs),
        _ => {}
    }
}

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

/// `schema` as it must read when placed at `pointer` (e.g. `#/items/anyOf/0`) inside a
/// larger schema: its local references (`#`, `#/...`) are moved along, so that a tool's
/// parameters keep their meaning inside the schema of all tool calls.
pub fn embed(schema: &Value, pointer: &str) -> Value {
    let mut out = schema.clone();
    rebase(&mut out, pointer.trim_end_matches('/'));
    out
}

fn rebase(v: &mut Value, prefix: &str) {
    match v {
        Value::Object(o) => {
            if let Some(Value::String(r)) = o.get_mut("$ref") {
                if r == "#" {
                    *r = prefix.to_string();
                } else if let Some(rest) = r.strip_prefix("#/") {
                    *r = format!("{prefix}/{rest}");
                }
            }
            for (k, child) in o.iter_mut() {
                // Data that happens to hold a "$ref" key is left as it is.
                if !matches!(k.as_str(), "enum" | "const" | "default" | "examples") {
                    rebase(child, prefix);
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|c| rebase(c, prefix)),
        _ => {}
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(v: Value) -> Result<Value, SchemaError> {
        prepare(&v, &LIMITS)
    }

    fn chain(n: usize) -> Value {
        let mut defs = Map::new();
        for i in 0..n {
            let next = if i + 1 == n {
                json!({"type": "string"})
            } else {
                json!({"$ref": format!("#/$defs/d{}", i + 1)})
            };
            defs.insert(format!("d{i}"), next);
        }
        json!({"$defs": defs, "$ref": "#/$defs/d0"})
    }

    #[test]
    fn ordinary_schemas_pass_unchanged() {
        let s = json!({"type": "object", "title": "Person",
            "properties": {"name": {"type": "string", "description": "their name"},
                           "age": {"type": "integer", "minimum": 0, "maximum": 150},
                           "tags": {"type": "array", "items": {"enum": ["a", "b"]}, "maxItems": 3}},
            "required": ["name"], "additionalProperties": false});
        assert_eq!(check(s.clone()), Ok(s));
        let c = chain(40);
        assert_eq!(check(c.clone()), Ok(c));
    }

    #[test]
    fn a_two_thousand_link_ref_chain_is_refused_by_count() {
        assert_eq!(
            check(chain(2000)),
            Err(SchemaError::TooManyRefs {
                count: 2000,
                limit: 256
            })
        );
    }

    #[test]
    fn many_optional_properties_are_refused_but_required_ones_pass() {
        let props: Map<String, Value> = (0..10_000)
            .map(|i| (format!("p{i}"), json!({"type": "string"})))
            .collect();
        let err = check(json!({"type": "object", "properties": props.clone()})).unwrap_err();
        assert!(matches!(err, SchemaError::TooManyOptional { count: 10_000, .. }), "{err}");
        let names: Vec<&String> = props.keys().collect();
        let err = check(json!({"type": "object", "properties": props.clone(), "required": names})).unwrap_err();
        assert!(matches!(err, SchemaError::TooLarge { limit: 20_000 }), "{err}");
        let some: Map<String, Value> = props.into_iter().take(100).collect();
        let err = check(json!({"type": "object", "properties": some.clone()})).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the object at # has 100 optional properties; at most 64 are supported (list the others in \"required\", or split the object)"
        );
        let names: Vec<&String> = some.keys().collect();
        assert!(check(json!({"type": "object", "properties": some, "required": names})).is_ok());
    }

    #[test]
    fn deep_nesting_is_refused_with_where() {
        let mut s = json!({"type": "string"});
        for _ in 0..40 {
            s = json!({"type": "array", "items": s});
        }
        let err = check(s).unwrap_err();
        assert!(matches!(err, SchemaError::TooDeep { limit: 32, .. }), "{err}");
        assert!(err.to_string().contains("#/items/items/"), "{err}");
    }

    #[test]
    fn contradictions_and_bad_patterns_are_named() {
        assert_eq!(
            check(json!({"type": "integer", "minimum": 10, "maximum": 1}))
                .unwrap_err()
                .to_string(),
            "#: minimum 10 is above maximum 1, so no value can match"
        );
        let err = check(json!({"properties": {"s": {"type": "string", "pattern": "["}}})).unwrap_err();
        assert!(
            matches!(&err, SchemaError::BadPattern { path, .. } if path == "#/properties/s"),
            "{err}"
        );
        assert!(err.to_string().contains("not a regular expression"), "{err}");
        assert!(check(json!({"type": "string", "pattern": "^[a-z]+$"})).is_ok());
    }

    #[test]
    fn unenforceable_keywords_and_external_or_dangling_refs_are_refused() {
        assert_eq!(
            check(json!({"properties": {"x": {"not": {"type": "null"}}}}))
                .unwrap_err()
                .to_string(),
            "the keyword \"not\" at #/properties/x is not supported (it cannot be enforced while generating)"
        );
        assert!(matches!(
            check(json!({"$ref": "https://example.com/s.json"})),
            Err(SchemaError::ExternalRef { .. })
        ));
        assert!(matches!(
            check(json!({"$ref": "#/$defs/missing"})),
            Err(SchemaError::DanglingRef { .. })
        ));
        // Names that look like keywords, as property names or enum values, are data.
        assert!(check(json!({"properties": {"not": {"type": "string"}}, "enum": [{"if": 1}]})).is_ok());
    }

    #[test]
    fn reference_cycles_through_all_of_alone_are_refused() {
        // The schema the fuzz found: it overflowed even a 256 MiB stack.
        let err = check(json!({"$defs": {"x": {"$ref": "#/$defs/x"}}, "allOf": [{"$ref": "#/$defs/x"}]}))
            .unwrap_err();
        assert!(matches!(&err, SchemaError::CyclicRef { path } if path == "#/$defs/x"), "{err}");
        assert!(matches!(
            check(json!({"allOf": [{"$ref": "#"}]})),
            Err(SchemaError::CyclicRef { .. })
        ));
        // The third: a $ref that only refers to itself, reached through anyOf.
        assert!(matches!(
            check(json!({"$defs": {"x": {"$ref": "#/$defs/x"}}, "anyOf": [{"$ref": "#/$defs/x"}, {"type": "boolean"}]})),
            Err(SchemaError::CyclicRef { .. })
        ));
        // The second one it found: a property whose allOf is the root that holds it.
        let nested = json!({"type": "object", "properties": {
            "a": {"type": "string"}, "pc": {"allOf": [{"$ref": "#"}]}}});
        assert!(matches!(check(nested), Err(SchemaError::CyclicRef { .. })));
        // A lazy reference in between (outside allOf) is a named rule: fine.
        assert!(check(json!({"allOf": [{"type": "object", "properties": {"next": {"$ref": "#"}}}]})).is_ok());
        assert!(check(json!({"$defs": {"node": {"type": "object", "properties": {"kids": {"type": "array", "items": {"$ref": "#/$defs/node"}}}}},
            "allOf": [{"$ref": "#/$defs/node"}]})).is_ok());
        // What pydantic writes for a described enum field.
        assert!(check(json!({"$defs": {"Color": {"enum": ["red", "blue"]}}, "type": "object",
            "properties": {"c": {"allOf": [{"$ref": "#/$defs/Color"}], "description": "the color"}}})).is_ok());
    }

    #[test]
    fn a_root_reference_becomes_a_definition() {
        let tree = json!({"type": "object",
            "properties": {"value": {"type": "integer"},
                           "children": {"type": "array", "items": {"$ref": "#"}},
                           "meta": {"$ref": "#/$defs/meta"},
                           "same": {"$ref": "#/properties/value"}},
            "$defs": {"meta": {"type": "string"}}, "required": ["value"]});
        let out = check(tree).unwrap();
        assert_eq!(out["$ref"], "#/$defs/ais_root");
        let root = &out["$defs"]["ais_root"];
        assert_eq!(root["properties"]["children"]["items"]["$ref"], "#/$defs/ais_root");
        assert_eq!(root["properties"]["meta"]["$ref"], "#/$defs/meta");
        assert_eq!(
            root["properties"]["same"]["$ref"],
            "#/$defs/ais_root/properties/value"
        );
        assert_eq!(out["$defs"]["meta"], json!({"type": "string"}));
        assert!(resolve(&out, "#/$defs/ais_root/properties/value").is_some());
    }

    #[test]
    fn an_embedded_schema_keeps_its_references() {
        let params = json!({"type": "object", "properties": {"n": {"$ref": "#/$defs/n"}, "self": {"$ref": "#"}},
            "$defs": {"n": {"type": "integer"}}, "enum": [{"$ref": "#"}]});
        let e = embed(&params, "#/items/anyOf/0/properties/arguments");
        assert_eq!(e["properties"]["n"]["$ref"], "#/items/anyOf/0/properties/arguments/$defs/n");
        assert_eq!(e["properties"]["self"]["$ref"], "#/items/anyOf/0/properties/arguments");
        assert_eq!(e["enum"], json!([{"$ref": "#"}]));
        let outer = json!({"type": "array", "items": {"anyOf": [{"type": "object", "properties": {"arguments": e}}]}});
        assert!(check(outer).is_ok());
    }

    #[test]
    fn a_large_stack_runs_deep_recursion_and_reports_panics() {
        fn depth(n: u64) -> u64 {
            let pad = [n; 64];
            if n == 0 { pad[0] } else { 1 + depth(n - 1) + pad[63] - n }
        }
        assert_eq!(with_large_stack(256, || depth(200_000)), Some(200_000));
        assert_eq!(with_large_stack(8, || -> u32 { panic!("boom") }), None);
    }
}
