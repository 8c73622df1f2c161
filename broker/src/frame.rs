//! Outgoing response frames as a list of byte buffers and file ranges, and writing them to a socket: file
//! ranges go out with sendfile(2) (zero-copy) or, in copy mode, through a user-space buffer; through a TLS
//! stream, which encrypts in user space, always through a bounded buffer.

use std::io::{self, IoSlice};
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::Arc;

use bytes::Bytes;
use tokio::io::{AsyncWrite, AsyncWriteExt, Interest};
use tokio::net::TcpStream;

use crate::config::FetchMode;

/// A file whose byte ranges can be sent: a segment file of the log in the broker, any file in tests.
pub trait RecordsFile: Send + Sync {
    fn fd(&self) -> BorrowedFd<'_>;
    /// Fills `buf` from `position` (the copy path).
    fn read_exact_at(&self, buf: &mut [u8], position: u64) -> io::Result<()>;
    /// The file's length now (the warm-up reads ahead no further).
    fn size(&self) -> u64;
}

impl RecordsFile for std::fs::File {
    fn fd(&self) -> BorrowedFd<'_> {
        self.as_fd()
    }
    fn read_exact_at(&self, buf: &mut [u8], position: u64) -> io::Result<()> {
        std::os::unix::fs::FileExt::read_exact_at(self, buf, position)
    }
    fn size(&self) -> u64 {
        self.metadata().map_or(0, |m| m.len())
    }
}

#[derive(Clone)]
pub struct FileSlice {
    pub file: Arc<dyn RecordsFile>,
    pub position: u64,
    pub len: u64,
}

impl FileSlice {
    pub fn read_to_vec(&self) -> io::Result<Vec<u8>> {
        let mut buf = vec![0; self.len as usize];
        self.file.read_exact_at(&mut buf, self.position)?;
        Ok(buf)
    }
}

#[derive(Clone)]
pub enum Payload {
    Bytes(Bytes),
    File(FileSlice),
}

impl Payload {
    /// Bytes this part puts on the wire.
    pub fn size(&self) -> u64 {
        match self {
            Payload::Bytes(b) => b.len() as u64,
            Payload::File(f) => f.len,
        }
    }
}

/// One complete response frame, size prefix included.
#[derive(Clone)]
pub struct ResponseFrame {
    pub parts: Vec<Payload>,
}

impl From<Bytes> for ResponseFrame {
    fn from(b: Bytes) -> Self {
        ResponseFrame { parts: vec![Payload::Bytes(b)] }
    }
}

impl ResponseFrame {
    /// Bytes of the whole frame, size prefix included.
    pub fn size(&self) -> u64 {
        self.parts.iter().map(Payload::size).sum()
    }

    /// The frame as one buffer (tests, and comparison with other encoders).
    pub fn to_vec(&self) -> io::Result<Vec<u8>> {
        let mut out = Vec::with_capacity(self.size() as usize);
        for p in &self.parts {
            match p {
                Payload::Bytes(b) => out.extend_from_slice(b),
                Payload::File(f) => out.extend_from_slice(&f.read_to_vec()?),
            }
        }
        Ok(out)
    }
}

/// How one connection sends file ranges, with the copy path's buffer kept between frames.
pub struct FileSender {
    mode: FetchMode,
    scratch: Vec<u8>,
}

impl FileSender {
    pub fn new(mode: FetchMode) -> FileSender {
        FileSender { mode, scratch: Vec::new() }
    }

    /// `more`: the frame goes on after this range.
    async fn send(&mut self, sock: &TcpStream, f: &FileSlice, more: bool) -> io::Result<()> {
        match self.mode {
            // sendfile(2) holds nothing back at the end of its range: `more` is for the encoded pieces around it.
            FetchMode::Sendfile => send_file(sock, f).await,
            FetchMode::Copy => copy_file(sock, f, &mut self.scratch, more).await,
        }
    }
}

/// Writes a frame. The encoded pieces before a file range are sent with MSG_MORE, so they leave in one segment
/// with the range's first bytes rather than as a packet of their own. (TCP_CORK around the frame does the same,
/// but measured 25-40% slower for sendfile over loopback: see BENCHMARKS.md.)
pub async fn write_frame(sock: &TcpStream, frame: &ResponseFrame, sender: &mut FileSender) -> io::Result<()> {
    // Bytes may be held back (MSG_MORE) only while later parts will send more: held bytes wait for later ones
    // (or for an ACK, or the kernel's 200 ms timer). `more_after(i)`: a part from `i` on sends bytes.
    let last_sending = frame.parts.iter().rposition(|p| p.size() > 0);
    let more_after = |i: usize| last_sending.is_some_and(|l| i <= l);
    let mut i = 0;
    while i < frame.parts.len() {
        match &frame.parts[i] {
            Payload::Bytes(_) => {
                let run: Vec<&[u8]> =
                    frame.parts[i..].iter().map_while(|p| if let Payload::Bytes(b) = p { Some(&b[..]) } else { None }).collect();
                i += run.len();
                write_all_vectored(sock, &run, more_after(i)).await?;
            }
            Payload::File(f) => {
                i += 1;
                sender.send(sock, f, more_after(i)).await?;
            }
        }
    }
    Ok(())
}

/// `more`: MSG_MORE on every write (the caller sends more of the frame right after).
async fn write_all_vectored(sock: &TcpStream, bufs: &[&[u8]], more: bool) -> io::Result<()> {
    use nix::sys::socket::{sendmsg, MsgFlags};
    use std::os::fd::AsRawFd;
    // nix has no MSG_MORE constant.
    let more_flag = MsgFlags::from_bits_retain(if more { nix::libc::MSG_MORE } else { 0 });
    let flags = MsgFlags::MSG_NOSIGNAL | more_flag;
    let bufs: Vec<&[u8]> = bufs.iter().copied().filter(|b| !b.is_empty()).collect();
    let (mut idx, mut off) = (0, 0);
    while idx < bufs.len() {
        let slices: Vec<IoSlice> =
            bufs[idx..].iter().enumerate().map(|(j, b)| IoSlice::new(if j == 0 { &b[off..] } else { &b[..] })).take(64).collect();
        sock.writable().await?;
        let sent = sock
            .try_io(Interest::WRITABLE, || sendmsg::<()>(sock.as_raw_fd(), &slices, &[], flags, None).map_err(io::Error::from));
        let mut n = match sent {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        };
        while idx < bufs.len() && n >= bufs[idx].len() - off {
            n -= bufs[idx].len() - off;
            idx += 1;
            off = 0;
        }
        off += n;
    }
    Ok(())
}

async fn send_file(sock: &TcpStream, f: &FileSlice) -> io::Result<()> {
    let mut offset = f.position as i64;
    let end = (f.position + f.len) as i64;
    while offset < end {
        sock.writable().await?;
        let res = sock.try_io(Interest::WRITABLE, || {
            let count = (end - offset) as usize;
            nix::sys::sendfile::sendfile(sock, f.file.fd(), Some(&mut offset), count).map_err(io::Error::from)
        });
        match res {
            // The file shrank under us: the size prefix is already out, so the connection must end.
            Ok(0) => return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "segment file shorter than its range")),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

const COPY_CHUNK: usize = 1 << 20;

async fn copy_file(sock: &TcpStream, f: &FileSlice, scratch: &mut Vec<u8>, more: bool) -> io::Result<()> {
    let mut pos = f.position;
    let end = f.position + f.len;
    while pos < end {
        let n = ((end - pos) as usize).min(COPY_CHUNK);
        scratch.resize(n, 0);
        f.file.read_exact_at(&mut scratch[..n], pos)?;
        pos += n as u64;
        write_all_vectored(sock, &[&scratch[..n]], more || pos < end).await?;
    }
    Ok(())
}

/// The copy path's buffer for streams that transform bytes (TLS): file ranges are read this much at a time, so a
/// connection's fetches use this much memory however large they are (plus the TLS records rustls has
/// buffered, 64 KiB by default).
pub const STREAM_CHUNK: usize = 64 << 10;

/// Writes a frame through a stream that transforms the bytes (TLS), which sendfile(2) cannot feed: file ranges
/// are read into `buf` (at most [`STREAM_CHUNK`]) together with the small encoded pieces around them, so the
/// stream gets full writes (full TLS records) rather than one per piece. Flushes at the end of the frame.
pub async fn write_frame_through<W: AsyncWrite + Unpin>(w: &mut W, frame: &ResponseFrame, buf: &mut Vec<u8>) -> io::Result<()> {
    buf.clear();
    for part in &frame.parts {
        match part {
            Payload::Bytes(b) if buf.len() + b.len() <= STREAM_CHUNK => buf.extend_from_slice(b),
            Payload::Bytes(b) => {
                w.write_all(buf).await?;
                buf.clear();
                w.write_all(b).await?;
            }
            Payload::File(f) => {
                // Sized on the first range: connections that never fetch keep small buffers.
                buf.reserve_exact(STREAM_CHUNK.saturating_sub(buf.len()));
                let (mut pos, end) = (f.position, f.position + f.len);
                while pos < end {
                    if buf.len() == STREAM_CHUNK {
                        w.write_all(buf).await?;
                        buf.clear();
                    }
                    let n = ((end - pos) as usize).min(STREAM_CHUNK - buf.len());
                    let start = buf.len();
                    buf.resize(start + n, 0);
                    f.file.read_exact_at(&mut buf[start..], pos)?;
                    pos += n as u64;
                }
            }
        }
    }
    w.write_all(buf).await?;
    buf.clear();
    w.flush().await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::time::Duration;
    use tokio::io::AsyncReadExt;
    use tokio::net::TcpListener;

    /// A frame of encoded pieces and ranges of one file, an empty range last (nothing follows it, so nothing
    /// before it may be held back).
    fn frame(file: &Arc<dyn RecordsFile>) -> ResponseFrame {
        let range = |position, len| Payload::File(FileSlice { file: file.clone(), position, len });
        ResponseFrame {
            parts: vec![
                Payload::Bytes(Bytes::from_static(b"head")),
                range(3, 70_000),
                Payload::Bytes(Bytes::from_static(b"between")),
                Payload::Bytes(Bytes::from_static(b"")),
                range(2_500_000, 1_500_000),
                Payload::Bytes(Bytes::from_static(b"tail")),
                range(10, 0),
            ],
        }
    }

    /// 4 MB of a pattern that a shifted or repeated range would not match.
    fn sample_file() -> Arc<dyn RecordsFile> {
        let mut f = tempfile::tempfile().unwrap();
        let content: Vec<u8> = (0..4_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
        f.write_all(&content).unwrap();
        Arc::new(f)
    }

    #[tokio::test]
    async fn every_mode_sends_the_frame_byte_for_byte_and_holds_nothing_back() {
        let file = sample_file();
        let frame = frame(&file);
        let expected = frame.to_vec().unwrap();
        for mode in [FetchMode::Sendfile, FetchMode::Copy] {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let client = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
            let (server, _) = listener.accept().await.unwrap();
            let mut sender = FileSender::new(mode);
            let reader = tokio::spawn(async move {
                let mut client = client;
                let mut got = vec![0; 2 * 1_570_015];
                let mut n = 0;
                // Two frames back to back; the socket stays open, so only what was pushed arrives.
                while n < got.len() {
                    n += client.read(&mut got[n..]).await.unwrap();
                }
                (client, got)
            });
            for _ in 0..2 {
                write_frame(&server, &frame, &mut sender).await.unwrap();
            }
            let (mut client, got) =
                tokio::time::timeout(Duration::from_secs(10), reader).await.expect("frame held back").unwrap();
            assert_eq!(got.len(), 2 * expected.len(), "{mode:?}");
            assert!(got[..expected.len()] == expected[..] && got[expected.len()..] == expected[..], "{mode:?}");
            // A small frame on an idle connection: nothing in flight whose ACK would release held bytes, so bytes
            // wrongly sent with MSG_MORE would wait for the kernel's 200 ms timer.
            let small = ResponseFrame { parts: vec![Payload::Bytes(Bytes::from_static(b"small")), frame.parts[6].clone()] };
            write_frame(&server, &small, &mut sender).await.unwrap();
            let mut buf = [0; 5];
            tokio::time::timeout(Duration::from_millis(150), client.read_exact(&mut buf))
                .await
                .expect("small frame held back")
                .unwrap();
            assert_eq!(&buf, b"small");
        }
    }

    /// Counts the writes it gets and never holds more than `STREAM_CHUNK` of one.
    struct Recorder {
        out: Vec<u8>,
        writes: usize,
        flushed: bool,
    }

    impl AsyncWrite for Recorder {
        fn poll_write(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            buf: &[u8],
        ) -> std::task::Poll<io::Result<usize>> {
            assert!(buf.len() <= STREAM_CHUNK, "a write of {} bytes", buf.len());
            self.out.extend_from_slice(buf);
            self.writes += 1;
            self.flushed = false;
            std::task::Poll::Ready(Ok(buf.len()))
        }
        fn poll_flush(mut self: std::pin::Pin<&mut Self>, _: &mut std::task::Context<'_>) -> std::task::Poll<io::Result<()>> {
            self.flushed = true;
            std::task::Poll::Ready(Ok(()))
        }
        fn poll_shutdown(self: std::pin::Pin<&mut Self>, _: &mut std::task::Context<'_>) -> std::task::Poll<io::Result<()>> {
            std::task::Poll::Ready(Ok(()))
        }
    }

    #[tokio::test]
    async fn through_a_stream_in_bounded_full_writes() {
        let file = sample_file();
        let frame = frame(&file);
        let expected = frame.to_vec().unwrap();
        let mut w = Recorder { out: Vec::new(), writes: 0, flushed: false };
        let mut buf = Vec::new();
        write_frame_through(&mut w, &frame, &mut buf).await.unwrap();
        assert!(w.out == expected && w.flushed);
        assert_eq!(w.writes, expected.len().div_ceil(STREAM_CHUNK), "pieces are gathered into full writes");
        assert_eq!(buf.capacity(), STREAM_CHUNK, "bounded buffer");
    }
}
