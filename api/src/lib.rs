//! The agent's API as its clients see it: the requests, the answers, the
//! stable error codes and a small blocking client over the Unix socket.
//!
//! The wire format is newline-delimited JSON: one request object per line,
//! one response object per line, in order, any number per connection
//! (`docs/api.md`). This crate holds only the types and the client, with
//! serde as its one real dependency, so the CNI plugin and `pisekctl` link
//! it without the agent's runtime; the agent serves it (`pisek_agent::api`).

mod client;
mod error;
mod request;
mod response;
mod workload;

pub use client::{ApiClient, ClientError};
pub use error::{ApiError, codes};
pub use request::{MAX_REQUEST_BYTES, Request};
pub use response::{
    BgpSessionInfo, Detached, DropCounter, GcResult, PeerInfo, Response, RibRoute, RouteInfo,
    Status, TenantChoice, VrfInfo,
};
pub use workload::{Attachment, WorkloadKey};

#[cfg(test)]
mod tests;
