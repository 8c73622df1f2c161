//! What the LogTopic status says, from the outcome of a pass and the topic as last described. Pure.

use std::collections::BTreeSet;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::crd::LogTopicStatus;
use super::plan::Described;

pub use crate::status::Report;

/// The next status: `previous` with this pass's Ready condition (its transition time kept while
/// its status stays), the topic's facts when it was described, and the managed config keys when
/// they are known. Fields not given keep their values.
pub fn next(
    previous: Option<&LogTopicStatus>,
    generation: Option<i64>,
    report: &Report,
    topic: Option<&Described>,
    managed: Option<&BTreeSet<String>>,
    now: Time,
) -> LogTopicStatus {
    let mut status = previous.cloned().unwrap_or_default();
    status.conditions = vec![report.condition(&status.conditions, generation, now)];
    status.observed_generation = generation;
    if let Some(t) = topic {
        status.topic_id = Some(t.id.clone());
        status.partitions = i32::try_from(t.partitions.len()).ok();
        status.replicas = i32::try_from(t.factor()).ok();
        status.reassigning_partitions = t.reassigning.iter().copied().collect();
    }
    if let Some(keys) = managed {
        status.managed_config = keys.iter().cloned().collect();
    }
    status
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::jiff::Timestamp;

    use super::*;

    fn at(secs: i64) -> Time {
        Time(Timestamp::from_second(secs).unwrap())
    }

    #[test]
    fn ready_with_the_topics_facts() {
        let topic = Described {
            id: "AAAAAAAAAAAAAAAAAAAAAA".into(),
            partitions: BTreeMap::from([(0, vec![0, 1]), (1, vec![1, 2, 0])]),
            overrides: BTreeMap::new(),
            reassigning: BTreeSet::from([1]),
        };
        let managed = BTreeSet::from(["retention.ms".to_string()]);
        let s = next(None, Some(3), &Report::ready("TopicReady", "up to date"), Some(&topic), Some(&managed), at(5));
        assert_eq!(s.observed_generation, Some(3));
        assert_eq!((s.topic_id.as_deref(), s.partitions, s.replicas), (Some("AAAAAAAAAAAAAAAAAAAAAA"), Some(2), Some(3)));
        assert_eq!(s.reassigning_partitions, [1]);
        assert_eq!(s.managed_config, ["retention.ms"]);
        let c = &s.conditions[0];
        assert_eq!((c.type_.as_str(), c.status.as_str(), c.reason.as_str()), ("Ready", "True", "TopicReady"));
        assert_eq!((c.observed_generation, &c.last_transition_time), (Some(3), &at(5)));
    }

    #[test]
    fn transitions_and_kept_fields() {
        let first =
            next(None, Some(1), &Report::ready("TopicReady", "ok"), None, Some(&BTreeSet::from(["a".to_string()])), at(1));
        let again = next(Some(&first), Some(2), &Report::ready("TopicReady", "still ok"), None, None, at(2));
        assert_eq!(again.conditions[0].last_transition_time, at(1), "same status: time kept");
        assert_eq!(again.managed_config, ["a"], "unknown this pass: kept");
        let refused = Report::not_ready("PartitionsDecrease", "no");
        let failed = next(Some(&again), Some(3), &refused, None, None, at(3));
        let c = &failed.conditions[0];
        assert_eq!((c.status.as_str(), c.reason.as_str(), c.message.as_str()), ("False", "PartitionsDecrease", "no"));
        assert_eq!(c.last_transition_time, at(3));
        assert_eq!(failed.observed_generation, Some(3));
    }
}
