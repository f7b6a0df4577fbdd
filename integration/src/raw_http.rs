//! A deliberately small HTTP/1.1 client over a plain TCP socket, one connection per
//! request. General clients normalise or refuse the inputs these tests must send (`..`
//! segments, `%2e%2e%2f`, missing `Content-Length`, a declared body that never comes),
//! so the tests write the request bytes themselves and parse what comes back.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The longest any single request may take, connection to last byte.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// A response head bigger than this is a bug in the node (or in this client).
const HEAD_BYTES_MAX: usize = 64 * 1024;
/// Bounds what a test will buffer from one response.
const BODY_BYTES_MAX: usize = 64 * 1024 * 1024;

/// How the request body goes on the wire.
#[derive(Clone, Debug)]
pub enum Body {
    /// No body and no `Content-Length`.
    Empty,
    /// The bytes, with a matching `Content-Length`.
    Full(Vec<u8>),
    /// `Transfer-Encoding: chunked`, no `Content-Length`.
    Chunked(Vec<Vec<u8>>),
    /// Declares `Content-Length` but sends no body bytes at all: the node must answer
    /// from the headers alone (413, 507) without waiting for the body.
    DeclaredOnly(u64),
}

#[derive(Clone, Debug)]
pub struct Request {
    pub method: String,
    /// Path and query exactly as they go on the wire.
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: Body,
}

impl Request {
    pub fn new(method: &str, target: &str) -> Self {
        Self {
            method: method.to_string(),
            target: target.to_string(),
            headers: Vec::new(),
            body: Body::Empty,
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    pub fn body(mut self, body: Body) -> Self {
        self.body = body;
        self
    }
}

#[derive(Clone, Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// False when the connection ended before the body announced by the head: the
    /// node aborted a stream (which is how it must refuse to send bad bytes late).
    pub body_complete: bool,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|error| {
            panic!(
                "status {} body is not JSON ({error}): {:?}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// The `error` code of a JSON error body, checking the contract's error shape.
    pub fn error_code(&self) -> String {
        let json = self.json();
        let code = json["error"]
            .as_str()
            .unwrap_or_else(|| panic!("error body without an \"error\" string: {json}"));
        let message = json["message"]
            .as_str()
            .unwrap_or_else(|| panic!("error body without a \"message\" string: {json}"));
        assert!(!message.is_empty(), "error {code} has an empty message");
        code.to_string()
    }
}

/// Sends one request on a fresh connection (`Connection: close`) and reads the whole
/// response. `Host` is set to `address`, unless the request names its own `Host`
/// (a virtual-hosted–style request, a bad host).
pub async fn send(address: SocketAddr, request: &Request) -> std::io::Result<Response> {
    tokio::time::timeout(REQUEST_TIMEOUT, send_without_timeout(address, request))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "request timed out"))?
}

async fn send_without_timeout(address: SocketAddr, request: &Request) -> std::io::Result<Response> {
    let mut stream = TcpStream::connect(address).await?;
    stream.set_nodelay(true)?;
    let mut head = format!("{} {} HTTP/1.1\r\n", request.method, request.target);
    if !request
        .headers
        .iter()
        .any(|(name, _)| name.eq_ignore_ascii_case("host"))
    {
        head.push_str(&format!("host: {address}\r\n"));
    }
    head.push_str("connection: close\r\n");
    for (name, value) in &request.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    match &request.body {
        Body::Empty => {}
        Body::Full(bytes) => head.push_str(&format!("content-length: {}\r\n", bytes.len())),
        Body::Chunked(_) => head.push_str("transfer-encoding: chunked\r\n"),
        Body::DeclaredOnly(length) => head.push_str(&format!("content-length: {length}\r\n")),
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await?;
    match &request.body {
        Body::Empty | Body::DeclaredOnly(_) => {}
        Body::Full(bytes) => {
            // The node may answer and close early (e.g. a refused upload): a failed
            // write is then not an error of the test; the response says what happened.
            if stream.write_all(bytes).await.is_err() {
                return read_response(&mut stream, &request.method).await;
            }
        }
        Body::Chunked(chunks) => {
            for chunk in chunks.iter().filter(|chunk| !chunk.is_empty()) {
                let mut framed = format!("{:x}\r\n", chunk.len()).into_bytes();
                framed.extend_from_slice(chunk);
                framed.extend_from_slice(b"\r\n");
                if stream.write_all(&framed).await.is_err() {
                    return read_response(&mut stream, &request.method).await;
                }
            }
            let _ = stream.write_all(b"0\r\n\r\n").await;
        }
    }
    read_response(&mut stream, &request.method).await
}

async fn read_response(stream: &mut TcpStream, method: &str) -> std::io::Result<Response> {
    let mut buffer = Vec::with_capacity(8192);
    let (status, headers, head_length) = loop {
        let mut chunk = [0u8; 8192];
        let read = stream.read(&mut chunk).await?;
        if read == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!(
                    "connection closed before a complete response head ({} bytes)",
                    buffer.len()
                ),
            ));
        }
        buffer.extend_from_slice(&chunk[..read]);
        let mut parsed_headers = [httparse::EMPTY_HEADER; 64];
        let mut response = httparse::Response::new(&mut parsed_headers);
        match response.parse(&buffer) {
            Ok(httparse::Status::Complete(length)) => {
                let headers = response
                    .headers
                    .iter()
                    .map(|header| {
                        (
                            header.name.to_ascii_lowercase(),
                            String::from_utf8_lossy(header.value).into_owned(),
                        )
                    })
                    .collect::<Vec<_>>();
                break (response.code.unwrap_or(0), headers, length);
            }
            Ok(httparse::Status::Partial) if buffer.len() < HEAD_BYTES_MAX => continue,
            Ok(httparse::Status::Partial) => {
                return Err(std::io::Error::other("response head too large"))
            }
            Err(error) => return Err(std::io::Error::other(format!("bad response: {error}"))),
        }
    };
    let mut response = Response {
        status,
        headers,
        body: Vec::new(),
        body_complete: true,
    };
    let mut rest = buffer.split_off(head_length);
    if method.eq_ignore_ascii_case("HEAD") || status == 204 || status == 304 || status < 200 {
        return Ok(response);
    }
    // Read to the end of the connection (we asked for `Connection: close`), tolerating a
    // reset: an aborted stream is information, not an error of the client.
    let mut chunk = vec![0u8; 256 * 1024];
    loop {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(read) => {
                rest.extend_from_slice(&chunk[..read]);
                if rest.len() > BODY_BYTES_MAX {
                    return Err(std::io::Error::other("response body too large"));
                }
            }
        }
    }
    let chunked = response
        .header("transfer-encoding")
        .is_some_and(|value| value.to_ascii_lowercase().contains("chunked"));
    if chunked {
        let (body, complete) = decode_chunked(&rest);
        response.body = body;
        response.body_complete = complete;
    } else if let Some(length) = response.header("content-length") {
        let length: usize = length
            .trim()
            .parse()
            .map_err(|_| std::io::Error::other("bad content-length in response"))?;
        response.body_complete = rest.len() >= length;
        rest.truncate(length);
        response.body = rest;
    } else {
        response.body = rest;
    }
    Ok(response)
}

/// Decodes a chunked body; `false` if it ended before the terminating zero chunk.
fn decode_chunked(mut input: &[u8]) -> (Vec<u8>, bool) {
    let mut body = Vec::new();
    loop {
        let Some(line_end) = input.windows(2).position(|window| window == b"\r\n") else {
            return (body, false);
        };
        let size_text = String::from_utf8_lossy(&input[..line_end]);
        let size_text = size_text.split(';').next().unwrap_or("").trim();
        let Ok(size) = usize::from_str_radix(size_text, 16) else {
            return (body, false);
        };
        input = &input[line_end + 2..];
        if size == 0 {
            return (body, true);
        }
        if input.len() < size + 2 {
            body.extend_from_slice(&input[..input.len().min(size)]);
            return (body, false);
        }
        body.extend_from_slice(&input[..size]);
        input = &input[size + 2..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chunked_body_is_complete_only_with_its_zero_chunk() {
        assert_eq!(
            decode_chunked(b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\n\r\n"),
            (b"hello world".to_vec(), true)
        );
        assert_eq!(
            decode_chunked(b"5\r\nhello\r\n6\r\n wo"),
            (b"hello wo".to_vec(), false)
        );
        assert_eq!(decode_chunked(b"zz\r\n"), (Vec::new(), false));
    }

    #[tokio::test]
    async fn a_response_cut_short_of_its_content_length_is_marked_incomplete() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut request = [0u8; 1024];
            let _ = stream.read(&mut request).await;
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nhalf")
                .await;
        });
        let response = send(address, &Request::new("GET", "/x")).await.unwrap();
        assert_eq!(response.status, 200);
        assert_eq!(response.body, b"half");
        assert!(!response.body_complete);
    }
}
