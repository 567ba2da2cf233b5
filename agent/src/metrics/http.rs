//! The few bytes of HTTP/1.1 the metrics endpoint speaks (RFC 9112): find the
//! end of a request head, parse it, and write a response that closes the
//! connection. One request per connection; a scraper opens a new one each
//! time, and a server that never keeps a connection open has nothing to time
//! out between requests.
//!
//! Pure functions over byte slices: no socket here, so the parser is fuzzed
//! (`agent/fuzz/fuzz_targets/metrics_request.rs`) and tested without I/O.

use thiserror::Error;

/// The longest request head read (request line and headers, final CRLF
/// included). Prometheus sends about 300 bytes; 8 KiB is what nginx allows.
pub const MAX_HEAD_BYTES: usize = 8 * 1024;

/// Headers counted in one request; more is an attack, not a scraper.
pub const MAX_HEADERS: usize = 64;

/// A request method the endpoint tells apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// `GET`.
    Get,
    /// `HEAD`: the `GET` answer without its body (RFC 9110 §9.3.2).
    Head,
    /// Any other well-formed method; answered 405 on a known path.
    Other,
}

/// A parsed request head: what the endpoint needs of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestHead<'a> {
    /// The method.
    pub method: Method,
    /// The path of the origin-form target, without its query (`/metrics`).
    pub path: &'a str,
}

/// Why a request head was refused; each answers 400 Bad Request.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum HttpError {
    /// The head is not valid UTF-8 (it must be ASCII, RFC 9112 §2.2).
    #[error("request head is not ASCII")]
    NotAscii,
    /// The request line is not `method SP target SP version`.
    #[error("malformed request line")]
    RequestLine,
    /// The method is not a token (RFC 9110 §9.1).
    #[error("malformed method")]
    Method,
    /// The target is not in origin form (`/path?query`, RFC 9112 §3.2.1).
    #[error("request target is not an absolute path")]
    Target,
    /// Not `HTTP/1.0` or `HTTP/1.1`.
    #[error("unsupported HTTP version")]
    Version,
    /// A header line without a colon, with an empty or non-token name, or
    /// with whitespace before the colon (RFC 9112 §5.1 says reject it).
    #[error("malformed header line")]
    Header,
    /// A continuation line (obs-fold, RFC 9112 §5.2).
    #[error("obsolete header line folding")]
    ObsFold,
    /// More than [`MAX_HEADERS`] header lines.
    #[error("more than {MAX_HEADERS} header lines")]
    TooManyHeaders,
    /// No CRLF CRLF ends the head.
    #[error("request head does not end with an empty line")]
    Unterminated,
}

/// The length of the head at the start of `buf` (through its CRLF CRLF), or
/// `None` when the head is not complete yet.
pub fn head_len(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4)
}

/// Parses a complete request head (as delimited by [`head_len`]).
pub fn parse_request_head(head: &[u8]) -> Result<RequestHead<'_>, HttpError> {
    let text = std::str::from_utf8(head).map_err(|_| HttpError::NotAscii)?;
    if !text.is_ascii() {
        return Err(HttpError::NotAscii);
    }
    let text = text
        .strip_suffix("\r\n\r\n")
        .ok_or(HttpError::Unterminated)?;
    let mut lines = text.split("\r\n");
    let request_line = lines.next().ok_or(HttpError::RequestLine)?;
    let head = parse_request_line(request_line)?;
    for (count, line) in lines.enumerate() {
        if count >= MAX_HEADERS {
            return Err(HttpError::TooManyHeaders);
        }
        check_header_line(line)?;
    }
    Ok(head)
}

/// `method SP request-target SP HTTP-version` (RFC 9112 §3).
fn parse_request_line(line: &str) -> Result<RequestHead<'_>, HttpError> {
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(HttpError::RequestLine);
    };
    if method.is_empty() || !method.bytes().all(is_tchar) {
        return Err(HttpError::Method);
    }
    if !target.starts_with('/') || !target.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(HttpError::Target);
    }
    if version != "HTTP/1.1" && version != "HTTP/1.0" {
        return Err(HttpError::Version);
    }
    let method = match method {
        "GET" => Method::Get,
        "HEAD" => Method::Head,
        _ => Method::Other,
    };
    let path = target.split_once('?').map_or(target, |(path, _)| path);
    Ok(RequestHead { method, path })
}

/// `field-name ":" OWS field-value OWS` (RFC 9112 §5). The values are not
/// needed: the endpoint answers the same page whatever the client accepts.
fn check_header_line(line: &str) -> Result<(), HttpError> {
    if line.starts_with([' ', '\t']) {
        return Err(HttpError::ObsFold);
    }
    let (name, value) = line.split_once(':').ok_or(HttpError::Header)?;
    if name.is_empty() || !name.bytes().all(is_tchar) {
        return Err(HttpError::Header);
    }
    if value.bytes().any(|b| b.is_ascii_control() && b != b'\t') {
        return Err(HttpError::Header);
    }
    Ok(())
}

/// `tchar` of RFC 9110 §5.6.2.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// A complete response: status line, headers, and (unless `head_only`) the
/// body. Always `Connection: close` (see the module comment).
pub fn response(status: u16, content_type: &str, body: &[u8], head_only: bool) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n",
        reason_phrase(status),
        body.len()
    )
    .into_bytes();
    if status == 405 {
        out.extend_from_slice(b"Allow: GET, HEAD\r\n");
    }
    out.extend_from_slice(b"\r\n");
    if !head_only {
        out.extend_from_slice(body);
    }
    out
}

fn reason_phrase(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "Internal Server Error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static PROMETHEUS_SCRAPE: &[u8] = b"GET /metrics HTTP/1.1\r\n\
        Host: 127.0.0.1:9469\r\n\
        User-Agent: Prometheus/2.45.0\r\n\
        Accept: application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5,*/*;q=0.1\r\n\
        Accept-Encoding: gzip\r\n\
        X-Prometheus-Scrape-Timeout-Seconds: 10\r\n\
        \r\n";

    #[test]
    fn prometheus_scrape_parses_as_get_metrics() {
        assert_eq!(head_len(PROMETHEUS_SCRAPE), Some(PROMETHEUS_SCRAPE.len()));
        let head = parse_request_head(PROMETHEUS_SCRAPE).unwrap();
        assert_eq!(head.method, Method::Get);
        assert_eq!(head.path, "/metrics");
    }

    #[test]
    fn query_is_not_part_of_the_path() {
        let head = parse_request_head(b"HEAD /health?x=1 HTTP/1.0\r\n\r\n").unwrap();
        assert_eq!(
            head,
            RequestHead {
                method: Method::Head,
                path: "/health"
            }
        );
    }

    #[test]
    fn incomplete_head_has_no_length() {
        assert_eq!(head_len(b"GET /metrics HTTP/1.1\r\nHost: x\r\n"), None);
        assert_eq!(head_len(b""), None);
    }

    #[test]
    fn malformed_heads_are_refused_with_the_reason() {
        let cases: &[(&[u8], HttpError)] = &[
            (b"\r\n\r\n", HttpError::RequestLine),
            (b"GET /metrics\r\n\r\n", HttpError::RequestLine),
            (b"GET  /metrics HTTP/1.1\r\n\r\n", HttpError::RequestLine),
            (b"G(T /metrics HTTP/1.1\r\n\r\n", HttpError::Method),
            (b"GET http://x/metrics HTTP/1.1\r\n\r\n", HttpError::Target),
            (b"GET /metrics HTTP/2.0\r\n\r\n", HttpError::Version),
            (b"GET /metrics HTTP/1.1\r\nHost\r\n\r\n", HttpError::Header),
            (
                b"GET /metrics HTTP/1.1\r\nHost : x\r\n\r\n",
                HttpError::Header,
            ),
            (
                b"GET /metrics HTTP/1.1\r\nA: b\r\n c\r\n\r\n",
                HttpError::ObsFold,
            ),
            (
                b"GET /metrics HTTP/1.1\r\nA: \x01\r\n\r\n",
                HttpError::Header,
            ),
            (b"GET /\xc3\xa9 HTTP/1.1\r\n\r\n", HttpError::NotAscii),
            (b"GET /\xff HTTP/1.1\r\n\r\n", HttpError::NotAscii),
            (b"GET / HTTP/1.1\r\n", HttpError::Unterminated),
        ];
        for (input, expected) in cases {
            assert_eq!(
                parse_request_head(input).as_ref().map_err(Clone::clone),
                Err(expected.clone()),
                "{}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn too_many_headers_are_refused() {
        let mut head = b"GET /metrics HTTP/1.1\r\n".to_vec();
        for i in 0..=MAX_HEADERS {
            head.extend_from_slice(format!("X-{i}: y\r\n").as_bytes());
        }
        head.extend_from_slice(b"\r\n");
        assert_eq!(parse_request_head(&head), Err(HttpError::TooManyHeaders));
    }

    #[test]
    fn head_response_has_the_length_but_no_body() {
        let out = response(200, "text/plain", b"hello", true);
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n"));
        assert!(text.contains("Content-Length: 5\r\n"));
        assert!(text.ends_with("\r\n\r\n"));
    }

    #[test]
    fn method_not_allowed_names_the_allowed_methods() {
        let text = String::from_utf8(response(405, "text/plain", b"", false)).unwrap();
        assert!(text.contains("Allow: GET, HEAD\r\n"));
    }
}
