//! The error type every controller returns.

/// What can stop one reconcile. The controller retries after a backoff.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An API request failed; `action` says what we were doing.
    #[error("{action}: {source}")]
    Api {
        action: String,
        #[source]
        source: kube::Error,
    },
    /// An object lacks a field the controller cannot work without.
    #[error("{kind} {key} has no {field}")]
    Invalid {
        kind: &'static str,
        key: String,
        field: &'static str,
    },
    /// The new ReplicaSet's name is taken by another template; the next sync hashes
    /// with the bumped collision count.
    #[error(
        "pod-template-hash collision for deployment {deployment}; collisionCount is now {count}"
    )]
    HashCollision { deployment: String, count: i32 },
    /// Some of a batch of pod creations or deletions failed.
    #[error("{failed} of {attempted} pod {verb}s failed: {first}")]
    Pods {
        verb: &'static str,
        failed: usize,
        attempted: usize,
        first: String,
    },
}

impl Error {
    /// Whether the server refused because our copy of the object was stale.
    pub fn is_conflict(&self) -> bool {
        matches!(self, Error::Api { source: kube::Error::Api(e), .. } if e.code == 409)
    }
}

/// Attach what we were doing to a kube error.
pub trait Context<T> {
    fn context(self, action: impl FnOnce() -> String) -> Result<T, Error>;
}

impl<T> Context<T> for Result<T, kube::Error> {
    fn context(self, action: impl FnOnce() -> String) -> Result<T, Error> {
        self.map_err(|source| Error::Api {
            action: action(),
            source,
        })
    }
}

/// The HTTP status of a failed API call, if the server answered.
pub fn status_code(error: &kube::Error) -> Option<u16> {
    match error {
        kube::Error::Api(e) => Some(e.code),
        _ => None,
    }
}
