//! Fixtures of the topic tests.

use kube::api::ObjectMeta;

use super::crd::LogTopic;

/// A LogTopic `name` in namespace `prod` with the given spec (JSON, as the apiserver stores it).
pub fn topic(name: &str, spec: serde_json::Value) -> LogTopic {
    let mut lt = LogTopic::new(name, serde_json::from_value(spec).expect("fixture spec"));
    lt.metadata =
        ObjectMeta { name: Some(name.into()), namespace: Some("prod".into()), generation: Some(2), ..Default::default() };
    lt
}
