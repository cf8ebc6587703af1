//! Sets of field paths, as `metadata.managedFields[].fieldsV1` writes them
//! (structured-merge-diff's `fieldpath.Set` in its JSON form), and the set of fields a
//! value sets.
//!
//! A path element is a fieldsV1 key: `f:name` for a field of an object, `k:{"name":"x"}`
//! for the item of an associative list with that key, `v:"x"` for an item of a set. A node
//! is a member of the set when the path to it is (a leaf, or `".": {}` beside children).
//!
//! Written here: structured-merge-diff has no Rust port, and the paths must be the ones
//! kube-apiserver writes so that managers set by either stay comparable.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

/// How a list merges, from the type's `x-kubernetes-list-type`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListType {
    /// Replaced as a whole (and owned as one leaf).
    Atomic,
    /// Scalars, each item owned on its own (`v:` paths).
    Set,
    /// Objects keyed by these fields (`k:` paths).
    Map(Vec<&'static str>),
}

/// Which list type the list at a field path (field names only, from the root) has.
pub type ListTypes<'a> = &'a dyn Fn(&[&str]) -> ListType;

/// A set of field paths.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSet {
    member: bool,
    children: BTreeMap<String, FieldSet>,
}

impl FieldSet {
    /// Read a `fieldsV1` object. Anything that is not an object is an empty set.
    pub fn from_v1(value: &Value) -> FieldSet {
        let Some(map) = value.as_object() else {
            return FieldSet::default();
        };
        let mut set = FieldSet {
            member: map.is_empty(),
            children: BTreeMap::new(),
        };
        for (key, child) in map {
            if key == "." {
                set.member = true;
            } else {
                set.children.insert(key.clone(), FieldSet::from_v1(child));
            }
        }
        set
    }

    /// Write as `fieldsV1`.
    pub fn to_v1(&self) -> Value {
        let mut map = Map::new();
        if self.member && !self.children.is_empty() {
            map.insert(".".into(), Value::Object(Map::new()));
        }
        for (key, child) in &self.children {
            map.insert(key.clone(), child.to_v1());
        }
        Value::Object(map)
    }

    pub fn is_empty(&self) -> bool {
        !self.member && self.children.values().all(FieldSet::is_empty)
    }

    pub fn child(&self, key: &str) -> Option<&FieldSet> {
        self.children.get(key)
    }

    pub fn children(&self) -> impl Iterator<Item = (&String, &FieldSet)> {
        self.children.iter()
    }

    pub fn is_member(&self) -> bool {
        self.member
    }

    /// Every member path, in order.
    pub fn members(&self) -> Vec<Vec<String>> {
        let mut out = Vec::new();
        self.collect(&mut Vec::new(), &mut out);
        out
    }

    fn collect(&self, at: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
        if self.member {
            out.push(at.clone());
        }
        for (key, child) in &self.children {
            at.push(key.clone());
            child.collect(at, out);
            at.pop();
        }
    }

    pub fn contains(&self, path: &[String]) -> bool {
        match path.split_first() {
            None => self.member,
            Some((first, rest)) => self.children.get(first).is_some_and(|c| c.contains(rest)),
        }
    }

    pub fn insert(&mut self, path: &[String]) {
        match path.split_first() {
            None => self.member = true,
            Some((first, rest)) => self.children.entry(first.clone()).or_default().insert(rest),
        }
    }

    pub fn remove(&mut self, path: &[String]) {
        match path.split_first() {
            None => self.member = false,
            Some((first, rest)) => {
                if let Some(child) = self.children.get_mut(first) {
                    child.remove(rest);
                    if child.is_empty() {
                        self.children.remove(first);
                    }
                }
            }
        }
    }

    pub fn union(&mut self, other: &FieldSet) {
        self.member |= other.member;
        for (key, child) in &other.children {
            self.children.entry(key.clone()).or_default().union(child);
        }
    }

    /// The members of `self` that are not members of `other`.
    pub fn difference(&self, other: &FieldSet) -> FieldSet {
        let mut out = FieldSet {
            member: self.member && !other.member,
            children: BTreeMap::new(),
        };
        for (key, child) in &self.children {
            let rest = match other.children.get(key) {
                Some(o) => child.difference(o),
                None => child.clone(),
            };
            if !rest.is_empty() {
                out.children.insert(key.clone(), rest);
            }
        }
        out
    }
}

/// `{"a":1,"b":"x"}` with the key fields in name order, as a `k:` path writes them.
fn key_of(item: &Value, keys: &[&str]) -> String {
    let mut sorted: Vec<&str> = keys.to_vec();
    sorted.sort_unstable();
    let mut map = Map::new();
    for key in sorted {
        if let Some(v) = item.get(key) {
            map.insert(key.to_string(), v.clone());
        }
    }
    format!("k:{}", Value::Object(map))
}

/// The set of fields `value` sets: every scalar, atomic list and empty object is a leaf;
/// items of associative lists and sets are members of their own.
pub fn of(value: &Value, lists: ListTypes) -> FieldSet {
    let mut set = FieldSet::default();
    walk(value, lists, &mut Vec::new(), &mut set);
    set
}

fn walk<'v>(value: &'v Value, lists: ListTypes, at: &mut Vec<&'v str>, set: &mut FieldSet) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (key, child) in map {
                at.push(key);
                walk(
                    child,
                    lists,
                    at,
                    set.children.entry(format!("f:{key}")).or_default(),
                );
                at.pop();
            }
        }
        Value::Array(items) if !items.is_empty() => match lists(at) {
            ListType::Atomic => set.member = true,
            ListType::Set => {
                for item in items {
                    set.children.entry(format!("v:{item}")).or_default().member = true;
                }
            }
            ListType::Map(keys) => {
                for item in items {
                    let node = set.children.entry(key_of(item, &keys)).or_default();
                    node.member = true;
                    walk(item, lists, at, node);
                }
            }
        },
        _ => set.member = true,
    }
}

/// The list item a `k:`/`v:` element names, by index.
fn find_item(items: &[Value], element: &str, keys: &[&str]) -> Option<usize> {
    if let Some(value) = element.strip_prefix("v:") {
        let wanted: Value = serde_json::from_str(value).ok()?;
        return items.iter().position(|i| *i == wanted);
    }
    let key = element.strip_prefix("k:")?;
    let wanted: Map<String, Value> = serde_json::from_str(key).ok()?;
    items.iter().position(|item| {
        wanted.iter().all(|(k, v)| item.get(k) == Some(v))
            && keys
                .iter()
                .all(|k| wanted.contains_key(*k) || item.get(*k).is_none())
    })
}

/// The value at a path of fieldsV1 elements, if the object has one.
pub fn value_at<'v>(value: &'v Value, path: &[String], lists: ListTypes) -> Option<&'v Value> {
    let mut names: Vec<&str> = Vec::new();
    let mut at = value;
    for element in path {
        if let Some(field) = element.strip_prefix("f:") {
            at = at.get(field)?;
            names.push(field);
        } else {
            let items = at.as_array()?;
            let keys = match lists(&names) {
                ListType::Map(keys) => keys,
                _ => Vec::new(),
            };
            at = &items[find_item(items, element, &keys)?];
        }
    }
    Some(at)
}

/// Remove from `value` what `set`'s members name (a member node goes whole).
pub fn remove(value: &mut Value, set: &FieldSet, lists: ListTypes) {
    remove_at(value, set, lists, &mut Vec::new());
}

fn remove_at(value: &mut Value, set: &FieldSet, lists: ListTypes, at: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (element, child) in &set.children {
                let Some(field) = element.strip_prefix("f:") else {
                    continue;
                };
                if child.member {
                    map.remove(field);
                } else if let Some(inner) = map.get_mut(field) {
                    at.push(field.to_string());
                    remove_at(inner, child, lists, at);
                    at.pop();
                }
            }
        }
        Value::Array(items) => {
            let names: Vec<&str> = at.iter().map(String::as_str).collect();
            let keys = match lists(&names) {
                ListType::Map(keys) => keys,
                _ => Vec::new(),
            };
            let mut doomed = Vec::new();
            for (element, child) in &set.children {
                let Some(i) = find_item(items, element, &keys) else {
                    continue;
                };
                if child.member {
                    doomed.push(i);
                } else {
                    remove_at(&mut items[i], child, lists, at);
                }
            }
            doomed.sort_unstable();
            for i in doomed.into_iter().rev() {
                items.remove(i);
            }
        }
        _ => {}
    }
}

/// A path as upstream prints it in conflicts: `.spec.containers[name="web"].image`.
pub fn display(path: &[String]) -> String {
    let mut out = String::new();
    for element in path {
        if let Some(field) = element.strip_prefix("f:") {
            out.push('.');
            out.push_str(field);
        } else if let Some(key) = element.strip_prefix("k:") {
            let parts: Vec<String> = serde_json::from_str::<Map<String, Value>>(key)
                .map(|m| m.iter().map(|(k, v)| format!("{k}={v}")).collect())
                .unwrap_or_default();
            out.push_str(&format!("[{}]", parts.join(",")));
        } else if let Some(value) = element.strip_prefix("v:") {
            out.push_str(&format!("[={value}]"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn lists(path: &[&str]) -> ListType {
        match path.last() {
            Some(&"containers") => ListType::Map(vec!["name"]),
            Some(&"finalizers") => ListType::Set,
            _ => ListType::Atomic,
        }
    }

    fn deployment() -> Value {
        json!({"metadata": {"labels": {"app": "web"}, "finalizers": ["a"]},
            "spec": {"replicas": 2, "template": {"spec": {"containers": [{"name": "web", "image": "nginx", "args": ["-x"]}]}}, "strategy": {}}})
    }

    #[test]
    fn a_value_has_the_fields_upstream_writes() {
        let set = of(&deployment(), &lists);
        assert_eq!(
            set.to_v1(),
            json!({"f:metadata": {"f:finalizers": {"v:\"a\"": {}}, "f:labels": {"f:app": {}}},
                "f:spec": {"f:replicas": {}, "f:strategy": {}, "f:template": {"f:spec": {"f:containers": {
                    "k:{\"name\":\"web\"}": {".": {}, "f:args": {}, "f:image": {}, "f:name": {}}}}}}})
        );
        assert_eq!(FieldSet::from_v1(&set.to_v1()), set);
    }

    #[test]
    fn set_operations_and_paths() {
        let set = of(&deployment(), &lists);
        let path: Vec<String> = [
            "f:spec",
            "f:template",
            "f:spec",
            "f:containers",
            "k:{\"name\":\"web\"}",
            "f:image",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert!(set.contains(&path));
        assert_eq!(
            value_at(&deployment(), &path, &lists),
            Some(&json!("nginx"))
        );
        assert_eq!(
            display(&path),
            ".spec.template.spec.containers[name=\"web\"].image"
        );
        let mut smaller = set.clone();
        smaller.remove(&path);
        let gone = set.difference(&smaller);
        assert_eq!(gone.members(), vec![path.clone()]);
        let mut object = deployment();
        remove(&mut object, &gone, &lists);
        assert_eq!(
            object["spec"]["template"]["spec"]["containers"][0],
            json!({"name": "web", "args": ["-x"]})
        );
        let item: Vec<String> = path[..5].to_vec();
        let mut whole = FieldSet::default();
        whole.insert(&item);
        remove(&mut object, &whole, &lists);
        assert_eq!(object["spec"]["template"]["spec"]["containers"], json!([]));
    }
}
