//! The network server: accepts connections (within max.connections and max.connections.per.ip, backing off
//! while the process is out of file descriptors), reads size-prefixed request frames (refusing oversized ones
//! before allocating), hands them to the service in order, and writes responses in request order while later
//! requests are already being read (pipelining), with a bound on the requests in flight per connection.
//! Connections idle for connections.max.idle.ms (nothing read or written, no request in progress; a request
//! whose bytes stop arriving counts as idle) are closed, as Kafka's Selector does.
//!
//! On an SSL listener a connection starts with the TLS handshake (within connections.max.idle.ms) and its
//! principal comes from the client certificate; responses then go through the TLS stream, file ranges by the
//! bounded copy path. A client speaking the wrong protocol for the listener (plaintext on SSL, TLS on
//! PLAINTEXT) or failing the handshake is closed with a rate-limited line and counted in
//! `kafka_server_socket_server_metrics_failed_authentication_total`.
//!
//! On a SASL listener (after TLS on SASL_SSL) the connection first authenticates (see
//! [`crate::sasl::authenticator`]); its principal is then `User:<name>`. A failed or refused exchange is
//! answered where Kafka answers it, then the connection is closed, logged (rate-limited, naming the user and
//! address) and counted as a failed authentication.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, ReadBuf, WriteHalf};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_rustls::server::TlsStream;

use crate::config::FetchMode;
use crate::episode::{Episode, Throttle, Transition, LOG_INTERVAL};
use crate::frame::{write_frame, write_frame_through, FileSender, ResponseFrame};
use crate::metrics::ConnectionMetrics;
use crate::sasl::authenticator::{Authenticator, SaslServer, Step};
use crate::tls::{TlsContext, ANONYMOUS};
use crate::warmup::Warmer;

/// What the service does with one request.
pub enum Reply {
    /// No response (Produce with acks=0).
    None,
    Ready(ResponseFrame),
    /// Answered later (a Fetch waiting for data); later requests are still read and processed meanwhile.
    Later(Pin<Box<dyn Future<Output = Option<ResponseFrame>> + Send>>),
    /// Close the connection, as Kafka does for malformed requests and unknown APIs.
    Close(String),
}

/// Who sent a request.
#[derive(Debug, Clone)]
pub struct Peer {
    pub addr: SocketAddr,
    /// Name of the listener it connected to (selects the advertised address).
    pub listener: Arc<str>,
    /// Kafka's principal, kept for authorization: `User:ANONYMOUS`, on SSL listeners the client
    /// certificate's subject through ssl.principal.mapping.rules, on SASL listeners `User:<SASL username>`.
    pub principal: Arc<str>,
    /// Over TLS: file ranges are copied through the stream, not sent with sendfile.
    pub tls: bool,
}

pub trait Service: Send + Sync + 'static {
    /// Processes one request frame (header and body, without the size prefix). Requests of one connection are
    /// called in order, so appends of pipelined produce requests keep their order.
    fn call(&self, peer: &Peer, frame: Bytes) -> Reply;
}

#[derive(Clone)]
pub struct ConnectionOptions {
    pub max_request_bytes: usize,
    pub max_inflight: usize,
    pub fetch_mode: FetchMode,
    /// connections.max.idle.ms
    pub max_idle: Duration,
    /// Reads cold file ranges into the page cache before a frame is written; None: written as they are.
    pub warmer: Option<Arc<Warmer>>,
    /// The listener's TLS (SSL and SASL_SSL listeners); None: plaintext.
    pub tls: Option<Arc<TlsContext>>,
    /// The listener's SASL (SASL_PLAINTEXT and SASL_SSL listeners).
    pub sasl: Option<Arc<SaslServer>>,
}

/// max.connections and max.connections.per.ip.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_connections: usize,
    pub max_per_ip: usize,
}

/// Why a new connection is closed at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    MaxConnections,
    MaxConnectionsPerIp,
}

impl Refusal {
    /// The setting that refused it (also the metric's `reason` label).
    pub fn setting(self) -> &'static str {
        match self {
            Refusal::MaxConnections => "max.connections",
            Refusal::MaxConnectionsPerIp => "max.connections.per.ip",
        }
    }
}

/// May one more connection from an address with `open_from_ip` open connections be accepted, with
/// `open_total` open on the broker? Kafka's max.connections blocks the acceptor instead (clients wait in the
/// listen backlog); here both limits close the new connection at once, as Kafka does per IP, so a client
/// learns at once and retries with its reconnect backoff.
pub fn admit(limits: Limits, open_total: usize, open_from_ip: usize) -> Result<(), Refusal> {
    if open_from_ip >= limits.max_per_ip {
        Err(Refusal::MaxConnectionsPerIp)
    } else if open_total >= limits.max_connections {
        Err(Refusal::MaxConnections)
    } else {
        Ok(())
    }
}

/// The open connections of a broker, across its listeners: what the limits are checked against.
pub struct Connections {
    limits: Limits,
    metrics: ConnectionMetrics,
    /// Total and per IP address.
    open: Mutex<(usize, HashMap<IpAddr, usize>)>,
    refusals: Mutex<Throttle>,
    /// Log lines about clients failing the handshake or speaking the wrong protocol, per listener.
    bad_handshakes: Mutex<HashMap<Arc<str>, Throttle>>,
}

impl Connections {
    pub fn new(limits: Limits, metrics: ConnectionMetrics) -> Arc<Connections> {
        Arc::new(Connections {
            limits,
            metrics,
            open: Mutex::default(),
            refusals: Mutex::new(Throttle::new(LOG_INTERVAL)),
            bad_handshakes: Mutex::default(),
        })
    }

    /// A connection closed because its client failed the handshake or spoke another protocol than the
    /// listener's: counted (Kafka's failed-authentication-total) and logged, rate-limited.
    fn handshake_failed(&self, peer: &Peer, reason: &dyn std::fmt::Display) {
        let listener = &*peer.listener;
        self.metrics.failed_authentication.with_label_values(&[listener]).inc();
        let allowed = {
            let mut throttles = self.bad_handshakes.lock().expect("handshakes lock");
            let throttle = throttles.entry(peer.listener.clone()).or_insert_with(|| Throttle::new(LOG_INTERVAL));
            throttle.allow(std::time::Instant::now())
        };
        if let Some(suppressed) = allowed {
            tracing::warn!(listener, peer = %peer.addr, principal = %peer.principal, failed_since_last_line = suppressed, "closing connection: {reason}");
        }
    }

    /// Counts a new connection from `peer` until the guard drops, or refuses it (logged, rate-limited, and
    /// counted).
    fn open(self: &Arc<Self>, peer: &Peer) -> Result<Open, Refusal> {
        let ip = peer.addr.ip();
        let admitted = {
            let mut open = self.open.lock().expect("connections lock");
            let from_ip = open.1.get(&ip).copied().unwrap_or(0);
            let admitted = admit(self.limits, open.0, from_ip);
            if admitted.is_ok() {
                open.0 += 1;
                *open.1.entry(ip).or_default() += 1;
            }
            admitted
        };
        let listener = &*peer.listener;
        if let Err(refusal) = admitted {
            self.metrics.refused.with_label_values(&[listener, refusal.setting()]).inc();
            if let Some(suppressed) = self.refusals.lock().expect("refusals lock").allow(std::time::Instant::now()) {
                let limit = match refusal {
                    Refusal::MaxConnections => self.limits.max_connections,
                    Refusal::MaxConnectionsPerIp => self.limits.max_per_ip,
                };
                tracing::warn!(listener, peer = %peer.addr, limit, refused_since_last_line = suppressed, "refusing connection: {} reached", refusal.setting());
            }
            return Err(refusal);
        }
        self.metrics.created.with_label_values(&[listener]).inc();
        self.metrics.open.with_label_values(&[listener]).inc();
        Ok(Open { connections: self.clone(), ip, listener: peer.listener.clone() })
    }
}

/// One admitted connection, counted until dropped.
struct Open {
    connections: Arc<Connections>,
    ip: IpAddr,
    listener: Arc<str>,
}

impl Drop for Open {
    fn drop(&mut self) {
        let c = &self.connections;
        {
            let mut open = c.open.lock().expect("connections lock");
            open.0 -= 1;
            if let Some(n) = open.1.get_mut(&self.ip) {
                *n -= 1;
                if *n == 0 {
                    open.1.remove(&self.ip);
                }
            }
        }
        c.metrics.open.with_label_values(&[&self.listener]).dec();
        c.metrics.closed.with_label_values(&[&self.listener]).inc();
    }
}

/// Binds a listener with a listen backlog of `backlog` (socket.listen.backlog.size).
pub async fn bind(addr: &str, backlog: u32) -> io::Result<TcpListener> {
    let mut last_error = io::Error::new(io::ErrorKind::NotFound, format!("{addr} resolves to no address"));
    for a in tokio::net::lookup_host(addr).await? {
        let socket = if a.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
        socket.set_reuseaddr(true)?;
        match socket.bind(a).and_then(|()| socket.listen(backlog)) {
            Ok(listener) => return Ok(listener),
            Err(e) => last_error = e,
        }
    }
    Err(last_error)
}

/// Resolves once `shutdown` is true (or its sender is gone).
pub async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|s| *s).await;
}

/// The smallest request: api key, version, correlation id.
const MIN_FRAME: usize = 8;

/// accept(2) errors that mean the process or system is out of resources (not a problem of one connection).
fn out_of_resources(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(nix::libc::EMFILE | nix::libc::ENFILE | nix::libc::ENOBUFS | nix::libc::ENOMEM))
}

/// The wait before accepting again after another out-of-resources failure: 100 ms, doubling up to 1 s.
fn accept_backoff(previous: Option<Duration>) -> Duration {
    previous.map_or(Duration::from_millis(100), |d| (d * 2).min(Duration::from_secs(1)))
}

/// Accepts connections until `shutdown` turns true, then waits up to `grace` for open connections to finish
/// their in-flight requests.
pub async fn serve(
    listener: TcpListener,
    name: Arc<str>,
    service: Arc<dyn Service>,
    opts: ConnectionOptions,
    limits: Arc<Connections>,
    mut shutdown: watch::Receiver<bool>,
    grace: Duration,
) {
    let mut connections = JoinSet::new();
    let conn_shutdown = shutdown.clone();
    let mut backoff = None;
    let mut out_of_fds = Episode::new(LOG_INTERVAL);
    let blocked = limits.metrics.accept_blocked.with_label_values(&[&name]);
    blocked.set(0);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, addr)) => {
                    if let Some(Transition::Ended) = out_of_fds.observe(false, std::time::Instant::now()) {
                        tracing::info!(listener = %name, "accepting connections again");
                    }
                    backoff = None;
                    blocked.set(0);
                    let peer = Peer { addr, listener: name.clone(), principal: ANONYMOUS.into(), tls: false };
                    // A refused connection is closed by dropping it.
                    if let Ok(open) = limits.open(&peer) {
                        connections.spawn(connection(stream, peer, service.clone(), opts.clone(), conn_shutdown.clone(), open));
                    }
                }
                // Out of file descriptors: connections wait in the backlog until some close. Back off instead of
                // spinning, and say so once per episode, not once per failure.
                Err(e) if out_of_resources(&e) => {
                    limits.metrics.accept_errors.with_label_values(&[&name]).inc();
                    blocked.set(1);
                    if let Some(Transition::Started { unlogged }) = out_of_fds.observe(true, std::time::Instant::now()) {
                        tracing::warn!(listener = %name, error = %e, earlier_unlogged_episodes = unlogged,
                            "accept failed: out of file descriptors; backing off until connections close (see max.connections)");
                    }
                    let delay = accept_backoff(backoff);
                    backoff = Some(delay);
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = stopped(&mut shutdown) => break,
                    }
                }
                // A connection that failed before it was accepted (ECONNABORTED and the like).
                Err(e) => tracing::debug!(listener = %name, error = %e, "accept failed"),
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            _ = stopped(&mut shutdown) => break,
        }
    }
    drop(listener);
    let drain = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(grace, drain).await.is_err() {
        tracing::warn!(listener = %name, "closing connections still busy after the shutdown grace period");
        connections.shutdown().await;
    }
}

enum Pending {
    Ready(ResponseFrame),
    Later(Pin<Box<dyn Future<Output = Option<ResponseFrame>> + Send>>),
}

/// When a connection last read or wrote, and how many responses it still owes: what the idle timer checks.
struct Activity {
    since: Instant,
    /// Milliseconds after `since`.
    last_ms: AtomicU64,
    pending: AtomicUsize,
}

impl Activity {
    fn new() -> Activity {
        Activity { since: Instant::now(), last_ms: AtomicU64::new(0), pending: AtomicUsize::new(0) }
    }

    fn touch(&self) {
        self.last_ms.store(self.since.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    fn last(&self) -> Instant {
        self.since + Duration::from_millis(self.last_ms.load(Ordering::Relaxed))
    }
}

/// Counts every byte read as activity.
struct Tracked<'a, R> {
    inner: R,
    activity: &'a Activity,
}

impl<R: AsyncRead + Unpin> AsyncRead for Tracked<'_, R> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.touch();
        }
        polled
    }
}

/// Runs `read` unless the connection goes idle first: nothing read or written for `max_idle` while no
/// response is owed (a request being processed, a Fetch or JoinGroup waiting, is not idleness).
async fn unless_idle<T>(read: impl Future<Output = io::Result<T>>, activity: &Activity, max_idle: Duration) -> io::Result<T> {
    tokio::pin!(read);
    loop {
        let now = Instant::now();
        let deadline = if activity.pending.load(Ordering::Acquire) > 0 {
            now + max_idle.min(Duration::from_secs(1))
        } else if now >= activity.last() + max_idle {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("idle for {} ms (connections.max.idle.ms)", max_idle.as_millis()),
            ));
        } else {
            activity.last() + max_idle
        };
        tokio::select! {
            r = &mut read => return r,
            _ = tokio::time::sleep_until(deadline) => {}
        }
    }
}

async fn connection(
    stream: TcpStream,
    mut peer: Peer,
    service: Arc<dyn Service>,
    opts: ConnectionOptions,
    shutdown: watch::Receiver<bool>,
    open: Open,
) {
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!(peer = %peer.addr, error = %e, "set_nodelay failed");
    }
    let connections = open.connections.clone();
    let Some(tls) = &opts.tls else {
        let (mut reader, writer) = stream.into_split();
        let mut writer = Writer::Plain(writer, FileSender::new(opts.fetch_mode));
        if authenticated(&mut reader, &mut writer, &mut peer, &*service, &opts, &connections).await {
            converse(reader, writer, peer, service, &opts, shutdown, &connections).await;
        }
        return;
    };
    match handshake(stream, tls, opts.max_idle).await {
        Ok((stream, principal)) => {
            if opts.sasl.is_none() {
                connections.metrics.successful_authentication.with_label_values(&[&peer.listener]).inc();
            }
            tracing::debug!(listener = %peer.listener, peer = %peer.addr, %principal, "TLS connection");
            peer.principal = principal.into();
            peer.tls = true;
            let (mut reader, writer) = tokio::io::split(stream);
            let mut writer = Writer::Tls(writer, Vec::new());
            if authenticated(&mut reader, &mut writer, &mut peer, &*service, &opts, &connections).await {
                converse(reader, writer, peer, service, &opts, shutdown, &connections).await
            } else {
                writer.close().await
            }
        }
        Err(reason) => connections.handshake_failed(&peer, &reason),
    }
}

/// Kafka's sasl.server.max.receive.size: the largest frame read before authentication.
const SASL_MAX_RECEIVE: usize = 524_288;

/// On a SASL listener, the authentication exchange (each frame within connections.max.idle.ms); then the
/// peer's principal is the user's. False when the connection is to be closed (already logged and counted).
async fn authenticated<R: AsyncRead + Unpin>(
    reader: &mut R,
    writer: &mut Writer,
    peer: &mut Peer,
    service: &dyn Service,
    opts: &ConnectionOptions,
    connections: &Connections,
) -> bool {
    let Some(server) = &opts.sasl else { return true };
    let mut auth = Authenticator::new(server.clone());
    loop {
        // Raw tokens (after SaslHandshake v0) may be shorter than a request header.
        let min = if auth.raw_tokens() { 0 } else { MIN_FRAME };
        let read = read_request(reader, min, SASL_MAX_RECEIVE.min(opts.max_request_bytes));
        let frame = match tokio::time::timeout(opts.max_idle, read).await {
            Ok(Ok(Some(frame))) => frame,
            Ok(Ok(None)) => {
                tracing::debug!(peer = %peer.addr, "connection closed before SASL authentication ended");
                return false;
            }
            Ok(Err(e)) => {
                connections.handshake_failed(peer, &e);
                return false;
            }
            Err(_) => {
                let reason = format!("no SASL authentication within {} ms (connections.max.idle.ms)", opts.max_idle.as_millis());
                connections.handshake_failed(peer, &reason);
                return false;
            }
        };
        let (reply, outcome): (Option<ResponseFrame>, Option<Result<String, String>>) = match auth.on_frame(frame) {
            Step::Forward(frame) => match service.call(peer, frame) {
                Reply::Ready(f) => (Some(f), None),
                Reply::Close(reason) => (None, Some(Err(reason))),
                Reply::None | Reply::Later(_) => (None, Some(Err("ApiVersions not answered at once".into()))),
            },
            Step::Reply(b) => (Some(b.into()), None),
            Step::Authenticated { reply, user } => (Some(reply.into()), Some(Ok(user))),
            Step::Fail { reply, reason } => (reply.map(Into::into), Some(Err(reason))),
        };
        if let Some(f) = reply {
            if let Err(e) = writer.write(&f).await {
                tracing::debug!(peer = %peer.addr, error = %e, "write failed during SASL authentication");
                return false;
            }
        }
        match outcome {
            None => {}
            Some(Ok(user)) => {
                connections.metrics.successful_authentication.with_label_values(&[&peer.listener]).inc();
                tracing::debug!(listener = %peer.listener, peer = %peer.addr, %user, "SASL authenticated");
                peer.principal = crate::sasl::principal(&user).into();
                return true;
            }
            Some(Err(reason)) => {
                connections.handshake_failed(peer, &reason);
                return false;
            }
        }
    }
}

/// The TLS handshake of an accepted connection and the client's principal, within `timeout`.
async fn handshake(stream: TcpStream, tls: &TlsContext, timeout: Duration) -> Result<(TlsStream<TcpStream>, String), String> {
    let config = tls.server_config().ok_or("the listener has no keystore")?;
    let accept = async {
        // A TLS connection opens with a handshake record (content type 22); anything else is a client
        // speaking plaintext, which rustls would only call a corrupt message.
        let mut first = [0u8; 1];
        match stream.peek(&mut first).await {
            Ok(0) => return Err("closed before the TLS handshake".to_string()),
            Ok(_) if first[0] != 0x16 => return Err("not a TLS handshake: a plaintext client on an SSL listener?".into()),
            Ok(_) => {}
            Err(e) => return Err(format!("before the TLS handshake: {e}")),
        }
        tokio_rustls::TlsAcceptor::from(config).accept(stream).await.map_err(|e| format!("TLS handshake failed: {e}"))
    };
    let stream = tokio::time::timeout(timeout, accept)
        .await
        .map_err(|_| format!("no TLS handshake within {} ms (connections.max.idle.ms)", timeout.as_millis()))??;
    let principal = tls.principal(stream.get_ref().1.peer_certificates().and_then(|c| c.first()))?;
    Ok((stream, principal))
}

/// Where a connection's responses go.
enum Writer {
    /// The socket itself: file ranges by sendfile (or the copy mode's buffer), with MSG_MORE.
    Plain(OwnedWriteHalf, FileSender),
    /// Through TLS, with the copy path's bounded buffer.
    Tls(WriteHalf<TlsStream<TcpStream>>, Vec<u8>),
}

impl Writer {
    async fn write(&mut self, frame: &ResponseFrame) -> io::Result<()> {
        match self {
            Writer::Plain(w, sender) => write_frame(w.as_ref(), frame, sender).await,
            Writer::Tls(w, buf) => write_frame_through(w, frame, buf).await,
        }
    }

    /// After the last response: TLS says close_notify, as Kafka's SslTransportLayer does (a plain socket just
    /// closes when dropped), unless a client that stopped reading keeps it from being sent for a second.
    async fn close(self) {
        if let Writer::Tls(mut w, _) = self {
            let _ = tokio::time::timeout(Duration::from_secs(1), tokio::io::AsyncWriteExt::shutdown(&mut w)).await;
        }
    }
}

/// Reads requests and writes responses until the client leaves, the connection fails or goes idle, or shutdown.
async fn converse<R: AsyncRead + Unpin>(
    reader: R,
    writer: Writer,
    peer: Peer,
    service: Arc<dyn Service>,
    opts: &ConnectionOptions,
    shutdown: watch::Receiver<bool>,
    connections: &Connections,
) {
    let activity = Arc::new(Activity::new());
    let (tx, rx) = mpsc::channel(opts.max_inflight);
    let write_task = tokio::spawn(write_responses(writer, rx, opts.warmer.clone(), peer.addr, activity.clone()));
    let mut reader = Tracked { inner: reader, activity: &activity };
    let reason = read_requests(&mut reader, &tx, &peer, &*service, opts, shutdown).await;
    match &reason {
        Ok(()) => tracing::debug!(peer = %peer.addr, "connection closed"),
        // Idle connections are routine (Kafka does not log them either).
        Err(e) if e.kind() == io::ErrorKind::TimedOut => tracing::debug!(peer = %peer.addr, error = %e, "closing connection"),
        Err(e) if e.get_ref().is_some_and(|e| e.is::<TlsOnPlaintext>()) => connections.handshake_failed(&peer, e),
        Err(e) => tracing::info!(peer = %peer.addr, error = %e, "closing connection"),
    }
    drop(tx); // the writer finishes the responses already queued, then closes
    let _ = write_task.await;
}

/// A request "size" that is the start of a TLS handshake record (content type 22, version 3.x): a TLS client
/// on a PLAINTEXT listener.
#[derive(Debug, thiserror::Error)]
#[error("a TLS handshake on a PLAINTEXT listener (the client uses SSL?)")]
struct TlsOnPlaintext;

async fn read_requests<R: AsyncRead + Unpin>(
    reader: &mut Tracked<'_, R>,
    tx: &mpsc::Sender<Pending>,
    peer: &Peer,
    service: &dyn Service,
    opts: &ConnectionOptions,
    mut shutdown: watch::Receiver<bool>,
) -> io::Result<()> {
    let activity = reader.activity;
    loop {
        let frame = tokio::select! {
            r = unless_idle(read_request(reader, MIN_FRAME, opts.max_request_bytes), activity, opts.max_idle) => match r? {
                Some(frame) => frame,
                None => return Ok(()),
            },
            _ = stopped(&mut shutdown) => return Ok(()),
        };
        let pending = match service.call(peer, frame) {
            Reply::None => continue,
            Reply::Ready(f) => Pending::Ready(f),
            Reply::Later(f) => Pending::Later(f),
            Reply::Close(reason) => return Err(io::Error::new(io::ErrorKind::InvalidData, reason)),
        };
        activity.pending.fetch_add(1, Ordering::AcqRel);
        // Blocks while max_inflight responses are queued: backpressure instead of unbounded buffering.
        if tx.send(pending).await.is_err() {
            return Ok(()); // the writer failed and logged why
        }
    }
}

/// One request frame of `min` to `max_request_bytes` bytes; None if the connection closed between requests.
async fn read_request(reader: &mut (impl AsyncRead + Unpin), min: usize, max_request_bytes: usize) -> io::Result<Option<Bytes>> {
    let mut size = [0u8; 4];
    match reader.read_exact(&mut size).await {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    if size[..2] == [0x16, 0x03] && i32::from_be_bytes(size) as usize > max_request_bytes {
        return Err(io::Error::new(io::ErrorKind::InvalidData, TlsOnPlaintext));
    }
    let size = i32::from_be_bytes(size);
    if size < min as i32 || size as usize > max_request_bytes {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("request size {size} is outside [{min}, {max_request_bytes}] (socket.request.max.bytes)"),
        ));
    }
    read_frame(reader, size as usize).await.map(Some)
}

async fn read_frame(reader: &mut (impl AsyncRead + Unpin), size: usize) -> io::Result<Bytes> {
    let mut buf = BytesMut::with_capacity(size);
    while buf.len() < size {
        let want = (size - buf.len()) as u64;
        if (&mut *reader).take(want).read_buf(&mut buf).await? == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed inside a request"));
        }
    }
    Ok(buf.freeze())
}

/// Writes the responses in request order. A frame with cold file ranges waits here, off the worker thread, while
/// they are read into the page cache: only this connection's later responses wait behind it.
async fn write_responses(
    mut writer: Writer,
    mut rx: mpsc::Receiver<Pending>,
    warmer: Option<Arc<Warmer>>,
    peer: SocketAddr,
    activity: Arc<Activity>,
) {
    while let Some(pending) = rx.recv().await {
        let frame = match pending {
            Pending::Ready(f) => Some(f),
            Pending::Later(fut) => fut.await,
        };
        if let Some(frame) = frame {
            if let Some(w) = &warmer {
                w.warm(&frame).await;
            }
            if let Err(e) = writer.write(&frame).await {
                tracing::debug!(%peer, error = %e, "write failed");
                return;
            }
        }
        // Touched before the count drops, so the reader never sees an owed response gone with an old time.
        activity.touch();
        activity.pending.fetch_sub(1, Ordering::AcqRel);
    }
    writer.close().await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::AsyncWriteExt;

    /// Echoes each frame; frames starting with 'S' are answered after 50 ms, "Z" gets no answer, "X" closes.
    struct Echo(AtomicUsize);

    impl Service for Echo {
        fn call(&self, _peer: &Peer, frame: Bytes) -> Reply {
            self.0.fetch_add(1, Ordering::SeqCst);
            let mut out = BytesMut::new();
            out.extend_from_slice(&(frame.len() as i32).to_be_bytes());
            out.extend_from_slice(&frame);
            let out = ResponseFrame::from(out.freeze());
            match frame[0] {
                b'S' => Reply::Later(Box::pin(async move {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    Some(out)
                })),
                b'Z' => Reply::None,
                b'X' => Reply::Close("asked to".into()),
                _ => Reply::Ready(out),
            }
        }
    }

    async fn start(max_request_bytes: usize) -> (SocketAddr, Arc<Echo>, watch::Sender<bool>, tokio::task::JoinHandle<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let echo = Arc::new(Echo(AtomicUsize::new(0)));
        let (stop, stopped) = watch::channel(false);
        let opts = ConnectionOptions {
            max_request_bytes,
            max_inflight: 2,
            fetch_mode: FetchMode::Copy,
            max_idle: Duration::from_secs(600),
            warmer: None,
            tls: None,
            sasl: None,
        };
        let limits = Limits { max_connections: 100, max_per_ip: 100 };
        let connections = Connections::new(limits, ConnectionMetrics::new(&prometheus::Registry::new()));
        let task =
            tokio::spawn(serve(listener, "PLAINTEXT".into(), echo.clone(), opts, connections, stopped, Duration::from_secs(5)));
        (addr, echo, stop, task)
    }

    fn req(body: &[u8]) -> Vec<u8> {
        let mut v = (body.len() as i32).to_be_bytes().to_vec();
        v.extend_from_slice(body);
        v
    }

    #[test]
    fn connections_are_admitted_below_both_limits() {
        let limits = Limits { max_connections: 3, max_per_ip: 2 };
        // (open on the broker, open from the peer's address) -> decision
        let table = [
            (0, 0, Ok(())),
            (2, 1, Ok(())),
            (2, 2, Err(Refusal::MaxConnectionsPerIp)),
            (3, 0, Err(Refusal::MaxConnections)),
            (3, 2, Err(Refusal::MaxConnectionsPerIp)),
        ];
        for (total, from_ip, want) in table {
            assert_eq!(admit(limits, total, from_ip), want, "total {total}, from ip {from_ip}");
        }
        assert_eq!(admit(Limits { max_connections: 0, max_per_ip: 5 }, 0, 0), Err(Refusal::MaxConnections));
    }

    #[test]
    fn accept_backs_off_from_100_ms_to_1_s() {
        let mut d = None;
        let waits: Vec<u128> = (0..6)
            .map(|_| {
                d = Some(accept_backoff(d));
                d.unwrap().as_millis()
            })
            .collect();
        assert_eq!(waits, [100, 200, 400, 800, 1000, 1000]);
        assert!(out_of_resources(&io::Error::from_raw_os_error(nix::libc::EMFILE)));
        assert!(out_of_resources(&io::Error::from_raw_os_error(nix::libc::ENFILE)));
        assert!(!out_of_resources(&io::Error::from_raw_os_error(nix::libc::ECONNABORTED)));
    }

    #[tokio::test]
    async fn pipelined_responses_come_back_in_request_order() {
        let (addr, _echo, stop, task) = start(1024).await;
        let mut s = TcpStream::connect(addr).await.unwrap();
        let bodies: [&[u8]; 5] = [b"S-slow-1", b"fast-2--", b"Z-none-3", b"S-slow-4", b"fast-5--"];
        let all: Vec<u8> = bodies.iter().flat_map(|b| req(b)).collect();
        s.write_all(&all).await.unwrap();
        for expected in [&bodies[0], &bodies[1], &bodies[3], &bodies[4]] {
            let mut got = vec![0; 12];
            s.read_exact(&mut got).await.unwrap();
            assert_eq!(&got[4..], *expected);
        }
        stop.send(true).unwrap();
        task.await.unwrap();
    }

    #[tokio::test]
    async fn oversized_and_undersized_frames_close_without_reading_them() {
        let (addr, echo, stop, task) = start(64).await;
        for size in [65i32, i32::MAX, -1, 3] {
            let mut s = TcpStream::connect(addr).await.unwrap();
            s.write_all(&size.to_be_bytes()).await.unwrap();
            let mut buf = [0u8; 1];
            assert_eq!(s.read(&mut buf).await.unwrap(), 0, "size {size}: connection must close");
        }
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(&req(b"X-close!")).await.unwrap();
        assert_eq!(s.read(&mut [0u8; 1]).await.unwrap(), 0);
        assert_eq!(echo.0.load(Ordering::SeqCst), 1, "only the well-sized frame reached the service");
        // Other connections are unaffected.
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(&req(b"fine-abc")).await.unwrap();
        let mut got = [0u8; 12];
        s.read_exact(&mut got).await.unwrap();
        stop.send(true).unwrap();
        task.await.unwrap();
    }

    #[tokio::test]
    async fn shutdown_finishes_in_flight_requests() {
        let (addr, _echo, stop, task) = start(1024).await;
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(&req(b"S-slow-1")).await.unwrap();
        tokio::time::sleep(Duration::from_millis(10)).await;
        stop.send(true).unwrap();
        let mut got = [0u8; 12];
        s.read_exact(&mut got).await.unwrap();
        assert_eq!(&got[4..], b"S-slow-1");
        task.await.unwrap();
        assert!(TcpStream::connect(addr).await.is_err(), "no longer accepting");
    }
}
