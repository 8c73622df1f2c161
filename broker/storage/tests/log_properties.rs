//! Model-based property test: random sequences of appends, rolls, truncations, retention, DeleteRecords and
//! reopens (clean or crashed) against a simple model of which batches the log holds. After every step: every
//! offset from the log start to the end is readable and starts at its batch, reads return whole valid
//! batches byte-for-byte, and index lookups agree with a linear scan of the segment.

mod common;

use common::*;
use proptest::prelude::*;
use strata_storage::{LogConfig, WriteMode};

#[derive(Debug, Clone)]
enum Op {
    Append {
        records: usize,
        value_len: usize,
        codec: usize,
    },
    Roll,
    /// Truncate to a fraction of the way from log start to end.
    Truncate(f64),
    DeleteRecords(f64),
    RetainBytes(u64),
    Reopen {
        clean: bool,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        12 => (1usize..12, 0usize..400, 0usize..5).prop_map(|(records, value_len, codec)| Op::Append { records, value_len, codec }),
        1 => Just(Op::Roll),
        1 => (0.0f64..1.0).prop_map(Op::Truncate),
        1 => (0.0f64..1.0).prop_map(Op::DeleteRecords),
        1 => (0u64..20_000).prop_map(Op::RetainBytes),
        1 => any::<bool>().prop_map(|clean| Op::Reopen { clean }),
    ]
}

/// The batches the log must hold: (base offset, next offset, bytes).
#[derive(Default)]
struct Model {
    batches: Vec<(i64, i64, Vec<u8>)>,
    log_start: i64,
    log_end: i64,
}

/// Index lookups agree with a linear scan: every batch found by scanning a segment file from its start is
/// where a read of its offsets (which goes through the offset index) starts.
fn check_index_against_scan(log: &strata_storage::Log, dir: &std::path::Path) -> Result<(), TestCaseError> {
    for base in log.segment_base_offsets() {
        let path = dir.join(format!("events-0/{base:020}.log"));
        let bytes = std::fs::read(&path).unwrap();
        let mut position = 0usize;
        while let strata_storage::batch::BatchCheck::Valid(h) = strata_storage::batch::check_stored_batch(&bytes[position..]) {
            for offset in [h.base_offset, h.last_offset()] {
                if offset < log.log_start_offset() {
                    continue;
                }
                let r = log.read(offset, 1, i64::MAX).expect("read");
                prop_assert_eq!(r.ranges[0].file.path(), path.as_path());
                prop_assert_eq!(r.ranges[0].position, position as u64, "offset {} in segment {}", offset, base);
            }
            position += h.size();
        }
    }
    Ok(())
}

fn check(log: &strata_storage::Log, model: &Model) -> Result<(), TestCaseError> {
    prop_assert_eq!(log.log_end_offset(), model.log_end);
    prop_assert_eq!(log.log_start_offset(), model.log_start);
    let live: Vec<&(i64, i64, Vec<u8>)> = model.batches.iter().filter(|(_, next, _)| *next > model.log_start).collect();
    let expected: Vec<u8> = live.iter().flat_map(|(_, _, b)| b.clone()).collect();
    prop_assert_eq!(read_all(log, model.log_start, 1 << 20) == expected, true, "whole log differs from the model");
    for (base, next, bytes) in &live {
        for offset in [(*base).max(model.log_start), next - 1] {
            let r = log.read(offset, 1, i64::MAX).expect("read");
            let got = range_bytes(&r);
            prop_assert_eq!(&got[..], &bytes[..], "read at {} must start with its batch", offset);
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]

    #[test]
    fn the_log_behaves_like_its_model(
        mode in prop_oneof![Just(WriteMode::Write), Just(WriteMode::Mmap)],
        ops in proptest::collection::vec(op(), 1..60),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig { retention_ms: -1, ..small_config(mode) };
        let mut manager = Some(open_manager(dir.path(), config.clone()));
        let mut log = manager.as_ref().unwrap().get_or_create(&tp(), config.clone()).unwrap();
        let mut model = Model::default();
        let ts = now_ms();
        for op in ops {
            match op {
                Op::Append { records, value_len, codec } => {
                    let b = batch(records, value_len, ts, CODECS[codec]);
                    let info = append_committed(&log, &mut b.clone()).unwrap();
                    prop_assert_eq!(info.first_offset, model.log_end);
                    model.batches.push((model.log_end, model.log_end + records as i64, with_base_offset(b, model.log_end)));
                    model.log_end += records as i64;
                }
                Op::Roll => log.roll().unwrap(),
                Op::Truncate(frac) => {
                    let target = model.log_start + ((model.log_end - model.log_start) as f64 * frac) as i64;
                    log.truncate_to(target).unwrap();
                    if target < model.log_end {
                        // The batch containing the target goes too; the end never falls below the start.
                        model.batches.retain(|(_, next, _)| *next <= target);
                        model.log_end = model.batches.last().map_or(0, |b| b.1).max(model.log_start);
                    }
                }
                Op::DeleteRecords(frac) => {
                    let target = model.log_start + ((model.log_end - model.log_start) as f64 * frac) as i64;
                    prop_assert_eq!(manager.as_ref().unwrap().delete_records(&tp(), target).unwrap(), target.max(model.log_start));
                    model.log_start = target.max(model.log_start);
                }
                Op::RetainBytes(bytes) => {
                    log.update_config(LogConfig { retention_bytes: bytes as i64, ..config.clone() });
                    log.apply_retention(now_ms()).unwrap();
                    log.update_config(config.clone());
                    // Whole segments went: the new start is the first remaining segment (or the end).
                    model.log_start = log.log_start_offset();
                    prop_assert!(log.size_bytes() >= bytes.min(log.size_bytes()));
                }
                Op::Reopen { clean } => {
                    let m = manager.take().unwrap();
                    if clean {
                        m.shutdown().unwrap();
                    }
                    drop(log);
                    drop(m);
                    let m = open_manager(dir.path(), config.clone());
                    log = m.get(&tp()).unwrap();
                    manager = Some(m);
                    // Checkpointed at shutdown; after a crash, the last periodic checkpoint's.
                    if clean {
                        prop_assert_eq!(log.high_watermark(), model.log_end);
                    }
                    prop_assert!(log.high_watermark() <= model.log_end);
                    // A single replica commits its whole log once it leads again.
                    log.maybe_increment_high_watermark(log.log_end_offset());
                }
            }
            check(&log, &model)?;
            check_index_against_scan(&log, dir.path())?;
        }
    }
}
