//! Cluster membership: which brokers form the cluster and where each one is reached, from
//! `cluster.brokers` = `id@host:port,...` (every broker, this one included). Empty means a single node.
//! The controller (the one broker that decides topic metadata) is the lowest id, as long as real
//! elections (KRaft) do not exist.

use std::fmt;

/// One broker of the cluster and the address clients and peers use for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerAddr {
    pub id: i32,
    pub host: String,
    pub port: u16,
}

impl BrokerAddr {
    /// `host:port` for connecting (IPv6 hosts in brackets).
    pub fn socket_addr(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

impl fmt::Display for BrokerAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.id, self.socket_addr())
    }
}

/// The brokers of the cluster, sorted by id, ids unique.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Membership {
    brokers: Vec<BrokerAddr>,
}

impl Membership {
    /// Parses `id@host:port,...`; an empty value is a single-node cluster.
    pub fn parse(value: &str) -> Result<Membership, String> {
        let mut brokers: Vec<BrokerAddr> = Vec::new();
        for item in value.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let (id, addr) = item.split_once('@').ok_or_else(|| format!("{item:?}: expected id@host:port"))?;
            let id: i32 = id.trim().parse().ok().filter(|i| *i >= 0).ok_or_else(|| format!("{item:?}: bad broker id {id:?}"))?;
            let (host, port) = addr.rsplit_once(':').ok_or_else(|| format!("{item:?}: missing :port"))?;
            let host = host.trim_start_matches('[').trim_end_matches(']');
            if host.is_empty() || host.contains(char::is_whitespace) {
                return Err(format!("{item:?}: bad host {host:?}"));
            }
            let port: u16 = port.parse().ok().filter(|p| *p != 0).ok_or_else(|| format!("{item:?}: bad port {port:?}"))?;
            if brokers.iter().any(|b| b.id == id) {
                return Err(format!("broker id {id} appears twice"));
            }
            brokers.push(BrokerAddr { id, host: host.to_string(), port });
        }
        brokers.sort_by_key(|b| b.id);
        Ok(Membership { brokers })
    }

    /// Checks that this broker is listed (a broker outside its own cluster is a configuration mistake) and
    /// that a cluster of several brokers has a shared `cluster.id` (otherwise each data directory has its own
    /// and the brokers cannot tell their peers from another cluster's brokers).
    pub fn validate(&self, node_id: i32, has_cluster_id: bool) -> Result<(), String> {
        if !self.brokers.is_empty() && self.get(node_id).is_none() {
            return Err(format!("does not list this broker (node.id {node_id})"));
        }
        if !self.peers(node_id).is_empty() && !has_cluster_id {
            return Err("several brokers need a shared cluster.id: set it, the same on every broker".into());
        }
        Ok(())
    }

    pub fn brokers(&self) -> &[BrokerAddr] {
        &self.brokers
    }

    pub fn get(&self, id: i32) -> Option<&BrokerAddr> {
        self.brokers.iter().find(|b| b.id == id)
    }

    /// Every broker id, `node_id` included, sorted.
    pub fn ids(&self, node_id: i32) -> Vec<i32> {
        let mut ids: Vec<i32> = self.brokers.iter().map(|b| b.id).collect();
        if !ids.contains(&node_id) {
            ids.push(node_id);
            ids.sort_unstable();
        }
        ids
    }

    /// The other brokers.
    pub fn peers(&self, node_id: i32) -> Vec<BrokerAddr> {
        self.brokers.iter().filter(|b| b.id != node_id).cloned().collect()
    }

    pub fn controller(&self, node_id: i32) -> i32 {
        self.brokers.first().map_or(node_id, |b| b.id.min(node_id))
    }
}

impl fmt::Display for Membership {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let items: Vec<String> = self.brokers.iter().map(ToString::to_string).collect();
        f.write_str(&items.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sorts_and_prints() {
        let m = Membership::parse(" 2@10.0.0.3:9092, 0@b-0.svc:9092,1@[fd00::1]:9093 ").unwrap();
        assert_eq!(m.ids(0), vec![0, 1, 2]);
        assert_eq!(m.get(1).unwrap().socket_addr(), "[fd00::1]:9093");
        assert_eq!(m.to_string(), "0@b-0.svc:9092,1@[fd00::1]:9093,2@10.0.0.3:9092");
        assert_eq!(Membership::parse(&m.to_string()).unwrap(), m);
        assert_eq!(m.controller(2), 0);
        assert_eq!(m.peers(1).iter().map(|b| b.id).collect::<Vec<_>>(), vec![0, 2]);
        assert!(m.validate(2, true).is_ok());
        assert!(m.validate(7, true).unwrap_err().contains("node.id 7"));
        assert!(m.validate(2, false).unwrap_err().contains("cluster.id"));
        assert!(Membership::parse("3@h:1").unwrap().validate(3, false).is_ok(), "a cluster of one needs no id");
    }

    #[test]
    fn empty_is_a_single_node() {
        let m = Membership::parse("").unwrap();
        assert_eq!((m.ids(4), m.controller(4), m.peers(4)), (vec![4], 4, vec![]));
        assert!(m.validate(4, false).is_ok());
    }

    #[test]
    fn bad_values_are_refused_with_the_reason() {
        for (bad, why) in [
            ("h:9092", "expected id@host:port"),
            ("x@h:9092", "bad broker id"),
            ("-1@h:9092", "bad broker id"),
            ("0@h", "missing :port"),
            ("0@h:0", "bad port"),
            ("0@h:99999", "bad port"),
            ("0@:9092", "bad host"),
            ("0@a:1,0@b:2", "appears twice"),
        ] {
            let err = Membership::parse(bad).unwrap_err();
            assert!(err.contains(why), "{bad}: {err}");
        }
    }
}
