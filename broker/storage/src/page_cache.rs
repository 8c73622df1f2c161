//! How much of a file range is resident in the page cache: the fetch path samples this to report page-cache
//! hit and miss bytes. cachestat(2) (Linux 6.5+) answers with one syscall and no mapping; older kernels fall
//! back to mincore(2) on a temporary read-only mapping of the range. The method is detected once.

use std::fs::File;
use std::os::fd::AsRawFd;

use nix::libc;

/// cachestat's syscall number: the same on every architecture (it is past the unified numbering at 403).
const SYS_CACHESTAT: libc::c_long = 451;

#[repr(C)]
struct CachestatRange {
    off: u64,
    len: u64,
}

#[repr(C)]
#[derive(Default)]
struct Cachestat {
    nr_cache: u64,
    nr_dirty: u64,
    nr_writeback: u64,
    nr_evicted: u64,
    nr_recently_evicted: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeMethod {
    Cachestat,
    Mincore,
}

impl ProbeMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            ProbeMethod::Cachestat => "cachestat",
            ProbeMethod::Mincore => "mincore",
        }
    }
}

/// Resident and total bytes of a probed range, counted in whole pages clipped to the range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Residency {
    pub resident_bytes: u64,
    pub total_bytes: u64,
}

#[derive(Debug, Clone, Copy)]
pub struct PageCacheProbe {
    method: ProbeMethod,
    page_size: u64,
}

fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if size > 0 {
        size as u64
    } else {
        4096
    }
}

impl PageCacheProbe {
    /// Uses cachestat if this kernel has it, mincore otherwise.
    pub fn detect() -> PageCacheProbe {
        let probe = PageCacheProbe { method: ProbeMethod::Cachestat, page_size: page_size() };
        let method = match File::open("/proc/self/exe").map(|f| probe.cachestat(&f, 0, 1)) {
            Ok(Ok(_)) => ProbeMethod::Cachestat,
            _ => ProbeMethod::Mincore,
        };
        PageCacheProbe { method, ..probe }
    }

    /// A probe with a given method (tests compare them).
    pub fn with_method(method: ProbeMethod) -> PageCacheProbe {
        PageCacheProbe { method, page_size: page_size() }
    }

    pub fn method(&self) -> ProbeMethod {
        self.method
    }

    /// Residency of `[offset, offset + len)` of `file`.
    pub fn probe(&self, file: &impl AsRawFd, offset: u64, len: u64) -> std::io::Result<Residency> {
        if len == 0 {
            return Ok(Residency::default());
        }
        let first_page = offset / self.page_size;
        let pages = (offset + len).div_ceil(self.page_size) - first_page;
        let resident_pages = match self.method {
            ProbeMethod::Cachestat => self.cachestat(file, first_page * self.page_size, pages * self.page_size)?,
            ProbeMethod::Mincore => self.mincore(file, first_page * self.page_size, pages)?,
        };
        // Pages are all-or-nothing; a partially covered page counts as its share of the range.
        let resident_bytes = if resident_pages == pages { len } else { (resident_pages * self.page_size).min(len) };
        Ok(Residency { resident_bytes, total_bytes: len })
    }

    fn cachestat(&self, file: &impl AsRawFd, offset: u64, len: u64) -> std::io::Result<u64> {
        let range = CachestatRange { off: offset, len };
        let mut stat = Cachestat::default();
        // SAFETY: both structs are repr(C) as the kernel defines them and live for the call.
        let rc = unsafe { libc::syscall(SYS_CACHESTAT, file.as_raw_fd() as libc::c_uint, &range, &mut stat, 0u32) };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(stat.nr_cache)
    }

    fn mincore(&self, file: &impl AsRawFd, offset: u64, pages: u64) -> std::io::Result<u64> {
        let map = unsafe {
            // SAFETY: a private read-only mapping that is only passed to mincore, never dereferenced, so the
            // file changing underneath cannot be observed.
            memmap2::MmapOptions::new().offset(offset).len((pages * self.page_size) as usize).map(file.as_raw_fd())?
        };
        let mut vec = vec![0u8; pages as usize];
        // SAFETY: the mapping covers `pages` pages and vec has one byte per page.
        let rc = unsafe { libc::mincore(map.as_ptr() as *mut libc::c_void, map.len(), vec.as_mut_ptr()) };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(vec.iter().filter(|b| *b & 1 != 0).count() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::fcntl::{posix_fadvise, PosixFadviseAdvice};
    use std::io::Write;

    fn written_file(len: usize) -> (tempfile::TempDir, File) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("seg.log");
        let mut f = File::create(&path).unwrap();
        f.write_all(&vec![7u8; len]).unwrap();
        f.sync_all().unwrap();
        (dir, File::open(&path).unwrap())
    }

    #[test]
    fn written_pages_are_resident_and_dropped_pages_are_not() {
        let methods = [ProbeMethod::Cachestat, ProbeMethod::Mincore];
        for method in methods.into_iter().filter(|m| *m == ProbeMethod::Mincore || PageCacheProbe::detect().method() == *m) {
            let probe = PageCacheProbe::with_method(method);
            let (_dir, f) = written_file(1 << 20);
            let r = probe.probe(&f, 100, 500_000).unwrap();
            assert_eq!(r, Residency { resident_bytes: 500_000, total_bytes: 500_000 }, "{method:?}");
            posix_fadvise(&f, 0, 0, PosixFadviseAdvice::POSIX_FADV_DONTNEED).unwrap();
            let r = probe.probe(&f, 100, 500_000).unwrap();
            assert_eq!(r.resident_bytes, 0, "{method:?} after DONTNEED");
            // Reading part of it back brings just that part in.
            use std::os::unix::fs::FileExt;
            let mut buf = vec![0u8; 65536];
            f.read_exact_at(&mut buf, 0).unwrap();
            let r = probe.probe(&f, 0, 1 << 20).unwrap();
            assert!(r.resident_bytes >= 65536 && r.resident_bytes < 1 << 20, "{method:?}: {r:?}");
        }
    }

    #[test]
    fn this_kernel_has_cachestat() {
        // Linux 6.5+ (the CI and development machines run newer kernels); the fallback is tested above.
        assert_eq!(PageCacheProbe::detect().method(), ProbeMethod::Cachestat);
    }
}
