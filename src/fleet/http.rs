//! A blocking HTTP/1.1 client for the Fleet API's REST transport: one `POST` of a protobuf body per
//! connection (`Connection: close`), the answer read up to its `Content-Length` and never past
//! [`MAX_RESPONSE_BYTES`]. A connection per request survives a SuperLink restart without any state
//! and costs one TCP handshake per call, next to the seconds between calls.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

/// Largest answer read (the heads are a few MB; Flower sends one message per pull).
pub const MAX_RESPONSE_BYTES: u64 = 256 << 20;
/// Largest header block read.
const MAX_HEADER_BYTES: u64 = 64 << 10;

/// Why a request failed.
#[derive(Debug)]
pub enum HttpError {
    /// No connection, or the connection broke (the SuperLink may be restarting: retry later).
    Unreachable(String),
    /// The server answered, but not with `200` and a body we accept.
    Status(u16, String),
    /// The answer is not HTTP/1.1 as expected, or too large.
    Malformed(String),
}

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HttpError::Unreachable(m) => write!(f, "unreachable: {m}"),
            HttpError::Status(code, body) => write!(f, "HTTP {code}: {body}"),
            HttpError::Malformed(m) => write!(f, "malformed answer: {m}"),
        }
    }
}

/// Bytes that went over the wire, both ways (headers included, TLS records excluded).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Traffic {
    /// Bytes written to the SuperLink.
    pub sent: u64,
    /// Bytes read from it.
    pub received: u64,
}

/// The client end of a TLS connection: opens a stream over a connected socket.
pub trait Secure: Send + Sync {
    /// Wraps `tcp` (connected to `host`) in TLS.
    fn wrap(&self, host: &str, tcp: TcpStream) -> Result<Box<dyn ReadWrite>, String>;
}

/// A byte stream both ways.
pub trait ReadWrite: Read + Write + Send {}
impl<T: Read + Write + Send> ReadWrite for T {}

/// The Fleet API's HTTP end point at `HOST:PORT`.
pub struct HttpClient {
    address: String,
    host: String,
    timeout: Duration,
    tls: Option<std::sync::Arc<dyn Secure>>,
    /// Everything sent and received so far.
    pub traffic: Traffic,
}

impl HttpClient {
    /// A client of `address` (`HOST:PORT`), with `tls` when given; `timeout` bounds connecting,
    /// each read and each write.
    pub fn new(address: &str, timeout: Duration, tls: Option<std::sync::Arc<dyn Secure>>) -> Self {
        let host = address
            .rsplit_once(':')
            .map_or(address, |(h, _)| h)
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        Self {
            address: address.to_string(),
            host,
            timeout,
            tls,
            traffic: Traffic::default(),
        }
    }

    /// The `HOST:PORT` this client talks to.
    pub fn address(&self) -> &str {
        &self.address
    }

    fn connect(&self) -> Result<Box<dyn ReadWrite>, HttpError> {
        let unreachable = |e: String| HttpError::Unreachable(e);
        let addrs: Vec<_> = self
            .address
            .to_socket_addrs()
            .map_err(|e| unreachable(format!("cannot resolve: {e}")))?
            .collect();
        let mut last = String::from("no address");
        for a in addrs {
            match TcpStream::connect_timeout(&a, self.timeout) {
                Ok(tcp) => {
                    let setup = tcp
                        .set_read_timeout(Some(self.timeout))
                        .and_then(|_| tcp.set_write_timeout(Some(self.timeout)))
                        .and_then(|_| tcp.set_nodelay(true));
                    setup.map_err(|e| unreachable(e.to_string()))?;
                    return match &self.tls {
                        Some(t) => t.wrap(&self.host, tcp).map_err(unreachable),
                        None => Ok(Box::new(tcp)),
                    };
                }
                Err(e) => last = e.to_string(),
            }
        }
        Err(unreachable(last))
    }

    /// `POST path` with a protobuf `body`; the answer's body.
    pub fn post(&mut self, path: &str, body: &[u8]) -> Result<Vec<u8>, HttpError> {
        let mut stream = self.connect()?;
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/protobuf\r\n\
             Accept: application/protobuf\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            self.address,
            body.len()
        );
        let broken = |e: std::io::Error| HttpError::Unreachable(format!("connection broke: {e}"));
        stream.write_all(head.as_bytes()).map_err(broken)?;
        stream.write_all(body).map_err(broken)?;
        stream.flush().map_err(broken)?;
        self.traffic.sent += (head.len() + body.len()) as u64;
        let (status, answer, read) = read_response(stream)?;
        self.traffic.received += read;
        if status != 200 {
            let text = String::from_utf8_lossy(&answer[..answer.len().min(300)]).into_owned();
            return Err(HttpError::Status(status, text));
        }
        Ok(answer)
    }
}

/// Reads a response: its status, its body (by `Content-Length`, else to the end of the stream)
/// and the bytes read.
fn read_response(stream: Box<dyn ReadWrite>) -> Result<(u16, Vec<u8>, u64), HttpError> {
    let mut reader = BufReader::new(stream.take(MAX_HEADER_BYTES + MAX_RESPONSE_BYTES));
    let broken = |e: std::io::Error| HttpError::Unreachable(format!("connection broke: {e}"));
    let mut read = 0u64;
    let mut line = String::new();
    read += reader.read_line(&mut line).map_err(broken)? as u64;
    let status: u16 = line
        .strip_prefix("HTTP/1.")
        .and_then(|r| r.get(2..5))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| HttpError::Malformed(format!("status line {:?}", line.trim_end())))?;
    let mut length: Option<u64> = None;
    let mut chunked = false;
    loop {
        line.clear();
        let n = reader.read_line(&mut line).map_err(broken)? as u64;
        read += n;
        if n == 0 {
            return Err(HttpError::Malformed("the headers end early".into()));
        }
        if read > MAX_HEADER_BYTES {
            return Err(HttpError::Malformed("headers over 64 KiB".into()));
        }
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            let (k, v) = (k.trim().to_ascii_lowercase(), v.trim());
            if k == "content-length" {
                length = Some(
                    v.parse()
                        .map_err(|_| HttpError::Malformed(format!("Content-Length {v:?}")))?,
                );
            } else if k == "transfer-encoding" && v.eq_ignore_ascii_case("chunked") {
                chunked = true;
            }
        }
    }
    if chunked {
        return Err(HttpError::Malformed(
            "chunked answers are not used by the Fleet API".into(),
        ));
    }
    let mut body = Vec::new();
    match length {
        Some(n) if n > MAX_RESPONSE_BYTES => {
            return Err(HttpError::Malformed(format!(
                "an answer of {n} bytes, over the limit of {MAX_RESPONSE_BYTES}"
            )))
        }
        Some(n) => {
            body.resize(n as usize, 0);
            reader.read_exact(&mut body).map_err(broken)?;
        }
        None => {
            reader.read_to_end(&mut body).map_err(broken)?;
        }
    }
    read += body.len() as u64;
    Ok((status, body, read))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    fn serve_once(answer: &'static [u8]) -> String {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap().to_string();
        std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            s.write_all(answer).unwrap();
        });
        addr
    }

    #[test]
    fn reads_a_body_by_its_length_and_counts_bytes() {
        let addr = serve_once(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabcdef");
        let mut c = HttpClient::new(&addr, Duration::from_secs(5), None);
        assert_eq!(c.post("/x", b"12").unwrap(), b"abc");
        assert!(c.traffic.sent > 2 && c.traffic.received > 3);
    }

    #[test]
    fn non_200_and_oversize_are_errors() {
        let addr = serve_once(b"HTTP/1.1 500 Internal\r\nContent-Length: 4\r\n\r\noops");
        let mut c = HttpClient::new(&addr, Duration::from_secs(5), None);
        assert!(matches!(c.post("/x", b""), Err(HttpError::Status(500, b)) if b == "oops"));
        let addr = serve_once(b"HTTP/1.1 200 OK\r\nContent-Length: 999999999999\r\n\r\n");
        let mut c = HttpClient::new(&addr, Duration::from_secs(5), None);
        assert!(matches!(c.post("/x", b""), Err(HttpError::Malformed(_))));
        let mut c = HttpClient::new("127.0.0.1:1", Duration::from_secs(2), None);
        assert!(matches!(c.post("/x", b""), Err(HttpError::Unreachable(_))));
    }
}
