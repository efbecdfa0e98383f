//! JSON to protobuf wire format and back, driven by the descriptors of our own protos
//! (`src/pb/descriptor.bin`, written by `tests/codegen.rs`), with the mapping etcd's gateway
//! uses (protojson with proto field names): int64 and uint64 as strings, bytes as standard
//! base64, enums as names, fields at their default left out (prost never writes them, so
//! rendering what is on the wire leaves them out too).
//!
//! Working on the wire format rather than on the generated types keeps one small piece of code
//! for every message of every service, and the generated code untouched.

use std::collections::HashMap;
use std::sync::OnceLock;

use base64::Engine as _;
use prost_types::field_descriptor_proto::{Label, Type};
use prost_types::{DescriptorProto, EnumDescriptorProto, FieldDescriptorProto, FileDescriptorSet};
use serde_json::Value;

static DESCRIPTOR: &[u8] = include_bytes!("../../pb/descriptor.bin");

/// One RPC as the descriptors describe it.
#[derive(Debug)]
pub(crate) struct Method {
    /// Full name of the request message, with a leading dot.
    pub(crate) input: String,
    /// Full name of the response message, with a leading dot.
    pub(crate) output: String,
    /// Whether the client sends a stream.
    pub(crate) client_streaming: bool,
    /// Whether the server answers with a stream.
    pub(crate) server_streaming: bool,
}

/// Every message, enum and method of our protos, by full name.
#[derive(Debug, Default)]
pub(crate) struct Schema {
    messages: HashMap<String, DescriptorProto>,
    enums: HashMap<String, EnumDescriptorProto>,
    /// By gRPC path, `/package.Service/Method`.
    methods: HashMap<String, Method>,
}

impl Schema {
    /// The schema of the checked-in descriptor set, read once.
    pub(crate) fn get() -> &'static Schema {
        static SCHEMA: OnceLock<Schema> = OnceLock::new();
        // The descriptor set is ours and checked by a test; should it not decode, every
        // gateway call answers "unknown message" rather than the server failing.
        SCHEMA.get_or_init(|| {
            prost::Message::decode(DESCRIPTOR)
                .map(|set| Schema::new(&set))
                .unwrap_or_default()
        })
    }

    fn new(set: &FileDescriptorSet) -> Schema {
        let mut schema = Schema::default();
        for file in &set.file {
            let prefix = format!(".{}", file.package());
            for message in &file.message_type {
                schema.add_message(&prefix, message);
            }
            for e in &file.enum_type {
                schema
                    .enums
                    .insert(format!("{prefix}.{}", e.name()), e.clone());
            }
            for service in &file.service {
                for method in &service.method {
                    let path = format!("/{}.{}/{}", file.package(), service.name(), method.name());
                    schema.methods.insert(
                        path,
                        Method {
                            input: method.input_type().to_owned(),
                            output: method.output_type().to_owned(),
                            client_streaming: method.client_streaming(),
                            server_streaming: method.server_streaming(),
                        },
                    );
                }
            }
        }
        schema
    }

    fn add_message(&mut self, prefix: &str, message: &DescriptorProto) {
        let name = format!("{prefix}.{}", message.name());
        for nested in &message.nested_type {
            self.add_message(&name, nested);
        }
        for e in &message.enum_type {
            self.enums.insert(format!("{name}.{}", e.name()), e.clone());
        }
        self.messages.insert(name, message.clone());
    }

    /// The method at gRPC path `path`.
    pub(crate) fn method(&self, path: &str) -> Option<&Method> {
        self.methods.get(path)
    }

    /// Every method's gRPC path, in order, for the fuzzer to pick from.
    #[cfg(feature = "__fuzz")]
    pub(crate) fn method_paths(&self) -> Vec<&str> {
        let mut paths: Vec<&str> = self.methods.keys().map(String::as_str).collect();
        paths.sort_unstable();
        paths
    }

    fn message(&self, name: &str) -> Result<&DescriptorProto, String> {
        self.messages
            .get(name)
            .ok_or_else(|| format!("unknown message {name}"))
    }

    /// The wire encoding of the message `type_name` that `json` describes.
    pub(crate) fn encode(&self, type_name: &str, json: &Value) -> Result<Vec<u8>, String> {
        let mut out = Vec::new();
        self.encode_message(self.message(type_name)?, json, &mut out)?;
        Ok(out)
    }

    fn encode_message(
        &self,
        message: &DescriptorProto,
        json: &Value,
        out: &mut Vec<u8>,
    ) -> Result<(), String> {
        let object = match json {
            Value::Null => return Ok(()),
            Value::Object(object) => object,
            other => {
                return Err(format!(
                    "proto: syntax error: unexpected token {other}, want object for {}",
                    message.name()
                ))
            }
        };
        for (key, value) in object {
            // Proto names and lowerCamel names are both accepted; unknown fields are ignored.
            let Some(field) = message
                .field
                .iter()
                .find(|f| f.name() == key || f.json_name() == key || lower_camel(f.name()) == *key)
            else {
                continue;
            };
            if value.is_null() {
                continue;
            }
            if field.label() == Label::Repeated {
                let Value::Array(items) = value else {
                    return Err(invalid(field, value));
                };
                for item in items {
                    self.encode_field(field, item, out)?;
                }
            } else {
                self.encode_field(field, value, out)?;
            }
        }
        Ok(())
    }

    fn encode_field(
        &self,
        field: &FieldDescriptorProto,
        value: &Value,
        out: &mut Vec<u8>,
    ) -> Result<(), String> {
        let number = u64::from(field.number().unsigned_abs());
        let varint = |out: &mut Vec<u8>, v: u64| {
            put_varint(out, number << 3);
            put_varint(out, v);
        };
        match field.r#type() {
            Type::Int64 | Type::Int32 => varint(out, signed(field, value)? as u64),
            Type::Sint64 | Type::Sint32 => {
                let v = signed(field, value)?;
                varint(out, ((v << 1) ^ (v >> 63)) as u64)
            }
            Type::Uint64 | Type::Uint32 => varint(out, unsigned(field, value)?),
            Type::Bool => match value {
                Value::Bool(b) => varint(out, u64::from(*b)),
                other => return Err(invalid(field, other)),
            },
            Type::Enum => {
                let number = match value {
                    Value::String(name) => {
                        let values = self.enums.get(field.type_name()).map(|e| &e.value);
                        // An unknown name is dropped, leaving the field at its default, as
                        // etcd's gateway does.
                        match values.and_then(|v| v.iter().find(|v| v.name() == name)) {
                            Some(v) => v.number(),
                            None => return Ok(()),
                        }
                    }
                    other => {
                        i32::try_from(signed(field, other)?).map_err(|_| invalid(field, other))?
                    }
                };
                varint(out, i64::from(number) as u64)
            }
            Type::String => match value {
                Value::String(s) => put_bytes(out, number, s.as_bytes()),
                other => return Err(invalid(field, other)),
            },
            Type::Bytes => match value {
                Value::String(s) => {
                    let bytes = decode_base64(s).ok_or_else(|| invalid(field, value))?;
                    put_bytes(out, number, &bytes)
                }
                other => return Err(invalid(field, other)),
            },
            Type::Message => {
                let mut inner = Vec::new();
                self.encode_message(self.message(field.type_name())?, value, &mut inner)?;
                put_bytes(out, number, &inner)
            }
            // Our protos have no floating-point or fixed-width fields.
            _ => return Err(invalid(field, value)),
        }
        Ok(())
    }

    /// The JSON of the message `type_name` encoded in `bytes`.
    pub(crate) fn render(&self, type_name: &str, bytes: &[u8]) -> Result<String, String> {
        let mut out = String::new();
        self.render_message(self.message(type_name)?, bytes, &mut out)?;
        Ok(out)
    }

    fn render_message(
        &self,
        message: &DescriptorProto,
        mut bytes: &[u8],
        out: &mut String,
    ) -> Result<(), String> {
        // Values by field, so repeated fields come out together and in declaration order.
        let mut slots: Vec<Vec<String>> = vec![Vec::new(); message.field.len()];
        while !bytes.is_empty() {
            let key = get_varint(&mut bytes)?;
            let number = key >> 3;
            let index = message
                .field
                .iter()
                .position(|f| u64::from(f.number().unsigned_abs()) == number);
            match key & 7 {
                0 => {
                    let v = get_varint(&mut bytes)?;
                    if let Some(i) = index {
                        slots[i].push(self.render_varint(&message.field[i], v));
                    }
                }
                1 => {
                    take(&mut bytes, 8)?;
                }
                5 => {
                    take(&mut bytes, 4)?;
                }
                2 => {
                    let len = usize::try_from(get_varint(&mut bytes)?).map_err(|_| truncated())?;
                    let mut data = take(&mut bytes, len)?;
                    let Some(i) = index else { continue };
                    let field = &message.field[i];
                    match field.r#type() {
                        Type::String => slots[i].push(json_string(&String::from_utf8_lossy(data))),
                        Type::Bytes => slots[i].push(json_string(
                            &base64::engine::general_purpose::STANDARD.encode(data),
                        )),
                        Type::Message => {
                            let mut inner = String::new();
                            self.render_message(
                                self.message(field.type_name())?,
                                data,
                                &mut inner,
                            )?;
                            slots[i].push(inner);
                        }
                        // A packed repeated scalar.
                        _ => {
                            while !data.is_empty() {
                                let v = get_varint(&mut data)?;
                                slots[i].push(self.render_varint(field, v));
                            }
                        }
                    }
                }
                _ => return Err("proto: cannot parse invalid wire-format data".to_owned()),
            }
        }
        out.push('{');
        let mut first = true;
        for (field, values) in message.field.iter().zip(slots) {
            let Some(last) = values.last() else { continue };
            if !first {
                out.push(',');
            }
            first = false;
            out.push_str(&json_string(field.name()));
            out.push(':');
            if field.label() == Label::Repeated {
                out.push('[');
                out.push_str(&values.join(","));
                out.push(']');
            } else {
                // For a singular field the last value on the wire wins.
                out.push_str(last);
            }
        }
        out.push('}');
        Ok(())
    }

    fn render_varint(&self, field: &FieldDescriptorProto, v: u64) -> String {
        match field.r#type() {
            Type::Int64 => format!("\"{}\"", v as i64),
            Type::Uint64 => format!("\"{v}\""),
            Type::Sint64 => format!("\"{}\"", ((v >> 1) as i64) ^ -((v & 1) as i64)),
            Type::Int32 => (v as i32).to_string(),
            Type::Sint32 => (((v >> 1) as i64) ^ -((v & 1) as i64)).to_string(),
            Type::Uint32 => (v as u32).to_string(),
            Type::Bool => (v != 0).to_string(),
            Type::Enum => {
                let number = v as i32;
                self.enums
                    .get(field.type_name())
                    .and_then(|e| e.value.iter().find(|value| value.number() == number))
                    .map(|value| json_string(value.name()))
                    // A number the proto does not name goes out as a number, as protojson does.
                    .unwrap_or_else(|| number.to_string())
            }
            _ => v.to_string(),
        }
    }
}

/// protoc's JSON name: `range_end` → `rangeEnd`.
fn lower_camel(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut upper = false;
    for c in name.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

fn invalid(field: &FieldDescriptorProto, value: &Value) -> String {
    let kind = format!("{:?}", field.r#type()).to_lowercase();
    format!(
        "proto: invalid value for {kind} field {}: {value}",
        field.json_name()
    )
}

/// An integer given as a JSON number or a string, as protojson takes it.
fn signed(field: &FieldDescriptorProto, value: &Value) -> Result<i64, String> {
    let parsed = match value {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    };
    let v = parsed.ok_or_else(|| invalid(field, value))?;
    let fits = !matches!(field.r#type(), Type::Int32 | Type::Sint32) || i32::try_from(v).is_ok();
    fits.then_some(v).ok_or_else(|| invalid(field, value))
}

fn unsigned(field: &FieldDescriptorProto, value: &Value) -> Result<u64, String> {
    let parsed = match value {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    };
    let v = parsed.ok_or_else(|| invalid(field, value))?;
    let fits = field.r#type() != Type::Uint32 || u32::try_from(v).is_ok();
    fits.then_some(v).ok_or_else(|| invalid(field, value))
}

/// Standard or URL-safe base64, padded or not, as protojson takes it (Go's decoder also lets
/// unused trailing bits be set).
fn decode_base64(s: &str) -> Option<Vec<u8>> {
    use base64::alphabet::{STANDARD, URL_SAFE};
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
    let config = GeneralPurposeConfig::new()
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent);
    let alphabet = if s.contains(['-', '_']) {
        &URL_SAFE
    } else {
        &STANDARD
    };
    GeneralPurpose::new(alphabet, config).decode(s).ok()
}

pub(crate) fn json_string(s: &str) -> String {
    // Serializing a string cannot fail.
    serde_json::to_string(s).unwrap_or_default()
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_bytes(out: &mut Vec<u8>, number: u64, bytes: &[u8]) {
    put_varint(out, (number << 3) | 2);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

fn truncated() -> String {
    "proto: cannot parse invalid wire-format data".to_owned()
}

fn get_varint(bytes: &mut &[u8]) -> Result<u64, String> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let (&b, rest) = bytes.split_first().ok_or_else(truncated)?;
        *bytes = rest;
        v |= u64::from(b & 0x7f) << shift;
        if b < 0x80 {
            return Ok(v);
        }
    }
    Err(truncated())
}

fn take<'a>(bytes: &mut &'a [u8], len: usize) -> Result<&'a [u8], String> {
    if bytes.len() < len {
        return Err(truncated());
    }
    let (head, rest) = bytes.split_at(len);
    *bytes = rest;
    Ok(head)
}
