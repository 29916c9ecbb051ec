//! A plugin's configuration: the JSON object of its params (filters, collectors) or of
//! the request's query parameters (transformers).

use serde::de::DeserializeOwned;

/// Parsed configuration.
#[derive(Debug, Clone, Default)]
pub struct Config(serde_json::Map<String, serde_json::Value>);

impl Config {
    /// Parses the text the host passes; empty text is an empty configuration.
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.trim().is_empty() {
            return Ok(Self::default());
        }
        match serde_json::from_str(text) {
            Ok(serde_json::Value::Object(map)) => Ok(Self(map)),
            Ok(_) => Err("the configuration must be a JSON object".into()),
            Err(e) => Err(format!("the configuration is not JSON: {e}")),
        }
    }

    /// A value as a string, if it is one.
    pub fn str(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.as_str())
    }

    /// A value deserialized as `T`; `Ok(None)` when absent, an error naming the key
    /// when it has the wrong shape.
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, String> {
        match self.0.get(key) {
            None => Ok(None),
            Some(value) => serde_json::from_value(value.clone())
                .map(Some)
                .map_err(|e| format!("config \"{key}\": {e}")),
        }
    }

    /// The raw JSON object.
    pub fn as_map(&self) -> &serde_json::Map<String, serde_json::Value> {
        &self.0
    }
}
