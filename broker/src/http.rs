//! The broker's small HTTP endpoint on `metrics.port`: `/metrics` (Prometheus text), `/healthz` (the process
//! serves requests) and `/readyz`: ready means in service, as Kafka's RUNNING state: logs recovered and
//! listeners accepting (this server starts only after both), and registered with the controller quorum and
//! unfenced, which the controller does once the broker has caught up with the metadata log. Not ready again
//! once shutdown begins. Kubernetes probes use the last two; the operator rolls on to the next broker only
//! after this one is ready.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::broker::BrokerState;

const MAX_REQUEST_HEAD: usize = 8192;

/// Where the broker is in its life, for `/readyz`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Not registered and unfenced yet (catching up with the metadata log).
    Starting,
    Running,
    ShuttingDown,
}

impl Phase {
    /// `in_service`: registered and unfenced (always true for a node without the broker role).
    pub fn of(shutting_down: bool, in_service: bool) -> Phase {
        match (shutting_down, in_service) {
            (true, _) => Phase::ShuttingDown,
            (false, false) => Phase::Starting,
            (false, true) => Phase::Running,
        }
    }
}

/// Status, content type and body for a request line's path (pure, for tests).
pub fn route(path: &str, phase: Phase, metrics: impl FnOnce() -> String) -> (u16, &'static str, String) {
    match (path.split('?').next().unwrap_or(""), phase) {
        ("/metrics", _) => (200, "text/plain; version=0.0.4", metrics()),
        ("/healthz", _) => (200, "text/plain", "ok\n".into()),
        ("/readyz", Phase::ShuttingDown) => (503, "text/plain", "shutting down\n".into()),
        ("/readyz", Phase::Starting) => {
            (503, "text/plain", "not in service yet: waiting to be registered and unfenced by the controller\n".into())
        }
        ("/readyz", Phase::Running) => (200, "text/plain", "ready\n".into()),
        _ => (404, "text/plain", "not found\n".into()),
    }
}

/// The path of a `GET <path> HTTP/1.x` request head, if it is one.
pub fn request_path(head: &str) -> Option<&str> {
    let mut parts = head.lines().next()?.split(' ');
    match (parts.next(), parts.next(), parts.next()) {
        (Some("GET" | "HEAD"), Some(path), Some(v)) if v.starts_with("HTTP/1.") => Some(path),
        _ => None,
    }
}

pub async fn serve(listener: TcpListener, state: Arc<BrokerState>, mut shutdown: watch::Receiver<bool>) {
    loop {
        let conn = tokio::select! {
            r = listener.accept() => match r { Ok((c, _)) => c, Err(_) => continue },
            _ = crate::server::stopped(&mut shutdown) => return,
        };
        tokio::spawn(respond(conn, state.clone()));
    }
}

async fn respond(mut conn: TcpStream, state: Arc<BrokerState>) {
    let mut head = Vec::with_capacity(512);
    let read = tokio::time::timeout(Duration::from_secs(5), async {
        let mut buf = [0u8; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < MAX_REQUEST_HEAD {
            match conn.read(&mut buf).await {
                Ok(0) | Err(_) => return false,
                Ok(n) => head.extend_from_slice(&buf[..n]),
            }
        }
        true
    })
    .await;
    if !matches!(read, Ok(true)) {
        return;
    }
    let text = String::from_utf8_lossy(&head);
    let (status, content_type, body) = match request_path(&text) {
        Some(path) => {
            let phase = Phase::of(*state.shutdown.borrow(), *state.in_service.borrow());
            route(path, phase, || state.metrics.render(&state))
        }
        None => (400, "text/plain", "bad request\n".into()),
    };
    let reason = match status {
        200 => "OK",
        404 => "Not Found",
        503 => "Service Unavailable",
        _ => "Bad Request",
    };
    let response = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = conn.write_all(response.as_bytes()).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_probes_and_metrics() {
        // (path, shutting down, in service) -> status
        let table = [
            ("/readyz", false, true, 200),
            ("/readyz", false, false, 503), // listening but not unfenced yet
            ("/readyz", true, true, 503),
            ("/readyz", true, false, 503),
            ("/healthz", false, false, 200), // alive while catching up
            ("/healthz", true, true, 200),
            ("/nope", false, true, 404),
        ];
        for (path, shutting_down, in_service, status) in table {
            assert_eq!(
                route(path, Phase::of(shutting_down, in_service), String::new).0,
                status,
                "{path} {shutting_down} {in_service}"
            );
        }
        assert_eq!(route("/metrics?x=1", Phase::Starting, || "m 1\n".into()), (200, "text/plain; version=0.0.4", "m 1\n".into()));
        assert_eq!(request_path("GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n"), Some("/readyz"));
        assert_eq!(request_path("POST /metrics HTTP/1.1\r\n\r\n"), None);
        assert_eq!(request_path("garbage"), None);
    }
}
