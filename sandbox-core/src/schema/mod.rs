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


use serde_json::{Map, Value};

mod convert;
mod patterns;
mod refs;

pub use convert::{GrammarError, grammar_from_schema, with_large_stack};
pub use refs::embed;
use refs::{eager_cycle, escape, follow_refs, lift_root, resolve};

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

#[cfg(test)]
mod tests;
