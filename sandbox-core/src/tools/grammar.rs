//! Grammars that hold the model to a well-formed call of one of the offered tools, in
//! its format's syntax, with arguments that match the tool's parameters schema.

use serde_json::{Value, json};

use super::ToolSpec;
use super::syntax::{CallSyntax, MISTRAL_OPENER, TAG_CLOSER, TAG_OPENER};
use crate::schema::{GrammarError, embed, grammar_from_schema};

/// The rule the converted schema's root is renamed to (a name the converter never
/// gives: its names come from schema keys and types, joined with `-`).
const CALL_RULE: &str = "tool-call-root-0";

/// A grammar for the calls, starting at the format's opening (for Mistral only when
/// `with_opener`: a forced call has the control token in the prompt already).
/// `several` allows parallel calls.
pub(crate) fn call_grammar(
    syntax: CallSyntax,
    tools: &[ToolSpec],
    several: bool,
    with_opener: bool,
) -> Result<String, GrammarError> {
    let key = syntax.arguments_key();
    let base = match syntax {
        CallSyntax::Mistral => "#/items/anyOf",
        CallSyntax::Tagged | CallSyntax::Llama3 => "#/anyOf",
    };
    let variants: Vec<Value> = tools
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let parameters = t
                .parameters
                .clone()
                .unwrap_or_else(|| json!({"type": "object"}));
            json!({
                "type": "object",
                "properties": {
                    "name": {"const": t.name},
                    // Its own "#" references keep pointing at its own root.
                    key: embed(&parameters, &format!("{base}/{i}/properties/{key}")),
                },
                "required": ["name", key],
                "additionalProperties": false,
            })
        })
        .collect();
    let (schema, root) = match syntax {
        CallSyntax::Mistral => {
            let mut schema = json!({"type": "array", "minItems": 1, "items": {"anyOf": variants}});
            if !several {
                schema["maxItems"] = json!(1);
            }
            let opener = if with_opener {
                format!("{} ", literal(MISTRAL_OPENER))
            } else {
                String::new()
            };
            // Mistral writes a space between [TOOL_CALLS] and the list.
            (schema, format!("root ::= {opener}\" \"? {CALL_RULE}"))
        }
        CallSyntax::Tagged => {
            let block = format!(
                "{} [ \\n]{{0,2}} {CALL_RULE} [ \\n]{{0,2}} {}",
                literal(TAG_OPENER),
                literal(TAG_CLOSER)
            );
            let root = if several {
                format!("root ::= tool-call-block ([ \\n]{{0,2}} tool-call-block)*\ntool-call-block ::= {block}")
            } else {
                format!("root ::= {block}")
            };
            (json!({"anyOf": variants}), root)
        }
        CallSyntax::Llama3 => (json!({"anyOf": variants}), format!("root ::= {CALL_RULE}")),
    };
    let converted = grammar_from_schema(&schema)?;
    Ok(format!(
        "{root}\n{}",
        converted.replacen("root ::=", &format!("{CALL_RULE} ::="), 1)
    ))
}

/// A GBNF string literal.
fn literal(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}
