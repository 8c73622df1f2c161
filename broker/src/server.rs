//! The network server: accepts connections, reads size-prefixed request frames (refusing oversized ones before
//! allocating), hands them to the service in order, and writes responses in request order while later requests
//! are already being read (pipelining), with a bound on the requests in flight per connection.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use crate::config::FetchMode;
use crate::frame::{write_frame, FileSender, ResponseFrame};
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
    /// Reads cold file ranges into the page cache before a frame is written; None: written as they are.
    pub warmer: Option<Arc<Warmer>>,
}

/// Resolves once `shutdown` is true (or its sender is gone).
pub async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|s| *s).await;
}

/// The smallest request: api key, version, correlation id.
const MIN_FRAME: usize = 8;

/// Accepts connections until `shutdown` turns true, then waits up to `grace` for open connections to finish
/// their in-flight requests.
pub async fn serve(
    listener: TcpListener,
    name: Arc<str>,
    service: Arc<dyn Service>,
    opts: ConnectionOptions,
    mut shutdown: watch::Receiver<bool>,
    grace: Duration,
) {
    let mut connections = JoinSet::new();
    let conn_shutdown = shutdown.clone();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, addr)) => {
                    let peer = Peer { addr, listener: name.clone() };
                    connections.spawn(connection(stream, peer, service.clone(), opts.clone(), conn_shutdown.clone()));
                }
                // Out of file descriptors and the like: back off instead of spinning.
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
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

async fn connection(stream: TcpStream, peer: Peer, service: Arc<dyn Service>, opts: ConnectionOptions, shutdown: watch::Receiver<bool>) {
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!(peer = %peer.addr, error = %e, "set_nodelay failed");
    }
    let (mut reader, writer) = stream.into_split();
    let (tx, rx) = mpsc::channel(opts.max_inflight);
    let write_task = tokio::spawn(write_responses(writer, rx, opts.fetch_mode, opts.warmer.clone(), peer.addr));
    let reason = read_requests(&mut reader, &tx, &peer, &*service, &opts, shutdown).await;
    match &reason {
        Ok(()) => tracing::debug!(peer = %peer.addr, "connection closed"),
        Err(e) => tracing::info!(peer = %peer.addr, error = %e, "closing connection"),
    }
    drop(tx); // the writer finishes the responses already queued, then closes
    let _ = write_task.await;
}

async fn read_requests(
    reader: &mut (impl AsyncRead + Unpin),
    tx: &mpsc::Sender<Pending>,
    peer: &Peer,
    service: &dyn Service,
    opts: &ConnectionOptions,
    mut shutdown: watch::Receiver<bool>,
) -> io::Result<()> {
    loop {
        let mut size = [0u8; 4];
        tokio::select! {
            r = reader.read_exact(&mut size) => match r {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
                Err(e) => return Err(e),
            },
            _ = stopped(&mut shutdown) => return Ok(()),
        }
        let size = i32::from_be_bytes(size);
        if size < MIN_FRAME as i32 || size as usize > opts.max_request_bytes {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("request size {size} is outside [{MIN_FRAME}, {}] (socket.request.max.bytes)", opts.max_request_bytes),
            ));
        }
        let frame = read_frame(reader, size as usize).await?;
        let pending = match service.call(peer, frame) {
            Reply::None => continue,
            Reply::Ready(f) => Pending::Ready(f),
            Reply::Later(f) => Pending::Later(f),
            Reply::Close(reason) => return Err(io::Error::new(io::ErrorKind::InvalidData, reason)),
        };
        // Blocks while max_inflight responses are queued: backpressure instead of unbounded buffering.
        if tx.send(pending).await.is_err() {
            return Ok(()); // the writer failed and logged why
        }
    }
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
    writer: OwnedWriteHalf,
    mut rx: mpsc::Receiver<Pending>,
    mode: FetchMode,
    warmer: Option<Arc<Warmer>>,
    peer: SocketAddr,
) {
    let mut sender = FileSender::new(mode);
    while let Some(pending) = rx.recv().await {
        let frame = match pending {
            Pending::Ready(f) => f,
            Pending::Later(fut) => match fut.await {
                Some(f) => f,
                None => continue,
            },
        };
        if let Some(w) = &warmer {
            w.warm(&frame).await;
        }
        if let Err(e) = write_frame(writer.as_ref(), &frame, &mut sender).await {
            tracing::debug!(%peer, error = %e, "write failed");
            return;
        }
    }
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
        let opts = ConnectionOptions { max_request_bytes, max_inflight: 2, fetch_mode: FetchMode::Copy, warmer: None };
        let task = tokio::spawn(serve(listener, "PLAINTEXT".into(), echo.clone(), opts, stopped, Duration::from_secs(5)));
        (addr, echo, stop, task)
    }

    fn req(body: &[u8]) -> Vec<u8> {
        let mut v = (body.len() as i32).to_be_bytes().to_vec();
        v.extend_from_slice(body);
        v
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
