//! Talking to the agent: connect with a bounded wait (the agent may be
//! restarting), one request, the answer or a CNI error. A missing agent is
//! error 11 ("try again later") once the wait is over, never a hang.

use crate::error::{CniError, codes};
use pisek_api::{ApiClient, ClientError, Request};
use serde::de::DeserializeOwned;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How often a connect is retried while the agent is away.
const RETRY_EVERY: Duration = Duration::from_millis(100);

/// The agent at a socket.
pub struct Agent {
    socket: PathBuf,
    wait: Duration,
}

impl Agent {
    /// The agent at `socket`, waited for at most `wait` when it is away.
    pub fn new(socket: &Path, wait: Duration) -> Agent {
        Agent {
            socket: socket.to_path_buf(),
            wait,
        }
    }

    /// Connects, retrying while the socket is missing or refuses (an agent
    /// starting or restarting) until the wait is over: then error
    /// `unreachable_code` (11 for ADD/DEL/CHECK/GC, 50 for STATUS).
    pub fn connect(&self, unreachable_code: u32) -> Result<ApiClient, CniError> {
        let deadline = Instant::now() + self.wait;
        loop {
            match ApiClient::connect(&self.socket) {
                Ok(client) => return Ok(client),
                Err(ClientError::Io { source, .. })
                    if matches!(
                        source.kind(),
                        ErrorKind::NotFound | ErrorKind::ConnectionRefused
                    ) =>
                {
                    if Instant::now() >= deadline {
                        return Err(CniError::new(
                            unreachable_code,
                            format!(
                                "the Pisek agent is not reachable at {}",
                                self.socket.display()
                            ),
                        )
                        .details(format!(
                            "{source} (waited {} s; is pisek-agent running?)",
                            self.wait.as_secs()
                        )));
                    }
                    std::thread::sleep(RETRY_EVERY);
                }
                Err(e) => {
                    return Err(CniError::new(
                        codes::IO_FAILURE,
                        format!("cannot connect to the Pisek agent: {e}"),
                    ));
                }
            }
        }
    }

    /// Connects and sends one request. When the connection breaks before
    /// the answer (the agent restarted), the request is sent again until
    /// the wait is over: every request the plugin sends is idempotent in
    /// the agent (a repeated attach answers the existing attachment).
    pub fn call<T: DeserializeOwned>(&self, request: &Request) -> Result<T, CniError> {
        let deadline = Instant::now() + self.wait;
        loop {
            let mut client = self.connect(codes::TRY_AGAIN_LATER)?;
            match client.call(request) {
                Ok(answer) => return Ok(answer),
                Err(ClientError::Api(api)) => return Err(CniError::from_agent(&api)),
                Err(ClientError::Decode(d)) => {
                    return Err(CniError::new(
                        codes::AGENT_ANSWER,
                        "the Pisek agent's answer could not be decoded (plugin and agent versions differ?)",
                    )
                    .details(d));
                }
                Err(e @ ClientError::Io { .. }) => {
                    // A timeout means the agent is there but slow: asking
                    // again would only queue behind the first request.
                    let timed_out = matches!(&e, ClientError::Io { source, .. }
                        if matches!(source.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut));
                    if timed_out || Instant::now() >= deadline {
                        return Err(CniError::new(
                            codes::TRY_AGAIN_LATER,
                            "the Pisek agent did not answer; try again",
                        )
                        .details(e.to_string()));
                    }
                    std::thread::sleep(RETRY_EVERY);
                }
            }
        }
    }
}
