//! A blocking client of the agent's API, for `pisekctl`, the CNI plugin and tests.

use crate::error::ApiError;
use crate::request::Request;
use crate::response::Response;
use serde::de::DeserializeOwned;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;
use thiserror::Error;

/// How long a call may take: an attach does a few dozen netlink requests.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a call failed.
#[derive(Debug, Error)]
pub enum ClientError {
    /// The socket could not be reached, or the connection broke.
    #[error("agent API {path}: {source}")]
    Io {
        /// The socket path.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// The agent answered with an error.
    #[error("{0}")]
    Api(ApiError),
    /// The answer could not be decoded.
    #[error("unexpected answer from the agent: {0}")]
    Decode(String),
}

/// A connection to the agent.
pub struct ApiClient {
    path: String,
    reader: BufReader<UnixStream>,
}

impl ApiClient {
    /// Connects to the socket at `path`.
    pub fn connect(path: &Path) -> Result<ApiClient, ClientError> {
        let io = |source| ClientError::Io {
            path: path.display().to_string(),
            source,
        };
        let stream = UnixStream::connect(path).map_err(io)?;
        stream.set_read_timeout(Some(CALL_TIMEOUT)).map_err(io)?;
        stream.set_write_timeout(Some(CALL_TIMEOUT)).map_err(io)?;
        Ok(ApiClient {
            path: path.display().to_string(),
            reader: BufReader::new(stream),
        })
    }

    /// Sends one request and decodes the result as `T`.
    pub fn call<T: DeserializeOwned>(&mut self, request: &Request) -> Result<T, ClientError> {
        let response = self.call_raw(request)?;
        match response {
            Response {
                ok: true,
                result: Some(v),
                ..
            } => serde_json::from_value(v).map_err(|e| ClientError::Decode(e.to_string())),
            Response { error: Some(e), .. } => Err(ClientError::Api(e)),
            _ => Err(ClientError::Decode("neither result nor error".into())),
        }
    }

    /// Sends one request and returns the response as sent.
    pub fn call_raw(&mut self, request: &Request) -> Result<Response, ClientError> {
        let mut line =
            serde_json::to_vec(request).map_err(|e| ClientError::Decode(e.to_string()))?;
        line.push(b'\n');
        self.send_line(&line)
    }

    /// Sends raw bytes (one line) and reads one response: for tests of
    /// malformed input and for debugging.
    pub fn send_line(&mut self, line: &[u8]) -> Result<Response, ClientError> {
        let io = |source| ClientError::Io {
            path: self.path.clone(),
            source,
        };
        self.reader.get_mut().write_all(line).map_err(io)?;
        let mut answer = String::new();
        let n = self
            .reader
            .read_line(&mut answer)
            .map_err(|source| ClientError::Io {
                path: self.path.clone(),
                source,
            })?;
        if n == 0 {
            return Err(ClientError::Io {
                path: self.path.clone(),
                source: std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the agent closed the connection",
                ),
            });
        }
        serde_json::from_str(&answer).map_err(|e| ClientError::Decode(e.to_string()))
    }
}
