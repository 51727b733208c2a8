//! Go `encoding/json` output, byte for byte: struct fields in declaration
//! order, map keys sorted, Go's string escaping; and the generated CRI Go
//! structs' tags (`json:"<proto name>,omitempty"`) for CRI messages.

use std::borrow::Cow;

use serde::ser::{self, Impossible, Serialize};
use serde_json::{Error, Value};

/// A value as Go's encoder sees it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum GoValue {
    /// A nil pointer, slice or map.
    Null,
    Bool(bool),
    Int(i64),
    Uint(u64),
    /// Only from free-form JSON (`CNIResult`); the CRI messages have none.
    Float(f64),
    String(String),
    Array(Vec<GoValue>),
    /// A Go map: written with its keys sorted.
    Map(Vec<(String, GoValue)>),
    /// A Go struct: written in field order.
    Struct(Vec<(Cow<'static, str>, GoValue)>),
}

impl GoValue {
    /// `json.Marshal` output.
    pub(crate) fn to_json(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(256);
        self.write(&mut out);
        out
    }

    /// Free-form JSON (objects as maps), as Go writes a decoded
    /// `interface{}`.
    pub(crate) fn from_json(value: &Value) -> GoValue {
        match value {
            Value::Null => GoValue::Null,
            Value::Bool(b) => GoValue::Bool(*b),
            Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
                (Some(i), _, _) => GoValue::Int(i),
                (None, Some(u), _) => GoValue::Uint(u),
                (None, None, f) => GoValue::Float(f.unwrap_or_default()),
            },
            Value::String(s) => GoValue::String(s.clone()),
            Value::Array(items) => GoValue::Array(items.iter().map(GoValue::from_json).collect()),
            Value::Object(entries) => GoValue::Map(
                entries
                    .iter()
                    .map(|(k, v)| (k.clone(), GoValue::from_json(v)))
                    .collect(),
            ),
        }
    }

    /// Whether a field tagged `omitempty` is dropped: false, 0, "", and nil
    /// or empty slices and maps. A struct (a non-nil message pointer) never.
    fn is_empty(&self) -> bool {
        match self {
            GoValue::Null => true,
            GoValue::Bool(b) => !b,
            GoValue::Int(i) => *i == 0,
            GoValue::Uint(u) => *u == 0,
            GoValue::Float(f) => *f == 0.0,
            GoValue::String(s) => s.is_empty(),
            GoValue::Array(items) => items.is_empty(),
            GoValue::Map(entries) => entries.is_empty(),
            GoValue::Struct(_) => false,
        }
    }

    fn write(&self, out: &mut Vec<u8>) {
        match self {
            GoValue::Null => out.extend_from_slice(b"null"),
            GoValue::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
            GoValue::Int(i) => out.extend_from_slice(i.to_string().as_bytes()),
            GoValue::Uint(u) => out.extend_from_slice(u.to_string().as_bytes()),
            GoValue::Float(f) => {
                let text = serde_json::Number::from_f64(*f)
                    .map_or_else(|| "null".to_owned(), |n| n.to_string());
                out.extend_from_slice(text.as_bytes());
            }
            GoValue::String(s) => write_string(s, out),
            GoValue::Array(items) => {
                out.push(b'[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    item.write(out);
                }
                out.push(b']');
            }
            GoValue::Map(entries) => {
                let mut sorted: Vec<&(String, GoValue)> = entries.iter().collect();
                sorted.sort_by(|a, b| a.0.cmp(&b.0));
                write_object(sorted.into_iter().map(|(k, v)| (k.as_str(), v)), out);
            }
            GoValue::Struct(fields) => {
                write_object(fields.iter().map(|(k, v)| (k.as_ref(), v)), out)
            }
        }
    }
}

impl From<&str> for GoValue {
    fn from(s: &str) -> Self {
        GoValue::String(s.to_owned())
    }
}

fn write_object<'a>(entries: impl Iterator<Item = (&'a str, &'a GoValue)>, out: &mut Vec<u8>) {
    out.push(b'{');
    for (i, (key, value)) in entries.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_string(key, out);
        out.push(b':');
        value.write(out);
    }
    out.push(b'}');
}

/// Go's `appendString` with HTML escaping on (the `json.Marshal` default):
/// short escapes for `"`, `\`, `\b`, `\f`, `\n`, `\r`, `\t` (Go >= 1.22),
/// `\u00XX` for other control characters and for `<`, `>`, `&`, and
/// `\u2028`/`\u2029`. Everything else is written as UTF-8.
pub(crate) fn write_string(s: &str, out: &mut Vec<u8>) {
    out.push(b'"');
    for c in s.chars() {
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '\u{8}' => out.extend_from_slice(b"\\b"),
            '\u{c}' => out.extend_from_slice(b"\\f"),
            '\n' => out.extend_from_slice(b"\\n"),
            '\r' => out.extend_from_slice(b"\\r"),
            '\t' => out.extend_from_slice(b"\\t"),
            '\u{0}'..='\u{1f}' | '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                out.extend_from_slice(format!("\\u{:04x}", u32::from(c)).as_bytes());
            }
            c => {
                let mut buf = [0; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
    out.push(b'"');
}

/// The json name of a field of a generated CRI Go struct: the proto field
/// name, which prost turned into the Rust name. These are the only proto
/// fields of `runtime.v1` that are not snake_case.
pub(crate) fn cri_field_name(type_name: &str, field: &'static str) -> &'static str {
    match (type_name, field) {
        ("Mount", "uid_mappings") => "uidMappings",
        ("Mount", "gid_mappings") => "gidMappings",
        ("ContainerConfig", "cdi_devices") => "CDI_devices",
        _ => field,
    }
}

/// A CRI message (or `Option` of one) as Go's `encoding/json` writes the
/// generated struct: every field `omitempty`, enums and 64-bit integers as
/// numbers, nested messages as `{}` even when all their fields are empty.
pub(crate) fn cri_value<T: Serialize>(message: &T) -> Result<GoValue, Error> {
    message.serialize(CriSerializer)
}

fn unsupported(what: &str) -> Error {
    ser::Error::custom(format!(
        "{what} is not used by CRI messages and is not supported"
    ))
}

struct CriSerializer;

impl ser::Serializer for CriSerializer {
    type Ok = GoValue;
    type Error = Error;
    type SerializeSeq = SeqSerializer;
    type SerializeTuple = SeqSerializer;
    type SerializeTupleStruct = SeqSerializer;
    type SerializeTupleVariant = Impossible<GoValue, Error>;
    type SerializeMap = MapSerializer;
    type SerializeStruct = StructSerializer;
    type SerializeStructVariant = Impossible<GoValue, Error>;

    fn serialize_bool(self, v: bool) -> Result<GoValue, Error> {
        Ok(GoValue::Bool(v))
    }
    fn serialize_i8(self, v: i8) -> Result<GoValue, Error> {
        Ok(GoValue::Int(v.into()))
    }
    fn serialize_i16(self, v: i16) -> Result<GoValue, Error> {
        Ok(GoValue::Int(v.into()))
    }
    fn serialize_i32(self, v: i32) -> Result<GoValue, Error> {
        Ok(GoValue::Int(v.into()))
    }
    fn serialize_i64(self, v: i64) -> Result<GoValue, Error> {
        Ok(GoValue::Int(v))
    }
    fn serialize_u8(self, v: u8) -> Result<GoValue, Error> {
        Ok(GoValue::Uint(v.into()))
    }
    fn serialize_u16(self, v: u16) -> Result<GoValue, Error> {
        Ok(GoValue::Uint(v.into()))
    }
    fn serialize_u32(self, v: u32) -> Result<GoValue, Error> {
        Ok(GoValue::Uint(v.into()))
    }
    fn serialize_u64(self, v: u64) -> Result<GoValue, Error> {
        Ok(GoValue::Uint(v))
    }
    fn serialize_f32(self, _: f32) -> Result<GoValue, Error> {
        Err(unsupported("a float"))
    }
    fn serialize_f64(self, _: f64) -> Result<GoValue, Error> {
        Err(unsupported("a float"))
    }
    fn serialize_char(self, v: char) -> Result<GoValue, Error> {
        Ok(GoValue::String(v.to_string()))
    }
    fn serialize_str(self, v: &str) -> Result<GoValue, Error> {
        Ok(GoValue::from(v))
    }
    fn serialize_bytes(self, _: &[u8]) -> Result<GoValue, Error> {
        Err(unsupported("a bytes field"))
    }
    fn serialize_none(self) -> Result<GoValue, Error> {
        Ok(GoValue::Null)
    }
    fn serialize_some<T: ?Sized + Serialize>(self, value: &T) -> Result<GoValue, Error> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<GoValue, Error> {
        Ok(GoValue::Null)
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<GoValue, Error> {
        Ok(GoValue::Null)
    }
    fn serialize_unit_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
    ) -> Result<GoValue, Error> {
        Err(unsupported("a Rust enum"))
    }
    fn serialize_newtype_struct<T: ?Sized + Serialize>(
        self,
        _: &'static str,
        value: &T,
    ) -> Result<GoValue, Error> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: ?Sized + Serialize>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<GoValue, Error> {
        Err(unsupported("a oneof"))
    }
    fn serialize_seq(self, len: Option<usize>) -> Result<SeqSerializer, Error> {
        Ok(SeqSerializer(Vec::with_capacity(len.unwrap_or(0))))
    }
    fn serialize_tuple(self, len: usize) -> Result<SeqSerializer, Error> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_struct(self, _: &'static str, len: usize) -> Result<SeqSerializer, Error> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Impossible<GoValue, Error>, Error> {
        Err(unsupported("a oneof"))
    }
    fn serialize_map(self, len: Option<usize>) -> Result<MapSerializer, Error> {
        Ok(MapSerializer {
            entries: Vec::with_capacity(len.unwrap_or(0)),
            key: None,
        })
    }
    fn serialize_struct(self, name: &'static str, len: usize) -> Result<StructSerializer, Error> {
        Ok(StructSerializer {
            name,
            fields: Vec::with_capacity(len),
        })
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Impossible<GoValue, Error>, Error> {
        Err(unsupported("a oneof"))
    }
}

struct SeqSerializer(Vec<GoValue>);

impl ser::SerializeSeq for SeqSerializer {
    type Ok = GoValue;
    type Error = Error;
    fn serialize_element<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), Error> {
        self.0.push(value.serialize(CriSerializer)?);
        Ok(())
    }
    fn end(self) -> Result<GoValue, Error> {
        Ok(GoValue::Array(self.0))
    }
}

impl ser::SerializeTuple for SeqSerializer {
    type Ok = GoValue;
    type Error = Error;
    fn serialize_element<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), Error> {
        ser::SerializeSeq::serialize_element(self, value)
    }
    fn end(self) -> Result<GoValue, Error> {
        ser::SerializeSeq::end(self)
    }
}

impl ser::SerializeTupleStruct for SeqSerializer {
    type Ok = GoValue;
    type Error = Error;
    fn serialize_field<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), Error> {
        ser::SerializeSeq::serialize_element(self, value)
    }
    fn end(self) -> Result<GoValue, Error> {
        ser::SerializeSeq::end(self)
    }
}

struct MapSerializer {
    entries: Vec<(String, GoValue)>,
    key: Option<String>,
}

impl ser::SerializeMap for MapSerializer {
    type Ok = GoValue;
    type Error = Error;
    fn serialize_key<T: ?Sized + Serialize>(&mut self, key: &T) -> Result<(), Error> {
        match key.serialize(CriSerializer)? {
            GoValue::String(key) => {
                self.key = Some(key);
                Ok(())
            }
            _ => Err(unsupported("a map key that is not a string")),
        }
    }
    fn serialize_value<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), Error> {
        let key = self
            .key
            .take()
            .ok_or_else(|| <Error as ser::Error>::custom("map value without a key"))?;
        self.entries.push((key, value.serialize(CriSerializer)?));
        Ok(())
    }
    fn end(self) -> Result<GoValue, Error> {
        Ok(GoValue::Map(self.entries))
    }
}

struct StructSerializer {
    name: &'static str,
    fields: Vec<(Cow<'static, str>, GoValue)>,
}

impl ser::SerializeStruct for StructSerializer {
    type Ok = GoValue;
    type Error = Error;
    fn serialize_field<T: ?Sized + Serialize>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        let value = value.serialize(CriSerializer)?;
        if !value.is_empty() {
            self.fields
                .push((Cow::Borrowed(cri_field_name(self.name, key)), value));
        }
        Ok(())
    }
    fn end(self) -> Result<GoValue, Error> {
        Ok(GoValue::Struct(self.fields))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::collections::HashMap;

    use cri_api::v1::{
        CdiDevice, ContainerConfig, IdMapping, Int64Value, KeyValue, LinuxContainerConfig,
        LinuxContainerSecurityContext, Mount, NamespaceOption, SeLinuxOption,
    };

    use super::*;

    /// `json.Marshal(message)` of the generated CRI Go struct.
    fn check<T: Serialize>(message: &T, expected: &str) {
        let json = cri_value(message).unwrap().to_json();
        assert_eq!(String::from_utf8(json).unwrap(), expected);
    }

    fn check_string(s: &str, expected: &str) {
        let mut out = Vec::new();
        write_string(s, &mut out);
        assert_eq!(String::from_utf8(out).unwrap(), expected);
    }

    #[test]
    fn empty_message_is_braces() {
        // A non-nil pointer to a message with only zero fields: `{}`.
        check(&ContainerConfig::default(), "{}");
        check(&Some(Int64Value { value: 0 }), "{}");
    }

    #[test]
    fn none_is_null() {
        check(&None::<ContainerConfig>, "null");
    }

    #[test]
    fn zero_fields_are_omitted() {
        // omitempty: 0, "", false, nil/empty slices and maps are dropped.
        let kv = KeyValue {
            key: "A".into(),
            value: String::new(),
        };
        check(&kv, r#"{"key":"A"}"#);
        check(&Int64Value { value: 1000 }, r#"{"value":1000}"#);
    }

    #[test]
    fn present_message_with_zero_field_is_braces() {
        // `&Int64Value{Value: 0}`: the pointer is non-nil, `value` is omitempty.
        let ctx = LinuxContainerSecurityContext {
            run_as_user: Some(Int64Value { value: 0 }),
            namespace_options: Some(NamespaceOption {
                pid: 1,
                ..Default::default()
            }),
            ..Default::default()
        };
        check(&ctx, r#"{"namespace_options":{"pid":1},"run_as_user":{}}"#);
    }

    #[test]
    fn renamed_fields() {
        // json tags that are not the snake_case Rust name: `uidMappings`,
        // `gidMappings` (Mount) and `CDI_devices` (ContainerConfig).
        let mapping = IdMapping {
            host_id: 1000,
            container_id: 0,
            length: 1,
        };
        let mount = Mount {
            container_path: "/data".into(),
            uid_mappings: vec![mapping],
            gid_mappings: vec![mapping],
            ..Default::default()
        };
        check(
            &mount,
            r#"{"container_path":"/data","uidMappings":[{"host_id":1000,"length":1}],"gidMappings":[{"host_id":1000,"length":1}]}"#,
        );
        let config = ContainerConfig {
            cdi_devices: vec![CdiDevice {
                name: "vendor.com/gpu=0".into(),
            }],
            ..Default::default()
        };
        check(&config, r#"{"CDI_devices":[{"name":"vendor.com/gpu=0"}]}"#);
    }

    #[test]
    fn raw_identifier_field() {
        // SELinuxOption.type: the Rust field is `r#type`.
        let opt = SeLinuxOption {
            r#type: "spc_t".into(),
            level: "s0".into(),
            ..Default::default()
        };
        check(&opt, r#"{"type":"spc_t","level":"s0"}"#);
    }

    #[test]
    fn maps_sorted_by_key_bytes() {
        // Go sorts map keys; byte order puts upper case before lower case.
        let labels: HashMap<String, String> = [("b", "2"), ("a", "1"), ("B", "3"), ("a.b/c", "4")]
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        let config = ContainerConfig {
            labels,
            ..Default::default()
        };
        check(
            &config,
            r#"{"labels":{"B":"3","a":"1","a.b/c":"4","b":"2"}}"#,
        );
    }

    #[test]
    fn empty_map_is_omitted_but_empty_value_is_kept() {
        let annotations: HashMap<String, String> = [("k".to_owned(), String::new())].into();
        let config = ContainerConfig {
            annotations,
            ..Default::default()
        };
        check(&config, r#"{"annotations":{"k":""}}"#);
        check(
            &ContainerConfig {
                labels: HashMap::new(),
                ..Default::default()
            },
            "{}",
        );
    }

    #[test]
    fn nested_empty_messages() {
        let config = ContainerConfig {
            linux: Some(LinuxContainerConfig {
                resources: None,
                security_context: Some(Default::default()),
            }),
            ..Default::default()
        };
        check(&config, r#"{"linux":{"security_context":{}}}"#);
    }

    #[test]
    fn negative_and_large_numbers() {
        check(&Int64Value { value: -998 }, r#"{"value":-998}"#);
        check(
            &Int64Value { value: i64::MAX },
            r#"{"value":9223372036854775807}"#,
        );
    }

    #[test]
    fn go_string_escapes() {
        check_string("plain", r#""plain""#);
        check_string(r#"a"b\c"#, r#""a\"b\\c""#);
        check_string("<a>&", r#""\u003ca\u003e\u0026""#);
        check_string("\n\r\t\u{8}\u{c}", r#""\n\r\t\b\f""#);
        check_string("\u{0}\u{1b}\u{1f}", r#""\u0000\u001b\u001f""#);
        check_string("\u{2028}\u{2029}", r#""\u2028\u2029""#);
        // DEL, non-ASCII and astral characters are written as is.
        check_string("\u{7f}é日😀", "\"\u{7f}é日😀\"");
        check_string("/", r#""/""#);
    }

    #[test]
    fn free_form_json_maps_sorted() {
        let value: Value = serde_json::from_str(
            r#"{"b":[1,-2,3.5,null,true],"a":{"z":"<","y":18446744073709551615}}"#,
        )
        .unwrap();
        let json = GoValue::from_json(&value).to_json();
        assert_eq!(
            String::from_utf8(json).unwrap(),
            r#"{"a":{"y":18446744073709551615,"z":"\u003c"},"b":[1,-2,3.5,null,true]}"#
        );
    }
}
