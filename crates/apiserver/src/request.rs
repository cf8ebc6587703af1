//! Turn a request URL into what it addresses: which resource, namespace, name and
//! subresource, and the query options every verb shares.

use std::collections::HashMap;

use podium_api::resource::{self, ResourceInfo, Subresource};
use podium_api::status::ApiError;

/// What a resource URL addresses.
#[derive(Debug, Clone)]
pub enum Target {
    /// `/api/v1` or `/apis/<g>/<v>`: the resource list of a group-version.
    GroupVersion { group: String, version: String },
    /// A collection (`namespace` None = cluster-scoped or across all namespaces).
    Collection {
        resource: &'static ResourceInfo,
        namespace: Option<String>,
    },
    /// One object, or one of its subresources.
    Object {
        resource: &'static ResourceInfo,
        namespace: Option<String>,
        name: String,
        sub: Option<Subresource>,
    },
    /// `<name>/proxy/<path>`: `name` may carry a port (`web:8080`, `https:web:443`).
    Proxy {
        resource: &'static ResourceInfo,
        namespace: Option<String>,
        name: String,
        /// The path to forward, from its leading `/`.
        path: String,
    },
}

/// The path after `proxy`, as the client wrote it (a trailing `/` kept).
fn proxied_path(rest: &[&str], whole: &str) -> String {
    let mut out = format!("/{}", rest.join("/"));
    if !rest.is_empty() && whole.ends_with('/') {
        out.push('/');
    }
    out
}

/// Parse the path after the leading `/api` or `/apis` (`legacy` says which).
pub fn parse_target(legacy: bool, path: &str) -> Result<Target, ApiError> {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let (group, version, rest) = if legacy {
        match segments.split_first() {
            Some((version, rest)) => ("", *version, rest),
            None => return Err(ApiError::not_found_path(path)),
        }
    } else {
        match segments.as_slice() {
            [group, version, rest @ ..] => (*group, *version, rest),
            _ => return Err(ApiError::not_found_path(path)),
        }
    };
    // A group-version's own document: discovery knows every served one (including those
    // outside the resource table) and answers 404 for the rest.
    if rest.is_empty() {
        return Ok(Target::GroupVersion {
            group: group.into(),
            version: version.into(),
        });
    }
    if !resource::group_versions().contains(&(group, version)) {
        return Err(ApiError::not_found_path(path));
    }
    let lookup = |plural: &str| {
        resource::find(group, version, plural).ok_or_else(|| {
            ApiError::new(
                podium_api::status::Reason::NotFound,
                format!("the server could not find the requested resource (no resource \"{plural}\" in {})", if group.is_empty() { version.to_string() } else { format!("{group}/{version}") }),
            )
        })
    };
    let sub = |resource: &ResourceInfo, name: &str| -> Result<Subresource, ApiError> {
        resource.subresources.iter().copied().find(|s| s.path() == name).ok_or_else(|| {
            ApiError::new(podium_api::status::Reason::NotFound, format!("the server could not find the requested resource ({} subresource \"{name}\")", resource.plural))
        })
    };
    match rest {
        [] => Ok(Target::GroupVersion {
            group: group.into(),
            version: version.into(),
        }),
        // `namespaces/<ns>/<resource>...` addresses namespaced resources, unless the third
        // segment is a subresource of the namespace itself.
        ["namespaces", ns, plural, tail @ ..] if !matches!(*plural, "status" | "finalize") => {
            let resource = lookup(plural)?;
            if !resource.namespaced {
                return Err(ApiError::not_found_path(path));
            }
            let namespace = Some(ns.to_string());
            if let [name, "proxy", rest @ ..] = tail {
                if resource.has(Subresource::Proxy) {
                    return Ok(Target::Proxy {
                        resource,
                        namespace,
                        name: name.to_string(),
                        path: proxied_path(rest, path),
                    });
                }
            }
            match tail {
                [] => Ok(Target::Collection {
                    resource,
                    namespace,
                }),
                [name] => Ok(Target::Object {
                    resource,
                    namespace,
                    name: name.to_string(),
                    sub: None,
                }),
                [name, s] => Ok(Target::Object {
                    resource,
                    namespace,
                    name: name.to_string(),
                    sub: Some(sub(resource, s)?),
                }),
                _ => Err(ApiError::not_found_path(path)),
            }
        }
        [plural, name, "proxy", rest @ ..]
            if lookup(plural).is_ok_and(|r| !r.namespaced && r.has(Subresource::Proxy)) =>
        {
            Ok(Target::Proxy {
                resource: lookup(plural)?,
                namespace: None,
                name: name.to_string(),
                path: proxied_path(rest, path),
            })
        }
        [plural] => Ok(Target::Collection {
            resource: lookup(plural)?,
            namespace: None,
        }),
        [plural, name] => {
            let resource = lookup(plural)?;
            if resource.namespaced {
                return Err(ApiError::not_found_path(path));
            }
            Ok(Target::Object {
                resource,
                namespace: None,
                name: name.to_string(),
                sub: None,
            })
        }
        [plural, name, s] => {
            let resource = lookup(plural)?;
            if resource.namespaced {
                return Err(ApiError::not_found_path(path));
            }
            Ok(Target::Object {
                resource,
                namespace: None,
                name: name.to_string(),
                sub: Some(sub(resource, s)?),
            })
        }
        _ => Err(ApiError::not_found_path(path)),
    }
}

/// Decode a query string into a map (last value wins, as Go's `Get` returns the first:
/// clients never repeat these keys).
pub fn parse_query(query: Option<&str>) -> HashMap<String, String> {
    let mut out = HashMap::new();
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        out.insert(percent_decode(k), percent_decode(v));
    }
    out
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' if i + 2 < bytes.len() => {
                match u8::from_str_radix(
                    std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("zz"),
                    16,
                ) {
                    Ok(b) => {
                        out.push(b);
                        i += 3;
                    }
                    Err(_) => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Extension for path-not-found errors.
pub trait NotFoundPath {
    fn not_found_path(path: &str) -> ApiError;
}

impl NotFoundPath for ApiError {
    fn not_found_path(path: &str) -> ApiError {
        let _ = path;
        ApiError::new(
            podium_api::status::Reason::NotFound,
            "the server could not find the requested resource",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert!(matches!(
            parse_target(true, "v1").unwrap(),
            Target::GroupVersion { .. }
        ));
        assert!(
            matches!(parse_target(true, "v1/namespaces/default/pods").unwrap(),
            Target::Collection { resource, namespace: Some(ns) } if resource.plural == "pods" && ns == "default")
        );
        assert!(
            matches!(parse_target(true, "v1/namespaces/default").unwrap(),
            Target::Object { resource, name, sub: None, .. } if resource.plural == "namespaces" && name == "default")
        );
        assert!(
            matches!(parse_target(true, "v1/namespaces/x/status").unwrap(),
            Target::Object { resource, sub: Some(Subresource::Status), .. } if resource.plural == "namespaces")
        );
        assert!(matches!(
            parse_target(false, "apps/v1/namespaces/d/deployments/web/scale").unwrap(),
            Target::Object {
                sub: Some(Subresource::Scale),
                ..
            }
        ));
        assert!(matches!(
            parse_target(true, "v1/pods").unwrap(),
            Target::Collection {
                namespace: None,
                ..
            }
        ));
        assert!(parse_target(true, "v1/namespaces/d/widgets").is_err());
        assert!(parse_target(false, "apps/v2/deployments").is_err());
        assert!(parse_target(true, "v1/namespaces/d/pods/p/exec").is_err());
    }

    #[test]
    fn query_decoding() {
        let q = parse_query(Some(
            "labelSelector=app%3Dweb%2Ctier+in+%28a%29&watch=true&x",
        ));
        assert_eq!(q["labelSelector"], "app=web,tier in (a)");
        assert_eq!(q["watch"], "true");
        assert_eq!(q["x"], "");
    }
}
