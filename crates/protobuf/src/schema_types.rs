//! The shape of the generated schema table (src/schema.rs).

/// One protobuf message.
#[derive(Debug)]
pub struct Message {
    /// Module path in k8s-pb terms, e.g. `api.core.v1.Pod`.
    pub name: &'static str,
    /// Messages whose JSON form is not an object of their fields.
    pub special: Special,
    /// Sorted by field number.
    pub fields: &'static [Field],
}

/// One field of a message.
#[derive(Debug)]
pub struct Field {
    pub number: u32,
    /// The JSON name; empty for a Go `json:",inline"` field, whose message's fields sit in
    /// the parent's JSON object (e.g. `Volume.volumeSource`).
    pub json: &'static str,
    pub ty: Ty,
    pub repeated: bool,
    /// A zero value on the wire is meaningful: the Go field is a pointer or is written to
    /// JSON without omitempty. Otherwise Go writes zero for "unset" and so the decoder
    /// drops it.
    pub keep_zero: bool,
}

/// A field's type. `Message`/`MapMessage` hold an index into `MESSAGES`.
#[derive(Debug, Clone, Copy)]
pub enum Ty {
    String,
    Bytes,
    Bool,
    Int32,
    Int64,
    /// No message of the packages generated today has one (apiextensions' JSONSchemaProps
    /// does); kept so that adding a package needs no transcoder change.
    #[allow(dead_code)]
    Double,
    Message(u16),
    /// `map<string, string>`
    MapString,
    /// `map<string, bytes>` (a Secret's data)
    MapBytes,
    /// `map<string, Message>`
    MapMessage(u16),
}

/// Messages with their own JSON form (their Go types implement MarshalJSON).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Special {
    None,
    /// `metav1.Time`: RFC 3339 with seconds.
    Time,
    /// `metav1.MicroTime`: RFC 3339 with microseconds.
    MicroTime,
    /// `metav1.Duration`: Go's duration string (`1h2m3s`).
    Duration,
    /// `resource.Quantity`: its string.
    Quantity,
    /// `intstr.IntOrString`: a number or a string.
    IntOrString,
    /// `runtime.RawExtension`, `metav1.FieldsV1`: field 1 holds JSON (or a protobuf
    /// envelope) that is the JSON value itself.
    RawJson,
    /// A named Go slice type (`type ExtraValue []string`): field 1 holds the items and
    /// the JSON form is the bare array.
    Items,
}
