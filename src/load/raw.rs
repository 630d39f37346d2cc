//! A bare HTTP/1.1 connection for the storm: connected beforehand and holding its
//! request ready, so that thousands of logins leave at one instant, each on its own
//! connection, and the client spends next to nothing per request.

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// `host:port` and its address, from an `http://` URL.
pub fn endpoint(url: &str) -> Result<(String, SocketAddr), String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("the storm speaks plain http:// only, not {url}"))?;
    let host = rest.split('/').next().unwrap_or_default();
    let with_port = if host.contains(':') {
        host.to_string()
    } else {
        format!("{host}:80")
    };
    let addr = with_port
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {host}: {e}"))?
        .next()
        .ok_or_else(|| format!("{host} has no address"))?;
    Ok((host.to_string(), addr))
}

/// The bytes of a JSON POST.
pub fn post_json(host: &str, path: &str, bearer: &str, body: &str) -> Vec<u8> {
    format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {bearer}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// An answer: status and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The status code.
    pub status: u16,
    /// The body.
    pub body: Vec<u8>,
}

/// One keep-alive connection.
pub struct RawConn {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl RawConn {
    /// Connects, with Nagle off as browsers have it.
    pub async fn connect(addr: SocketAddr) -> io::Result<RawConn> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(RawConn {
            stream,
            buf: Vec::with_capacity(1024),
        })
    }

    /// Sends one request and reads its answer (Content-Length bodies only, which is
    /// what the server sends).
    pub async fn send(&mut self, request: &[u8]) -> io::Result<Answer> {
        self.stream.write_all(request).await?;
        self.buf.clear();
        loop {
            if let Some(answer) = parse(&self.buf)? {
                return Ok(answer);
            }
            let mut chunk = [0u8; 4096];
            let n = self.stream.read(&mut chunk).await?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the server closed the connection",
                ));
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

/// A complete answer in `buf`, if there is one yet.
fn parse(buf: &[u8]) -> io::Result<Option<Answer>> {
    let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidData, what.to_string());
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Ok(None);
    };
    let head = std::str::from_utf8(&buf[..end]).map_err(|_| bad("a non-UTF-8 head"))?;
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| bad("no status line"))?;
    let mut length = 0usize;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        if name.eq_ignore_ascii_case("content-length") {
            length = value
                .trim()
                .parse()
                .map_err(|_| bad("a bad Content-Length"))?;
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(bad("a chunked answer"));
        }
    }
    let start = end + 4;
    if buf.len() < start + length {
        return Ok(None);
    }
    Ok(Some(Answer {
        status,
        body: buf[start..start + length].to_vec(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_parsed_once_complete() {
        let full = b"HTTP/1.1 201 Created\r\ncontent-length: 2\r\ncontent-type: application/json\r\n\r\n{}";
        assert_eq!(parse(&full[..20]).unwrap(), None);
        assert_eq!(parse(&full[..full.len() - 1]).unwrap(), None);
        assert_eq!(
            parse(full).unwrap(),
            Some(Answer {
                status: 201,
                body: b"{}".to_vec()
            })
        );
        let empty = b"HTTP/1.1 204 No Content\r\n\r\n";
        assert_eq!(parse(empty).unwrap().unwrap().status, 204);
        assert!(parse(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n").is_err());
    }

    #[test]
    fn endpoints_come_from_http_urls() {
        let (host, addr) = endpoint("http://127.0.0.1:8080/").unwrap();
        assert_eq!(host, "127.0.0.1:8080");
        assert_eq!(addr.port(), 8080);
        assert!(endpoint("https://example.org").is_err());
        let request = String::from_utf8(post_json("h:1", "/p", "k", "{}")).unwrap();
        assert!(request.starts_with("POST /p HTTP/1.1\r\nHost: h:1\r\n"));
        assert!(request.ends_with("Content-Length: 2\r\n\r\n{}"));
    }
}
