//! The diff of a LogTopic: what the spec wants against the topic the cluster describes, as the
//! changes to make or a refusal. Pure; a refusal means nothing at all is changed.

use std::collections::{BTreeMap, BTreeSet};

use strata_client::admin::ConfigChange;

use super::replicas;
use super::spec::Desired;

/// The topic as the cluster describes it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Described {
    pub id: String,
    /// Partition -> replicas (the first is the preferred leader).
    pub partitions: BTreeMap<i32, Vec<i32>>,
    /// The topic's own config overrides (DescribeConfigs source `DYNAMIC_TOPIC_CONFIG`); defaults
    /// of the broker are not listed.
    pub overrides: BTreeMap<String, String>,
    /// Partitions with a reassignment in progress.
    pub reassigning: BTreeSet<i32>,
}

impl Described {
    /// The replication factor: the largest of the partitions' (they differ only mid-change).
    pub fn factor(&self) -> usize {
        self.partitions.values().map(Vec::len).max().unwrap_or(0)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    Create {
        partitions: i32,
        replicas: i16,
        config: Vec<(String, String)>,
    },
    /// One IncrementalAlterConfigs for the topic (atomic on the broker).
    Config(Vec<ConfigChange>),
    /// CreatePartitions to this total.
    Partitions(i32),
    /// AlterPartitionReassignments: partition -> new replicas.
    Reassign(BTreeMap<i32, Vec<i32>>),
}

/// Why the spec cannot be applied; reported in the Ready condition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    PartitionsDecrease { current: usize, wanted: i32 },
    ReplicasAboveBrokers { wanted: i16, brokers: usize },
}

impl Refusal {
    pub fn reason(&self) -> &'static str {
        match self {
            Refusal::PartitionsDecrease { .. } => "PartitionsDecrease",
            Refusal::ReplicasAboveBrokers { .. } => "ReplicasAboveBrokers",
        }
    }

    pub fn message(&self) -> String {
        match self {
            Refusal::PartitionsDecrease { current, wanted } => format!(
                "the topic has {current} partitions and Kafka cannot remove partitions; spec.partitions {wanted} is refused \
                 and nothing was changed (set it back to at least {current})"
            ),
            Refusal::ReplicasAboveBrokers { wanted, brokers } => {
                format!("spec.replicas {wanted} is more than the {brokers} brokers of the cluster; nothing was changed")
            }
        }
    }
}

/// The changes, in the order to make them: config first (what the broker most often rejects, so
/// a rejection leaves everything else as it was), then partitions, then the replication factor.
/// `managed`: config keys the operator set before; only those are deleted when the spec drops them.
/// `brokers`: the cluster's broker ids.
pub fn plan(
    desired: &Desired,
    topic: Option<&Described>,
    managed: &BTreeSet<String>,
    brokers: &[i32],
) -> Result<Vec<Change>, Refusal> {
    if let Some(wanted) = desired.replicas.filter(|r| *r as usize > brokers.len()) {
        return Err(Refusal::ReplicasAboveBrokers { wanted, brokers: brokers.len() });
    }
    let Some(topic) = topic else {
        return Ok(vec![Change::Create {
            partitions: desired.partitions.unwrap_or(-1),
            replicas: desired.replicas.unwrap_or(-1),
            config: desired.config.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        }]);
    };
    let current = topic.partitions.len();
    if let Some(wanted) = desired.partitions.filter(|p| (*p as usize) < current) {
        return Err(Refusal::PartitionsDecrease { current, wanted });
    }
    let mut changes = Vec::new();
    let config = config_changes(&desired.config, &topic.overrides, managed);
    if !config.is_empty() {
        changes.push(Change::Config(config));
    }
    if let Some(wanted) = desired.partitions.filter(|p| *p as usize > current) {
        changes.push(Change::Partitions(wanted));
    }
    // One reassignment at a time: while one runs, the replica lists are in between.
    if let Some(factor) = desired.replicas.filter(|_| topic.reassigning.is_empty()) {
        let moves = replicas::change_factor(&topic.partitions, brokers, factor as usize);
        if !moves.is_empty() {
            changes.push(Change::Reassign(moves));
        }
    }
    Ok(changes)
}

/// Sets what differs from the topic's overrides (a value equal to the broker default is still
/// set: the spec pins it); deletes the operator's earlier keys the spec no longer has.
pub fn config_changes(
    desired: &BTreeMap<String, String>,
    overrides: &BTreeMap<String, String>,
    managed: &BTreeSet<String>,
) -> Vec<ConfigChange> {
    let set = desired.iter().filter(|(k, v)| overrides.get(*k) != Some(v)).map(|(k, v)| ConfigChange::Set(k.clone(), v.clone()));
    let delete = managed
        .iter()
        .filter(|k| !desired.contains_key(*k) && overrides.contains_key(*k))
        .map(|k| ConfigChange::Delete(k.clone()));
    set.chain(delete).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn desired(partitions: Option<i32>, replicas: Option<i16>, config: &[(&str, &str)]) -> Desired {
        Desired {
            name: "t".into(),
            partitions,
            replicas,
            config: config.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        }
    }

    fn described(lists: &[&[i32]], overrides: &[(&str, &str)]) -> Described {
        Described {
            id: "id".into(),
            partitions: lists.iter().enumerate().map(|(i, r)| (i as i32, r.to_vec())).collect(),
            overrides: overrides.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            reassigning: BTreeSet::new(),
        }
    }

    fn set(k: &str, v: &str) -> ConfigChange {
        ConfigChange::Set(k.into(), v.into())
    }

    fn keys(ks: &[&str]) -> BTreeSet<String> {
        ks.iter().map(|k| k.to_string()).collect()
    }

    type Planned = Result<Vec<Change>, Refusal>;

    #[test]
    fn plans_by_case() {
        let brokers = [0, 1, 2];
        let two = described(&[&[0, 1], &[1, 2]], &[("retention.ms", "1000")]);
        // (desired, topic, managed keys, plan)
        let table: Vec<(Desired, Option<Described>, BTreeSet<String>, Planned)> = vec![
            (
                desired(Some(3), Some(2), &[("retention.ms", "1000")]),
                None,
                keys(&[]),
                Ok(vec![Change::Create { partitions: 3, replicas: 2, config: vec![("retention.ms".into(), "1000".into())] }]),
            ),
            // Unset counts: the broker's defaults.
            (
                desired(None, None, &[]),
                None,
                keys(&[]),
                Ok(vec![Change::Create { partitions: -1, replicas: -1, config: vec![] }]),
            ),
            (desired(Some(2), Some(2), &[("retention.ms", "1000")]), Some(two.clone()), keys(&["retention.ms"]), Ok(vec![])),
            (desired(None, None, &[("retention.ms", "1000")]), Some(two.clone()), keys(&[]), Ok(vec![])),
            (
                desired(Some(4), Some(2), &[("retention.ms", "2000"), ("cleanup.policy", "compact")]),
                Some(two.clone()),
                keys(&["retention.ms"]),
                Ok(vec![
                    Change::Config(vec![set("cleanup.policy", "compact"), set("retention.ms", "2000")]),
                    Change::Partitions(4),
                ]),
            ),
            // Removed from the spec: deleted only if the operator set it.
            (
                desired(Some(2), None, &[]),
                Some(two.clone()),
                keys(&["retention.ms"]),
                Ok(vec![Change::Config(vec![ConfigChange::Delete("retention.ms".into())])]),
            ),
            (desired(Some(2), None, &[]), Some(two.clone()), keys(&[]), Ok(vec![])),
            // Managed but already gone from the topic: nothing to delete.
            (desired(None, None, &[]), Some(described(&[&[0]], &[])), keys(&["retention.ms"]), Ok(vec![])),
            // Fewer partitions: refused, even with other changes in the same spec.
            (
                desired(Some(1), Some(3), &[("retention.ms", "5")]),
                Some(two.clone()),
                keys(&[]),
                Err(Refusal::PartitionsDecrease { current: 2, wanted: 1 }),
            ),
            (
                desired(Some(2), Some(4), &[("retention.ms", "5")]),
                Some(two.clone()),
                keys(&[]),
                Err(Refusal::ReplicasAboveBrokers { wanted: 4, brokers: 3 }),
            ),
            (desired(None, Some(4), &[]), None, keys(&[]), Err(Refusal::ReplicasAboveBrokers { wanted: 4, brokers: 3 })),
            // Replication factor up: a reassignment keeping the current replicas.
            (
                desired(Some(2), Some(3), &[("retention.ms", "1000")]),
                Some(two.clone()),
                keys(&[]),
                Ok(vec![Change::Reassign(BTreeMap::from([(0, vec![0, 1, 2]), (1, vec![1, 2, 0])]))]),
            ),
        ];
        for (d, topic, managed, want) in table {
            let got = plan(&d, topic.as_ref(), &managed, &brokers);
            assert_eq!(got, want, "{d:?} against {topic:?} (managed {managed:?})");
        }
    }

    #[test]
    fn no_second_reassignment_while_one_runs() {
        let mut topic = described(&[&[0, 1, 2], &[1]], &[]);
        topic.reassigning.insert(1);
        let got = plan(&desired(Some(3), Some(3), &[]), Some(&topic), &keys(&[]), &[0, 1, 2]);
        assert_eq!(got, Ok(vec![Change::Partitions(3)]));
        topic.reassigning.clear();
        let got = plan(&desired(Some(2), Some(3), &[]), Some(&topic), &keys(&[]), &[0, 1, 2]);
        assert_eq!(got, Ok(vec![Change::Reassign(BTreeMap::from([(1, vec![1, 2, 0])]))]));
    }

    #[test]
    fn refusals_explain_themselves() {
        let r = Refusal::PartitionsDecrease { current: 6, wanted: 3 };
        assert_eq!(r.reason(), "PartitionsDecrease");
        assert!(r.message().contains("has 6 partitions") && r.message().contains("at least 6"), "{}", r.message());
        let r = Refusal::ReplicasAboveBrokers { wanted: 5, brokers: 3 };
        assert_eq!(r.message(), "spec.replicas 5 is more than the 3 brokers of the cluster; nothing was changed");
    }

    #[test]
    fn factor_is_the_widest_partition() {
        assert_eq!(described(&[&[0], &[1, 2, 0]], &[]).factor(), 3);
        assert_eq!(described(&[], &[]).factor(), 0);
    }
}
