//! The process resources a broker's partitions use, and the guard that keeps new partitions within them.
//!
//! Each partition keeps its active segment open: the log and both indexes (3 descriptors) and the two index
//! maps, plus the log's write map in mmap mode. Closed segments are opened only while read (storage's
//! `log.segment.close.idle.ms`). So the partitions a broker can host are bounded by `RLIMIT_NOFILE` and
//! `vm.max_map_count`; the broker raises its soft descriptor limit to the hard one at startup (as Kafka's
//! packaging asks operators to do by hand), and refuses partitions that would leave less than a reserve of
//! either, with a clear error, instead of failing later with "Too many open files" in the middle of a
//! request, in the accept loop, or at the next start.

use std::path::Path;

use nix::sys::resource::{getrlimit, setrlimit, Resource};
use strata_storage::WriteMode;

/// What one more partition costs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionCost {
    pub descriptors: u64,
    pub maps: u64,
}

impl PartitionCost {
    pub fn for_mode(mode: WriteMode) -> PartitionCost {
        PartitionCost { descriptors: 3, maps: if mode == WriteMode::Mmap { 3 } else { 2 } }
    }
}

/// What the process uses and may use now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    pub open_descriptors: u64,
    pub descriptor_limit: u64,
    pub maps: u64,
    pub max_maps: u64,
}

impl Usage {
    /// Reads /proc (`proc` is normally `/proc`) and the descriptor limit; `None` where they cannot be read
    /// (then nothing is refused).
    pub fn read(proc: &Path) -> Option<Usage> {
        let open_descriptors = std::fs::read_dir(proc.join("self/fd")).ok()?.count() as u64;
        let maps = std::fs::read_to_string(proc.join("self/maps")).ok()?.lines().count() as u64;
        let max_maps = std::fs::read_to_string(proc.join("sys/vm/max_map_count")).ok()?.trim().parse().ok()?;
        let (descriptor_limit, _) = getrlimit(Resource::RLIMIT_NOFILE).ok()?;
        Some(Usage { open_descriptors, descriptor_limit, maps, max_maps })
    }
}

/// Descriptors and maps kept free for connections, closed segments being read, rolls and the like: a tenth
/// of the limit, at least 256 descriptors and 1024 maps.
fn reserve(limit: u64, floor: u64) -> u64 {
    (limit / 10).max(floor)
}

/// Whether `partitions` more partitions fit, leaving the reserve free; the error says what ran short.
pub fn admit(partitions: u64, cost: PartitionCost, usage: Usage) -> Result<(), String> {
    if partitions == 0 {
        return Ok(()); // nothing is opened here (e.g. a topic whose partitions are on other brokers)
    }
    // u128: no product or sum of u64 values overflows it.
    let need = |per: u64| u128::from(partitions) * u128::from(per);
    let fds_left = usage.descriptor_limit.saturating_sub(usage.open_descriptors);
    let fd_reserve = reserve(usage.descriptor_limit, 256);
    if need(cost.descriptors) + u128::from(fd_reserve) > u128::from(fds_left) {
        return Err(format!(
            "{partitions} more partitions need {} file descriptors; {} of the limit of {} are in use and {fd_reserve} \
             are kept free (raise the broker's RLIMIT_NOFILE, e.g. LimitNOFILE in systemd or ulimit -n)",
            need(cost.descriptors),
            usage.open_descriptors,
            usage.descriptor_limit
        ));
    }
    let maps_left = usage.max_maps.saturating_sub(usage.maps);
    let map_reserve = reserve(usage.max_maps, 1024);
    if need(cost.maps) + u128::from(map_reserve) > u128::from(maps_left) {
        return Err(format!(
            "{partitions} more partitions need {} memory maps; {} of vm.max_map_count {} are in use and {map_reserve} \
             are kept free (raise vm.max_map_count, e.g. strata-broker tune --vm-max-map-count 262144)",
            need(cost.maps),
            usage.maps,
            usage.max_maps
        ));
    }
    Ok(())
}

/// Raises the soft descriptor limit to the hard one; returns (soft before, soft now, hard).
pub fn raise_descriptor_limit() -> nix::Result<(u64, u64, u64)> {
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE)?;
    if soft < hard {
        setrlimit(Resource::RLIMIT_NOFILE, hard, hard)?;
    }
    let (now, _) = getrlimit(Resource::RLIMIT_NOFILE)?;
    Ok((soft, now, hard))
}

#[cfg(test)]
mod tests {
    use super::*;

    const WRITE: PartitionCost = PartitionCost { descriptors: 3, maps: 2 };

    fn usage(open_descriptors: u64, descriptor_limit: u64, maps: u64, max_maps: u64) -> Usage {
        Usage { open_descriptors, descriptor_limit, maps, max_maps }
    }

    #[test]
    fn partitions_are_admitted_while_a_reserve_stays_free() {
        let cases = [
            // (partitions, usage, admitted)
            (100, usage(50, 1024, 100, 65530), true),
            // 1024 - 50 - 256 reserve = 718 descriptors: 239 partitions fit, 240 do not.
            (239, usage(50, 1024, 100, 65530), true),
            (240, usage(50, 1024, 100, 65530), false),
            // A raised limit: the reserve is a tenth.
            (2_000, usage(500, 1_048_576, 100, 65530), true),
            // Maps run short first: 65530 - 60000 - 6553 reserve < 0.
            (1, usage(50, 1_048_576, 60_000, 65530), false),
            (30_000, usage(50, 1_048_576, 100, 65530), false),
            (30_000, usage(50, 1_048_576, 100, 262_144), true),
            (0, usage(2_000, 1024, 100, 65530), true),
            (u64::MAX, usage(0, u64::MAX, 0, u64::MAX), false),
        ];
        for (partitions, u, admitted) in cases {
            assert_eq!(admit(partitions, WRITE, u).is_ok(), admitted, "{partitions} with {u:?}");
        }
    }

    #[test]
    fn refusals_name_the_resource_and_the_remedy() {
        let e = admit(1_000, WRITE, usage(50, 1024, 100, 65530)).unwrap_err();
        assert!(e.contains("file descriptors") && e.contains("RLIMIT_NOFILE"), "{e}");
        let e = admit(1_000, WRITE, usage(50, 1_048_576, 65_000, 65530)).unwrap_err();
        assert!(e.contains("vm.max_map_count"), "{e}");
        assert_eq!(PartitionCost::for_mode(WriteMode::Mmap).maps, 3);
    }

    #[test]
    fn reads_this_process() {
        let u = Usage::read(Path::new("/proc")).expect("Linux /proc");
        assert!(u.open_descriptors > 0 && u.maps > 0 && u.descriptor_limit >= u.open_descriptors);
    }
}
