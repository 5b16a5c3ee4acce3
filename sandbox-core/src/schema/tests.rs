//! The schema checks and rewrites, and conversion end to end.

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
    // The fourth: an anyOf inside allOf is merged eagerly too, alternative by alternative.
    let through_any_of = json!({"type": "object", "properties": {"yop": {
        "$defs": {"x": {"enum": ["n"]}}, "allOf": [{"anyOf": [{"$ref": "#"}]}]}}, "required": []});
    assert!(matches!(check(through_any_of), Err(SchemaError::CyclicRef { .. })));
    let through_one_of = json!({"properties": {"p": {"allOf": [{"type": "string"}, {"oneOf": [{"type": "null"}, {"$ref": "#"}]}]}}});
    assert!(matches!(check(through_one_of), Err(SchemaError::CyclicRef { .. })));
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
