//! Kafka's incremental config operations (IncrementalAlterConfigs' AlterConfigOp: set, delete, append,
//! subtract) and config value types (DescribeConfigs' ConfigType): the handlers translate requests into
//! operations, the controller applies them to the overrides it keeps in the metadata log.

use std::collections::BTreeMap;

use strata_storage::LogConfig;

/// A config operation: key, AlterConfigOp type, value.
pub type ConfigOp = (String, i8, Option<String>);

// AlterConfigOp types.
pub const SET: i8 = 0;
pub const DELETE: i8 = 1;
pub const APPEND: i8 = 2;
pub const SUBTRACT: i8 = 3;

// Kafka's ConfigType values.
pub const TYPE_BOOLEAN: i8 = 1;
pub const TYPE_STRING: i8 = 2;
pub const TYPE_INT: i8 = 3;
pub const TYPE_LONG: i8 = 5;
pub const TYPE_DOUBLE: i8 = 6;
pub const TYPE_LIST: i8 = 7;

/// Kafka's type of a topic-level config (APPEND and SUBTRACT apply to lists only).
pub fn config_type(topic_key: &str) -> i8 {
    match topic_key {
        "cleanup.policy" | "leader.replication.throttled.replicas" | "follower.replication.throttled.replicas" => TYPE_LIST,
        "log.write.mode" | "compression.type" | "message.timestamp.type" => TYPE_STRING,
        "segment.bytes" | "segment.index.bytes" | "index.interval.bytes" | "max.message.bytes" | "min.insync.replicas" => {
            TYPE_INT
        }
        "unclean.leader.election.enable" | "preallocate" | "message.downconversion.enable" => TYPE_BOOLEAN,
        "min.cleanable.dirty.ratio" => TYPE_DOUBLE,
        _ => TYPE_LONG,
    }
}

/// Applies incremental operations to an override map (keys already in topic-level form); list values take
/// APPEND and SUBTRACT against what is in effect.
pub fn apply(current: &mut BTreeMap<String, String>, ops: &[ConfigOp], effective: &LogConfig) -> Result<(), String> {
    for (key, op, value) in ops {
        match (*op, value) {
            (SET, Some(v)) => {
                current.insert(key.clone(), v.clone());
            }
            (SET, None) => return Err(format!("SET {key} without a value")),
            (DELETE, _) => {
                current.remove(key);
            }
            (APPEND | SUBTRACT, Some(v)) => {
                if config_type(key) != TYPE_LIST {
                    return Err(format!("{key} is not a list config"));
                }
                let now = current.get(key).cloned().or_else(|| effective.get(key)).unwrap_or_default();
                let mut items: Vec<String> = now.split(',').filter(|i| !i.is_empty()).map(String::from).collect();
                for item in v.split(',').map(str::trim).filter(|i| !i.is_empty()) {
                    if *op == APPEND && !items.iter().any(|i| i == item) {
                        items.push(item.into());
                    } else if *op == SUBTRACT {
                        items.retain(|i| i != item);
                    }
                }
                current.insert(key.clone(), items.join(","));
            }
            (APPEND | SUBTRACT, None) => return Err(format!("{key}: operation without a value")),
            (other, _) => return Err(format!("unknown config operation {other}")),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn incremental_operations() {
        let effective = LogConfig::default();
        let mut m = BTreeMap::from([("retention.ms".to_string(), "1".to_string())]);
        let ops = vec![
            ("segment.bytes".to_string(), SET, Some("1024".to_string())),
            ("retention.ms".to_string(), DELETE, None),
            ("cleanup.policy".to_string(), APPEND, Some("delete".to_string())),
        ];
        apply(&mut m, &ops, &effective).unwrap();
        assert_eq!(m, BTreeMap::from([("segment.bytes".into(), "1024".into()), ("cleanup.policy".into(), "delete".into())]));
        apply(&mut m, &[("cleanup.policy".into(), SUBTRACT, Some("delete".into()))], &effective).unwrap();
        assert_eq!(m["cleanup.policy"], "", "then refused by validation as an empty policy");
        for bad in [("retention.ms", APPEND, Some("1")), ("retention.ms", SET, None), ("retention.ms", 9, Some("1"))] {
            let op = [(bad.0.to_string(), bad.1, bad.2.map(String::from))];
            assert!(apply(&mut m, &op, &effective).is_err(), "{bad:?}");
        }
    }
}
