//! The little HTTP/1.1 the served manager speaks: one `POST` with a `Content-Length` body per
//! connection, one answer, `Connection: close`.
//!
//! Anything else is answered with a status and a one-line text body: another method 405, no
//! `Content-Length` (or a `Transfer-Encoding`) 411, a length over the limit 413 — before any
//! of the body is read —, a head over [`MAX_HEAD_LEN`] 431, anything malformed 400. The
//! request target is not interpreted: every path reaches the manager (the on-prem and direct
//! URL forms of SPEC §8 all work).

use std::io::{self, Read, Write};

/// The longest request head (request line and headers) read.
pub const MAX_HEAD_LEN: usize = 16 * 1024;
/// The most header lines accepted.
const MAX_HEADERS: usize = 64;

/// A request refused with an HTTP status, or a connection that failed.
#[derive(Debug)]
pub(crate) enum Refused {
    /// Answer with this status and message.
    Status(u16, &'static str),
    /// The connection failed, timed out or the client went away: nothing to answer.
    Gone,
}

impl From<io::Error> for Refused {
    fn from(_: io::Error) -> Self {
        Refused::Gone
    }
}

/// What the server needs from a request head.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Head {
    pub content_length: usize,
    pub expect_continue: bool,
}

fn bad(message: &'static str) -> Refused {
    Refused::Status(400, message)
}

fn is_token(s: &[u8]) -> bool {
    !s.is_empty()
        && s.iter()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(b))
}

/// The lines of `head`, split at CR LF; `None` for a line with a bare CR or LF.
fn crlf_lines(head: &[u8]) -> impl Iterator<Item = Option<&[u8]>> {
    let mut rest = Some(head);
    std::iter::from_fn(move || {
        let text = rest?;
        let (line, next) = match text.windows(2).position(|w| w == b"\r\n") {
            Some(at) => (&text[..at], Some(&text[at + 2..])),
            None => (text, None),
        };
        rest = next;
        Some((!line.iter().any(|&b| b == b'\r' || b == b'\n')).then_some(line))
    })
}

/// Checks a complete head (up to the blank line, without its CR LF CR LF) and extracts what
/// matters.
pub(crate) fn parse_head(head: &[u8], max_body: usize) -> Result<Head, Refused> {
    let mut lines = crlf_lines(head);
    let request_line = lines.next().flatten().ok_or(bad("bad request line"))?;
    let parts: Vec<&[u8]> = request_line.split(|&b| b == b' ').collect();
    let [method, target, version] = parts[..] else {
        return Err(bad("bad request line"));
    };
    if !is_token(method) || target.is_empty() || target.iter().any(|b| b.is_ascii_control()) {
        return Err(bad("bad request line"));
    }
    if version != b"HTTP/1.1" && version != b"HTTP/1.0" {
        return Err(bad("unsupported HTTP version"));
    }
    let mut content_length: Option<usize> = None;
    let mut too_large = false;
    let mut expect_continue = false;
    let mut transfer_encoding = false;
    for (n, line) in lines.enumerate() {
        let line = line.ok_or(bad("bare CR or LF in the head"))?;
        if n >= MAX_HEADERS {
            return Err(Refused::Status(431, "too many header lines"));
        }
        let colon = line
            .iter()
            .position(|&b| b == b':')
            .ok_or(bad("header line without a colon"))?;
        let (name, value) = (&line[..colon], &line[colon + 1..]);
        // A name with white space (or a folded line) is how requests get smuggled: refuse.
        if !is_token(name) {
            return Err(bad("bad header name"));
        }
        let value = value.trim_ascii();
        if name.eq_ignore_ascii_case(b"content-length") {
            if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
                return Err(bad("bad Content-Length"));
            }
            // All digits: only too many of them can fail to parse.
            let parsed = std::str::from_utf8(value)
                .ok()
                .and_then(|v| v.parse::<usize>().ok());
            match (parsed, content_length) {
                (Some(len), None) => content_length = Some(len),
                (Some(len), Some(seen)) if len == seen => {}
                (None, None) => {
                    too_large = true;
                    content_length = Some(usize::MAX);
                }
                _ => return Err(bad("conflicting Content-Length headers")),
            }
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            transfer_encoding = true;
        } else if name.eq_ignore_ascii_case(b"expect") {
            expect_continue = value.eq_ignore_ascii_case(b"100-continue");
        }
    }
    if method != b"POST" {
        return Err(Refused::Status(405, "only POST is supported"));
    }
    if transfer_encoding {
        return Err(Refused::Status(411, "send the body with a Content-Length"));
    }
    let content_length = content_length.ok_or(Refused::Status(411, "Content-Length required"))?;
    if too_large || content_length > max_body {
        return Err(Refused::Status(413, "request body too large"));
    }
    Ok(Head {
        content_length,
        expect_continue,
    })
}

fn find_blank_line(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n")
}

/// Reads one request from `stream` and returns its body. `Expect: 100-continue` is answered
/// before the body is read; nothing past the body is read.
pub(crate) fn read_request<S: Read + Write>(
    stream: &mut S,
    max_body: usize,
) -> Result<Vec<u8>, Refused> {
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(at) = find_blank_line(&buf) {
            break at;
        }
        if buf.len() > MAX_HEAD_LEN {
            return Err(Refused::Status(431, "request head too large"));
        }
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Err(Refused::Gone);
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    if head_end > MAX_HEAD_LEN {
        return Err(Refused::Status(431, "request head too large"));
    }
    let head = parse_head(&buf[..head_end], max_body)?;
    let mut body = buf.split_off(head_end + 4);
    body.truncate(head.content_length);
    if head.expect_continue && body.len() < head.content_length {
        stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
        stream.flush()?;
    }
    body.reserve_exact(head.content_length - body.len());
    while body.len() < head.content_length {
        let want = (head.content_length - body.len()).min(chunk.len());
        let n = stream.read(&mut chunk[..want])?;
        if n == 0 {
            return Err(Refused::Gone);
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Ok(body)
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        405 => "Method Not Allowed",
        411 => "Length Required",
        413 => "Content Too Large",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "Internal Server Error",
    }
}

/// A complete answer with `Connection: close`.
pub(crate) fn response(status: u16, content_type: &str, body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n",
        reason(status),
        body.len()
    );
    if status == 405 {
        out.push_str("Allow: POST\r\n");
    }
    out.push_str("Connection: close\r\n\r\n");
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

/// A refusal's answer: the status and its message as plain text.
pub(crate) fn refusal(status: u16, message: &str) -> Vec<u8> {
    response(
        status,
        "text/plain; charset=utf-8",
        format!("{message}\n").as_bytes(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An in-memory connection: reads `input` one segment per call at most (as packets
    /// arrive), collects what is written.
    struct Pipe {
        input: Vec<Vec<u8>>,
        output: Vec<u8>,
    }

    impl Read for Pipe {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let Some(segment) = self.input.first_mut() else {
                return Ok(0);
            };
            let n = segment.len().min(buf.len());
            buf[..n].copy_from_slice(&segment[..n]);
            segment.drain(..n);
            if segment.is_empty() {
                self.input.remove(0);
            }
            Ok(n)
        }
    }

    impl Write for Pipe {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.output.extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn read_segments(input: &[&[u8]], max: usize) -> (Result<Vec<u8>, Refused>, Vec<u8>) {
        let mut pipe = Pipe {
            input: input.iter().map(|s| s.to_vec()).collect(),
            output: Vec::new(),
        };
        let result = read_request(&mut pipe, max);
        (result, pipe.output)
    }

    fn read(input: &[u8], max: usize) -> (Result<Vec<u8>, Refused>, Vec<u8>) {
        read_segments(&[input], max)
    }

    fn status(input: &[u8], max: usize) -> u16 {
        match read(input, max).0 {
            Err(Refused::Status(code, _)) => code,
            other => panic!("expected a status for {input:?}, got {other:?}"),
        }
    }

    #[test]
    fn a_post_with_a_length_yields_exactly_its_body() {
        let (body, out) = read(
            b"POST /SmartTransport HTTP/1.1\r\nHost: x\r\ncontent-length:  5 \r\n\r\nhelloEXTRA",
            10,
        );
        assert_eq!(body.unwrap(), b"hello");
        assert!(out.is_empty());
        let (body, _) = read(b"POST / HTTP/1.0\r\nContent-Length: 0\r\n\r\n", 10);
        assert_eq!(body.unwrap(), b"");
    }

    #[test]
    fn expect_continue_is_answered_before_the_body() {
        let head = b"POST / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n";
        let (body, out) = read_segments(&[head, b"o", b"k"], 10);
        assert_eq!(body.unwrap(), b"ok");
        assert_eq!(out, b"HTTP/1.1 100 Continue\r\n\r\n");
        // A client that sent the body anyway gets no interim answer.
        let (body, out) = read_segments(&[&[&head[..], b"ok"].concat()], 10);
        assert_eq!(body.unwrap(), b"ok");
        assert!(out.is_empty());
        // A refused request gets no interim answer either.
        let (body, out) = read_segments(&[head, b"ok"], 1);
        assert!(matches!(body, Err(Refused::Status(413, _))));
        assert!(out.is_empty());
    }

    #[test]
    fn each_refusal_has_its_status() {
        let cases: &[(&[u8], u16)] = &[
            (b"GET / HTTP/1.1\r\n\r\n", 405),
            (b"PUT / HTTP/1.1\r\nContent-Length: 1\r\n\r\nx", 405),
            (b"POST / HTTP/1.1\r\n\r\n", 411),
            (
                b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
                411,
            ),
            (b"POST / HTTP/1.1\r\nContent-Length: 11\r\n\r\n", 413),
            (
                b"POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n",
                413,
            ),
            (b"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400),
            (
                b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
                400,
            ),
            (b"POST / HTTP/1.1\r\nContent-Length : 1\r\n\r\n", 400),
            (b"POST / HTTP/1.1\r\n folded\r\n\r\n", 400),
            (b"POST / HTTP/1.1\r\nNoColon\r\n\r\n", 400),
            (b"POST / HTTP/2.0\r\nContent-Length: 1\r\n\r\n", 400),
            (b"POST  / HTTP/1.1\r\n\r\n", 400),
            (b"\r\n\r\n", 400),
            (b"\xff\xfe\r\n\r\n", 400),
            (b"POST / HTTP/1.1\nContent-Length: 1\r\n\r\n", 400),
        ];
        for (input, expected) in cases {
            assert_eq!(status(input, 10), *expected, "{input:?}");
        }
        let mut huge = b"POST / HTTP/1.1\r\nX: ".to_vec();
        huge.extend(std::iter::repeat_n(b'a', MAX_HEAD_LEN + 10));
        assert_eq!(status(&huge, 10), 431);
        let mut many = b"POST / HTTP/1.1\r\n".to_vec();
        for _ in 0..=MAX_HEADERS {
            many.extend_from_slice(b"X: y\r\n");
        }
        many.extend_from_slice(b"\r\n");
        assert_eq!(status(&many, 10), 431);
    }

    #[test]
    fn a_client_that_leaves_early_is_not_answered() {
        for input in [
            &b""[..],
            b"POST / HT",
            b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nab",
        ] {
            assert!(matches!(read(input, 10).0, Err(Refused::Gone)), "{input:?}");
        }
    }

    #[test]
    fn answers_close_the_connection() {
        let r = String::from_utf8(response(200, "application/xml", b"<x/>")).unwrap();
        assert_eq!(
            r,
            "HTTP/1.1 200 OK\r\nContent-Type: application/xml\r\nContent-Length: 4\r\n\
             Connection: close\r\n\r\n<x/>"
        );
        let r = String::from_utf8(refusal(405, "only POST")).unwrap();
        assert!(r.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"), "{r}");
        assert!(r.contains("\r\nAllow: POST\r\n"), "{r}");
    }

    proptest::proptest! {
        #[test]
        fn any_bytes_give_a_body_or_a_refusal(input in proptest::collection::vec(proptest::num::u8::ANY, 0..300)) {
            let _ = read(&input, 64);
        }
    }
}
