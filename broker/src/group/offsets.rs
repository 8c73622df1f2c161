//! Committed offsets of a group (the offset half of Kafka's GroupMetadata): who may commit, which offsets
//! expire (`offsets.retention.minutes`, KIP-211 rules) and which may be deleted (OffsetDelete).

use strata_storage::TopicPartition;

use super::state::{Group, GroupState};
use crate::errors::code;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedOffset {
    pub offset: i64,
    /// -1 when unknown.
    pub leader_epoch: i32,
    pub metadata: String,
    pub commit_timestamp: i64,
    /// Set only by OffsetCommit v2-v4 with an explicit retention time; otherwise expiry follows the group.
    pub expire_timestamp: Option<i64>,
}

impl Group {
    /// Whether an OffsetCommit with this generation and member may commit now (Kafka's rules): members of
    /// the current generation while the group is Stable or rebalancing, and anyone (generation -1, no member)
    /// while the group is Empty, which is how standalone consumers and admin tools commit.
    pub fn validate_commit(&mut self, generation: i32, member_id: &str, instance_id: Option<&str>, now: i64) -> Result<(), i16> {
        if self.state == GroupState::Dead {
            return Err(code::COORDINATOR_NOT_AVAILABLE);
        }
        if generation >= 0 || !member_id.is_empty() || instance_id.is_some() {
            self.validate_member(member_id, instance_id)?;
            if generation != self.generation {
                return Err(code::ILLEGAL_GENERATION);
            }
        } else if self.state != GroupState::Empty {
            return Err(code::UNKNOWN_MEMBER_ID);
        }
        match self.state {
            // The member has its new generation but not its assignment yet.
            GroupState::CompletingRebalance => Err(code::REBALANCE_IN_PROGRESS),
            GroupState::Stable | GroupState::PreparingRebalance => {
                if let Some(m) = self.members.get_mut(member_id) {
                    m.touch(now);
                }
                Ok(())
            }
            GroupState::Empty | GroupState::Dead => Ok(()),
        }
    }

    pub fn offset(&self, tp: &TopicPartition) -> Option<&CommittedOffset> {
        self.offsets.get(tp)
    }

    pub fn offsets(&self) -> impl Iterator<Item = (&TopicPartition, &CommittedOffset)> {
        self.offsets.iter()
    }

    pub fn set_offset(&mut self, tp: TopicPartition, offset: CommittedOffset) {
        self.offsets.insert(tp, offset);
    }

    pub fn remove_offset(&mut self, tp: &TopicPartition) -> Option<CommittedOffset> {
        self.offsets.remove(tp)
    }

    /// Offsets past their retention (KIP-211): in an empty group, `retention_ms` after the group emptied; in a
    /// stable consumer group, `retention_ms` after their commit for topics no member subscribes to any more;
    /// for standalone consumers (no protocol), `retention_ms` after their commit. An explicit expire timestamp
    /// (old clients) overrides.
    pub fn expired_offsets(&self, now: i64, retention_ms: i64) -> Vec<TopicPartition> {
        let expired = |base: &dyn Fn(&CommittedOffset) -> i64, keep: &dyn Fn(&TopicPartition) -> bool| -> Vec<TopicPartition> {
            self.offsets
                .iter()
                .filter(|(tp, o)| {
                    !keep(tp)
                        && match o.expire_timestamp {
                            Some(at) => now >= at,
                            None => now - base(o) >= retention_ms,
                        }
                })
                .map(|(tp, _)| tp.clone())
                .collect()
        };
        match (self.protocol_type(), self.state) {
            (Some(_), GroupState::Empty) => expired(&|_| self.state_timestamp, &|_| false),
            (Some(super::state::CONSUMER_PROTOCOL), GroupState::Stable) if self.subscribed_topics.is_some() => {
                expired(&|o| o.commit_timestamp, &|tp| self.is_subscribed_to(&tp.topic))
            }
            (None, _) => expired(&|o| o.commit_timestamp, &|_| false),
            _ => Vec::new(),
        }
    }

    /// OffsetDelete: `Err` for the whole request, else per partition whether it may be deleted (NONE) or is
    /// still consumed by the group (GROUP_SUBSCRIBED_TO_TOPIC).
    pub fn offset_delete_errors(&self, partitions: &[TopicPartition]) -> Result<Vec<i16>, i16> {
        match self.state {
            GroupState::Dead => Err(code::GROUP_ID_NOT_FOUND),
            GroupState::Empty => Ok(vec![code::NONE; partitions.len()]),
            _ if self.protocol_type() == Some(super::state::CONSUMER_PROTOCOL) => Ok(partitions
                .iter()
                .map(|tp| if self.is_subscribed_to(&tp.topic) { code::GROUP_SUBSCRIBED_TO_TOPIC } else { code::NONE })
                .collect()),
            _ => Err(code::NON_EMPTY_GROUP),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::member::tests::subscription;
    use super::super::member::{Member, Protocol};
    use super::*;

    fn committed(at: i64) -> CommittedOffset {
        CommittedOffset { offset: 5, leader_epoch: -1, metadata: String::new(), commit_timestamp: at, expire_timestamp: None }
    }

    fn member(id: &str, topics: &[&str]) -> Member {
        Member {
            id: id.into(),
            instance_id: None,
            client_id: "c".into(),
            client_host: "/h".into(),
            session_timeout_ms: 10_000,
            rebalance_timeout_ms: 10_000,
            protocol_type: "consumer".into(),
            protocols: vec![Protocol { name: "range".into(), metadata: subscription(1, topics) }],
            assignment: Default::default(),
            awaiting_join: false,
            awaiting_sync: false,
            is_new: false,
            heartbeat_deadline: 0,
        }
    }

    fn stable(topics: &[&str]) -> Group {
        Group::loaded("g", 3, Some("consumer".into()), Some("range".into()), None, 0, vec![member("m", topics)], 0)
    }

    #[test]
    fn who_may_commit() {
        let mut g = stable(&["a"]);
        assert_eq!(g.validate_commit(3, "m", None, 1), Ok(()));
        assert_eq!(g.validate_commit(2, "m", None, 1), Err(code::ILLEGAL_GENERATION));
        assert_eq!(g.validate_commit(3, "x", None, 1), Err(code::UNKNOWN_MEMBER_ID));
        assert_eq!(g.validate_commit(-1, "", None, 1), Err(code::UNKNOWN_MEMBER_ID), "admin commits need an empty group");
        let mut empty = Group::new("e", 0);
        assert_eq!(empty.validate_commit(-1, "", None, 1), Ok(()));
        assert_eq!(empty.validate_commit(0, "m", None, 1), Err(code::UNKNOWN_MEMBER_ID));
        empty.mark_dead(2);
        assert_eq!(empty.validate_commit(-1, "", None, 3), Err(code::COORDINATOR_NOT_AVAILABLE));
    }

    #[test]
    fn expiry_follows_kip_211() {
        let tp = |t: &str| TopicPartition::new(t, 0);
        // Standalone consumer: from the commit.
        let mut g = Group::new("g", 0);
        g.set_offset(tp("a"), committed(100));
        g.set_offset(tp("b"), CommittedOffset { expire_timestamp: Some(150), ..committed(100) });
        assert_eq!(g.expired_offsets(160, 100), vec![tp("b")]);
        assert_eq!(g.expired_offsets(200, 100), vec![tp("a"), tp("b")]);
        // Stable consumer group: only topics nobody subscribes to.
        let mut g = stable(&["a"]);
        g.set_offset(tp("a"), committed(100));
        g.set_offset(tp("b"), committed(100));
        assert_eq!(g.expired_offsets(10_000, 100), vec![tp("b")]);
        // Empty group with a protocol: from when it became empty, whatever the commit time.
        let mut g = Group::loaded("g", 3, Some("consumer".into()), None, None, 1_000, vec![], 0);
        g.set_offset(tp("a"), committed(0));
        assert!(g.expired_offsets(1_050, 100).is_empty());
        assert_eq!(g.expired_offsets(1_100, 100), vec![tp("a")]);
    }

    #[test]
    fn offset_delete_rules() {
        let tps = [TopicPartition::new("a", 0), TopicPartition::new("b", 0)];
        assert_eq!(stable(&["a"]).offset_delete_errors(&tps), Ok(vec![code::GROUP_SUBSCRIBED_TO_TOPIC, code::NONE]));
        assert_eq!(Group::new("g", 0).offset_delete_errors(&tps), Ok(vec![code::NONE, code::NONE]));
        let mut other = stable(&["a"]);
        other.protocol_type = Some("connect".into());
        assert_eq!(other.offset_delete_errors(&tps), Err(code::NON_EMPTY_GROUP));
    }
}
