//! A webhook receiver as a team would run one: it checks every request's signature (HMAC-SHA256 of
//! `<timestamp>.<body>` with the shared secret, a timestamp no older than five minutes) and the
//! body's shape for its format, refuses what fails (401, 400), and otherwise answers as the test
//! scripted (a status, after a delay, with headers), then 200. It records everything it was sent.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, Mac};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What the receiver expects bodies to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// CloudEvents 1.0, structured mode.
    CloudEvents,
    /// Slack's incoming webhook: `{"text": "…"}` and nothing else.
    Slack,
}

/// One scripted answer.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub delay: Duration,
    pub headers: Vec<(&'static str, String)>,
}

impl Answer {
    pub fn status(status: u16) -> Self {
        Self { status, delay: Duration::ZERO, headers: Vec::new() }
    }
    pub fn after(self, delay: Duration) -> Self {
        Self { delay, ..self }
    }
    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }
}

/// One request as it arrived.
#[derive(Debug, Clone)]
pub struct Received {
    pub at: Instant,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    /// The signature matched and its timestamp was fresh.
    pub signed: bool,
    /// The body had the expected shape.
    pub shaped: bool,
    /// What the receiver answered (or was about to, for a request still being answered).
    pub answered: u16,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.get(name).and_then(|value| value.to_str().ok()).map(str::to_owned)
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_default()
    }
    /// The delivery's id (`X-Tagward-Delivery`), the same on every retry.
    pub fn delivery(&self) -> i64 {
        self.header("x-tagward-delivery").and_then(|id| id.parse().ok()).unwrap_or_default()
    }
}

struct Shared {
    secret: String,
    shape: Shape,
    script: Mutex<VecDeque<Answer>>,
    received: Mutex<Vec<Received>>,
}

pub struct Receiver {
    pub address: SocketAddr,
    shared: Arc<Shared>,
}

impl Receiver {
    /// Listens on a port of its own (bound here and handed to the server: no other test can take it).
    pub async fn start(secret: &str, shape: Shape, script: Vec<Answer>) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the receiver");
        let address = listener.local_addr().unwrap();
        let shared = Arc::new(Shared {
            secret: secret.to_owned(),
            shape,
            script: Mutex::new(script.into()),
            received: Mutex::new(Vec::new()),
        });
        let router = axum::Router::new().fallback(receive).with_state(shared.clone());
        tokio::spawn(async move { axum::serve(listener, router).await.ok() });
        Self { address, shared }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    pub fn received(&self) -> Vec<Received> {
        self.shared.received.lock().unwrap().clone()
    }

    /// Waits until `count` requests have arrived; they, in order.
    pub async fn wait_for(&self, count: usize, within: Duration) -> Vec<Received> {
        let what = format!("{count} webhook requests at the receiver");
        crate::eventually(&what, within, || async {
            let received = self.received();
            if received.len() >= count {
                Ok(received)
            } else {
                Err(format!("{} so far: {:?}", received.len(), received.iter().map(|r| r.json()).collect::<Vec<_>>()))
            }
        })
        .await
        .0
    }
}

fn signed(secret: &str, headers: &HeaderMap, body: &[u8]) -> bool {
    let header = |name: &str| headers.get(name).and_then(|value| value.to_str().ok());
    let (Some(timestamp), Some(signature)) = (header("x-tagward-timestamp"), header("x-tagward-signature")) else {
        return false;
    };
    let Ok(sent_at) = timestamp.parse::<i64>() else { return false };
    if (time::OffsetDateTime::now_utc().unix_timestamp() - sent_at).abs() > 300 {
        return false;
    }
    let Some(hex_signature) = signature.strip_prefix("sha256=") else { return false };
    let Ok(given) = hex::decode(hex_signature) else { return false };
    let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    // Constant time, as a receiver must compare.
    mac.verify_slice(&given).is_ok()
}

fn shaped(shape: Shape, headers: &HeaderMap, body: &[u8]) -> bool {
    let content_type = headers.get("content-type").and_then(|value| value.to_str().ok()).unwrap_or_default();
    let Ok(serde_json::Value::Object(object)) = serde_json::from_slice::<serde_json::Value>(body) else {
        return false;
    };
    match shape {
        Shape::Slack => {
            content_type == "application/json"
                && object.len() == 1
                && object.get("text").and_then(|text| text.as_str()).is_some_and(|text| !text.trim().is_empty())
        }
        Shape::CloudEvents => {
            let text = |name: &str| object.get(name).and_then(|value| value.as_str()).is_some_and(|v| !v.is_empty());
            content_type == "application/cloudevents+json"
                && object.get("specversion").and_then(|v| v.as_str()) == Some("1.0")
                && ["id", "source", "type", "time"].iter().all(|name| text(name))
                && object.get("data").is_some_and(|data| data.is_object())
        }
    }
}

async fn receive(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let (is_signed, is_shaped) = (signed(&shared.secret, &headers, &body), shaped(shared.shape, &headers, &body));
    let answer = match (is_signed, is_shaped) {
        (false, _) => Answer::status(401),
        (true, false) => Answer::status(400),
        (true, true) => shared.script.lock().unwrap().pop_front().unwrap_or_else(|| Answer::status(200)),
    };
    shared.received.lock().unwrap().push(Received {
        at: Instant::now(),
        headers,
        body: body.to_vec(),
        signed: is_signed,
        shaped: is_shaped,
        answered: answer.status,
    });
    tokio::time::sleep(answer.delay).await;
    let mut response = StatusCode::from_u16(answer.status).unwrap().into_response();
    for (name, value) in answer.headers {
        response.headers_mut().insert(name, value.parse().unwrap());
    }
    response
}
