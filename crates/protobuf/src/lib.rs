//! Kubernetes' protobuf wire format for objects held as JSON values.
//!
//! kube-apiserver and every client-go program (kubectl 1.32+ among them) exchange built-in
//! kinds as `application/vnd.kubernetes.protobuf`: the magic `k8s\0`, then a
//! `runtime.Unknown` message whose `typeMeta` names the kind and whose `raw` holds the
//! object's own message. Podium keeps objects as JSON, so this crate transcodes between
//! the two with a schema table generated from the upstream types ([`schema`], made by
//! `gen/generate.py`), applying the JSON forms of the types that define their own
//! (`Time`, `Quantity`, `IntOrString`, `RawExtension`, ...).
//!
//! * [`decode`]: a protobuf body → the JSON object (with `apiVersion` and `kind`).
//! * [`encode`]: a JSON object → a protobuf body.
//! * [`encode_watch_event`]: one frame of a `;stream=watch` response.

mod schema;
mod schema_types;
mod time;
pub mod wire;

use base64::Engine;
use serde_json::{Map, Number, Value};

use schema::{KINDS, MESSAGES};
use schema_types::{Field, Message, Special, Ty};
use wire::{Raw, Reader};

/// The four bytes every protobuf-encoded object starts with.
pub const MAGIC: &[u8] = b"k8s\x00";

/// The media type, as in `Content-Type` and `Accept`.
pub const MEDIA_TYPE: &str = "application/vnd.kubernetes.protobuf";

/// Nested messages deeper than this are refused (a hostile body must not exhaust the stack).
const MAX_DEPTH: usize = 100;

/// Why a body could not be transcoded; the message says what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Error(String);

impl Error {
    pub fn new(message: impl Into<String>) -> Self {
        Error(message.into())
    }
}

/// The metav1 kinds every group-version serves (`Status`, `DeleteOptions`, ...).
const META_KINDS: &[&str] = &[
    "APIGroup",
    "APIGroupList",
    "APIResourceList",
    "APIVersions",
    "CreateOptions",
    "DeleteOptions",
    "GetOptions",
    "ListOptions",
    "PatchOptions",
    "Status",
    "UpdateOptions",
    "WatchEvent",
];

fn message_index(name: &str) -> Option<u16> {
    MESSAGES
        .binary_search_by(|m| m.name.cmp(name))
        .ok()
        .map(|i| i as u16)
}

/// The message of a kind, if it has one (custom resources do not).
fn kind_message(api_version: &str, kind: &str) -> Option<&'static Message> {
    if let Ok(i) = KINDS.binary_search_by(|(v, k, _)| (*v, *k).cmp(&(api_version, kind))) {
        return Some(&MESSAGES[KINDS[i].2 as usize]);
    }
    if META_KINDS.contains(&kind) {
        return message_index(&format!("apimachinery.pkg.apis.meta.v1.{kind}"))
            .map(|i| &MESSAGES[i as usize]);
    }
    None
}

/// Whether objects of this kind can be sent as protobuf.
pub fn supports(api_version: &str, kind: &str) -> bool {
    kind_message(api_version, kind).is_some()
}

/// Decode a protobuf body (magic + `runtime.Unknown`) into the JSON object it carries.
pub fn decode(body: &[u8]) -> Result<Value, Error> {
    decode_at(body, 0)
}

/// `depth` counts the envelopes and messages around this one: a `RawExtension` may hold
/// another envelope, so nesting is bounded across envelopes too.
fn decode_at(body: &[u8], depth: usize) -> Result<Value, Error> {
    let envelope = body.strip_prefix(MAGIC).ok_or_else(|| {
        Error::new("the body does not start with the protobuf magic number k8s\\x00")
    })?;
    let mut api_version = String::new();
    let mut kind = String::new();
    let mut raw: &[u8] = &[];
    let mut content_encoding = String::new();
    let mut reader = Reader::new(envelope);
    while let Some((number, value)) = reader.next_field()? {
        match (number, value) {
            (1, Raw::Len(type_meta)) => {
                let mut tm = Reader::new(type_meta);
                while let Some((n, v)) = tm.next_field()? {
                    match (n, v) {
                        (1, Raw::Len(b)) => api_version = utf8(b, "typeMeta.apiVersion")?,
                        (2, Raw::Len(b)) => kind = utf8(b, "typeMeta.kind")?,
                        _ => {}
                    }
                }
            }
            (2, Raw::Len(b)) => raw = b,
            (3, Raw::Len(b)) => content_encoding = utf8(b, "contentEncoding")?,
            _ => {}
        }
    }
    if !content_encoding.is_empty() {
        return Err(Error::new(format!(
            "content encoding {content_encoding:?} is not supported: send the object uncompressed"
        )));
    }
    if kind.is_empty() {
        return Err(Error::new(
            "the protobuf envelope names no kind: set typeMeta.kind and typeMeta.apiVersion",
        ));
    }
    let message = kind_message(&api_version, &kind).ok_or_else(|| {
        Error::new(format!(
            "no protobuf message is known for kind {kind:?} in version {api_version:?}"
        ))
    })?;
    let mut object = Map::new();
    object.insert("kind".into(), Value::String(kind));
    object.insert("apiVersion".into(), Value::String(api_version));
    decode_fields(message, raw, &mut object, depth + 1)?;
    Ok(Value::Object(object))
}

/// Encode a JSON object (with `apiVersion` and `kind`) as a protobuf body.
pub fn encode(object: &Value) -> Result<Vec<u8>, Error> {
    let mut out = Vec::with_capacity(256);
    encode_into(object, &mut out)?;
    Ok(out)
}

fn encode_into(object: &Value, out: &mut Vec<u8>) -> Result<(), Error> {
    let fields = object
        .as_object()
        .ok_or_else(|| Error::new("only objects can be encoded as protobuf"))?;
    let api_version = fields
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or("");
    let kind = fields.get("kind").and_then(Value::as_str).unwrap_or("");
    let message = kind_message(api_version, kind).ok_or_else(|| {
        Error::new(format!(
            "kind {kind:?} in version {api_version:?} has no protobuf form"
        ))
    })?;
    out.extend_from_slice(MAGIC);
    wire::put_nested(out, 1, |o| {
        wire::put_bytes(o, 1, api_version.as_bytes());
        wire::put_bytes(o, 2, kind.as_bytes());
        Ok(())
    })?;
    wire::put_nested(out, 2, |o| encode_fields(message, fields, o, 0))?;
    // Upstream writes the (empty) contentEncoding and contentType too.
    wire::put_bytes(out, 3, b"");
    wire::put_bytes(out, 4, b"");
    Ok(())
}

/// One frame body of a protobuf watch stream: a bare `metav1.WatchEvent` message (the
/// stream serializer adds no envelope) whose object is a full protobuf body. The caller
/// writes the 4-byte big-endian length before it.
pub fn encode_watch_event(event_type: &str, object: &Value) -> Result<Vec<u8>, Error> {
    let mut inner = Vec::with_capacity(256);
    encode_into(object, &mut inner)?;
    let mut out = Vec::with_capacity(inner.len() + 32);
    wire::put_bytes(&mut out, 1, event_type.as_bytes());
    wire::put_nested(&mut out, 2, |o| {
        wire::put_bytes(o, 1, &inner);
        Ok(())
    })?;
    Ok(out)
}

/// Decode one frame body of a watch stream into (type, object).
pub fn decode_watch_event(frame: &[u8]) -> Result<(String, Value), Error> {
    let mut event_type = String::new();
    let mut object = Value::Null;
    let mut reader = Reader::new(frame);
    while let Some((number, value)) = reader.next_field()? {
        match (number, value) {
            (1, Raw::Len(b)) => event_type = utf8(b, "type")?,
            (2, Raw::Len(b)) => {
                let mut raw_ext = Reader::new(b);
                while let Some((n, v)) = raw_ext.next_field()? {
                    if let (1, Raw::Len(raw)) = (n, v) {
                        object = decode(raw)?;
                    }
                }
            }
            _ => {}
        }
    }
    Ok((event_type, object))
}

fn utf8(bytes: &[u8], what: &str) -> Result<String, Error> {
    String::from_utf8(bytes.to_vec()).map_err(|_| Error::new(format!("{what}: not valid UTF-8")))
}

// ---- decoding ---------------------------------------------------------------------------

fn field_of(message: &Message, number: u32) -> Option<&'static Field> {
    // Fields are sorted by number; `message` is 'static in every caller.
    let fields: &'static [Field] = message.fields;
    fields
        .binary_search_by_key(&number, |f| f.number)
        .ok()
        .map(|i| &fields[i])
}

fn is_zero(value: &Value) -> bool {
    match value {
        Value::String(s) => s.is_empty(),
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        _ => false,
    }
}

fn decode_fields(
    message: &Message,
    data: &[u8],
    out: &mut Map<String, Value>,
    depth: usize,
) -> Result<(), Error> {
    if depth > MAX_DEPTH {
        return Err(Error::new(format!(
            "messages nested deeper than {MAX_DEPTH} levels"
        )));
    }
    let mut reader = Reader::new(data);
    while let Some((number, raw)) = reader.next_field()? {
        let Some(field) = field_of(message, number) else {
            continue; // unknown fields are skipped, as proto2 decoders do
        };
        let at = |what: &str| format!("{}: {what}", path_of(message, field));
        if field.json.is_empty() {
            // Go `json:",inline"`: the sub-message's fields live in this object.
            let (Ty::Message(index), Raw::Len(bytes)) = (field.ty, raw) else {
                return Err(Error::new(at("expected an embedded message")));
            };
            decode_fields(&MESSAGES[index as usize], bytes, out, depth + 1)?;
            continue;
        }
        match field.ty {
            Ty::MapString | Ty::MapBytes | Ty::MapMessage(_) => {
                let Raw::Len(entry) = raw else {
                    return Err(Error::new(at("expected a map entry")));
                };
                let (key, value) = decode_map_entry(field, entry, depth)?;
                let map = out
                    .entry(field.json)
                    .or_insert_with(|| Value::Object(Map::new()));
                if let (Value::Object(map), Some(value)) = (map, value) {
                    map.insert(key, value);
                }
            }
            _ if field.repeated => {
                let mut items = Vec::new();
                match (field.ty, raw) {
                    // Packed scalars: many varints in one length-delimited field.
                    (Ty::Int32 | Ty::Int64 | Ty::Bool, Raw::Len(bytes)) => {
                        let mut packed = PackedVarints { data: bytes };
                        while let Some(v) = packed.next_varint()? {
                            items.push(
                                scalar(field.ty, Raw::Varint(v))
                                    .map_err(|e| Error::new(at(&e.0)))?,
                            );
                        }
                    }
                    _ => {
                        if let Some(v) =
                            decode_single(field, raw, depth).map_err(|e| Error::new(at(&e.0)))?
                        {
                            items.push(v);
                        }
                    }
                }
                let list = out
                    .entry(field.json)
                    .or_insert_with(|| Value::Array(Vec::new()));
                if let Value::Array(list) = list {
                    list.extend(items);
                }
            }
            _ => {
                let value = decode_single(field, raw, depth).map_err(|e| {
                    if e.0.contains(": ") {
                        e
                    } else {
                        Error::new(at(&e.0))
                    }
                })?;
                match value {
                    Some(v) if field.keep_zero || !is_zero(&v) => {
                        out.insert(field.json.to_string(), v);
                    }
                    _ => {
                        out.remove(field.json);
                    }
                }
            }
        }
    }
    Ok(())
}

fn path_of(message: &Message, field: &Field) -> String {
    let short = message.name.rsplit('.').next().unwrap_or(message.name);
    format!(
        "{short}.{}",
        if field.json.is_empty() {
            "(inline)"
        } else {
            field.json
        }
    )
}

struct PackedVarints<'a> {
    data: &'a [u8],
}

impl PackedVarints<'_> {
    fn next_varint(&mut self) -> Result<Option<u64>, Error> {
        if self.data.is_empty() {
            return Ok(None);
        }
        let mut value = 0u64;
        for i in 0..10 {
            let Some((&b, rest)) = self.data.split_first() else {
                return Err(Error::new("truncated packed varint"));
            };
            self.data = rest;
            value |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(Some(value));
            }
        }
        Err(Error::new("packed varint longer than 10 bytes"))
    }
}

/// A scalar field's value.
fn scalar(ty: Ty, raw: Raw<'_>) -> Result<Value, Error> {
    Ok(match (ty, raw) {
        (Ty::String, Raw::Len(b)) => Value::String(utf8(b, "string")?),
        (Ty::Bytes, Raw::Len(b)) => {
            Value::String(base64::engine::general_purpose::STANDARD.encode(b))
        }
        (Ty::Bool, Raw::Varint(v)) => Value::Bool(v != 0),
        (Ty::Int32, Raw::Varint(v)) => Value::from(v as i64 as i32),
        (Ty::Int64, Raw::Varint(v)) => Value::from(v as i64),
        (Ty::Double, Raw::Fixed64(bits)) => Number::from_f64(f64::from_bits(bits))
            .map(Value::Number)
            .ok_or_else(|| Error::new("a double that is not a finite number"))?,
        (ty, raw) => {
            return Err(Error::new(format!(
                "wire value {raw:?} does not fit type {ty:?}"
            )));
        }
    })
}

/// A non-map field value; None for a message whose JSON form is null (a zero Time).
fn decode_single(field: &Field, raw: Raw<'_>, depth: usize) -> Result<Option<Value>, Error> {
    match field.ty {
        Ty::Message(index) => {
            let Raw::Len(bytes) = raw else {
                return Err(Error::new("expected a length-delimited message"));
            };
            decode_message_value(index, bytes, depth + 1)
        }
        ty => scalar(ty, raw).map(Some),
    }
}

fn decode_map_entry(
    field: &Field,
    entry: &[u8],
    depth: usize,
) -> Result<(String, Option<Value>), Error> {
    let mut key = String::new();
    let mut value = None;
    let mut reader = Reader::new(entry);
    while let Some((number, raw)) = reader.next_field()? {
        match (number, raw) {
            (1, Raw::Len(b)) => key = utf8(b, "map key")?,
            (2, raw) => {
                value = match field.ty {
                    Ty::MapString => Some(scalar(Ty::String, raw)?),
                    Ty::MapBytes => Some(scalar(Ty::Bytes, raw)?),
                    Ty::MapMessage(index) => {
                        let Raw::Len(b) = raw else {
                            return Err(Error::new("map value: expected a message"));
                        };
                        decode_message_value(index, b, depth + 1)?
                    }
                    _ => unreachable!("only map types reach here"),
                }
            }
            _ => {}
        }
    }
    // A map entry without a value holds the value type's zero.
    let value = value.or(match field.ty {
        Ty::MapString | Ty::MapBytes => Some(Value::String(String::new())),
        _ => None,
    });
    Ok((key, value))
}

/// A message as its JSON value.
fn decode_message_value(index: u16, data: &[u8], depth: usize) -> Result<Option<Value>, Error> {
    let message = &MESSAGES[index as usize];
    if depth > MAX_DEPTH {
        return Err(Error::new(format!(
            "messages nested deeper than {MAX_DEPTH} levels"
        )));
    }
    let fields = || -> Result<Vec<(u32, Raw<'_>)>, Error> {
        let mut all = Vec::new();
        let mut reader = Reader::new(data);
        while let Some(f) = reader.next_field()? {
            all.push(f);
        }
        Ok(all)
    };
    let varint = |n: u32| -> Result<Option<u64>, Error> {
        Ok(fields()?.into_iter().rev().find_map(|(k, v)| match (k, v) {
            (k, Raw::Varint(x)) if k == n => Some(x),
            _ => None,
        }))
    };
    let bytes = |n: u32| -> Result<Option<&[u8]>, Error> {
        Ok(fields()?.into_iter().rev().find_map(|(k, v)| match (k, v) {
            (k, Raw::Len(b)) if k == n => Some(b),
            _ => None,
        }))
    };
    Ok(match message.special {
        Special::None => {
            let mut object = Map::new();
            decode_fields(message, data, &mut object, depth)?;
            Some(Value::Object(object))
        }
        // Go's Time.Unmarshal: an empty message is the zero time, which JSON writes as null;
        // it also drops the nanoseconds (JSON carries seconds only).
        Special::Time => match (data.is_empty(), varint(1)?) {
            (true, _) => None,
            (false, seconds) => Some(Value::String(time::rfc3339(
                seconds.unwrap_or(0) as i64,
                0,
                false,
            )?)),
        },
        Special::MicroTime => {
            if data.is_empty() {
                None
            } else {
                let seconds = varint(1)?.unwrap_or(0) as i64;
                let nanos = varint(2)?.unwrap_or(0) as i64 as i32;
                Some(Value::String(time::rfc3339(seconds, nanos, true)?))
            }
        }
        Special::Duration => Some(Value::String(time::go_duration(
            varint(1)?.unwrap_or(0) as i64
        ))),
        Special::Quantity => Some(Value::String(match bytes(1)? {
            Some(b) => utf8(b, "Quantity")?,
            None => "0".into(),
        })),
        Special::IntOrString => {
            let is_string = varint(1)?.unwrap_or(0) == 1;
            if is_string {
                Some(Value::String(match bytes(3)? {
                    Some(b) => utf8(b, "IntOrString.strVal")?,
                    None => String::new(),
                }))
            } else {
                Some(Value::from(varint(2)?.unwrap_or(0) as i64 as i32))
            }
        }
        Special::RawJson => match bytes(1)? {
            None | Some([]) => None,
            Some(raw) if raw.starts_with(MAGIC) => Some(decode_at(raw, depth + 1)?),
            Some(raw) => Some(
                serde_json::from_slice(raw)
                    .map_err(|e| Error::new(format!("embedded JSON is not valid: {e}")))?,
            ),
        },
        Special::Items => {
            let mut items = Vec::new();
            for (n, raw) in fields()? {
                if let (1, Raw::Len(b)) = (n, raw) {
                    items.push(Value::String(utf8(b, "items")?));
                }
            }
            Some(Value::Array(items))
        }
    })
}

// ---- encoding ---------------------------------------------------------------------------

fn encode_fields(
    message: &Message,
    object: &Map<String, Value>,
    out: &mut Vec<u8>,
    depth: usize,
) -> Result<(), Error> {
    if depth > MAX_DEPTH {
        return Err(Error::new(format!(
            "objects nested deeper than {MAX_DEPTH} levels"
        )));
    }
    for field in message.fields {
        let at = |e: Error| {
            if e.0.contains(": ") {
                e
            } else {
                Error::new(format!("{}: {}", path_of(message, field), e.0))
            }
        };
        if field.json.is_empty() {
            if let Ty::Message(index) = field.ty {
                let sub = &MESSAGES[index as usize];
                wire::put_nested(out, field.number, |o| {
                    encode_fields(sub, object, o, depth + 1)
                })?;
            }
            continue;
        }
        let Some(value) = object.get(field.json) else {
            continue;
        };
        if value.is_null() {
            continue;
        }
        match field.ty {
            Ty::MapString | Ty::MapBytes | Ty::MapMessage(_) => {
                let map = value
                    .as_object()
                    .ok_or_else(|| at(Error::new("expected an object")))?;
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort();
                for key in keys {
                    let v = &map[key];
                    wire::put_nested(out, field.number, |o| {
                        wire::put_bytes(o, 1, key.as_bytes());
                        if v.is_null() {
                            return Ok(());
                        }
                        match field.ty {
                            Ty::MapString => encode_scalar(Ty::String, 2, v, o),
                            Ty::MapBytes => encode_scalar(Ty::Bytes, 2, v, o),
                            Ty::MapMessage(index) => wire::put_nested(o, 2, |o| {
                                encode_message_value(index, v, o, depth + 1)
                            }),
                            _ => unreachable!(),
                        }
                    })
                    .map_err(at)?;
                }
            }
            _ if field.repeated => {
                let items = value
                    .as_array()
                    .ok_or_else(|| at(Error::new("expected a list")))?;
                for item in items.iter().filter(|v| !v.is_null()) {
                    encode_single(field, item, out, depth).map_err(at)?;
                }
            }
            _ => encode_single(field, value, out, depth).map_err(at)?,
        }
    }
    Ok(())
}

fn encode_single(
    field: &Field,
    value: &Value,
    out: &mut Vec<u8>,
    depth: usize,
) -> Result<(), Error> {
    match field.ty {
        Ty::Message(index) => wire::put_nested(out, field.number, |o| {
            encode_message_value(index, value, o, depth + 1)
        }),
        ty => encode_scalar(ty, field.number, value, out),
    }
}

fn encode_scalar(ty: Ty, number: u32, value: &Value, out: &mut Vec<u8>) -> Result<(), Error> {
    let mismatch = |want: &str| Error::new(format!("expected {want}, got {value}"));
    match ty {
        Ty::String => {
            let s = value.as_str().ok_or_else(|| mismatch("a string"))?;
            wire::put_bytes(out, number, s.as_bytes());
        }
        Ty::Bytes => {
            let s = value.as_str().ok_or_else(|| mismatch("a base64 string"))?;
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(s)
                .map_err(|e| Error::new(format!("not valid base64: {e}")))?;
            wire::put_bytes(out, number, &bytes);
        }
        Ty::Bool => {
            let b = value.as_bool().ok_or_else(|| mismatch("a boolean"))?;
            wire::put_key(out, number, wire::VARINT);
            wire::put_varint(out, u64::from(b));
        }
        Ty::Int32 | Ty::Int64 => {
            let n = value
                .as_i64()
                .or_else(|| {
                    value
                        .as_f64()
                        .filter(|f| f.fract() == 0.0)
                        .map(|f| f as i64)
                })
                .ok_or_else(|| mismatch("an integer"))?;
            let n = if matches!(ty, Ty::Int32) {
                i64::from(i32::try_from(n).map_err(|_| mismatch("a 32-bit integer"))?)
            } else {
                n
            };
            wire::put_key(out, number, wire::VARINT);
            wire::put_varint(out, n as u64);
        }
        Ty::Double => {
            let f = value.as_f64().ok_or_else(|| mismatch("a number"))?;
            wire::put_key(out, number, wire::FIXED64);
            out.extend_from_slice(&f.to_bits().to_le_bytes());
        }
        _ => unreachable!("messages and maps are not scalars"),
    }
    Ok(())
}

fn encode_message_value(
    index: u16,
    value: &Value,
    out: &mut Vec<u8>,
    depth: usize,
) -> Result<(), Error> {
    let message = &MESSAGES[index as usize];
    match message.special {
        Special::None => {
            let object = value
                .as_object()
                .ok_or_else(|| Error::new(format!("expected an object, got {value}")))?;
            encode_fields(message, object, out, depth)
        }
        Special::Time | Special::MicroTime => {
            let text = value
                .as_str()
                .ok_or_else(|| Error::new(format!("expected an RFC 3339 time, got {value}")))?;
            let (seconds, nanos) = time::parse_rfc3339(text)?;
            wire::put_key(out, 1, wire::VARINT);
            wire::put_varint(out, seconds as u64);
            if message.special == Special::MicroTime && nanos != 0 {
                wire::put_key(out, 2, wire::VARINT);
                wire::put_varint(out, i64::from(nanos) as u64);
            }
            Ok(())
        }
        Special::Duration => {
            let text = value.as_str().ok_or_else(|| {
                Error::new(format!(
                    "expected a duration such as \"1m30s\", got {value}"
                ))
            })?;
            let nanos = time::parse_go_duration(text)?;
            wire::put_key(out, 1, wire::VARINT);
            wire::put_varint(out, nanos as u64);
            Ok(())
        }
        Special::Quantity => {
            let text = match value {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                other => return Err(Error::new(format!("expected a quantity, got {other}"))),
            };
            wire::put_bytes(out, 1, text.as_bytes());
            Ok(())
        }
        Special::IntOrString => {
            // Go writes all three fields of the struct.
            let (kind, int_val, str_val) = match value {
                Value::String(s) => (1u64, 0i64, s.as_str()),
                Value::Number(n) => (
                    0,
                    n.as_i64()
                        .filter(|v| i32::try_from(*v).is_ok())
                        .ok_or_else(|| Error::new(format!("expected a 32-bit integer, got {n}")))?,
                    "",
                ),
                other => {
                    return Err(Error::new(format!(
                        "expected an integer or a string, got {other}"
                    )));
                }
            };
            wire::put_key(out, 1, wire::VARINT);
            wire::put_varint(out, kind);
            wire::put_key(out, 2, wire::VARINT);
            wire::put_varint(out, int_val as u64);
            wire::put_bytes(out, 3, str_val.as_bytes());
            Ok(())
        }
        Special::RawJson => {
            let raw = serde_json::to_vec(value).map_err(|e| Error::new(e.to_string()))?;
            wire::put_bytes(out, 1, &raw);
            Ok(())
        }
        Special::Items => {
            let items = value
                .as_array()
                .ok_or_else(|| Error::new(format!("expected a list, got {value}")))?;
            for item in items {
                let s = item
                    .as_str()
                    .ok_or_else(|| Error::new(format!("expected a string, got {item}")))?;
                wire::put_bytes(out, 1, s.as_bytes());
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests;
