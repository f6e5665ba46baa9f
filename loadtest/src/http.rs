//! A lean HTTP/1.1 keep-alive client: write a pre-built request, read one response (status line,
//! headers, `Content-Length` body), repeat. One request in flight per connection, like wrk.
//!
//! Hand-written on purpose, not hyper's client: the load tool shares the machine's cores with
//! the server it measures, so its own cost per request is inside every figure it reports. It
//! writes one pre-built buffer and parses only the status line and `Content-Length`, which is
//! all a pixel or redirect answer needs; it is not a general HTTP client.

use std::io;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A response as far as the load generator cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Response {
    /// Status code.
    pub status: u16,
}

fn find_head_end(b: &[u8]) -> Option<usize> {
    b.windows(4).position(|w| w == b"\r\n\r\n")
}

fn parse_head(head: &[u8]) -> io::Result<(u16, usize)> {
    let bad = |m: &str| io::Error::new(io::ErrorKind::InvalidData, m.to_string());
    if head.len() < 12 || !head.starts_with(b"HTTP/1.") {
        return Err(bad("not an HTTP/1.x response"));
    }
    let status = std::str::from_utf8(&head[9..12])
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("bad status"))?;
    let mut len = 0usize;
    for line in head.split(|&c| c == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.len() > 15 && line[..15].eq_ignore_ascii_case(b"content-length:") {
            len = std::str::from_utf8(&line[15..])
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .ok_or_else(|| bad("bad content-length"))?;
        } else if line.len() > 18 && line[..18].eq_ignore_ascii_case(b"transfer-encoding:") {
            return Err(bad("chunked responses are not expected"));
        }
    }
    Ok((status, len))
}

/// One keep-alive connection.
pub struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    /// Connects (TCP_NODELAY).
    pub async fn connect(addr: std::net::SocketAddr) -> io::Result<Conn> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Conn {
            stream,
            buf: Vec::with_capacity(4096),
        })
    }

    /// Sends one request and reads its response.
    pub async fn roundtrip(&mut self, request: &[u8]) -> io::Result<Response> {
        self.stream.write_all(request).await?;
        self.read_response().await
    }

    async fn read_response(&mut self) -> io::Result<Response> {
        self.buf.clear();
        let mut scanned: usize = 0;
        loop {
            if let Some(end) = find_head_end(&self.buf[scanned.saturating_sub(3)..]) {
                let end = scanned.saturating_sub(3) + end;
                let (status, len) = parse_head(&self.buf[..end])?;
                let total = end + 4 + len;
                while self.buf.len() < total {
                    self.fill().await?;
                }
                // No pipelining: nothing may follow the body.
                return Ok(Response { status });
            }
            scanned = self.buf.len();
            if scanned > 64 * 1024 {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "response head too large",
                ));
            }
            self.fill().await?;
        }
    }

    async fn fill(&mut self) -> io::Result<()> {
        self.buf.reserve(4096);
        let n = self.stream.read_buf(&mut self.buf).await?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "server closed the connection",
            ));
        }
        Ok(())
    }
}

/// A one-shot `GET path` on a fresh connection, returning the body (for `/info`).
pub async fn get_body(addr: std::net::SocketAddr, path: &str) -> io::Result<(u16, Vec<u8>)> {
    let mut s = TcpStream::connect(addr).await?;
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await?;
    let mut all = Vec::new();
    s.read_to_end(&mut all).await?;
    let end = find_head_end(&all)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no response head"))?;
    let (status, _) = parse_head(&all[..end])?;
    Ok((status, all[end + 4..].to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_heads() {
        let h = b"HTTP/1.1 200 OK\r\ncontent-type: image/gif\r\nContent-Length: 43\r\ndate: x";
        assert_eq!(parse_head(h).unwrap(), (200, 43));
        let h = b"HTTP/1.1 302 Found\r\nlocation: https://e.com/";
        assert_eq!(parse_head(h).unwrap(), (302, 0));
        assert!(parse_head(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked").is_err());
        assert!(parse_head(b"garbage").is_err());
    }
}
