//! Strict JSON for what an identity provider hands us — token headers and payloads, JWKS
//! documents: one top-level object, and no duplicate member names at any depth (RFC 7515
//! §5.2 and RFC 8725 §3.11: parsers that keep the first or the last duplicate disagree, which
//! is how claims and keys get smuggled past one of them).

use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// Why bytes are not a strict JSON object.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum JsonError {
    /// Some object has the same member twice.
    #[error("duplicate member")]
    DuplicateMember,
    /// Not JSON (or nested too deeply).
    #[error("invalid JSON")]
    Invalid,
    /// Something follows the object.
    #[error("trailing data")]
    TrailingData,
    /// Valid JSON, but not an object.
    #[error("not an object")]
    NotAnObject,
}

/// Parses `bytes` as a JSON object, refusing duplicate members anywhere.
pub fn parse_object(bytes: &[u8]) -> Result<Map<String, Value>, JsonError> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = StrictValue.deserialize(&mut deserializer).map_err(|err| {
        if err.to_string().starts_with(DUPLICATE) {
            JsonError::DuplicateMember
        } else {
            JsonError::Invalid
        }
    })?;
    deserializer.end().map_err(|_| JsonError::TrailingData)?;
    match value {
        Value::Object(map) => Ok(map),
        _ => Err(JsonError::NotAnObject),
    }
}

const DUPLICATE: &str = "duplicate member";

/// Deserializes a [`Value`], failing on duplicate object members.
struct StrictValue;

impl<'de> DeserializeSeed<'de> for StrictValue {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for StrictValue {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        serde_json::Number::from_f64(v)
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
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(StrictValue)? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let mut map = Map::new();
        while let Some(key) = access.next_key::<String>()? {
            let value = access.next_value_seed(StrictValue)?;
            if map.insert(key, value).is_some() {
                return Err(de::Error::custom(DUPLICATE));
            }
        }
        Ok(Value::Object(map))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_an_object() {
        let map = parse_object(br#"{"a":1,"b":[true,null,"x"],"c":{"d":1.5}}"#).unwrap();
        assert_eq!(map["a"], 1);
        assert_eq!(map["c"]["d"], 1.5);
    }

    #[test]
    fn refusals() {
        use JsonError::*;
        let cases: &[(&[u8], JsonError)] = &[
            (br#"{"a":1,"a":2}"#, DuplicateMember),
            (br#"{"a":{"b":1,"b":1}}"#, DuplicateMember),
            (br#"{"a":[{"b":1,"b":2}]}"#, DuplicateMember),
            (br#"{"a":1,"\u0061":2}"#, DuplicateMember),
            (br#"[1,2]"#, NotAnObject),
            (br#""str""#, NotAnObject),
            (br#"{"a":1} {"#, TrailingData),
            (br#"{"a":1}x"#, TrailingData),
            (br#"{"a":NaN}"#, Invalid),
            (br#"{"a":"\ud800"}"#, Invalid),
            (b"{\"a\":\"\xff\"}", Invalid),
            (br#"{'a':1}"#, Invalid),
            (br#"{"a":1,}"#, Invalid),
            (b"", Invalid),
        ];
        for (input, expected) in cases {
            assert_eq!(
                parse_object(input),
                Err(*expected),
                "{}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn deep_nesting_is_refused_not_a_stack_overflow() {
        let deep = format!("{{\"a\":{}1{}}}", "[".repeat(10_000), "]".repeat(10_000));
        assert_eq!(parse_object(deep.as_bytes()), Err(JsonError::Invalid));
    }

    #[test]
    fn whitespace_around_the_object_is_allowed() {
        assert!(parse_object(b" {\"a\":1}\n").is_ok());
    }
}
