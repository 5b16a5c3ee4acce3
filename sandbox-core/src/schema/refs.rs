//! Local references (`#`, `#/$defs/...`) inside a request's schema: resolving them,
//! finding `allOf` cycles that would never end, lifting a recursive root into
//! `$defs`, and moving them along when a schema is embedded in a larger one.

use std::collections::HashSet;

use serde_json::{Map, Value};

use super::ROOT_DEF;

/// Whether the `allOf` at `place` expands into itself. llama.cpp merges an `allOf`
/// eagerly: a member that is a `$ref` (or a chain of them) is replaced by its target's
/// properties, whose schemas are then converted inline under new rule names. If that
/// leads back to the same `allOf` without a lazy `$ref` in between (one outside an
/// `allOf`, which becomes a named, reusable rule), the conversion never ends. The first
/// place found to repeat is returned. Iterative, with a visited set.
pub(super) fn eager_cycle(root: &Value, place: &str) -> Option<String> {
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

/// What the `allOf` at `place` merges eagerly: each member, or, for a member that is an
/// `anyOf`/`oneOf` (and no `$ref`, which would win), each of its alternatives, whose
/// properties llama.cpp merges as optional ones.
pub(super) fn all_of_members(root: &Value, place: &str) -> Vec<String> {
    let Some(Value::Array(members)) = resolve(root, place).and_then(|v| v.get("allOf")) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (i, m) in members.iter().enumerate() {
        let member = format!("{place}/allOf/{i}");
        // The converter's precedence: `$ref`, then `oneOf`, then `anyOf`.
        let alternatives = match m.get("$ref") {
            Some(_) => None,
            None => ["oneOf", "anyOf"].into_iter().find_map(|k| m.get(k).map(|a| (k, a))),
        };
        match alternatives {
            Some((key, Value::Array(a))) => out.extend((0..a.len()).map(|j| format!("{member}/{key}/{j}"))),
            _ => out.push(member),
        }
    }
    out
}

/// Where a chain of `$ref`s starting at `place` ends; `Err` with the place that repeats
/// when the chain is a loop.
pub(super) fn follow_refs(root: &Value, place: &str) -> Result<String, String> {
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

/// JSON pointer escaping of one key.
pub(super) fn escape(k: &str) -> String {
    k.replace('~', "~0").replace('/', "~1")
}

fn unescape(k: &str) -> String {
    k.replace("~1", "/").replace("~0", "~")
}

/// The target of a local reference (`#/a/b`), if there is one.
pub(super) fn resolve<'a>(root: &'a Value, reference: &str) -> Option<&'a Value> {
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
pub(super) fn lift_root(schema: &Value) -> Value {
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

