//! JSON values as error messages name them.

use serde_json::Value;

/// The JSON type of a value, for error messages: `an object`, `a string`, `null`, ….
pub fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
