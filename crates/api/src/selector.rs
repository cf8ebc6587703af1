//! Label and field selectors as the API server parses them from `?labelSelector=` and
//! `?fieldSelector=` (apimachinery `labels.Parse` and `fields.ParseSelector` semantics).

use std::collections::BTreeMap;

use serde_json::Value;

use crate::status::ApiError;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Op {
    Equals(String),
    NotEquals(String),
    In(Vec<String>),
    NotIn(Vec<String>),
    Exists,
    DoesNotExist,
    GreaterThan(i64),
    LessThan(i64),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Requirement {
    key: String,
    op: Op,
}

/// A parsed label selector; the empty selector matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector {
    requirements: Vec<Requirement>,
}

impl LabelSelector {
    /// Parse `app=web,tier!=db,env in (prod,staging),!legacy`.
    pub fn parse(input: &str) -> Result<Self, ApiError> {
        let mut requirements = Vec::new();
        for part in split_top_level(input) {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            requirements.push(parse_requirement(part).ok_or_else(|| {
                ApiError::bad_request(format!("unable to parse requirement: found '{part}', expected: key, !key, key=value, key!=value, key in (v1,v2), key notin (v1,v2)"))
            })?);
        }
        Ok(LabelSelector { requirements })
    }

    /// A `metav1.LabelSelector` object (`matchLabels` + `matchExpressions`) as a selector,
    /// as upstream's `LabelSelectorAsSelector`: requirements sorted by key, set values
    /// sorted. `None` for an operator upstream does not know (it fails to convert).
    pub fn from_object(selector: &Value) -> Option<Self> {
        let strings = |value: Option<&Value>| -> Vec<String> {
            let mut values: Vec<String> = value
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect();
            values.sort_unstable();
            values
        };
        let mut requirements: Vec<Requirement> = selector
            .get("matchLabels")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
            .map(|(key, value)| Requirement {
                key: key.clone(),
                op: Op::Equals(value.as_str().unwrap_or("").to_string()),
            })
            .collect();
        for expression in selector
            .get("matchExpressions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let key = expression.get("key").and_then(Value::as_str).unwrap_or("");
            let values = strings(expression.get("values"));
            let op = match expression.get("operator").and_then(Value::as_str)? {
                "In" => Op::In(values),
                "NotIn" => Op::NotIn(values),
                "Exists" => Op::Exists,
                "DoesNotExist" => Op::DoesNotExist,
                _ => return None,
            };
            requirements.push(Requirement {
                key: key.to_string(),
                op,
            });
        }
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        Some(LabelSelector { requirements })
    }

    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.requirements.iter().all(|r| {
            let value = labels.get(&r.key);
            match &r.op {
                Op::Equals(v) => value == Some(v),
                Op::NotEquals(v) => value != Some(v),
                Op::In(vs) => value.is_some_and(|x| vs.contains(x)),
                Op::NotIn(vs) => value.is_none_or(|x| !vs.contains(x)),
                Op::Exists => value.is_some(),
                Op::DoesNotExist => value.is_none(),
                Op::GreaterThan(n) => value
                    .and_then(|x| x.parse::<i64>().ok())
                    .is_some_and(|x| x > *n),
                Op::LessThan(n) => value
                    .and_then(|x| x.parse::<i64>().ok())
                    .is_some_and(|x| x < *n),
            }
        })
    }

    /// Match an object's `metadata.labels`.
    pub fn matches_object(&self, object: &Value) -> bool {
        if self.is_empty() {
            return true;
        }
        self.matches(&labels_of(object))
    }
}

/// Upstream's `labels.Selector.String()`: the form `?labelSelector=` takes back.
impl std::fmt::Display for LabelSelector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, Requirement { key, op }) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            match op {
                Op::Equals(v) => write!(f, "{key}={v}")?,
                Op::NotEquals(v) => write!(f, "{key}!={v}")?,
                Op::In(vs) => write!(f, "{key} in ({})", vs.join(","))?,
                Op::NotIn(vs) => write!(f, "{key} notin ({})", vs.join(","))?,
                Op::Exists => write!(f, "{key}")?,
                Op::DoesNotExist => write!(f, "!{key}")?,
                Op::GreaterThan(n) => write!(f, "{key}>{n}")?,
                Op::LessThan(n) => write!(f, "{key}<{n}")?,
            }
        }
        Ok(())
    }
}

/// The `metadata.labels` of an object as a map.
pub fn labels_of(object: &Value) -> BTreeMap<String, String> {
    object
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

/// Split on commas that are not inside `( )`.
fn split_top_level(input: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0i32, 0usize);
    for (i, c) in input.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&input[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&input[start..]);
    parts
}

fn valid_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 317
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'))
}

fn valid_value(value: &str) -> bool {
    value.len() <= 63
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

fn parse_set(rest: &str) -> Option<Vec<String>> {
    let inner = rest.trim().strip_prefix('(')?.strip_suffix(')')?;
    let values: Vec<String> = inner.split(',').map(|v| v.trim().to_string()).collect();
    values.iter().all(|v| valid_value(v)).then_some(values)
}

fn parse_requirement(part: &str) -> Option<Requirement> {
    if let Some(key) = part.strip_prefix('!') {
        let key = key.trim();
        return valid_key(key).then(|| Requirement {
            key: key.to_string(),
            op: Op::DoesNotExist,
        });
    }
    for (token, build) in [("!=", 0u8), ("==", 1), ("=", 1), (">", 2), ("<", 3)] {
        if let Some((key, value)) = part.split_once(token) {
            let (key, value) = (key.trim(), value.trim());
            if !valid_key(key) {
                return None;
            }
            let op = match build {
                0 if valid_value(value) => Op::NotEquals(value.to_string()),
                1 if valid_value(value) => Op::Equals(value.to_string()),
                2 => Op::GreaterThan(value.parse().ok()?),
                3 => Op::LessThan(value.parse().ok()?),
                _ => return None,
            };
            return Some(Requirement {
                key: key.to_string(),
                op,
            });
        }
    }
    let mut words = part.splitn(2, char::is_whitespace);
    let key = words.next()?.trim();
    let rest = words.next().unwrap_or("").trim();
    if !valid_key(key) {
        return None;
    }
    if rest.is_empty() {
        return Some(Requirement {
            key: key.to_string(),
            op: Op::Exists,
        });
    }
    if let Some(set) = rest.strip_prefix("notin") {
        return Some(Requirement {
            key: key.to_string(),
            op: Op::NotIn(parse_set(set)?),
        });
    }
    if let Some(set) = rest.strip_prefix("in") {
        return Some(Requirement {
            key: key.to_string(),
            op: Op::In(parse_set(set)?),
        });
    }
    None
}

/// A parsed field selector: a conjunction of `field=value` / `field!=value`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSelector {
    terms: Vec<(String, bool, String)>,
}

impl FieldSelector {
    /// Parse and check every field against the kind's supported fields (`supported`).
    pub fn parse(input: &str, supported: &[&str]) -> Result<Self, ApiError> {
        let mut terms = Vec::new();
        for part in input.split(',') {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            let (field, equal, value) = if let Some((f, v)) = part.split_once("!=") {
                (f, false, v)
            } else if let Some((f, v)) = part.split_once("==") {
                (f, true, v)
            } else if let Some((f, v)) = part.split_once('=') {
                (f, true, v)
            } else {
                return Err(ApiError::bad_request(format!(
                    "invalid selector: '{part}'; can't understand '{part}'"
                )));
            };
            let field = field.trim();
            if !supported.contains(&field) {
                return Err(ApiError::bad_request(format!(
                    "field label not supported: {field}"
                )));
            }
            terms.push((field.to_string(), equal, value.trim().to_string()));
        }
        Ok(FieldSelector { terms })
    }

    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    /// Match an object, reading each field by its dotted path (`spec.nodeName`).
    /// A missing field reads as the empty string, as upstream's field sets do.
    pub fn matches(&self, object: &Value) -> bool {
        self.terms.iter().all(|(field, equal, value)| {
            let actual = field_value(object, field);
            (actual == *value) == *equal
        })
    }

    /// The value an equality term requires of `field`, if any (for index-like shortcuts).
    pub fn required_value(&self, field: &str) -> Option<&str> {
        self.terms
            .iter()
            .find(|(f, eq, _)| f == field && *eq)
            .map(|(_, _, v)| v.as_str())
    }
}

/// `metav1.LabelSelector` as `labels.Selector.String()` prints it (`""` for none); None
/// where upstream fails to convert it (an unknown operator).
pub fn label_selector_string(selector: Option<&Value>) -> Option<String> {
    match selector.filter(|s| s.is_object()) {
        None => Some(String::new()),
        Some(selector) => LabelSelector::from_object(selector).map(|s| s.to_string()),
    }
}

/// Read a dotted field path as a string the way field selectors compare it.
pub fn field_value(object: &Value, field: &str) -> String {
    let mut cur = object;
    for part in field.split('.') {
        match cur.get(part) {
            Some(next) => cur = next,
            None => return String::new(),
        }
    }
    match cur {
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn equality_and_set_based() {
        let s =
            LabelSelector::parse("app=web,tier!=db,env in (prod, staging),!legacy,team").unwrap();
        assert!(s.matches(&labels(&[("app", "web"), ("env", "prod"), ("team", "a")])));
        assert!(!s.matches(&labels(&[("app", "web"), ("env", "dev"), ("team", "a")])));
        assert!(!s.matches(&labels(&[
            ("app", "web"),
            ("env", "prod"),
            ("team", "a"),
            ("legacy", "1")
        ])));
        assert!(!s.matches(&labels(&[("app", "web"), ("env", "prod")])));
        let notin = LabelSelector::parse("env notin (prod)").unwrap();
        assert!(notin.matches(&labels(&[])));
        assert!(!notin.matches(&labels(&[("env", "prod")])));
        assert!(
            LabelSelector::parse("app==web")
                .unwrap()
                .matches(&labels(&[("app", "web")]))
        );
    }

    #[test]
    fn bad_selectors_are_rejected() {
        for bad in ["app in prod", "=x", "a b c", "app=we b"] {
            assert!(LabelSelector::parse(bad).is_err(), "{bad}");
        }
        assert!(LabelSelector::parse("").unwrap().is_empty());
    }

    #[test]
    fn field_selectors() {
        let pod = json!({"metadata": {"name": "p"}, "spec": {"nodeName": "n1"}, "status": {"phase": "Running"}});
        let fields = ["metadata.name", "spec.nodeName", "status.phase"];
        assert!(
            FieldSelector::parse("spec.nodeName=n1,status.phase!=Failed", &fields)
                .unwrap()
                .matches(&pod)
        );
        assert!(
            !FieldSelector::parse("spec.nodeName=", &fields)
                .unwrap()
                .matches(&pod)
        );
        assert!(
            FieldSelector::parse("spec.nodeName=", &fields)
                .unwrap()
                .matches(&json!({"spec": {}}))
        );
        let err = FieldSelector::parse("spec.foo=1", &fields).unwrap_err();
        assert_eq!(err.message, "field label not supported: spec.foo");
    }

    #[test]
    fn label_selector_objects_match_as_their_string_form_does() {
        let object = json!({
            "matchLabels": {"app": "web"},
            "matchExpressions": [
                {"key": "env", "operator": "NotIn", "values": ["dev"]},
                {"key": "tier", "operator": "Exists"},
            ],
        });
        let selector = LabelSelector::from_object(&object).unwrap();
        let reparsed = LabelSelector::parse(&selector.to_string()).unwrap();
        let cases: [&[(&str, &str)]; 4] = [
            &[("app", "web"), ("tier", "a")],
            &[("app", "web"), ("tier", "a"), ("env", "dev")],
            &[("app", "web")],
            &[("app", "db"), ("tier", "a")],
        ];
        let expected = [true, false, false, false];
        for (case, expected) in cases.iter().zip(expected) {
            let set = labels(case);
            assert_eq!(selector.matches(&set), expected, "{case:?}");
            assert_eq!(reparsed.matches(&set), expected, "{case:?} reparsed");
        }
    }

    #[test]
    fn label_selectors_print_as_upstreams_selector_string() {
        let selector = json!({
            "matchLabels": {"tier": "web", "app": "shop"},
            "matchExpressions": [
                {"key": "env", "operator": "In", "values": ["prod", "dev"]},
                {"key": "legacy", "operator": "DoesNotExist"},
            ],
        });
        assert_eq!(
            label_selector_string(Some(&selector)).as_deref(),
            Some("app=shop,env in (dev,prod),!legacy,tier=web")
        );
        assert_eq!(label_selector_string(None).as_deref(), Some(""));
        let unknown = json!({"matchExpressions": [{"key": "a", "operator": "Near"}]});
        assert_eq!(label_selector_string(Some(&unknown)), None);
    }
}
