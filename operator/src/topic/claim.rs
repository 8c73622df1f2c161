//! Which Kafka topic a LogTopic manages. The status records the cluster and topic before the
//! operator first touches it, so a later edit of either cannot move the resource onto another
//! topic (leaving the first unmanaged), and deletion still finds it. Two resources naming the same
//! topic: the older one manages it, the other is refused. Pure.

use kube::ResourceExt;

use super::crd::LogTopic;
use super::spec;

/// (cluster, topic) the resource manages: as recorded, else as the spec says.
pub fn target(lt: &LogTopic) -> (String, String) {
    let status = lt.status.as_ref();
    (
        status.and_then(|s| s.cluster.clone()).unwrap_or_else(|| lt.spec.cluster.clone()),
        status.and_then(|s| s.topic_name.clone()).unwrap_or_else(|| spec::topic_name(lt)),
    )
}

/// Why the spec no longer names the recorded cluster and topic, if it does not.
pub fn moved(lt: &LogTopic) -> Option<String> {
    let status = lt.status.as_ref()?;
    let mut changed = Vec::new();
    if let Some(c) = status.cluster.as_deref().filter(|c| *c != lt.spec.cluster) {
        changed.push(format!("spec.cluster is {:?} but the topic is in {c:?}", lt.spec.cluster));
    }
    if let Some(t) = status.topic_name.as_deref().filter(|t| *t != spec::topic_name(lt)) {
        changed.push(format!("the topic name is now {:?} but the topic is {t:?}", spec::topic_name(lt)));
    }
    (!changed.is_empty()).then(|| {
        format!("{}; a LogTopic cannot move to another topic: set them back, or create a new LogTopic", changed.join(" and "))
    })
}

/// The older resource of `others` (same namespace) that manages the same topic, if one does.
pub fn managed_by_other<'a>(lt: &LogTopic, others: &'a [LogTopic]) -> Option<&'a LogTopic> {
    let mine = target(lt);
    let age = |t: &LogTopic| (t.creation_timestamp(), t.name_any());
    others
        .iter()
        .filter(|o| o.uid() != lt.uid() && o.metadata.deletion_timestamp.is_none() && target(o) == mine)
        .filter(|o| age(o) < age(lt))
        .min_by_key(|o| age(o))
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use k8s_openapi::jiff::Timestamp;
    use serde_json::json;

    use super::*;
    use crate::topic::crd::LogTopicStatus;
    use crate::topic::testing::topic;

    fn at(name: &str, secs: i64, spec: serde_json::Value) -> LogTopic {
        let mut t = topic(name, spec);
        t.metadata.uid = Some(format!("uid-{name}"));
        t.metadata.creation_timestamp = Some(Time(Timestamp::from_second(secs).unwrap()));
        t
    }

    fn recorded(mut t: LogTopic, cluster: &str, topic_name: &str) -> LogTopic {
        t.status =
            Some(LogTopicStatus { cluster: Some(cluster.into()), topic_name: Some(topic_name.into()), ..Default::default() });
        t
    }

    #[test]
    fn the_recorded_target_wins_over_the_spec() {
        let t = at("orders", 1, json!({"cluster": "logs"}));
        assert_eq!(target(&t), ("logs".to_string(), "orders".to_string()));
        assert_eq!(moved(&t), None);
        let t = recorded(at("orders", 1, json!({"cluster": "other", "topicName": "orders2"})), "logs", "orders");
        assert_eq!(target(&t), ("logs".to_string(), "orders".to_string()));
        let why = moved(&t).unwrap();
        assert!(why.contains("spec.cluster is \"other\" but the topic is in \"logs\""), "{why}");
        assert!(why.contains("now \"orders2\" but the topic is \"orders\""), "{why}");
        let same = recorded(at("orders", 1, json!({"cluster": "logs"})), "logs", "orders");
        assert_eq!(moved(&same), None);
    }

    #[test]
    fn the_oldest_resource_manages_a_topic() {
        let a = at("a", 10, json!({"cluster": "logs", "topicName": "orders"}));
        let b = at("b", 20, json!({"cluster": "logs", "topicName": "orders"}));
        let c = at("c", 5, json!({"cluster": "other", "topicName": "orders"}));
        let d = recorded(at("d", 1, json!({"cluster": "logs", "topicName": "renamed"})), "logs", "orders");
        let owner = |t: &LogTopic, all: &[LogTopic]| managed_by_other(t, all).map(|o| o.name_any());
        let all = [a.clone(), b.clone(), c.clone()];
        assert_eq!(owner(&a, &all), None);
        assert_eq!(owner(&b, &all), Some("a".into()));
        assert_eq!(owner(&c, &all), None, "another cluster's topic of the same name");
        let all = [a.clone(), b.clone(), d.clone()];
        assert_eq!(owner(&a, &all), Some("d".into()), "by its recorded topic");
        let mut gone = d.clone();
        gone.metadata.deletion_timestamp = Some(Time(Timestamp::UNIX_EPOCH));
        assert_eq!(owner(&a, &[gone, b]), None, "a resource being deleted manages nothing more");
    }
}
