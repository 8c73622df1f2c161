//! What the node and this process look like, read from /proc and /proc/sys: the tuning that matters for a
//! page-cache-based log (vm.swappiness, dirty ratios, max_map_count), swap, memory maps in use (Kafka's
//! "Map failed" trap) and this process's disk I/O. Parsers are pure; readers return None where a file is
//! missing (non-Linux test hosts, hardened /proc).

use std::path::Path;

#[derive(Debug, Default, Clone, PartialEq)]
pub struct NodeStats {
    pub vm_swappiness: Option<i64>,
    pub vm_dirty_ratio: Option<i64>,
    pub vm_dirty_background_ratio: Option<i64>,
    pub vm_max_map_count: Option<i64>,
    pub swap_used_bytes: Option<u64>,
    pub process_map_count: Option<u64>,
    /// Bytes this process caused to be read from / written to storage (/proc/self/io).
    pub disk_read_bytes: Option<u64>,
    pub disk_write_bytes: Option<u64>,
}

fn read_i64(path: &Path) -> Option<i64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// `SwapTotal - SwapFree` from /proc/meminfo, in bytes.
pub fn parse_swap_used(meminfo: &str) -> Option<u64> {
    let kb = |key: &str| -> Option<u64> {
        meminfo.lines().find_map(|l| l.strip_prefix(key)).and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    };
    Some(kb("SwapTotal:")?.saturating_sub(kb("SwapFree:")?) * 1024)
}

/// `read_bytes` and `write_bytes` from /proc/self/io.
pub fn parse_proc_io(io: &str) -> (Option<u64>, Option<u64>) {
    let field = |key: &str| io.lines().find_map(|l| l.strip_prefix(key)).and_then(|v| v.trim().parse().ok());
    (field("read_bytes:"), field("write_bytes:"))
}

impl NodeStats {
    /// Reads the stats from `proc` (normally `/proc`).
    pub fn read(proc: &Path) -> NodeStats {
        let vm = |name: &str| read_i64(&proc.join("sys/vm").join(name));
        let (disk_read_bytes, disk_write_bytes) =
            std::fs::read_to_string(proc.join("self/io")).map(|s| parse_proc_io(&s)).unwrap_or((None, None));
        NodeStats {
            vm_swappiness: vm("swappiness"),
            vm_dirty_ratio: vm("dirty_ratio"),
            vm_dirty_background_ratio: vm("dirty_background_ratio"),
            vm_max_map_count: vm("max_map_count"),
            swap_used_bytes: std::fs::read_to_string(proc.join("meminfo")).ok().and_then(|s| parse_swap_used(&s)),
            process_map_count: std::fs::read_to_string(proc.join("self/maps")).ok().map(|s| s.lines().count() as u64),
            disk_read_bytes,
            disk_write_bytes,
        }
    }
}

/// Free and total bytes of the filesystem holding `dir`.
pub fn disk_space(dir: &Path) -> Option<(u64, u64)> {
    let st = nix::sys::statvfs::statvfs(dir).ok()?;
    let block = st.fragment_size() as u64;
    Some((st.blocks_available() as u64 * block, st.blocks() as u64 * block))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_meminfo_and_proc_io() {
        let meminfo = "MemTotal:       24576000 kB\nSwapTotal:       2097152 kB\nSwapFree:        2096128 kB\n";
        assert_eq!(parse_swap_used(meminfo), Some(1024 * 1024));
        assert_eq!(parse_swap_used("MemTotal: 1 kB\n"), None);
        let io = "rchar: 10\nwchar: 20\nsyscr: 1\nsyscw: 2\nread_bytes: 4096\nwrite_bytes: 8192\ncancelled_write_bytes: 0\n";
        assert_eq!(parse_proc_io(io), (Some(4096), Some(8192)));
    }

    #[test]
    fn reads_a_fake_proc_tree() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        std::fs::create_dir_all(p.join("sys/vm")).unwrap();
        std::fs::create_dir_all(p.join("self")).unwrap();
        for (name, v) in
            [("swappiness", "1"), ("dirty_ratio", "20"), ("dirty_background_ratio", "10"), ("max_map_count", "262144")]
        {
            std::fs::write(p.join("sys/vm").join(name), format!("{v}\n")).unwrap();
        }
        std::fs::write(p.join("self/maps"), "a\nb\nc\n").unwrap();
        let s = NodeStats::read(p);
        assert_eq!(
            (s.vm_swappiness, s.vm_dirty_ratio, s.vm_dirty_background_ratio, s.vm_max_map_count),
            (Some(1), Some(20), Some(10), Some(262144))
        );
        assert_eq!(s.process_map_count, Some(3));
        assert_eq!((s.swap_used_bytes, s.disk_read_bytes), (None, None));
        // The real /proc of this machine has all of them.
        let real = NodeStats::read(Path::new("/proc"));
        assert!(real.vm_swappiness.is_some() && real.process_map_count.unwrap() > 0 && real.disk_write_bytes.is_some());
        assert!(disk_space(p).is_some_and(|(free, total)| free <= total && total > 0));
    }
}
