//! Bounded structured fuzz of the schema path (issue 14): random schemas built from the
//! keywords requests use, nested and referencing each other, some invalid on purpose.
//! Each is either refused by `schema::prepare` or converted by llama.cpp; nothing may
//! panic, crash the converter, or take long.

use std::io::Write;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use sandbox_core::{GrammarError, grammar_from_schema};
use serde_json::{Value, json};

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(json!({"type": "string"})),
        Just(json!({"type": "integer", "minimum": 0, "maximum": 100})),
        Just(json!({"type": "number"})),
        Just(json!({"type": "boolean"})),
        Just(json!({"type": "null"})),
        "[a-z]{1,8}".prop_map(|s| json!({"const": s})),
        prop::collection::vec("[a-z]{1,5}", 1..4).prop_map(|v| json!({"enum": v})),
        Just(json!({"$ref": "#"})),
        Just(json!({"$ref": "#/$defs/x"})),
        Just(json!({"type": "string", "pattern": "^[a-z]{2,5}$"})),
        Just(json!({"type": "string", "pattern": "["})),
        Just(json!({"type": "integer", "minimum": 5, "maximum": 1})),
        Just(json!({"type": "string", "format": "date"})),
        Just(json!({"not": {"type": "null"}})),
    ]
}

fn schema() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(6, 96, 8, |inner| {
        prop_oneof![
            (
                prop::collection::btree_map("[a-z]{1,6}", inner.clone(), 0..8),
                any::<bool>()
            )
                .prop_map(|(props, all_required)| {
                    let required: Vec<&String> = if all_required {
                        props.keys().collect()
                    } else {
                        vec![]
                    };
                    json!({"type": "object", "properties": props, "required": required})
                }),
            inner
                .clone()
                .prop_map(|s| json!({"type": "array", "items": s, "maxItems": 3})),
            prop::collection::vec(inner.clone(), 1..4).prop_map(|v| json!({"anyOf": v})),
            (inner.clone(), inner)
                .prop_map(|(def, body)| json!({"$defs": {"x": def}, "allOf": [body]})),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn every_schema_is_refused_or_converted_quickly_and_nothing_crashes(s in schema()) {
        let t0 = Instant::now();
        let result = converted_within(&s, Duration::from_secs(20));
        prop_assert!(!matches!(result, Err(GrammarError::Crashed)), "the converter crashed on {s}");
        // A generous bound: the cases that used to stall took 17-30 s.
        prop_assert!(t0.elapsed() < Duration::from_secs(5), "{:?} for {s}", t0.elapsed());
        if let Ok(g) = result {
            prop_assert!(g.contains("root ::="), "{g}");
        }
    }
}

/// The conversion of `s`, or, when it has not finished within `limit`, the schema
/// written straight to stderr and the process aborted: a conversion that never ends
/// grows until the OOM killer takes the test, and the schema would be lost with the
/// output the test harness captured.
fn converted_within(s: &Value, limit: Duration) -> Result<String, GrammarError> {
    let (tx, rx) = mpsc::channel();
    let schema = s.clone();
    std::thread::spawn(move || {
        let _ = tx.send(grammar_from_schema(&schema));
    });
    match rx.recv_timeout(limit) {
        Ok(result) => result,
        Err(_) => {
            let _ = writeln!(
                std::io::stderr().lock(),
                "the conversion did not finish within {limit:?}: {s}"
            );
            std::process::abort();
        }
    }
}
