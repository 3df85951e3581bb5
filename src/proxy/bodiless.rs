//! GET and HEAD requests (no body, no upgrade: most of what an app sends) on the
//! gateway's own HTTP/1.1 exchange over a pooled upstream connection.
//!
//! Why not hyper's client connection, which carries every other request: it runs each
//! connection as a task of its own and hands the request and the response across
//! channels to it. For a small GET that was a third of the gateway's instructions per
//! request (callgrind). Here the request's own task writes the request head and reads
//! the answer.
//!
//! The answer is read as RFC 9112 §6.3 says. Interim 1xx answers are skipped. HTTP/1.0
//! answers are read too (the connection is kept only when they say `keep-alive`).
//! There is no body for HEAD, 204 and 304. `Transfer-Encoding: chunked` is decoded; otherwise
//! `Content-Length` counts the body; without either, the body lasts until the upstream
//! closes. Some answers are refused as a failed exchange (502), because they are how
//! response splitting is tried:
//! - both `Transfer-Encoding` and `Content-Length`;
//! - lengths that disagree;
//! - another transfer coding;
//! - a malformed head or chunk.
//!
//! A connection goes back to the pool only after a body that ended where its framing
//! said, with nothing after it.

use super::client::Pool;
use super::headers;
use bytes::{Buf, Bytes, BytesMut};
use http::header::{CONNECTION, CONTENT_LENGTH, TRANSFER_ENCODING};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Response, StatusCode, Version, request};
use http_body::{Body, Frame, SizeHint};
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker, ready};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// Read buffer per connection (hyper's default too); a head may grow it to `MAX_HEAD`.
const BUFFER: usize = 8 * 1024;
/// The largest response head accepted, and the most header fields in it.
const MAX_HEAD: usize = 64 * 1024;
const MAX_HEADERS: usize = 128;
/// The longest chunk-size line (with extensions) or trailer line accepted.
const MAX_LINE: usize = 4 * 1024;

/// Whether a request goes this way: GET or HEAD, with no body and no upgrade.
pub fn applies(method: &Method, body_is_empty: bool, upgrade: bool) -> bool {
    (method == Method::GET || method == Method::HEAD) && body_is_empty && !upgrade
}

/// An upstream connection with its read buffer (bytes read but not yet used).
pub struct Connection {
    stream: TcpStream,
    buffer: BytesMut,
}

impl Connection {
    pub fn new(stream: TcpStream) -> Self {
        Self { stream, buffer: BytesMut::with_capacity(BUFFER) }
    }

    /// Whether an idle connection can carry a request: the upstream has neither
    /// closed it nor sent anything unasked (either makes it readable).
    pub fn is_open_and_quiet(&self) -> bool {
        self.buffer.is_empty() && self.stream.poll_read_ready(&mut Context::from_waker(Waker::noop())).is_pending()
    }

    /// Reads more into the buffer; `Ok(0)` at the end of the stream.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        if self.buffer.capacity() - self.buffer.len() < 1024 {
            self.buffer.reserve(BUFFER);
        }
        tokio_util::io::poll_read_buf(Pin::new(&mut self.stream), cx, &mut self.buffer)
    }
}

/// Why an exchange failed.
#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    #[error("sending the request: {0}")]
    Write(#[source] io::Error),
    #[error("reading the response: {0}")]
    Read(#[source] io::Error),
    #[error("the upstream closed the connection without answering")]
    ClosedUnanswered,
    #[error("invalid response from the upstream: {0}")]
    Invalid(&'static str),
}

impl ExchangeError {
    /// Whether the upstream can have seen nothing of the request, or answered nothing:
    /// on a reused connection, the sign it closed the connection while it was idle.
    pub fn unanswered(&self) -> bool {
        matches!(self, Self::Write(_) | Self::ClosedUnanswered)
    }
}

/// The request head in HTTP/1.1 form: `Host` first, then the client's headers, then
/// the gateway's (`added`). Header values cannot hold CR or LF (`http` refuses them),
/// so nothing a client sent can end a line here.
pub fn encode(head: &request::Parts, host: &HeaderValue, added: &[(HeaderName, HeaderValue)]) -> Vec<u8> {
    let target = head.uri.path_and_query().map_or("/", |pq| pq.as_str());
    let size = |(name, value): (&HeaderName, &HeaderValue)| name.as_str().len() + value.len() + 4;
    let fields: usize = head.headers.iter().chain(added.iter().map(|(n, v)| (n, v))).map(size).sum();
    let mut out = Vec::with_capacity(head.method.as_str().len() + target.len() + host.len() + fields + 24);
    out.extend_from_slice(head.method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\nhost: ");
    out.extend_from_slice(host.as_bytes());
    out.extend_from_slice(b"\r\n");
    for (name, value) in head.headers.iter().chain(added.iter().map(|(n, v)| (n, v))) {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// Sends `request` (from [`encode`]) on `connection` and reads the answer's head.
/// The body is read as the response is streamed; `lease` puts the connection back
/// in the pool when it ends cleanly.
pub async fn exchange(
    mut connection: Connection,
    request: &[u8],
    head_request: bool,
    lease: (Arc<Pool>, usize),
) -> Result<Response<UpstreamBody>, ExchangeError> {
    connection.stream.write_all(request).await.map_err(ExchangeError::Write)?;
    let Head { parts, framing, close } = read_head(&mut connection, head_request).await?;
    // A body framed by the close leaves nothing to reuse.
    let lease = (!close && framing != Framing::UntilClose).then_some(lease);
    let mut body = UpstreamBody { connection: Some(connection), framing, lease };
    if body.is_end_stream() {
        body.finish();
    }
    Ok(Response::from_parts(parts, body))
}

async fn read_head(connection: &mut Connection, head_request: bool) -> Result<Head, ExchangeError> {
    let mut received = false;
    loop {
        if !connection.buffer.is_empty() {
            if let Some(answer) = parse_head(&mut connection.buffer, head_request)? {
                return Ok(answer);
            }
            if connection.buffer.len() > MAX_HEAD {
                return Err(ExchangeError::Invalid("response head too large"));
            }
        }
        match std::future::poll_fn(|cx| connection.poll_fill(cx)).await {
            Ok(0) if !received => return Err(ExchangeError::ClosedUnanswered),
            Ok(0) => return Err(ExchangeError::Invalid("the upstream closed the connection within the response head")),
            Ok(_) => received = true,
            Err(err) if !received && err.kind() == io::ErrorKind::ConnectionReset => {
                return Err(ExchangeError::ClosedUnanswered);
            }
            Err(err) => return Err(ExchangeError::Read(err)),
        }
    }
}

/// An answer's head, read.
struct Head {
    parts: http::response::Parts,
    framing: Framing,
    /// The upstream closes the connection after this answer: it said
    /// `Connection: close`, or it answered HTTP/1.0 without `keep-alive`.
    close: bool,
}

/// The final answer's head and how its body is framed, taken off the front of
/// `buffer`; None while the head is incomplete. Interim (1xx) answers are dropped.
/// Hop-by-hop fields are left out of the headers as they are read (a `Connection`
/// that names other fields stays, for `headers::remove_hop_by_hop`).
fn parse_head(buffer: &mut BytesMut, head_request: bool) -> Result<Option<Head>, ExchangeError> {
    loop {
        let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut parsed = httparse::Response::new(&mut fields);
        let length = match parsed.parse(buffer) {
            Ok(httparse::Status::Complete(length)) => length,
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(_) => return Err(ExchangeError::Invalid("malformed response head")),
        };
        let code = parsed.code.unwrap_or_default();
        // HTTP/1.0 answers (simple servers still send them) keep the connection only
        // when they say `keep-alive`, and know no transfer codings.
        let http10 = parsed.version == Some(0);
        if code == 101 {
            return Err(ExchangeError::Invalid("101 answer to a request that asked for no upgrade"));
        }
        if (100..200).contains(&code) {
            buffer.advance(length);
            continue;
        }
        let status = StatusCode::from_u16(code).map_err(|_| ExchangeError::Invalid("invalid status code"))?;
        // Names now, and where each value sits in the head, so values can share its bytes.
        let base = buffer.as_ptr() as usize;
        let mut fields = Vec::with_capacity(parsed.headers.len());
        let (mut close, mut keep_alive, mut codings, mut only_chunked) = (false, false, 0, true);
        for field in parsed.headers.iter() {
            let name = HeaderName::from_bytes(field.name.as_bytes())
                .map_err(|_| ExchangeError::Invalid("invalid header name"))?;
            if name == TRANSFER_ENCODING {
                codings += 1;
                only_chunked &= field.value.eq_ignore_ascii_case(b"chunked");
                continue;
            }
            if name == CONNECTION {
                let mut names_others = false;
                for token in field.value.split(|&byte| byte == b',').map(<[u8]>::trim_ascii) {
                    let (says_close, says_keep_alive) =
                        (token.eq_ignore_ascii_case(b"close"), token.eq_ignore_ascii_case(b"keep-alive"));
                    close |= says_close;
                    keep_alive |= says_keep_alive;
                    names_others |= !(says_close || says_keep_alive);
                }
                if !names_others {
                    continue;
                }
            } else if headers::is_fixed_hop_by_hop(&name) {
                continue;
            }
            fields.push((name, field.value.as_ptr() as usize - base, field.value.len()));
        }
        if http10 && codings > 0 {
            return Err(ExchangeError::Invalid("Transfer-Encoding in an HTTP/1.0 answer"));
        }
        close |= http10 && !keep_alive;
        let transfer_coding = (codings > 0).then_some(codings == 1 && only_chunked);
        let head = buffer.split_to(length).freeze();
        // One more for the X-Request-Id the gateway adds.
        let mut headers = HeaderMap::with_capacity(fields.len() + 1);
        for (name, at, len) in fields {
            let value = HeaderValue::from_maybe_shared(head.slice(at..at + len))
                .map_err(|_| ExchangeError::Invalid("invalid header value"))?;
            headers.append(name, value);
        }
        let framing = framing(status, &headers, transfer_coding, head_request)?;
        let mut response = Response::new(());
        *response.status_mut() = status;
        *response.version_mut() = Version::HTTP_11;
        *response.headers_mut() = headers;
        return Ok(Some(Head { parts: response.into_parts().0, framing, close }));
    }
}

/// How the body of an answer ends.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Framing {
    /// This many bytes are left.
    Length(u64),
    Chunked(Chunk),
    /// Until the upstream closes the connection (which then cannot be reused).
    UntilClose,
    /// The body has ended.
    Done,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Chunk {
    /// Expecting a chunk-size line.
    Size,
    /// Inside a chunk's data, this many bytes left.
    Data(u64),
    /// Expecting the CRLF after a chunk's data.
    DataEnd,
    /// After the last chunk: trailer lines until an empty one (this many bytes of
    /// them so far).
    Trailers(usize),
}

/// How the body is framed; `transfer_coding` says whether the answer had a
/// `Transfer-Encoding` and if so, whether it was a single `chunked`.
fn framing(
    status: StatusCode,
    headers: &HeaderMap,
    transfer_coding: Option<bool>,
    head_request: bool,
) -> Result<Framing, ExchangeError> {
    if head_request || status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED {
        return Ok(Framing::Length(0));
    }
    let lengths = headers.get_all(CONTENT_LENGTH);
    if let Some(only_chunked) = transfer_coding {
        if lengths.iter().next().is_some() {
            return Err(ExchangeError::Invalid("both Transfer-Encoding and Content-Length"));
        }
        return if only_chunked {
            Ok(Framing::Chunked(Chunk::Size))
        } else {
            Err(ExchangeError::Invalid("a transfer coding other than chunked"))
        };
    }
    let mut length = None;
    for value in lengths {
        // A list of equal lengths is one length (RFC 9110 §8.6); anything else is refused.
        for item in value.as_bytes().split(|&byte| byte == b',') {
            let item = item.trim_ascii();
            let valid = !item.is_empty() && item.len() <= 19 && item.iter().all(u8::is_ascii_digit);
            let parsed = std::str::from_utf8(item).ok().filter(|_| valid).and_then(|digits| digits.parse::<u64>().ok());
            match (parsed, length) {
                (None, _) => return Err(ExchangeError::Invalid("invalid Content-Length")),
                (Some(parsed), Some(known)) if parsed != known => {
                    return Err(ExchangeError::Invalid("Content-Length values disagree"));
                }
                (Some(parsed), _) => length = Some(parsed),
            }
        }
    }
    Ok(length.map_or(Framing::UntilClose, Framing::Length))
}

/// An upstream answer's body, read from its connection as the client takes it.
pub struct UpstreamBody {
    connection: Option<Connection>,
    framing: Framing,
    lease: Option<(Arc<Pool>, usize)>,
}

impl UpstreamBody {
    /// The body has ended: the connection goes back to the pool if it may be reused
    /// (see [`exchange`]) and nothing follows the body.
    fn finish(&mut self) {
        self.framing = Framing::Done;
        if let (Some(connection), Some((pool, upstream))) = (self.connection.take(), self.lease.take())
            && connection.buffer.is_empty()
        {
            pool.checkin_plain(upstream, connection);
        }
    }

    fn fail(&mut self, error: ExchangeError) -> Poll<Option<Result<Frame<Bytes>, ExchangeError>>> {
        self.framing = Framing::Done;
        self.connection = None;
        Poll::Ready(Some(Err(error)))
    }
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = ExchangeError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, ExchangeError>>> {
        let this = self.get_mut();
        loop {
            let Some(connection) = this.connection.as_mut() else {
                return Poll::Ready(None);
            };
            match decode(&mut this.framing, &mut connection.buffer) {
                Ok(Step::Data(data)) => {
                    // The last bytes of a counted body: the server may not ask again.
                    if this.framing == Framing::Length(0) {
                        this.finish();
                    }
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Ok(Step::End) => {
                    this.finish();
                    return Poll::Ready(None);
                }
                Ok(Step::More) => match ready!(connection.poll_fill(cx)) {
                    Ok(0) if this.framing == Framing::UntilClose => {
                        this.finish();
                        return Poll::Ready(None);
                    }
                    Ok(0) => {
                        return this.fail(ExchangeError::Invalid("the upstream closed the connection within the body"));
                    }
                    Ok(_) => {}
                    Err(err) => return this.fail(ExchangeError::Read(err)),
                },
                Err(error) => return this.fail(error),
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.framing, Framing::Done | Framing::Length(0))
    }

    fn size_hint(&self) -> SizeHint {
        match self.framing {
            Framing::Length(left) => SizeHint::with_exact(left),
            Framing::Done => SizeHint::with_exact(0),
            _ => SizeHint::default(),
        }
    }
}

/// What a body's framing makes of the bytes buffered so far.
#[derive(Debug, PartialEq)]
enum Step {
    /// Body bytes, taken off the buffer.
    Data(Bytes),
    /// The body is complete.
    End,
    /// More bytes are needed. At the end of the stream that ends only a body framed by
    /// the close; any other body is cut short.
    More,
}

/// Takes the next piece of the body off `buffer`, without I/O, so every framing rule
/// is one function (and fuzzed: `fuzz/fuzz_targets/upstream_answer.rs`).
fn decode(framing: &mut Framing, buffer: &mut BytesMut) -> Result<Step, ExchangeError> {
    loop {
        match *framing {
            Framing::Done | Framing::Length(0) => return Ok(Step::End),
            Framing::Length(_) | Framing::Chunked(Chunk::Data(_)) | Framing::UntilClose if buffer.is_empty() => {
                return Ok(Step::More);
            }
            Framing::Length(left) | Framing::Chunked(Chunk::Data(left)) => {
                let take = usize::try_from(left).unwrap_or(usize::MAX).min(buffer.len());
                let data = buffer.split_to(take).freeze();
                let left = left - take as u64;
                *framing = match *framing {
                    Framing::Length(_) => Framing::Length(left),
                    _ if left == 0 => Framing::Chunked(Chunk::DataEnd),
                    _ => Framing::Chunked(Chunk::Data(left)),
                };
                return Ok(Step::Data(data));
            }
            Framing::UntilClose => return Ok(Step::Data(buffer.split().freeze())),
            Framing::Chunked(Chunk::DataEnd) => {
                if buffer.len() < 2 {
                    return Ok(Step::More);
                }
                if &buffer[..2] != b"\r\n" {
                    return Err(ExchangeError::Invalid("chunk data longer than its size"));
                }
                buffer.advance(2);
                *framing = Framing::Chunked(Chunk::Size);
            }
            Framing::Chunked(Chunk::Size | Chunk::Trailers(_)) => {
                let Some(end) = memchr::memmem::find(buffer, b"\r\n") else {
                    if buffer.len() > MAX_LINE {
                        return Err(ExchangeError::Invalid("chunk line too long"));
                    }
                    return Ok(Step::More);
                };
                let line = buffer.split_to(end + 2);
                match *framing {
                    Framing::Chunked(Chunk::Trailers(_)) if end == 0 => {
                        *framing = Framing::Done;
                        return Ok(Step::End);
                    }
                    // A trailer field: read, not passed on.
                    Framing::Chunked(Chunk::Trailers(seen)) => {
                        let seen = seen + line.len();
                        if seen > MAX_HEAD {
                            return Err(ExchangeError::Invalid("trailers too large"));
                        }
                        *framing = Framing::Chunked(Chunk::Trailers(seen));
                    }
                    _ => {
                        *framing = match chunk_size(&line[..end]) {
                            Some(0) => Framing::Chunked(Chunk::Trailers(0)),
                            Some(size) => Framing::Chunked(Chunk::Data(size)),
                            None => return Err(ExchangeError::Invalid("malformed chunk size")),
                        }
                    }
                }
            }
        }
    }
}

/// An upstream's answer read from `bytes` alone, the way the exchange reads it: the
/// head, then the body as far as the bytes go. Gives the status, the body bytes and
/// whether the body ended within `bytes`; None while the head is incomplete. For
/// `fuzz/` (the exchange itself reads from a connection).
#[doc(hidden)]
pub fn read_answer(bytes: &[u8], head_request: bool) -> Result<Option<(StatusCode, Vec<u8>, bool)>, ExchangeError> {
    let mut buffer = BytesMut::from(bytes);
    let Some(head) = parse_head(&mut buffer, head_request)? else { return Ok(None) };
    let mut framing = head.framing;
    let mut body = Vec::new();
    loop {
        match decode(&mut framing, &mut buffer)? {
            Step::Data(data) => body.extend_from_slice(&data),
            Step::End => return Ok(Some((head.parts.status, body, true))),
            Step::More => return Ok(Some((head.parts.status, body, false))),
        }
    }
}

/// The size of a chunk-size line (hex digits, then optional `;extensions`).
fn chunk_size(line: &[u8]) -> Option<u64> {
    let digits = line.split(|&byte| byte == b';').next()?.trim_ascii();
    if digits.is_empty() || digits.len() > 15 || !digits.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    u64::from_str_radix(std::str::from_utf8(digits).ok()?, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use tokio::net::TcpListener;

    fn head(text: &str, head_request: bool) -> Result<Option<Head>, ExchangeError> {
        parse_head(&mut BytesMut::from(text), head_request)
    }

    fn framing_of(text: &str) -> Result<Framing, ExchangeError> {
        head(text, false).map(|answer| answer.expect("a complete head").framing)
    }

    #[test]
    fn interim_answers_are_skipped_and_the_body_stays_buffered() {
        let mut buffer = BytesMut::from(
            "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nX-One: a\r\nx-one: b\r\ncontent-length: 2\r\n\r\nokNEXT",
        );
        let Head { parts, framing, close } = parse_head(&mut buffer, false).unwrap().unwrap();
        assert_eq!(parts.status, StatusCode::CREATED);
        assert!(!close);
        assert_eq!(parts.headers.get_all("x-one").iter().collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(framing, Framing::Length(2));
        assert_eq!(&buffer[..], b"okNEXT");
        assert!(head("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n", false).unwrap().is_none(), "incomplete");
    }

    #[test]
    fn hop_by_hop_fields_are_left_out_as_they_are_read() {
        let plain = head(
            "HTTP/1.1 200 OK\r\nconnection: keep-alive\r\nkeep-alive: timeout=5\r\nx-app: 1\r\ncontent-length: 0\r\n\r\n",
            false,
        );
        let plain = plain.unwrap().unwrap();
        assert_eq!(plain.parts.headers.keys().map(HeaderName::as_str).collect::<Vec<_>>(), ["x-app", "content-length"]);
        assert!(!plain.close);
        let named = head("HTTP/1.1 200 OK\r\nConnection: close, x-hop\r\nx-hop: 1\r\ncontent-length: 0\r\n\r\n", false);
        let named = named.unwrap().unwrap();
        assert!(named.close);
        assert!(named.parts.headers.contains_key(CONNECTION), "kept, so the fields it names are removed with it");
        let chunked = head("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n", false).unwrap().unwrap();
        assert!(!chunked.parts.headers.contains_key(TRANSFER_ENCODING));
        assert_eq!(chunked.framing, Framing::Chunked(Chunk::Size));
    }

    #[test]
    fn http_1_0_answers_keep_the_connection_only_when_they_say_so() {
        let closes = head("HTTP/1.0 200 OK\r\ncontent-length: 2\r\n\r\nok", false).unwrap().unwrap();
        assert!(closes.close);
        assert_eq!(closes.framing, Framing::Length(2));
        let kept = head("HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\ncontent-length: 2\r\n\r\nok", false);
        assert!(!kept.unwrap().unwrap().close);
        let until_close = head("HTTP/1.0 200 OK\r\n\r\nbody", false).unwrap().unwrap();
        assert_eq!(until_close.framing, Framing::UntilClose);
    }

    #[test]
    fn bad_heads_are_refused() {
        for text in [
            "HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\n\r\n",
            "HTTP/1.0 200 OK\r\ntransfer-encoding: chunked\r\n\r\n",
            "HTTP/1.1 200 OK\r\nbad header\r\n\r\n",
            "garbage\r\n\r\n",
        ] {
            assert!(head(text, false).is_err(), "{text:?}");
        }
    }

    #[test]
    fn framing_follows_rfc_9112() {
        let answer = |status: &str, fields: &str| format!("HTTP/1.1 {status}\r\n{fields}\r\n");
        assert_eq!(framing_of(&answer("200 OK", "content-length: 5\r\n")).unwrap(), Framing::Length(5));
        assert_eq!(
            framing_of(&answer("200 OK", "content-length: 5, 5\r\ncontent-length: 5\r\n")).unwrap(),
            Framing::Length(5)
        );
        assert_eq!(
            framing_of(&answer("200 OK", "transfer-encoding: Chunked\r\n")).unwrap(),
            Framing::Chunked(Chunk::Size)
        );
        assert_eq!(framing_of(&answer("200 OK", "")).unwrap(), Framing::UntilClose);
        assert_eq!(framing_of(&answer("204 No Content", "content-length: 5\r\n")).unwrap(), Framing::Length(0));
        assert_eq!(
            framing_of(&answer("304 Not Modified", "transfer-encoding: chunked\r\n")).unwrap(),
            Framing::Length(0)
        );
        let for_head = head(&answer("200 OK", "content-length: 5\r\n"), true).unwrap().unwrap();
        assert_eq!(for_head.framing, Framing::Length(0), "no body follows an answer to HEAD");
        for smuggling in [
            "transfer-encoding: chunked\r\ncontent-length: 5\r\n",
            "transfer-encoding: gzip, chunked\r\n",
            "transfer-encoding: chunked\r\ntransfer-encoding: chunked\r\n",
            "content-length: 5\r\ncontent-length: 6\r\n",
            "content-length: +5\r\n",
            "content-length: -1\r\n",
            "content-length: 0x10\r\n",
            "content-length:\r\n",
            "content-length: 99999999999999999999\r\n",
        ] {
            assert!(framing_of(&answer("200 OK", smuggling)).is_err(), "{smuggling:?}");
        }
    }

    #[test]
    fn chunk_sizes_are_hex_with_optional_extensions() {
        assert_eq!(chunk_size(b"1a"), Some(26));
        assert_eq!(chunk_size(b"1A ; name=value"), Some(26));
        assert_eq!(chunk_size(b"0"), Some(0));
        for bad in [&b""[..], b"g", b"-1", b" ", b"1234567890abcdef0"] {
            assert_eq!(chunk_size(bad), None, "{bad:?}");
        }
    }

    /// The body of an answer with `framing` whose bytes (after the head) the upstream
    /// writes in the given pieces, then closes.
    async fn body_from(framing: Framing, pieces: &[&'static [u8]]) -> Result<Vec<u8>, ExchangeError> {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let pieces = pieces.to_vec();
        let writer = tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            for piece in pieces {
                stream.write_all(piece).await.unwrap();
                stream.flush().await.unwrap();
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
        });
        let connection = Connection::new(TcpStream::connect(addr).await.unwrap());
        let mut body = UpstreamBody { connection: Some(connection), framing, lease: None };
        let mut out = Vec::new();
        while let Some(frame) = body.frame().await {
            out.extend_from_slice(frame?.data_ref().expect("data frames only"));
        }
        writer.await.unwrap();
        assert!(body.is_end_stream());
        Ok(out)
    }

    #[tokio::test]
    async fn chunked_bodies_are_decoded_across_reads() {
        let body = body_from(
            Framing::Chunked(Chunk::Size),
            &[b"5;ext=1\r\nhel", b"lo\r", b"\n6\r\n world\r\n0\r", b"\nx-trailer: 1\r\n", b"\r\n"],
        )
        .await
        .unwrap();
        assert_eq!(body, b"hello world");
    }

    #[tokio::test]
    async fn broken_bodies_are_errors() {
        let overrun = body_from(Framing::Chunked(Chunk::Size), &[b"3\r\nabcd\r\n0\r\n\r\n"]).await;
        assert!(matches!(overrun, Err(ExchangeError::Invalid(_))), "{overrun:?}");
        let cut = body_from(Framing::Length(10), &[b"short"]).await;
        assert!(matches!(cut, Err(ExchangeError::Invalid(_))), "{cut:?}");
        let cut_chunked = body_from(Framing::Chunked(Chunk::Size), &[b"5\r\nab"]).await;
        assert!(cut_chunked.is_err());
    }

    #[test]
    fn whole_answers_decode_without_io() {
        let chunked = "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nx: 1\r\n\r\n";
        assert_eq!(read_answer(chunked.as_bytes(), false).unwrap(), Some((StatusCode::OK, b"abc".to_vec(), true)));
        let cut = "HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc";
        assert_eq!(read_answer(cut.as_bytes(), false).unwrap(), Some((StatusCode::OK, b"abc".to_vec(), false)));
        let mut endless = String::from("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n0\r\n");
        while endless.len() < MAX_HEAD + 1024 {
            endless.push_str("x-trailer: 0123456789abcdef\r\n");
        }
        assert!(matches!(read_answer(endless.as_bytes(), false), Err(ExchangeError::Invalid("trailers too large"))));
        let long_line = format!("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n1;{}", "e".repeat(MAX_LINE + 1));
        assert!(read_answer(long_line.as_bytes(), false).is_err());
    }

    #[tokio::test]
    async fn lengths_and_closes_end_the_body() {
        assert_eq!(body_from(Framing::Length(5), &[b"he", b"llo"]).await.unwrap(), b"hello");
        assert_eq!(body_from(Framing::UntilClose, &[b"all ", b"of it"]).await.unwrap(), b"all of it");
    }

    #[test]
    fn requests_are_encoded_in_origin_form() {
        let (mut head, ()) = http::Request::get("/a/b?c=d").body(()).unwrap().into_parts();
        head.headers.append("x-many", HeaderValue::from_static("1"));
        head.headers.append("x-many", HeaderValue::from_static("2"));
        let added = [(HeaderName::from_static("x-user-id"), HeaderValue::from_static("alice"))];
        assert_eq!(
            String::from_utf8(encode(&head, &HeaderValue::from_static("upstream:8080"), &added)).unwrap(),
            "GET /a/b?c=d HTTP/1.1\r\nhost: upstream:8080\r\nx-many: 1\r\nx-many: 2\r\nx-user-id: alice\r\n\r\n"
        );
        assert!(applies(&Method::GET, true, false) && applies(&Method::HEAD, true, false));
        assert!(!applies(&Method::POST, true, false) && !applies(&Method::GET, false, false));
        assert!(!applies(&Method::GET, true, true));
    }
}
