//! What every component that talks to the API server shares. The agent, the controllers,
//! the scheduler and the proxy reach the server only through the API, as a kubelet does,
//! so the helpers for that conversation live here rather than in any one of them.

pub mod events;
