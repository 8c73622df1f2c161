//! What a LogTopic spec asks for, checked and in Kafka's terms: the topic name (Kafka's rules) and
//! the config values rendered to the strings Kafka takes. Pure.

use std::collections::BTreeMap;

use kube::ResourceExt;
use serde_json::Value;

use super::crd::LogTopic;

/// Kafka's longest topic name.
const MAX_NAME: usize = 249;

/// The topic a valid spec describes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Desired {
    pub name: String,
    pub partitions: Option<i32>,
    pub replicas: Option<i16>,
    pub config: BTreeMap<String, String>,
}

/// The topic name: `spec.topicName`, else `metadata.name`.
pub fn topic_name(lt: &LogTopic) -> String {
    lt.spec.topic_name.clone().unwrap_or_else(|| lt.name_any())
}

/// Kafka's topic-name rules (`Topic.validate`).
pub fn check_topic_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("the topic name is empty".into());
    }
    if name == "." || name == ".." {
        return Err(format!("the topic name cannot be {name:?}"));
    }
    if name.len() > MAX_NAME {
        return Err(format!("the topic name is {} characters long, at most {MAX_NAME} are allowed", name.len()));
    }
    match name.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))) {
        Some(c) => {
            Err(format!("the topic name {name:?} contains {c:?}; only ASCII letters, digits, '.', '_' and '-' are allowed"))
        }
        None => Ok(()),
    }
}

/// One config value as Kafka's string: strings as they are, numbers and booleans as YAML wrote
/// them, lists of those joined with commas (Kafka's list type, e.g. `cleanup.policy`).
pub fn render_value(value: &Value) -> Result<String, &'static str> {
    match value {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        Value::Array(items) => {
            let rendered: Result<Vec<String>, _> = items
                .iter()
                .map(|v| match v {
                    Value::Array(_) => Err("a list of lists"),
                    other => render_value(other),
                })
                .collect();
            Ok(rendered?.join(","))
        }
        Value::Null => Err("null"),
        Value::Object(_) => Err("a map"),
    }
}

/// The spec in Kafka's terms, or every problem found.
pub fn desired(lt: &LogTopic) -> Result<Desired, Vec<String>> {
    let name = topic_name(lt);
    let mut errors = Vec::new();
    if let Err(e) = check_topic_name(&name) {
        errors.push(e);
    }
    let mut config = BTreeMap::new();
    for (key, value) in &lt.spec.config {
        if key.trim().is_empty() {
            errors.push("config has an empty key".into());
            continue;
        }
        match render_value(value) {
            Ok(v) => {
                config.insert(key.clone(), v);
            }
            Err(what) => errors.push(format!("config.{key} is {what}; use a string, number or boolean")),
        }
    }
    let replicas = match lt.spec.replicas.map(i16::try_from).transpose() {
        Ok(r) => r,
        Err(_) => {
            errors.push(format!("replicas {} is above Kafka's limit {}", lt.spec.replicas.unwrap_or_default(), i16::MAX));
            None
        }
    };
    if lt.spec.partitions.is_some_and(|p| p < 1) || replicas.is_some_and(|r| r < 1) {
        errors.push("partitions and replicas must be at least 1".into());
    }
    if errors.is_empty() {
        Ok(Desired { name, partitions: lt.spec.partitions, replicas, config })
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::topic::testing::topic;

    #[test]
    fn topic_names_follow_kafka() {
        let long = "a".repeat(250);
        // (name, accepted)
        let table = [
            ("orders", true),
            ("orders.v1_eu-west", true),
            ("A.b-C_9", true),
            (&long[..249], true),
            (&long[..], false),
            ("", false),
            (".", false),
            ("..", false),
            ("...", true),
            ("orders/v1", false),
            ("orders v1", false),
            ("ordérs", false),
        ];
        for (name, ok) in table {
            assert_eq!(check_topic_name(name).is_ok(), ok, "{name:?}: {:?}", check_topic_name(name));
        }
        assert!(check_topic_name("a b").unwrap_err().contains("' '"));
    }

    #[test]
    fn values_render_as_kafka_strings() {
        // (YAML value as JSON, rendered; None: rejected)
        let table = [
            (json!("compact"), Some("compact")),
            (json!(604800000), Some("604800000")),
            (json!(-1), Some("-1")),
            (json!(0.5), Some("0.5")),
            (json!(true), Some("true")),
            (json!(false), Some("false")),
            (json!(["compact", "delete"]), Some("compact,delete")),
            (json!([]), Some("")),
            (json!(null), None),
            (json!({"a": 1}), None),
            (json!([["a"]]), None),
            (json!([{"a": 1}]), None),
        ];
        for (value, want) in table {
            assert_eq!(render_value(&value).ok().as_deref(), want, "{value}");
        }
    }

    #[test]
    fn the_spec_in_kafka_terms() {
        let mut lt = topic(
            "orders",
            json!({"cluster": "logs", "partitions": 3, "replicas": 2,
            "config": {"retention.ms": 86400000, "cleanup.policy": "compact", "preallocate": true}}),
        );
        let d = desired(&lt).unwrap();
        assert_eq!((d.name.as_str(), d.partitions, d.replicas), ("orders", Some(3), Some(2)));
        assert_eq!(d.config["retention.ms"], "86400000");
        assert_eq!(d.config["preallocate"], "true");
        lt.spec.topic_name = Some("orders.v2".into());
        assert_eq!(desired(&lt).unwrap().name, "orders.v2");
    }

    #[test]
    fn every_problem_is_reported() {
        let lt = topic(
            "orders",
            json!({"cluster": "logs", "topicName": "bad name", "replicas": 40000,
            "config": {"retention.ms": null, "segment.bytes": {"x": 1}, " ": "1"}}),
        );
        let errors = desired(&lt).unwrap_err();
        assert_eq!(errors.len(), 5, "{errors:?}");
        assert!(errors[0].contains("\"bad name\" contains ' '"), "{errors:?}");
        assert!(errors.iter().any(|e| e == "config.retention.ms is null; use a string, number or boolean"));
        assert!(errors.iter().any(|e| e.starts_with("config.segment.bytes is a map")));
        assert!(errors.iter().any(|e| e == "config has an empty key"));
        assert!(errors.iter().any(|e| e.contains("replicas 40000")));
    }

    #[test]
    fn name_defaults_to_the_resource_name() {
        let lt = topic("payments.eu", json!({"cluster": "logs"}));
        let d = desired(&lt).unwrap();
        assert_eq!((d.name.as_str(), d.partitions, d.replicas), ("payments.eu", None, None));
        assert!(d.config.is_empty());
    }
}
