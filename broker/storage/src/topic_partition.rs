//! Topic-partition names and their directory names (`<topic>-<partition>`, as Kafka).

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicPartition {
    pub topic: String,
    pub partition: i32,
}

impl TopicPartition {
    pub fn new(topic: impl Into<String>, partition: i32) -> Self {
        TopicPartition { topic: topic.into(), partition }
    }

    /// Parses a partition directory name; topics may contain '-', so the partition is after the last one.
    pub fn from_dir_name(name: &str) -> Option<TopicPartition> {
        let (topic, partition) = name.rsplit_once('-')?;
        let partition: i32 = partition.parse().ok()?;
        (!topic.is_empty() && partition >= 0 && partition.to_string() == name[topic.len() + 1..])
            .then(|| TopicPartition::new(topic, partition))
    }
}

impl fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dir_names_round_trip() {
        for tp in [
            TopicPartition::new("orders", 0),
            TopicPartition::new("a-b-c", 12),
            TopicPartition::new("x.y_z", 3),
            TopicPartition::new("ends-", 1),
        ] {
            assert_eq!(TopicPartition::from_dir_name(&tp.to_string()), Some(tp));
        }
        for bad in ["orders", "-1", "orders-", "orders-01", "orders-x", "orders-0.123-delete"] {
            assert_eq!(TopicPartition::from_dir_name(bad), None, "{bad}");
        }
    }
}
