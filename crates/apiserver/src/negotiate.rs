//! Content negotiation: which encoding a request body is in and which one the client
//! wants back. JSON (and YAML bodies) always; Kubernetes protobuf for built-in kinds,
//! which client-go programs (kubectl 1.32+, controllers, operators) send and prefer.
//! Tables and custom resources stay JSON, as upstream.

use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use podium_api::status::{ApiError, Reason};
use serde_json::Value;

pub use podium_protobuf::MEDIA_TYPE as PROTOBUF;

/// The encoding of a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Protobuf,
}

/// One entry of an Accept header.
struct MediaRange<'a> {
    essence: &'a str,
    quality: f32,
    /// `as=Table` and friends: a transformed response, which is JSON only here.
    transformed: bool,
}

fn media_ranges(headers: &HeaderMap) -> Vec<MediaRange<'_>> {
    let mut ranges = Vec::new();
    for value in headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
    {
        for item in value.split(',') {
            let mut parts = item.split(';').map(str::trim);
            let essence = parts.next().unwrap_or("");
            if essence.is_empty() {
                continue;
            }
            let mut range = MediaRange {
                essence,
                quality: 1.0,
                transformed: false,
            };
            for param in parts {
                match param.split_once('=') {
                    Some(("q", q)) => range.quality = q.parse().unwrap_or(1.0),
                    Some(("as", _)) => range.transformed = true,
                    _ => {}
                }
            }
            ranges.push(range);
        }
    }
    // Highest quality first; equal ones keep the client's order.
    ranges.sort_by(|a, b| b.quality.total_cmp(&a.quality));
    ranges
}

/// The response format for an object of `api_version`/`kind` (None: no object, e.g. a
/// Table), from the Accept header. 406 when the client accepts nothing we can send.
pub fn response_format(
    headers: &HeaderMap,
    api_version: &str,
    kind: Option<&str>,
) -> Result<Format, ApiError> {
    let ranges = media_ranges(headers);
    if ranges.is_empty() {
        return Ok(Format::Json);
    }
    let protobuf_ok = kind.is_some_and(|k| podium_protobuf::supports(api_version, k));
    for range in &ranges {
        if range.quality <= 0.0 {
            continue;
        }
        match range.essence {
            PROTOBUF if protobuf_ok && !range.transformed => return Ok(Format::Protobuf),
            PROTOBUF => {}
            // YAML is answered as JSON, which every YAML parser reads.
            "application/json" | "application/yaml" | "application/*" | "*/*" => {
                return Ok(Format::Json);
            }
            _ => {}
        }
    }
    Err(ApiError::new(
        Reason::NotAcceptable,
        format!(
            "only the following media types are accepted: application/json, application/yaml{}",
            if protobuf_ok {
                format!(", {PROTOBUF}")
            } else {
                String::new()
            }
        ),
    ))
}

/// Whether the request body is protobuf.
pub fn is_protobuf_body(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|t| t.trim() == PROTOBUF)
}

/// Decode a protobuf request body into its JSON object.
pub fn decode_body(body: &[u8]) -> Result<Value, ApiError> {
    podium_protobuf::decode(body)
        .map_err(|e| ApiError::bad_request(format!("error decoding protobuf body: {e}")))
}

/// A response in `format`; `Warning` headers for what was accepted but not acted on.
pub fn respond(format: Format, code: StatusCode, value: &Value, warnings: &[String]) -> Response {
    let (body, content_type) = match format {
        Format::Protobuf => match podium_protobuf::encode(value) {
            Ok(body) => (body, PROTOBUF),
            Err(e) => {
                // Our own object failed to encode: a bug, but JSON still serves the client
                // (client-go decodes by the response's Content-Type).
                tracing::warn!(error = %e, "protobuf encoding failed; answering JSON");
                (json_body(value), "application/json")
            }
        },
        Format::Json => (json_body(value), "application/json"),
    };
    let mut response = (code, body).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    for warning in warnings {
        let text = format!("299 - \"{}\"", warning.replace('"', "\\\""));
        if let Ok(value) = HeaderValue::from_str(&text) {
            response.headers_mut().append("Warning", value);
        }
    }
    response
}

fn json_body(value: &Value) -> Vec<u8> {
    let mut body = serde_json::to_vec(value).unwrap_or_default();
    body.push(b'\n');
    body
}

/// One frame of a protobuf watch stream: 4-byte big-endian length, then the event.
pub fn watch_frame(event_type: &str, object: &Value) -> Result<Vec<u8>, podium_protobuf::Error> {
    let event = podium_protobuf::encode_watch_event(event_type, object)?;
    let mut frame = Vec::with_capacity(event.len() + 4);
    frame.extend_from_slice(&(event.len() as u32).to_be_bytes());
    frame.extend_from_slice(&event);
    Ok(frame)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT, HeaderValue::from_str(value).unwrap());
        h
    }

    #[test]
    fn kubectl_133_gets_protobuf_for_builtin_kinds() {
        let h = accept("application/vnd.kubernetes.protobuf,application/json");
        assert_eq!(
            response_format(&h, "v1", Some("Namespace")).unwrap(),
            Format::Protobuf
        );
        // no message for a custom resource: JSON, which the client also accepts
        assert_eq!(
            response_format(&h, "example.com/v1", Some("Widget")).unwrap(),
            Format::Json
        );
    }

    #[test]
    fn json_clients_and_tables_get_json() {
        for a in [
            "application/json",
            "*/*",
            "application/json, */*",
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json",
        ] {
            assert_eq!(
                response_format(&accept(a), "v1", Some("Pod")).unwrap(),
                Format::Json,
                "{a}"
            );
        }
        assert_eq!(
            response_format(&HeaderMap::new(), "v1", Some("Pod")).unwrap(),
            Format::Json
        );
        let h = accept("application/vnd.kubernetes.protobuf;q=0.5,application/json");
        assert_eq!(
            response_format(&h, "v1", Some("Pod")).unwrap(),
            Format::Json
        );
    }

    #[test]
    fn protobuf_only_for_a_kind_without_a_message_is_406() {
        let h = accept("application/vnd.kubernetes.protobuf");
        let err = response_format(&h, "example.com/v1", Some("Widget")).unwrap_err();
        assert_eq!(err.code(), 406);
        assert_eq!(
            response_format(&h, "v1", Some("Pod")).unwrap(),
            Format::Protobuf
        );
    }
}
