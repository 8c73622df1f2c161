//! `strata cluster info|health`.

use std::collections::BTreeMap;

use serde::Serialize;
use strata_client::admin::{min_insync_replicas, BrokerInfo, ConfigResource, Quorum, TopicInfo};

use crate::options::Options;
use crate::table;
use crate::Outcome;

#[derive(clap::Subcommand)]
pub enum Command {
    /// Cluster id, controller, brokers (fenced or not) and the metadata quorum if the broker reports one.
    Info,
    /// Offline, under-replicated and under-min-ISR partitions and fenced brokers; exits 3 when any is found.
    Health,
}

pub async fn run(opts: &Options, command: Command) -> anyhow::Result<Outcome> {
    match command {
        Command::Info => info(opts).await,
        Command::Health => health(opts).await,
    }
}

#[derive(Serialize)]
struct Info {
    cluster_id: Option<String>,
    controller_id: Option<i32>,
    brokers: Vec<Broker>,
    /// None when the broker does not answer DescribeQuorum.
    quorum: Option<Quorum>,
}

#[derive(Serialize)]
struct Broker {
    #[serde(flatten)]
    info: BrokerInfo,
    /// None when the broker does not answer DescribeCluster.
    fenced: Option<bool>,
}

async fn info(opts: &Options) -> anyhow::Result<Outcome> {
    let mut client = opts.client().await?;
    let md = client.metadata(Some(&[])).await?;
    let described = client.any().describe_cluster().await?;
    let fenced: Option<BTreeMap<i32, bool>> = described.map(|d| d.brokers.iter().map(|(b, f)| (b.id, *f)).collect());
    let quorum = client.any().describe_quorum().await?;
    let info = Info {
        cluster_id: md.cluster_id,
        controller_id: md.controller_id,
        brokers: md
            .brokers
            .into_iter()
            .map(|b| Broker { fenced: fenced.as_ref().map(|f| f.get(&b.id).copied().unwrap_or(false)), info: b })
            .collect(),
        quorum,
    };
    if opts.json() {
        print!("{}", table::json(&info));
        return Ok(Outcome::Ok);
    }
    println!("cluster id: {}", table::opt(info.cluster_id.as_deref()));
    println!("controller: {}", table::opt(info.controller_id));
    println!();
    let rows: Vec<Vec<String>> = info
        .brokers
        .iter()
        .map(|b| {
            let fenced = b.fenced.map_or("-", |f| if f { "yes" } else { "no" });
            vec![
                b.info.id.to_string(),
                b.info.host.clone(),
                b.info.port.to_string(),
                table::opt(b.info.rack.as_deref()),
                fenced.into(),
            ]
        })
        .collect();
    print!("{}", table::render(&["ID", "HOST", "PORT", "RACK", "FENCED"], &rows));
    println!();
    match &info.quorum {
        None => println!("quorum: not available (the broker does not answer DescribeQuorum)"),
        Some(q) => {
            println!("quorum: leader {}, epoch {}, high watermark {}", q.leader_id, q.leader_epoch, q.high_watermark);
            let rows: Vec<Vec<String>> = (q.voters.iter().map(|r| (r, "voter")))
                .chain(q.observers.iter().map(|r| (r, "observer")))
                .map(|(r, role)| {
                    vec![
                        r.id.to_string(),
                        role.to_string(),
                        r.log_end_offset.to_string(),
                        (q.high_watermark - r.log_end_offset).max(0).to_string(),
                    ]
                })
                .collect();
            print!("{}", table::render(&["ID", "ROLE", "LOG-END", "LAG"], &rows));
        }
    }
    Ok(Outcome::Ok)
}

/// Problems found in the cluster's metadata; healthy when all lists are empty.
#[derive(Debug, Default, PartialEq, Eq, Serialize)]
pub struct Health {
    pub healthy: bool,
    /// Partitions without a leader.
    pub offline: Vec<String>,
    /// Partitions with fewer in-sync replicas than replicas.
    pub under_replicated: Vec<String>,
    /// Partitions with fewer in-sync replicas than their topic's min.insync.replicas.
    pub under_min_isr: Vec<String>,
    pub fenced_brokers: Vec<i32>,
}

/// Classifies partitions; `min_isr` holds each topic's min.insync.replicas (1 when missing).
pub fn classify(topics: &[TopicInfo], min_isr: &BTreeMap<String, usize>, fenced_brokers: Vec<i32>) -> Health {
    let mut h = Health { fenced_brokers, ..Health::default() };
    for t in topics {
        let min = min_isr.get(&t.name).copied().unwrap_or(1);
        for p in &t.partitions {
            let name = format!("{}-{}", t.name, p.partition);
            if p.leader < 0 {
                h.offline.push(name.clone());
            }
            if p.is_under_replicated() {
                h.under_replicated.push(name.clone());
            }
            if p.isr.len() < min {
                h.under_min_isr.push(name);
            }
        }
    }
    h.healthy =
        h.offline.is_empty() && h.under_replicated.is_empty() && h.under_min_isr.is_empty() && h.fenced_brokers.is_empty();
    h
}

async fn health(opts: &Options) -> anyhow::Result<Outcome> {
    let mut client = opts.client().await?;
    let md = client.metadata(None).await?;
    let mut min_isr = BTreeMap::new();
    for t in &md.topics {
        let configs = client.any().describe_configs(&ConfigResource::Topic(t.name.clone())).await?;
        if let Some(v) = min_insync_replicas(&configs).and_then(|v| usize::try_from(v).ok()) {
            min_isr.insert(t.name.clone(), v);
        }
    }
    let fenced = match client.any().describe_cluster().await? {
        Some(d) => d.brokers.iter().filter(|(_, f)| *f).map(|(b, _)| b.id).collect(),
        None => Vec::new(),
    };
    let health = classify(&md.topics, &min_isr, fenced);
    if opts.json() {
        print!("{}", table::json(&health));
    } else {
        print!("{}", health_text(&health));
    }
    Ok(if health.healthy { Outcome::Ok } else { Outcome::Unhealthy })
}

fn health_text(h: &Health) -> String {
    let mut out = format!("healthy: {}\n", if h.healthy { "yes" } else { "no" });
    let fenced: Vec<String> = h.fenced_brokers.iter().map(ToString::to_string).collect();
    for (what, items) in [
        ("offline partitions", &h.offline),
        ("under-replicated partitions", &h.under_replicated),
        ("under-min-ISR partitions", &h.under_min_isr),
        ("fenced brokers", &fenced),
    ] {
        out.push_str(&format!("{what}: {}", items.len()));
        if !items.is_empty() {
            out.push_str(&format!(" ({})", items.join(", ")));
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use strata_client::admin::PartitionInfo;
    use strata_client::ErrorCode;

    use super::*;

    fn topic(name: &str, partitions: &[(i32, &[i32], &[i32])]) -> TopicInfo {
        TopicInfo {
            name: name.into(),
            id: String::new(),
            internal: false,
            error: ErrorCode(0),
            partitions: partitions
                .iter()
                .enumerate()
                .map(|(i, (leader, replicas, isr))| PartitionInfo {
                    partition: i as i32,
                    leader: *leader,
                    leader_epoch: 0,
                    replicas: replicas.to_vec(),
                    isr: isr.to_vec(),
                    offline_replicas: vec![],
                    error: ErrorCode(0),
                })
                .collect(),
        }
    }

    #[test]
    fn healthy_cluster() {
        let h = classify(&[topic("a", &[(0, &[0, 1], &[0, 1])])], &BTreeMap::from([("a".into(), 2)]), vec![]);
        assert!(h.healthy);
        assert_eq!(health_text(&h), "healthy: yes\noffline partitions: 0\nunder-replicated partitions: 0\nunder-min-ISR partitions: 0\nfenced brokers: 0\n");
    }

    #[test]
    fn each_problem_is_found() {
        let topics = [topic("a", &[(0, &[0, 1, 2], &[0, 1]), (-1, &[1], &[])]), topic("b", &[(2, &[2, 0], &[2])])];
        let h = classify(&topics, &BTreeMap::from([("a".into(), 2)]), vec![1]);
        assert_eq!(
            h,
            Health {
                healthy: false,
                offline: vec!["a-1".into()],
                // An offline partition is under-replicated too, as Kafka counts it.
                under_replicated: vec!["a-0".into(), "a-1".into(), "b-0".into()],
                // a-0 has 2 in sync, enough for a's 2; b's default is 1.
                under_min_isr: vec!["a-1".into()],
                fenced_brokers: vec![1],
            }
        );
        assert!(health_text(&h).contains("under-replicated partitions: 3 (a-0, a-1, b-0)\n"));
        assert!(!classify(&[], &BTreeMap::new(), vec![3]).healthy);
    }
}
