//! The agent's Unix-socket API: newline-delimited JSON, one request object per
//! line, one response object per line, in order, any number per connection.
//!
//! ```text
//! client ──{"op":"attach",...}\n──► server task per connection
//!        ◄──{"ok":true,"result":{...}}\n──   │ parse (bounded line) → dispatch
//!                                            └─► Attachments (state + netlink)
//!                                            └─► DataplaneView (VRFs, peers, BGP, drops)
//! ```
//!
//! The socket is created with mode 0600 (only root talks to the agent), by
//! binding a temporary name, setting the mode, and renaming it into place, so
//! there is no moment at which it is reachable with a wider mode.
//! A malformed request gets `{"ok":false,"error":{"code":"malformed_request",
//! ...}}` and the connection stays usable. `docs/api.md` lists every op.
//!
//! The requests, answers, error codes and the blocking client are the
//! `pisek-api` crate, which the clients link; this module is the server.
//! The wire types are re-exported here so the agent's modules name them as
//! `crate::api::X`.

mod rib;
mod server;

pub use pisek_api::{
    ApiError, BgpSessionInfo, Detached, DropCounter, GcResult, MAX_REQUEST_BYTES, PeerInfo,
    Request, Response, RibRoute, RouteInfo, Status, TenantChoice, VrfInfo, codes,
};
pub use server::{ApiServer, DataplaneView, NoDataplane, bind_socket};

#[cfg(test)]
mod tests;
