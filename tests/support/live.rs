//! A tab's WebSocket and an event stream (SPEC §11), as the tests drive them.

#![allow(dead_code)]

use std::pin::Pin;
use std::time::Duration;

use actix_web::web::Bytes;
use awc::error::PayloadError;
use awc::http::StatusCode;
use awc::ws::{Codec, Frame, Message};
use awc::BoxedSocket;
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};

/// How long a test waits for something the server is to push. Only a bound on a
/// failure: a passing test never waits for it.
pub const PUSH: Duration = Duration::from_secs(20);

pub type Socket = actix_codec::Framed<BoxedSocket, Codec>;

/// Opens the socket of the tab holding `token` on the server at `server`, as a page
/// of `origin` does, or says what the upgrade answered instead.
pub async fn connect(server: &str, token: &str, origin: &str) -> Result<Socket, StatusCode> {
    let url = format!("{server}/v1/sessions/{token}/live").replacen("http", "ws", 1);
    match awc::Client::new().ws(url).origin(origin).connect().await {
        Ok((_, socket)) => Ok(socket),
        Err(awc::error::WsClientError::InvalidResponseStatus(status)) => Err(status),
        Err(other) => panic!("the upgrade failed: {other}"),
    }
}

/// Opens the socket of the waiting tab holding `ticket`, as [`connect`] does a
/// session's.
pub async fn connect_ticket(
    server: &str,
    ticket: &str,
    origin: &str,
) -> Result<Socket, StatusCode> {
    let url = format!("{server}/v1/tickets/{ticket}/live").replacen("http", "ws", 1);
    match awc::Client::new().ws(url).origin(origin).connect().await {
        Ok((_, socket)) => Ok(socket),
        Err(awc::error::WsClientError::InvalidResponseStatus(status)) => Err(status),
        Err(other) => panic!("the upgrade failed: {other}"),
    }
}

/// The next JSON frame the server sends (pings are answered by the client library).
pub async fn next_frame(socket: &mut Socket) -> Value {
    loop {
        let frame = tokio::time::timeout(PUSH, socket.next())
            .await
            .expect("the server sends a frame in time")
            .expect("the socket is open")
            .expect("a well-formed frame");
        match frame {
            Frame::Text(text) => return serde_json::from_slice(&text).expect("a JSON frame"),
            Frame::Ping(_) | Frame::Pong(_) => continue,
            other => panic!("expected a text frame, got {other:?}"),
        }
    }
}

/// Asserts the server says the session ended for `reason`, then closes the socket.
pub async fn assert_ended(socket: &mut Socket, reason: &str) {
    assert_eq!(
        next_frame(socket).await,
        json!({"type": "ended", "reason": reason})
    );
    let close = tokio::time::timeout(PUSH, socket.next())
        .await
        .expect("the server closes in time");
    assert!(
        matches!(close, Some(Ok(Frame::Close(Some(_))))),
        "expected a close frame, got {close:?}"
    );
}

/// Sends a heartbeat frame and returns the answer.
pub async fn heartbeat(socket: &mut Socket) -> Value {
    socket
        .send(Message::Text(r#"{"type": "heartbeat"}"#.into()))
        .await
        .expect("the frame is sent");
    next_frame(socket).await
}

/// An open event stream, read as it comes.
pub struct Stream {
    pub body: Pin<Box<dyn futures::Stream<Item = Result<Bytes, PayloadError>>>>,
    buffer: String,
}

/// One server-sent event: its `id` (or `event` name) and data.
#[derive(Debug)]
pub struct Sse {
    pub id: Option<String>,
    pub event: Option<String>,
    pub data: Value,
}

/// Opens the event stream at `url` with the bearer `token`, resuming after `last`.
pub async fn stream(url: &str, token: &str, last: Option<&str>) -> Stream {
    let mut request = awc::Client::new()
        .get(url)
        .insert_header(("authorization", format!("Bearer {token}")))
        .timeout(Duration::from_secs(3600));
    if let Some(id) = last {
        request = request.insert_header(("last-event-id", id));
    }
    let body = request.send().await.expect("the stream opens");
    assert_eq!(body.status(), 200);
    assert_eq!(
        body.headers().get("content-type").unwrap(),
        "text/event-stream"
    );
    Stream {
        body: Box::pin(body),
        buffer: String::new(),
    }
}

impl Stream {
    /// The next event (comments skipped).
    pub async fn next(&mut self) -> Sse {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut event = Sse {
                    id: None,
                    event: None,
                    data: Value::Null,
                };
                let mut any = false;
                for line in block.lines() {
                    if let Some(id) = line.strip_prefix("id: ") {
                        event.id = Some(id.to_owned());
                    } else if let Some(name) = line.strip_prefix("event: ") {
                        event.event = Some(name.to_owned());
                    } else if let Some(data) = line.strip_prefix("data: ") {
                        event.data = serde_json::from_str(data).expect("JSON data");
                        any = true;
                    }
                }
                if any {
                    return event;
                }
                continue;
            }
            let chunk = tokio::time::timeout(PUSH, self.body.next())
                .await
                .expect("the server sends an event in time")
                .expect("the stream is open")
                .expect("a chunk");
            self.buffer.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    }

    /// The next `n` events.
    pub async fn take(&mut self, n: usize) -> Vec<Sse> {
        let mut events = Vec::new();
        for _ in 0..n {
            events.push(self.next().await);
        }
        events
    }
}
