//! Raw loopback baselines for the broker benchmark: streams a file over a 127.0.0.1 TCP connection with
//! sendfile(2) or with pread+write (the two fetch modes without a broker) to a reader that either reads into a
//! 4 MiB buffer (what a consumer does) or splices the bytes into /dev/null (what bench/fetch_sink.py does).
//! Usage: loopback FILE SECONDS sendfile|copy read|splice  -> prints "MB/s sender-CPU-seconds-per-GiB"

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::FileExt;
use std::time::{Duration, Instant};

use nix::fcntl::{fcntl, splice, FcntlArg, SpliceFFlags};
use nix::time::{clock_gettime, ClockId};

const PIPE_BYTES: usize = 1 << 20;

fn read_all(mut conn: TcpStream) -> u64 {
    let mut buf = vec![0u8; 4 << 20];
    let mut total = 0u64;
    loop {
        match conn.read(&mut buf) {
            Ok(0) => return total,
            Ok(n) => total += n as u64,
            Err(e) => panic!("read: {e}"),
        }
    }
}

fn splice_all(conn: TcpStream) -> u64 {
    let (pipe_r, pipe_w) = nix::unistd::pipe().expect("pipe");
    fcntl(&pipe_w, FcntlArg::F_SETPIPE_SZ(PIPE_BYTES as i32)).expect("F_SETPIPE_SZ");
    let null = std::fs::OpenOptions::new().write(true).open("/dev/null").expect("open /dev/null");
    let mut total = 0u64;
    loop {
        let n = splice(&conn, None, &pipe_w, None, PIPE_BYTES, SpliceFFlags::empty()).expect("splice from socket");
        if n == 0 {
            return total;
        }
        total += n as u64;
        let mut left = n;
        while left > 0 {
            left -= splice(&pipe_r, None, &null, None, left, SpliceFFlags::empty()).expect("splice to /dev/null");
        }
    }
}

fn thread_cpu_seconds() -> f64 {
    let t = clock_gettime(ClockId::CLOCK_THREAD_CPUTIME_ID).expect("thread CPU clock");
    t.tv_sec() as f64 + t.tv_nsec() as f64 / 1e9
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage = || -> ! {
        eprintln!("usage: loopback FILE SECONDS sendfile|copy read|splice");
        std::process::exit(2);
    };
    let [_, path, seconds, mode, reader] = &args[..] else { usage() };
    let use_sendfile = match mode.as_str() {
        "sendfile" => true,
        "copy" => false,
        _ => usage(),
    };
    let read: fn(TcpStream) -> u64 = match reader.as_str() {
        "read" => read_all,
        "splice" => splice_all,
        _ => usage(),
    };
    let seconds: f64 = seconds.parse().expect("SECONDS is a number");
    let file = std::fs::File::open(path).expect("open FILE");
    let size = file.metadata().expect("stat FILE").len();
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("local addr");
    let reader = std::thread::spawn(move || {
        let (conn, _) = listener.accept().expect("accept");
        read(conn)
    });
    let mut out = TcpStream::connect(addr).expect("connect");
    let mut chunk = vec![0u8; 1 << 20];
    let start = Instant::now();
    let cpu0 = thread_cpu_seconds();
    let mut sent = 0u64;
    while start.elapsed() < Duration::from_secs_f64(seconds) {
        let mut offset = 0u64;
        while offset < size {
            if use_sendfile {
                let mut off = offset as i64;
                let n = nix::sys::sendfile::sendfile(&out, &file, Some(&mut off), (size - offset) as usize).expect("sendfile");
                offset += n as u64;
            } else {
                let n = ((size - offset) as usize).min(chunk.len());
                file.read_exact_at(&mut chunk[..n], offset).expect("pread");
                out.write_all(&chunk[..n]).expect("write");
                offset += n as u64;
            }
        }
        sent += size;
    }
    let cpu = thread_cpu_seconds() - cpu0;
    drop(out);
    let total = reader.join().expect("reader");
    assert_eq!(total, sent, "the reader got every byte");
    println!("{:.0} {:.3}", total as f64 / start.elapsed().as_secs_f64() / 1e6, cpu / (sent as f64 / (1u64 << 30) as f64));
}
