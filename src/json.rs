//! Strict JSON for JOSE headers and claim sets: duplicate member names are an error (serde_json
//! silently keeps the last one, which lets `{"sub":"alice","sub":"admin"}` mean different things
//! to different parsers), and nesting depth is capped.

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};
use std::fmt;

/// Maximum nesting depth of a header or claim set: arrays and objects inside one another
/// (the top-level object counts as one).
pub const MAX_JSON_DEPTH: usize = 16;

/// Parse `bytes` as one JSON value (UTF-8, no trailing data) with no duplicate object member
/// names and at most `max_depth` levels of nesting. The error message never contains input
/// beyond a (truncated) member name.
pub fn parse_strict(bytes: &[u8], max_depth: usize) -> Result<Value, String> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = Strict {
        depth: 0,
        max_depth,
    }
    .deserialize(&mut de)
    .map_err(|e| clean_error(&e))?;
    de.end().map_err(|e| clean_error(&e))?;
    Ok(value)
}

/// Deserialize one JSON value from any serde deserializer with the same rules as
/// [`parse_strict`] (for request bodies that must refuse duplicate members, e.g. role
/// mappings).
pub fn deserialize_strict<'de, D: Deserializer<'de>>(
    deserializer: D,
    max_depth: usize,
) -> Result<Value, D::Error> {
    Strict {
        depth: 0,
        max_depth,
    }
    .deserialize(deserializer)
}

/// serde_json's message without the position suffix, which is noise for a base64 segment.
fn clean_error(e: &serde_json::Error) -> String {
    let msg = e.to_string();
    match msg.find(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg,
    }
}

#[derive(Clone, Copy)]
struct Strict {
    /// Arrays/objects entered so far.
    depth: usize,
    max_depth: usize,
}

impl Strict {
    fn deeper<E: de::Error>(self) -> Result<Self, E> {
        if self.depth >= self.max_depth {
            return Err(E::custom(format!(
                "JSON nested deeper than {} levels",
                self.max_depth
            )));
        }
        Ok(Strict {
            depth: self.depth + 1,
            max_depth: self.max_depth,
        })
    }
}

impl<'de> DeserializeSeed<'de> for Strict {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Strict {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom("non-finite number"))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let inner = self.deeper()?;
        let mut out = Vec::new();
        while let Some(v) = seq.next_element_seed(inner)? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let inner = self.deeper()?;
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if out.contains_key(&key) {
                let shown: String = key.chars().take(64).collect();
                return Err(de::Error::custom(format!(
                    "duplicate member name {shown:?}"
                )));
            }
            let v = map.next_value_seed(inner)?;
            out.insert(key, v);
        }
        Ok(Value::Object(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_json() {
        let v = parse_strict(br#"{"a":[1,2.5,"x",null,true,{"b":{}}]}"#, 8).unwrap();
        assert_eq!(v["a"][5]["b"], serde_json::json!({}));
    }

    #[test]
    fn refuses_duplicate_members_at_any_depth() {
        let e = parse_strict(br#"{"sub":"alice","sub":"admin"}"#, 8).unwrap_err();
        assert!(e.contains("duplicate member name \"sub\""), "{e}");
        assert!(parse_strict(br#"{"a":{"x":1,"x":1}}"#, 8).is_err());
    }

    #[test]
    fn caps_depth() {
        assert!(parse_strict(b"[[[]]]", 3).is_ok());
        let e = parse_strict(b"[[[[]]]]", 3).unwrap_err();
        assert!(e.contains("nested deeper"), "{e}");
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        assert!(parse_strict(deep.as_bytes(), MAX_JSON_DEPTH).is_err());
    }

    #[test]
    fn refuses_trailing_data_and_bad_utf8() {
        assert!(parse_strict(br#"{} {}"#, 8).is_err());
        assert!(parse_strict(b"{\"a\":\"\xff\"}", 8).is_err());
        assert!(parse_strict(b"", 8).is_err());
        assert!(parse_strict(b"1e400", 8).is_err());
    }
}
