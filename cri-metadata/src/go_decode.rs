//! Go `json.Unmarshal` semantics for serde types: keys matched to fields
//! exactly, else case-insensitively; unknown keys ignored; missing keys and
//! `null` leave the zero value (0, "", false, empty list or map, `None`).

use serde::de::{self, DeserializeOwned, DeserializeSeed, Visitor};
use serde::forward_to_deserialize_any;
use serde_json::{Error, Map, Value};

use super::go_encode::cri_field_name;

/// Decodes `value` into `T` as Go decodes into the equivalent struct.
/// Field names are the serde names, except for the CRI fields whose json
/// tag differs from their Rust name (`uidMappings`, `CDI_devices`); for
/// those the Rust name is accepted as well.
pub(crate) fn from_value<T: DeserializeOwned>(value: &Value) -> Result<T, Error> {
    T::deserialize(GoDeserializer(Some(value)))
}

/// Go's key matching (`bytes.EqualFold` on the field name): ASCII case
/// folding, plus the two non-ASCII letters that fold to ASCII ones.
fn fold_eq(key: &str, name: &str) -> bool {
    fn fold(c: char) -> char {
        match c {
            '\u{212a}' => 'k', // KELVIN SIGN
            '\u{17f}' => 's',  // LATIN SMALL LETTER LONG S
            c => c.to_ascii_lowercase(),
        }
    }
    key.chars().map(fold).eq(name.chars().map(fold))
}

/// The value of struct field `field` in `object`.
fn lookup<'de>(
    object: &'de Map<String, Value>,
    type_name: &str,
    field: &'static str,
) -> Option<&'de Value> {
    let find = |name: &str| {
        object.get(name).or_else(|| {
            object
                .iter()
                .find(|(key, _)| fold_eq(key, name))
                .map(|(_, v)| v)
        })
    };
    let go_name = cri_field_name(type_name, field);
    find(go_name).or_else(|| if go_name == field { None } else { find(field) })
}

/// `None`: the key was absent.
#[derive(Clone, Copy)]
struct GoDeserializer<'de>(Option<&'de Value>);

impl<'de> GoDeserializer<'de> {
    /// The JSON value, `None` for absent or `null`.
    fn present(self) -> Option<&'de Value> {
        self.0.filter(|v| !v.is_null())
    }

    fn invalid<V: Visitor<'de>>(value: &Value, visitor: &V) -> Error {
        let unexpected = match value {
            Value::Null => de::Unexpected::Unit,
            Value::Bool(b) => de::Unexpected::Bool(*b),
            Value::Number(_) => de::Unexpected::Other("number"),
            Value::String(s) => de::Unexpected::Str(s),
            Value::Array(_) => de::Unexpected::Seq,
            Value::Object(_) => de::Unexpected::Map,
        };
        de::Error::invalid_type(unexpected, visitor)
    }

    fn number<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.present() {
            None => visitor.visit_u64(0),
            Some(Value::Number(n)) => match (n.as_u64(), n.as_i64()) {
                (Some(u), _) => visitor.visit_u64(u),
                (None, Some(i)) => visitor.visit_i64(i),
                // Go refuses a fraction or exponent for an integer field.
                (None, None) => Err(de::Error::invalid_type(
                    de::Unexpected::Other("non-integer number"),
                    &visitor,
                )),
            },
            Some(other) => Err(Self::invalid(other, &visitor)),
        }
    }
}

impl<'de> de::Deserializer<'de> for GoDeserializer<'de> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.present() {
            None => visitor.visit_unit(),
            Some(value) => value.deserialize_any(visitor),
        }
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.present() {
            None => visitor.visit_bool(false),
            Some(Value::Bool(b)) => visitor.visit_bool(*b),
            Some(other) => Err(Self::invalid(other, &visitor)),
        }
    }

    fn deserialize_i8<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.number(visitor)
    }
    fn deserialize_i16<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.number(visitor)
    }
    fn deserialize_i32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.number(visitor)
    }
    fn deserialize_i64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.number(visitor)
    }
    fn deserialize_u8<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.number(visitor)
    }
    fn deserialize_u16<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.number(visitor)
    }
    fn deserialize_u32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.number(visitor)
    }
    fn deserialize_u64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.number(visitor)
    }

    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_f64(visitor)
    }
    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.present() {
            None => visitor.visit_f64(0.0),
            Some(Value::Number(n)) => visitor.visit_f64(n.as_f64().unwrap_or_default()),
            Some(other) => Err(Self::invalid(other, &visitor)),
        }
    }

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_str(visitor)
    }
    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.present() {
            None => visitor.visit_borrowed_str(""),
            Some(Value::String(s)) => visitor.visit_borrowed_str(s),
            Some(other) => Err(Self::invalid(other, &visitor)),
        }
    }
    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_str(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.present() {
            None => visitor.visit_none(),
            Some(_) => visitor.visit_some(self),
        }
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_unit()
    }
    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_unit()
    }
    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.present() {
            None => visitor.visit_seq(Elements(NO_ELEMENTS.iter())),
            Some(Value::Array(items)) => visitor.visit_seq(Elements(items.iter())),
            Some(other) => Err(Self::invalid(other, &visitor)),
        }
    }
    fn deserialize_tuple<V: Visitor<'de>>(self, _: usize, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_seq(visitor)
    }
    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: usize,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.present() {
            None => visitor.visit_map(Entries::default()),
            Some(Value::Object(object)) => visitor.visit_map(Entries {
                entries: object
                    .iter()
                    .map(|(k, v)| (k.as_str(), Some(v)))
                    .collect::<Vec<_>>()
                    .into_iter(),
                value: None,
            }),
            Some(other) => Err(Self::invalid(other, &visitor)),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        // Every field is handed to the visitor, absent ones as zero values,
        // because the generated CRI types have no `#[serde(default)]`.
        let entries: Vec<(&'de str, Option<&'de Value>)> = match self.present() {
            None => fields.iter().map(|f| (*f, None)).collect(),
            Some(Value::Object(object)) => fields
                .iter()
                .map(|f| (*f, lookup(object, name, f)))
                .collect(),
            Some(other) => return Err(Self::invalid(other, &visitor)),
        };
        visitor.visit_map(Entries {
            entries: entries.into_iter(),
            value: None,
        })
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        match self.present() {
            None => Err(de::Error::custom(format!("missing value for enum {name}"))),
            Some(value) => value.deserialize_enum(name, variants, visitor),
        }
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_str(visitor)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_unit()
    }

    forward_to_deserialize_any! { bytes byte_buf }
}

const NO_ELEMENTS: &[Value] = &[];

struct Elements<'de>(std::slice::Iter<'de, Value>);

impl<'de> de::SeqAccess<'de> for Elements<'de> {
    type Error = Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Error> {
        self.0
            .next()
            .map(|v| seed.deserialize(GoDeserializer(Some(v))))
            .transpose()
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.0.len())
    }
}

#[derive(Default)]
struct Entries<'de> {
    entries: std::vec::IntoIter<(&'de str, Option<&'de Value>)>,
    value: Option<Option<&'de Value>>,
}

impl<'de> de::MapAccess<'de> for Entries<'de> {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        match self.entries.next() {
            None => Ok(None),
            Some((key, value)) => {
                self.value = Some(value);
                let key = de::value::BorrowedStrDeserializer::<'de, Error>::new(key);
                seed.deserialize(key).map(Some)
            }
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        let value = self
            .value
            .take()
            .ok_or_else(|| <Error as de::Error>::custom("map value without a key"))?;
        seed.deserialize(GoDeserializer(value))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::collections::HashMap;

    use cri_api::v1::{ContainerConfig, HugepageLimit, Int64Value, KeyValue, Mount, PortMapping};
    use serde::de::DeserializeOwned;

    use super::*;

    fn check<T: DeserializeOwned + PartialEq + std::fmt::Debug>(json: &str, expected: T) {
        let value: Value = serde_json::from_str(json).unwrap();
        assert_eq!(from_value::<T>(&value).unwrap(), expected, "{json}");
    }

    fn check_err<T: DeserializeOwned + std::fmt::Debug>(json: &str, message: &str) {
        let value: Value = serde_json::from_str(json).unwrap();
        let err = from_value::<T>(&value).unwrap_err();
        assert!(err.to_string().contains(message), "{json}: {err}");
    }

    #[test]
    fn missing_fields_are_zero() {
        check("{}", KeyValue::default());
        check("{}", ContainerConfig::default());
        check(
            r#"{"key":"A"}"#,
            KeyValue {
                key: "A".into(),
                value: String::new(),
            },
        );
    }

    #[test]
    fn null_is_zero() {
        check(
            r#"{"metadata":null,"command":null,"labels":null,"working_dir":null,"tty":null}"#,
            ContainerConfig::default(),
        );
        check("null", KeyValue::default());
        check("null", None::<KeyValue>);
    }

    #[test]
    fn empty_object_is_present_message() {
        check(r#"{"value":0}"#, Some(Int64Value { value: 0 }));
        check("{}", Some(Int64Value { value: 0 }));
    }

    #[test]
    fn keys_match_case_insensitively() {
        check(
            r#"{"KEY":"a","Value":"b"}"#,
            KeyValue {
                key: "a".into(),
                value: "b".into(),
            },
        );
        check(
            r#"{"container_PATH":"/x"}"#,
            Mount {
                container_path: "/x".into(),
                ..Default::default()
            },
        );
        // Kelvin sign folds to k, as in Go's EqualFold.
        check(
            "{\"\u{212a}ey\":\"a\"}",
            KeyValue {
                key: "a".into(),
                value: String::new(),
            },
        );
    }

    #[test]
    fn exact_match_preferred() {
        check(
            r#"{"Key":"folded","key":"exact"}"#,
            KeyValue {
                key: "exact".into(),
                value: String::new(),
            },
        );
    }

    #[test]
    fn renamed_fields_by_go_and_rust_name() {
        let with_cdi = |name: &str| ContainerConfig {
            cdi_devices: vec![cri_api::v1::CdiDevice { name: name.into() }],
            ..Default::default()
        };
        check(r#"{"CDI_devices":[{"name":"a"}]}"#, with_cdi("a"));
        check(r#"{"cdi_devices":[{"name":"b"}]}"#, with_cdi("b"));
        check(
            r#"{"uidMappings":[{"length":1}]}"#,
            Mount {
                uid_mappings: vec![cri_api::v1::IdMapping {
                    length: 1,
                    ..Default::default()
                }],
                ..Default::default()
            },
        );
    }

    #[test]
    fn unknown_keys_ignored() {
        check(
            r#"{"key":"a","value":"b","stop_signal":15,"XXX":{"deep":[1]}}"#,
            KeyValue {
                key: "a".into(),
                value: "b".into(),
            },
        );
    }

    #[test]
    fn maps_keep_their_keys() {
        let labels: HashMap<String, String> = [
            ("Key".to_owned(), "v".to_owned()),
            ("e".to_owned(), String::new()),
        ]
        .into();
        check(
            r#"{"labels":{"Key":"v","e":null}}"#,
            ContainerConfig {
                labels,
                ..Default::default()
            },
        );
    }

    #[test]
    fn numbers_and_enums() {
        check(
            r#"{"protocol":2,"container_port":80,"host_port":-1}"#,
            PortMapping {
                protocol: 2,
                container_port: 80,
                host_port: -1,
                host_ip: String::new(),
            },
        );
        check(
            r#"{"page_size":"1GB","limit":18446744073709551615}"#,
            HugepageLimit {
                page_size: "1GB".into(),
                limit: u64::MAX,
            },
        );
    }

    #[test]
    fn wrong_types_fail() {
        check_err::<KeyValue>(r#"{"key":1}"#, "invalid type");
        check_err::<PortMapping>(r#"{"container_port":"80"}"#, "invalid type");
        check_err::<PortMapping>(r#"{"container_port":1.5}"#, "non-integer");
        check_err::<PortMapping>(r#"{"container_port":4294967296}"#, "invalid value");
        check_err::<ContainerConfig>(r#"{"command":"sh"}"#, "invalid type");
        check_err::<ContainerConfig>("[]", "invalid type");
    }

    #[test]
    fn free_form_value_passes_through() {
        check(
            r#"{"a":[1,{"b":null}]}"#,
            Some(serde_json::json!({"a":[1,{"b":null}]})),
        );
    }
}
