//! One hosted partition (Kafka's Partition): its log, its role at a leader epoch (leader or follower, as the
//! metadata image says), and as leader what it knows of its followers: their log end offsets, when each was
//! last caught up, the high watermark they allow, and the in-sync replica changes to ask the controller for
//! (one in flight at a time, KIP-497). The rules are pure functions at the top, tested on their own.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use strata_storage::{AppendInfo, Log, StorageError, TopicPartition};
use tokio::sync::watch;
use uuid::Uuid;

use crate::errors::{code, storage_error_code};

/// What a leader knows of one follower.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FollowerState {
    /// The offset it fetched from last: everything below is on its log. -1 before its first fetch.
    pub log_end_offset: i64,
    /// When its log last reached the leader's log end offset (or the one of its previous fetch).
    pub last_caught_up_ms: i64,
    pub last_fetch_ms: i64,
    /// The leader's log end offset at its last fetch.
    pub last_fetch_leader_leo: i64,
}

impl FollowerState {
    fn new(now_ms: i64) -> FollowerState {
        FollowerState { log_end_offset: -1, last_caught_up_ms: now_ms, last_fetch_ms: now_ms, last_fetch_leader_leo: -1 }
    }
}

/// Kafka's caught-up rule: a follower is caught up when it fetched from the leader's log end offset, or from
/// the end offset the leader had at its previous fetch (it read everything there was then).
pub fn after_fetch(prev: FollowerState, fetch_offset: i64, leader_leo: i64, now_ms: i64) -> FollowerState {
    let last_caught_up_ms = if fetch_offset >= leader_leo {
        now_ms
    } else if fetch_offset >= prev.last_fetch_leader_leo && prev.last_fetch_leader_leo >= 0 {
        prev.last_fetch_ms
    } else {
        prev.last_caught_up_ms
    };
    FollowerState {
        log_end_offset: fetch_offset,
        last_caught_up_ms: last_caught_up_ms.max(prev.last_caught_up_ms),
        last_fetch_ms: now_ms,
        last_fetch_leader_leo: leader_leo,
    }
}

/// The replicas the high watermark waits for: the ISR and, while a change is in flight, the replicas it adds
/// (Kafka's maximal ISR: an expansion counts at once, a shrink only once committed).
pub fn maximal_isr(isr: &[i32], pending: Option<&[i32]>) -> Vec<i32> {
    let mut out = isr.to_vec();
    for r in pending.unwrap_or(&[]) {
        if !out.contains(r) {
            out.push(*r);
        }
    }
    out
}

/// The high watermark the leader may move to: the smallest log end offset over the maximal ISR, never back,
/// and not at all while the ISR is smaller than min.insync.replicas (so no record becomes visible, or
/// acknowledged, on fewer replicas than the topic asks for).
pub fn next_high_watermark(
    current: i64,
    leader_id: i32,
    leader_leo: i64,
    isr: &[i32],
    maximal: &[i32],
    followers: &BTreeMap<i32, FollowerState>,
    min_insync: i32,
) -> i64 {
    if (isr.len() as i32) < min_insync {
        return current;
    }
    let min = maximal
        .iter()
        .map(|r| if *r == leader_id { leader_leo } else { followers.get(r).map_or(-1, |f| f.log_end_offset) })
        .min()
        .unwrap_or(leader_leo);
    current.max(min)
}

/// Whether a follower outside the ISR may join it: it has everything up to the high watermark and something
/// of the current leader epoch (its log reached the epoch's start).
pub fn may_join_isr(follower: &FollowerState, high_watermark: i64, epoch_start_offset: i64) -> bool {
    follower.log_end_offset >= high_watermark && follower.log_end_offset >= epoch_start_offset
}

/// ISR members (other than the leader) not caught up for longer than `lag_max_ms` (replica.lag.time.max.ms).
pub fn lagging(isr: &[i32], leader_id: i32, followers: &BTreeMap<i32, FollowerState>, now_ms: i64, lag_max_ms: i64) -> Vec<i32> {
    isr.iter()
        .copied()
        .filter(|r| *r != leader_id)
        .filter(|r| followers.get(r).is_none_or(|f| now_ms - f.last_caught_up_ms > lag_max_ms))
        .collect()
}

/// An ISR change for the controller (Kafka's AlterPartition).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IsrChange {
    pub topic_id: Uuid,
    pub tp: TopicPartition,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    pub new_isr: Vec<i32>,
    /// Whether it adds a replica (else it removes some), for the ISR expand/shrink rates.
    pub expands: bool,
}

/// What the metadata image says about a partition this broker hosts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    pub topic_id: Uuid,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    pub leader: i32,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
}

#[derive(Debug)]
struct State {
    assignment: Assignment,
    /// As leader: its followers.
    followers: BTreeMap<i32, FollowerState>,
    /// The ISR an AlterPartition in flight asks for, sent at `assignment.partition_epoch`.
    pending_isr: Option<Vec<i32>>,
    /// The log end offset when this broker became leader at the current epoch.
    epoch_start_offset: i64,
}

pub struct Partition {
    pub log: Arc<Log>,
    node_id: i32,
    high_watermark: watch::Sender<i64>,
    /// The log end offset, for follower fetches waiting for new records.
    end_offset: watch::Sender<i64>,
    leader: AtomicBool,
    leader_epoch: AtomicI32,
    /// As follower: the high watermark its leader last reported (for the fetcher lag metric).
    leader_high_watermark: AtomicI64,
    /// Listed for this broker's leader / follower replication throttle (see [`crate::throttle`]).
    leader_throttled: AtomicBool,
    follower_throttled: AtomicBool,
    state: Mutex<State>,
}

#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    #[error("the in-sync replicas of {partition} number {isr}, fewer than min.insync.replicas={min_isr}")]
    NotEnoughReplicas { partition: TopicPartition, isr: i32, min_isr: i32 },
    #[error("this broker no longer leads {0}")]
    NotLeader(TopicPartition),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl AppendError {
    pub fn code(&self) -> i16 {
        match self {
            AppendError::NotEnoughReplicas { .. } => code::NOT_ENOUGH_REPLICAS,
            AppendError::NotLeader(_) => code::NOT_LEADER_OR_FOLLOWER,
            AppendError::Storage(e) => storage_error_code(e),
        }
    }
}

/// Why a follower's fetch is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FetchRefusal {
    NotLeader,
    /// The fetcher's epoch is older than this leader's.
    FencedEpoch,
    /// The fetcher knows a newer epoch than this broker.
    UnknownEpoch,
    /// The fetching broker is not a replica.
    NotReplica,
}

impl FetchRefusal {
    pub fn code(self) -> i16 {
        match self {
            FetchRefusal::NotLeader | FetchRefusal::NotReplica => code::NOT_LEADER_OR_FOLLOWER,
            FetchRefusal::FencedEpoch => code::FENCED_LEADER_EPOCH,
            FetchRefusal::UnknownEpoch => code::UNKNOWN_LEADER_EPOCH,
        }
    }
}

/// Kafka's current-leader-epoch check: -1 skips it.
pub fn check_epoch(requested: i32, mine: i32) -> Result<(), FetchRefusal> {
    match requested {
        -1 => Ok(()),
        e if e < mine => Err(FetchRefusal::FencedEpoch),
        e if e > mine => Err(FetchRefusal::UnknownEpoch),
        _ => Ok(()),
    }
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

impl Partition {
    pub fn new(log: Arc<Log>, node_id: i32, assignment: Assignment) -> Partition {
        let (high_watermark, _) = watch::channel(log.high_watermark());
        let (end_offset, _) = watch::channel(log.log_end_offset());
        let p = Partition {
            node_id,
            high_watermark,
            end_offset,
            leader: AtomicBool::new(false),
            leader_epoch: AtomicI32::new(-1),
            leader_high_watermark: AtomicI64::new(-1),
            leader_throttled: AtomicBool::new(false),
            follower_throttled: AtomicBool::new(false),
            state: Mutex::new(State {
                assignment: assignment.clone(),
                followers: BTreeMap::new(),
                pending_isr: None,
                epoch_start_offset: log.log_end_offset(),
            }),
            log,
        };
        p.update(assignment);
        p
    }

    pub fn topic_partition(&self) -> &TopicPartition {
        self.log.topic_partition()
    }

    pub fn is_leader(&self) -> bool {
        self.leader.load(Ordering::Acquire)
    }

    pub fn leader_epoch(&self) -> i32 {
        self.leader_epoch.load(Ordering::Acquire)
    }

    pub fn assignment(&self) -> Assignment {
        self.state.lock().expect("partition lock").assignment.clone()
    }

    pub fn in_sync_replicas(&self) -> i32 {
        self.state.lock().expect("partition lock").assignment.isr.len() as i32
    }

    /// As follower: how far its log is behind the high watermark its leader last reported (Kafka's fetcher
    /// lag); 0 as leader or before the first fetch.
    pub fn follower_lag(&self) -> i64 {
        if self.is_leader() {
            return 0;
        }
        (self.leader_high_watermark.load(Ordering::Relaxed) - self.log.log_end_offset()).max(0)
    }

    /// Whether the topic lists this partition for this broker's leader and follower replication throttles.
    pub fn set_throttled(&self, (leader, follower): (bool, bool)) {
        self.leader_throttled.store(leader, Ordering::Release);
        self.follower_throttled.store(follower, Ordering::Release);
    }

    /// As leader: whether what `replica` fetches counts against the leader throttle (listed here, and the
    /// replica is not in sync: throttling an ISR member would hold back the high watermark).
    pub fn leader_throttles(&self, replica: i32) -> bool {
        self.leader_throttled.load(Ordering::Acquire)
            && !self.state.lock().expect("partition lock").assignment.isr.contains(&replica)
    }

    /// As follower: whether what this broker fetches counts against the follower throttle (listed here, and this
    /// replica is not in sync).
    pub fn follower_throttled(&self) -> bool {
        self.follower_throttled.load(Ordering::Acquire)
            && !self.state.lock().expect("partition lock").assignment.isr.contains(&self.node_id)
    }

    /// Applies what the image says; returns true if this broker's role or epoch changed.
    pub fn update(&self, assignment: Assignment) -> bool {
        let mut s = self.state.lock().expect("partition lock");
        let was = (self.leader.load(Ordering::Acquire), self.leader_epoch.load(Ordering::Acquire));
        let leads = assignment.leader == self.node_id;
        let changed = was != (leads, assignment.leader_epoch);
        if changed && leads {
            // A new leader gives every follower a whole lag period from now, as Kafka does.
            let now = now_ms();
            s.followers =
                assignment.replicas.iter().filter(|r| **r != self.node_id).map(|r| (*r, FollowerState::new(now))).collect();
            s.epoch_start_offset = self.log.log_end_offset();
            tracing::info!(partition = %self.log.topic_partition(), epoch = assignment.leader_epoch, isr = ?assignment.isr, "leading partition");
        } else if changed {
            s.followers.clear();
        }
        if s.assignment.partition_epoch != assignment.partition_epoch || changed {
            s.pending_isr = None;
        }
        // Followers that are no longer replicas are forgotten; new ones start now.
        s.followers.retain(|r, _| assignment.replicas.contains(r));
        if leads {
            for r in assignment.replicas.iter().filter(|r| **r != self.node_id) {
                s.followers.entry(*r).or_insert_with(|| FollowerState::new(now_ms()));
            }
        }
        s.assignment = assignment;
        self.leader_epoch.store(s.assignment.leader_epoch, Ordering::Release);
        self.leader.store(leads, Ordering::Release);
        if leads {
            self.advance_high_watermark(&mut s);
        }
        changed
    }

    /// Appends one produce request's records as leader and wakes fetches waiting on it. With acks=-1 the ISR
    /// must number at least min.insync.replicas, or nothing is appended (Kafka's appendRecordsToLeader).
    pub fn append(&self, records: &mut [u8], required_acks: i16) -> Result<AppendInfo, AppendError> {
        let min_isr = self.log.config().min_insync_replicas;
        let (epoch, isr) = {
            let s = self.state.lock().expect("partition lock");
            if !self.is_leader() {
                return Err(AppendError::NotLeader(self.log.topic_partition().clone()));
            }
            (s.assignment.leader_epoch, s.assignment.isr.len() as i32)
        };
        if required_acks == -1 && isr < min_isr {
            return Err(AppendError::NotEnoughReplicas { partition: self.log.topic_partition().clone(), isr, min_isr });
        }
        let info = self.log.append_as_leader(records, epoch)?;
        self.end_offset.send_replace(self.log.log_end_offset());
        let mut s = self.state.lock().expect("partition lock");
        self.advance_high_watermark(&mut s);
        Ok(info)
    }

    fn advance_high_watermark(&self, s: &mut State) {
        let a = &s.assignment;
        let maximal = maximal_isr(&a.isr, s.pending_isr.as_deref());
        let hw = next_high_watermark(
            self.log.high_watermark(),
            self.node_id,
            self.log.log_end_offset(),
            &a.isr,
            &maximal,
            &s.followers,
            self.log.config().min_insync_replicas,
        );
        if self.log.maybe_increment_high_watermark(hw) {
            self.high_watermark.send_replace(self.log.high_watermark());
        }
    }

    /// A follower fetched from `fetch_offset` at `current_leader_epoch`: records its progress, moves the high
    /// watermark, and returns the ISR expansion to ask for if it may join.
    pub fn follower_fetched(
        &self,
        replica: i32,
        current_leader_epoch: i32,
        fetch_offset: i64,
    ) -> Result<Option<IsrChange>, FetchRefusal> {
        let mut s = self.state.lock().expect("partition lock");
        if !self.is_leader() {
            return Err(FetchRefusal::NotLeader);
        }
        check_epoch(current_leader_epoch, s.assignment.leader_epoch)?;
        let Some(prev) = s.followers.get(&replica).copied() else { return Err(FetchRefusal::NotReplica) };
        let leo = self.log.log_end_offset();
        s.followers.insert(replica, after_fetch(prev, fetch_offset.min(leo), leo, now_ms()));
        self.advance_high_watermark(&mut s);
        let a = &s.assignment;
        let maximal = maximal_isr(&a.isr, s.pending_isr.as_deref());
        if s.pending_isr.is_some() || maximal.contains(&replica) {
            return Ok(None);
        }
        if !may_join_isr(&s.followers[&replica], self.log.high_watermark(), s.epoch_start_offset) {
            return Ok(None);
        }
        let mut new_isr = a.isr.clone();
        new_isr.push(replica);
        Ok(Some(self.propose(&mut s, new_isr)))
    }

    /// As leader: the ISR shrink to ask for when members lag by more than `lag_max_ms`.
    pub fn shrink_if_lagging(&self, lag_max_ms: i64) -> Option<IsrChange> {
        let mut s = self.state.lock().expect("partition lock");
        if !self.is_leader() || s.pending_isr.is_some() {
            return None;
        }
        let out = lagging(&s.assignment.isr, self.node_id, &s.followers, now_ms(), lag_max_ms);
        if out.is_empty() {
            return None;
        }
        tracing::info!(partition = %self.log.topic_partition(), lagging = ?out, lag_max_ms, "shrinking the ISR");
        let new_isr: Vec<i32> = s.assignment.isr.iter().copied().filter(|r| !out.contains(r)).collect();
        Some(self.propose(&mut s, new_isr))
    }

    fn propose(&self, s: &mut State, new_isr: Vec<i32>) -> IsrChange {
        s.pending_isr = Some(new_isr.clone());
        IsrChange {
            expands: new_isr.len() > s.assignment.isr.len(),
            topic_id: s.assignment.topic_id,
            tp: self.log.topic_partition().clone(),
            leader_epoch: s.assignment.leader_epoch,
            partition_epoch: s.assignment.partition_epoch,
            new_isr,
        }
    }

    /// The controller refused or did not answer an ISR change: it may be asked again.
    pub fn isr_change_failed(&self, change: &IsrChange) {
        let mut s = self.state.lock().expect("partition lock");
        if s.pending_isr.as_ref() == Some(&change.new_isr) && s.assignment.partition_epoch == change.partition_epoch {
            s.pending_isr = None;
        }
    }

    /// Appends batches fetched from the leader as it wrote them, then takes its high watermark (bounded by
    /// what this replica has).
    pub fn append_as_follower(&self, records: &[u8], leader_high_watermark: i64) -> Result<Option<AppendInfo>, StorageError> {
        let info = if records.is_empty() { None } else { Some(self.log.append_as_follower(records)?) };
        self.end_offset.send_replace(self.log.log_end_offset());
        self.follower_high_watermark(leader_high_watermark);
        Ok(info)
    }

    pub fn follower_high_watermark(&self, leader_high_watermark: i64) {
        self.leader_high_watermark.store(leader_high_watermark, Ordering::Relaxed);
        if self.log.maybe_increment_high_watermark(leader_high_watermark) {
            self.high_watermark.send_replace(self.log.high_watermark());
        }
    }

    /// Removes the log from `offset` on (a follower whose log diverged from its leader's). A cut below the log
    /// start leaves nothing: the log starts over at `offset`, as Kafka's truncateFullyAndStartAt.
    pub fn truncate_to(&self, offset: i64) -> Result<(), StorageError> {
        tracing::info!(partition = %self.log.topic_partition(), offset, log_end_offset = self.log.log_end_offset(), "truncating a diverged follower log");
        if offset < self.log.log_start_offset() {
            self.log.truncate_fully_and_start_at(offset)?;
        } else {
            self.log.truncate_to(offset)?;
        }
        self.end_offset.send_replace(self.log.log_end_offset());
        self.high_watermark.send_replace(self.log.high_watermark());
        Ok(())
    }

    /// Empties the log to continue at the leader's log start offset (a follower whose log ends before it).
    pub fn truncate_fully_and_start_at(&self, offset: i64) -> Result<(), StorageError> {
        self.log.truncate_fully_and_start_at(offset)?;
        self.end_offset.send_replace(self.log.log_end_offset());
        self.high_watermark.send_replace(self.log.high_watermark());
        Ok(())
    }

    /// A follower takes the leader's log start offset (DeleteRecords, retention, the offsets log's rewrite),
    /// bounded by its own high watermark as Kafka's maybeIncrementLogStartOffset is; returns whether it moved.
    pub fn follower_log_start(&self, leader_log_start: i64) -> Result<bool, StorageError> {
        let target = leader_log_start.min(self.log.high_watermark());
        if target <= self.log.log_start_offset() {
            return Ok(false);
        }
        self.log.delete_records_before(target)?;
        Ok(true)
    }

    /// Changes whenever the high watermark moves.
    pub fn watch_high_watermark(&self) -> watch::Receiver<i64> {
        self.high_watermark.subscribe()
    }

    /// Changes whenever records are appended or truncated.
    pub fn watch_end_offset(&self) -> watch::Receiver<i64> {
        self.end_offset.subscribe()
    }

    /// After an acks=all append: None while the high watermark is below `offset`; then success, or
    /// NOT_ENOUGH_REPLICAS_AFTER_APPEND if the ISR fell below min.insync.replicas meanwhile, or
    /// NOT_LEADER_OR_FOLLOWER if this broker lost the leadership.
    pub fn acks_all_outcome(&self, offset: i64, leader_epoch: i32) -> Option<Result<(), i16>> {
        if !self.is_leader() || self.leader_epoch() != leader_epoch {
            return Some(Err(code::NOT_LEADER_OR_FOLLOWER));
        }
        if self.log.high_watermark() < offset {
            return None;
        }
        let min_isr = self.log.config().min_insync_replicas;
        if self.in_sync_replicas() < min_isr {
            return Some(Err(code::NOT_ENOUGH_REPLICAS_AFTER_APPEND));
        }
        Some(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(leo: i64, caught_up: i64) -> FollowerState {
        FollowerState { log_end_offset: leo, last_caught_up_ms: caught_up, last_fetch_ms: caught_up, last_fetch_leader_leo: leo }
    }

    #[test]
    fn caught_up_rule() {
        let prev = FollowerState { log_end_offset: 5, last_caught_up_ms: 100, last_fetch_ms: 200, last_fetch_leader_leo: 8 };
        // Fetching from the leader's end: caught up now.
        assert_eq!(after_fetch(prev, 10, 10, 300).last_caught_up_ms, 300);
        // Reached what the leader had at the previous fetch: caught up as of that fetch.
        assert_eq!(after_fetch(prev, 8, 12, 300).last_caught_up_ms, 200);
        // Behind both: unchanged.
        assert_eq!(after_fetch(prev, 7, 12, 300).last_caught_up_ms, 100);
        assert_eq!(after_fetch(prev, 7, 12, 300).log_end_offset, 7);
    }

    #[test]
    fn high_watermark_rules() {
        let followers = BTreeMap::from([(2, f(5, 0)), (3, f(9, 0))]);
        // (current, leader leo, isr, pending, min isr) -> hw
        type Case = (i64, i64, &'static [i32], Option<&'static [i32]>, i32, i64);
        let cases: [Case; 7] = [
            (0, 10, &[1, 2, 3], None, 1, 5),
            (0, 10, &[1, 3], None, 1, 9),
            (0, 10, &[1], None, 1, 10),
            // An expansion in flight counts at once.
            (0, 10, &[1, 3], Some(&[1, 3, 2]), 1, 5),
            // Never backwards.
            (7, 10, &[1, 2, 3], None, 1, 7),
            // Below min.insync.replicas: it does not move.
            (0, 10, &[1], None, 2, 0),
            (0, 10, &[1, 3], None, 2, 9),
        ];
        for (current, leo, isr, pending, min, want) in cases {
            let maximal = maximal_isr(isr, pending);
            assert_eq!(next_high_watermark(current, 1, leo, isr, &maximal, &followers, min), want, "{isr:?} {pending:?} {min}");
        }
        // A follower that never fetched holds the high watermark at -1 (so: the current one).
        let none = BTreeMap::new();
        assert_eq!(next_high_watermark(3, 1, 10, &[1, 2], &[1, 2], &none, 1), 3);
    }

    #[test]
    fn isr_join_and_lag_rules() {
        assert!(may_join_isr(&f(10, 0), 10, 4));
        assert!(!may_join_isr(&f(9, 0), 10, 4), "below the high watermark");
        assert!(!may_join_isr(&f(10, 0), 3, 12), "nothing of the current epoch yet");
        let followers = BTreeMap::from([(2, f(5, 1000)), (3, f(9, 9000))]);
        assert_eq!(lagging(&[1, 2, 3], 1, &followers, 10_000, 5000), vec![2]);
        assert_eq!(lagging(&[1, 2, 3], 1, &followers, 20_000, 5000), vec![2, 3]);
        assert!(lagging(&[1, 3], 1, &followers, 10_000, 5000).is_empty());
        assert_eq!(lagging(&[1, 4], 1, &followers, 0, 5000), vec![4], "unknown follower");
    }

    /// One step of the model below.
    #[derive(Debug, Clone)]
    enum Step {
        /// The leader appends this many records.
        Append(i64),
        /// A follower (2 or 3) fetches at its log end and gets up to this many records back.
        Fetch(i32, i64),
        /// The fake clock moves on.
        Tick(i64),
    }

    fn step() -> impl proptest::strategy::Strategy<Value = Step> {
        use proptest::prelude::*;
        prop_oneof![
            (1..20i64).prop_map(Step::Append),
            (2..=3i32, 0..30i64).prop_map(|(f, n)| Step::Fetch(f, n)),
            (0..2_000i64).prop_map(Step::Tick),
        ]
    }

    proptest::proptest! {
        /// The leader's rules (caught-up tracking, high watermark, ISR shrink and expand) driven by random
        /// appends, follower fetches and clock ticks, against what the followers really hold: the high
        /// watermark never goes back, never passes a record some ISR member lacks, stands still below
        /// min.insync.replicas; a follower that fetched the leader's end within replica.lag.time.max.ms is never
        /// called lagging, one that did not fetch for longer always is.
        #[test]
        fn leader_rules_keep_their_promises(steps in proptest::collection::vec(step(), 1..200), min_isr in 1..=3i32) {
            const LAG_MAX: i64 = 3_000;
            let (leader, mut now, mut leader_leo, mut hw) = (1, 10_000i64, 0i64, 0i64);
            let mut real: BTreeMap<i32, i64> = BTreeMap::from([(2, 0), (3, 0)]);
            let mut followers: BTreeMap<i32, FollowerState> =
                real.keys().map(|r| (*r, FollowerState::new(now))).collect();
            let mut isr = vec![1, 2, 3];
            for step in steps {
                match step {
                    Step::Append(n) => leader_leo += n,
                    Step::Fetch(f, n) => {
                        let fetch_offset = real[&f];
                        followers.insert(f, after_fetch(followers[&f], fetch_offset, leader_leo, now));
                        real.insert(f, (fetch_offset + n).min(leader_leo));
                    }
                    Step::Tick(ms) => now += ms,
                }
                let before = hw;
                hw = next_high_watermark(hw, leader, leader_leo, &isr, &isr, &followers, min_isr);
                proptest::prop_assert!(hw >= before, "the high watermark went back");
                proptest::prop_assert!(hw <= leader_leo);
                for r in isr.iter().filter(|r| **r != leader) {
                    proptest::prop_assert!(hw <= real[r], "hw {hw} passes what ISR member {r} holds ({})", real[r]);
                }
                if (isr.len() as i32) < min_isr {
                    proptest::prop_assert_eq!(hw, before, "moved below min.insync.replicas");
                }
                let out = lagging(&isr, leader, &followers, now, LAG_MAX);
                for (r, st) in &followers {
                    let fresh = st.last_fetch_ms >= now - LAG_MAX && st.log_end_offset >= st.last_fetch_leader_leo;
                    if isr.contains(r) && fresh {
                        proptest::prop_assert!(!out.contains(r), "{r} fetched the leader's end recently: {st:?} at {now}");
                    }
                    if isr.contains(r) && now - st.last_fetch_ms > LAG_MAX {
                        proptest::prop_assert!(out.contains(r), "{r} has not fetched for too long: {st:?} at {now}");
                    }
                }
                isr.retain(|r| !out.contains(r));
                for (r, st) in &followers {
                    if !isr.contains(r) && may_join_isr(st, hw, 0) {
                        isr.push(*r);
                    }
                }
            }
        }
    }

    #[test]
    fn epoch_checks() {
        assert_eq!(check_epoch(-1, 5), Ok(()));
        assert_eq!(check_epoch(5, 5), Ok(()));
        assert_eq!(check_epoch(4, 5), Err(FetchRefusal::FencedEpoch));
        assert_eq!(check_epoch(6, 5), Err(FetchRefusal::UnknownEpoch));
    }
}
