//! YAML bodies read into JSON values under a size budget.
//!
//! YAML aliases let a small document expand into a huge one (`b: [*a, *a, …]` where `a`
//! is itself a long list): the parser bounds alias jumps, not the expanded size. Every
//! node and every string byte built here is charged to a budget proportional to the body,
//! so an expansion bomb is refused while it is being built, before it eats the memory.

use std::cell::Cell;
use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, Error as _, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// Reads `body` as YAML into a JSON value, refusing documents whose expansion exceeds a
/// budget of a few times the body's size.
pub fn from_slice(body: &[u8]) -> Result<Value, String> {
    let budget = Cell::new(body.len().saturating_mul(4).saturating_add(4_096));
    let deserializer = serde_yaml_ng::Deserializer::from_slice(body);
    Budgeted(&budget)
        .deserialize(deserializer)
        .map_err(|e| e.to_string())
}

#[derive(Clone, Copy)]
struct Budgeted<'b>(&'b Cell<usize>);

impl Budgeted<'_> {
    fn charge<E: serde::de::Error>(self, cost: usize) -> Result<(), E> {
        match self.0.get().checked_sub(cost.max(1)) {
            Some(left) => {
                self.0.set(left);
                Ok(())
            }
            None => Err(E::custom(
                "the document expands to far more than its size (YAML aliases?); send it without anchors and aliases",
            )),
        }
    }
}

impl<'de> DeserializeSeed<'de> for Budgeted<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Budgeted<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a YAML value")
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<Value, E> {
        self.charge(1)?;
        Ok(Value::Null)
    }

    fn visit_none<E: serde::de::Error>(self) -> Result<Value, E> {
        self.visit_unit()
    }

    fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Value, E> {
        self.charge(1)?;
        Ok(Value::Bool(v))
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Value, E> {
        self.charge(1)?;
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Value, E> {
        self.charge(1)?;
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Value, E> {
        self.charge(1)?;
        Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom(format!("{v} is not a JSON number")))
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Value, E> {
        self.charge(v.len())?;
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Value, E> {
        self.charge(v.len())?;
        Ok(Value::String(v))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        self.charge(1)?;
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(self)? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        self.charge(1)?;
        let mut object = Map::new();
        while let Some(key) = map.next_key_seed(self)? {
            let key = match key {
                Value::String(key) => key,
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                other => {
                    return Err(A::Error::custom(format!(
                        "a mapping key must be a scalar, not {other}"
                    )));
                }
            };
            let value = map.next_value_seed(self)?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_documents_read_as_json() {
        let value =
            from_slice(b"alert: {monitor: m, status: healthy, count: 3}\ncontext: {port: 8080}\n")
                .expect("reads");
        assert_eq!(value["alert"]["count"], 3);
        assert_eq!(value["context"]["port"], 8080);
    }

    #[test]
    fn a_small_anchor_used_a_few_times_is_fine() {
        let body = b"defaults: &d {service: bender, region: eu}\na: *d\nb: *d\n";
        assert_eq!(from_slice(body).expect("reads")["b"]["service"], "bender");
    }

    #[test]
    fn an_alias_expansion_bomb_is_refused() {
        let list = vec!["0"; 2_000].join(",");
        let refs = vec!["*a"; 2_000].join(",");
        let body = format!("a: &a [{list}]\nb: [{refs}]\n");
        let err = from_slice(body.as_bytes()).expect_err("4 million nodes from 12 KiB");
        assert!(err.contains("expands to far more than its size"), "{err}");
    }
}
