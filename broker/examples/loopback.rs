//! Raw loopback baselines for the broker benchmark: streams a file over a 127.0.0.1 TCP connection to a reader
//! that reads into a 4 MiB buffer, with sendfile(2) or with pread+write (the two fetch modes without a broker).
//! Usage: loopback FILE SECONDS sendfile|copy  -> prints MB/s

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::FileExt;
use std::time::{Duration, Instant};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, path, seconds, mode] = &args[..] else {
        eprintln!("usage: loopback FILE SECONDS sendfile|copy");
        std::process::exit(2);
    };
    let seconds: f64 = seconds.parse().expect("SECONDS is a number");
    let file = std::fs::File::open(path).expect("open FILE");
    let size = file.metadata().expect("stat FILE").len();
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("local addr");
    let reader = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().expect("accept");
        let mut buf = vec![0u8; 4 << 20];
        let mut total = 0u64;
        loop {
            match conn.read(&mut buf) {
                Ok(0) => return total,
                Ok(n) => total += n as u64,
                Err(e) => panic!("read: {e}"),
            }
        }
    });
    let mut out = TcpStream::connect(addr).expect("connect");
    let mut chunk = vec![0u8; 1 << 20];
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs_f64(seconds) {
        let mut offset = 0u64;
        while offset < size {
            if mode == "sendfile" {
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
    }
    drop(out);
    let total = reader.join().expect("reader");
    println!("{:.0}", total as f64 / start.elapsed().as_secs_f64() / 1e6);
}
