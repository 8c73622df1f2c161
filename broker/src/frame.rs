//! Outgoing response frames as a list of byte buffers and file ranges, and writing them to a socket: file
//! ranges go out with sendfile(2) (zero-copy) or, in copy mode, through a user-space buffer.

use std::io::{self, IoSlice};
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::Arc;

use bytes::Bytes;
use tokio::io::Interest;
use tokio::net::TcpStream;

use crate::config::FetchMode;

/// A file whose byte ranges can be sent: a segment file of the log in the broker, any file in tests.
pub trait RecordsFile: Send + Sync {
    fn fd(&self) -> BorrowedFd<'_>;
    /// Fills `buf` from `position` (the copy path).
    fn read_exact_at(&self, buf: &mut [u8], position: u64) -> io::Result<()>;
}

impl RecordsFile for std::fs::File {
    fn fd(&self) -> BorrowedFd<'_> {
        self.as_fd()
    }
    fn read_exact_at(&self, buf: &mut [u8], position: u64) -> io::Result<()> {
        std::os::unix::fs::FileExt::read_exact_at(self, buf, position)
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

/// Writes a frame; `scratch` is the reusable buffer of the copy path.
pub async fn write_frame(sock: &TcpStream, frame: &ResponseFrame, mode: FetchMode, scratch: &mut Vec<u8>) -> io::Result<()> {
    let has_files = frame.parts.iter().any(|p| matches!(p, Payload::File(_)));
    // Cork so the small encoded pieces between file ranges leave as full segments, not one packet each.
    if has_files {
        set_cork(sock, true)?;
    }
    let mut i = 0;
    while i < frame.parts.len() {
        match &frame.parts[i] {
            Payload::Bytes(_) => {
                let run: Vec<&[u8]> = frame.parts[i..]
                    .iter()
                    .map_while(|p| if let Payload::Bytes(b) = p { Some(&b[..]) } else { None })
                    .collect();
                i += run.len();
                write_all_vectored(sock, &run).await?;
            }
            Payload::File(f) => {
                i += 1;
                match mode {
                    FetchMode::Sendfile => send_file(sock, f).await?,
                    FetchMode::Copy => copy_file(sock, f, scratch).await?,
                }
            }
        }
    }
    if has_files {
        set_cork(sock, false)?;
    }
    Ok(())
}

fn set_cork(sock: &TcpStream, on: bool) -> io::Result<()> {
    use nix::libc;
    use std::os::fd::AsRawFd;
    let value: libc::c_int = on.into();
    // SAFETY: a valid socket fd and a pointer to a c_int of the given size (nix has no TCP_CORK wrapper).
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_CORK,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

async fn write_all_vectored(sock: &TcpStream, bufs: &[&[u8]]) -> io::Result<()> {
    let bufs: Vec<&[u8]> = bufs.iter().copied().filter(|b| !b.is_empty()).collect();
    let (mut idx, mut off) = (0, 0);
    while idx < bufs.len() {
        let slices: Vec<IoSlice> = bufs[idx..]
            .iter()
            .enumerate()
            .map(|(j, b)| IoSlice::new(if j == 0 { &b[off..] } else { &b[..] }))
            .take(64)
            .collect();
        sock.writable().await?;
        let mut n = match sock.try_write_vectored(&slices) {
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

async fn copy_file(sock: &TcpStream, f: &FileSlice, scratch: &mut Vec<u8>) -> io::Result<()> {
    let mut pos = f.position;
    let end = f.position + f.len;
    while pos < end {
        let n = ((end - pos) as usize).min(COPY_CHUNK);
        scratch.resize(n, 0);
        f.file.read_exact_at(&mut scratch[..n], pos)?;
        write_all_vectored(sock, &[&scratch[..n]]).await?;
        pos += n as u64;
    }
    Ok(())
}
