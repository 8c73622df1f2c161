//! A client of a whole cluster: bootstraps from any of several addresses, learns the brokers from the
//! metadata and routes requests to a broker by id, to the controller, to a group's coordinator or to each
//! partition's leader, keeping one connection per broker.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use crate::admin::{GroupListing, Metadata, OffsetSpec, PerName, TopicInfo};
use crate::connection::Connection;
use crate::error::{ClientError, Result};
use crate::sasl::Security;

#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// `host:port` addresses tried in order until one answers.
    pub bootstrap: Vec<String>,
    pub client_id: String,
    /// For connecting and for each request.
    pub timeout: Duration,
}

pub struct Client {
    config: ClientConfig,
    /// TLS and SASL for every connection.
    security: Security,
    /// The bootstrap connection's address: any broker will do for most requests.
    any: String,
    /// By address.
    connections: HashMap<String, Connection>,
    /// Broker id -> address, from the latest metadata.
    brokers: BTreeMap<i32, String>,
    controller: Option<i32>,
}

impl Client {
    /// Connects to the first bootstrap address that answers and reads the broker list.
    pub async fn connect(config: ClientConfig) -> Result<Client> {
        Client::connect_secured(config, Security::default()).await
    }

    /// Like [`Client::connect`], each connection with `security` (TLS, SASL).
    pub async fn connect_secured(config: ClientConfig, security: Security) -> Result<Client> {
        let mut errors = Vec::new();
        for addr in &config.bootstrap {
            match security.connect(addr, &config.client_id, config.timeout).await {
                Ok(conn) => {
                    let mut client = Client {
                        security,
                        any: addr.clone(),
                        connections: HashMap::from([(addr.clone(), conn)]),
                        brokers: BTreeMap::new(),
                        controller: None,
                        config,
                    };
                    client.metadata(Some(&[])).await?;
                    return Ok(client);
                }
                Err(e) => errors.push(e),
            }
        }
        Err(ClientError::NoBroker(errors))
    }

    /// The bootstrap broker's connection.
    pub fn any(&mut self) -> &mut Connection {
        self.connections.get_mut(&self.any).expect("the bootstrap connection is never removed")
    }

    /// Metadata from the bootstrap broker (see [`Connection::metadata`]); also refreshes the broker list.
    pub async fn metadata(&mut self, topics: Option<&[String]>) -> Result<Metadata> {
        let md = self.any().metadata(topics).await?;
        self.brokers = md.brokers.iter().map(|b| (b.id, b.addr())).collect();
        self.controller = md.controller_id;
        Ok(md)
    }

    /// Metadata of the named topics; fails naming the first topic the broker reports an error for (e.g.
    /// `UNKNOWN_TOPIC_OR_PARTITION`).
    pub async fn topics(&mut self, names: &[String]) -> Result<Vec<TopicInfo>> {
        let md = self.metadata(Some(names)).await?;
        for t in &md.topics {
            self.any().check(t.error.0, format!("topic {}", t.name), None)?;
        }
        Ok(md.topics)
    }

    /// Metadata of one topic (see [`Client::topics`]).
    pub async fn topic(&mut self, name: &str) -> Result<TopicInfo> {
        let topics = self.topics(&[name.to_string()]).await?;
        topics
            .into_iter()
            .find(|t| t.name == name)
            .ok_or_else(|| ClientError::NotFound(format!("topic {name} is not in the metadata")))
    }

    pub fn broker_ids(&self) -> Vec<i32> {
        self.brokers.keys().copied().collect()
    }

    /// The connection to `addr`, opened on first use.
    pub async fn connection(&mut self, addr: &str) -> Result<&mut Connection> {
        if !self.connections.contains_key(addr) {
            let conn = self.security.connect(addr, &self.config.client_id, self.config.timeout).await?;
            self.connections.insert(addr.to_string(), conn);
        }
        Ok(self.connections.get_mut(addr).expect("inserted above"))
    }

    pub async fn broker(&mut self, id: i32) -> Result<&mut Connection> {
        let addr = self
            .brokers
            .get(&id)
            .cloned()
            .ok_or_else(|| ClientError::NotFound(format!("broker {id} is not in the cluster metadata")))?;
        self.connection(&addr).await
    }

    /// The controller, where topic and config changes take effect first; any broker when none is reported
    /// (a broker then forwards or answers itself).
    pub async fn controller(&mut self) -> Result<&mut Connection> {
        match self.controller {
            Some(id) => self.broker(id).await,
            None => Ok(self.any()),
        }
    }

    pub async fn coordinator(&mut self, group: &str) -> Result<&mut Connection> {
        let (_, addr) = self.any().find_coordinator(group).await?;
        self.connection(&addr).await
    }

    /// Offsets of partitions, each asked of its leader. Fails on the first partition that has no leader
    /// or whose leader answers an error.
    pub async fn list_offsets(&mut self, partitions: &[(String, i32)], spec: OffsetSpec) -> Result<BTreeMap<(String, i32), i64>> {
        let mut topics: Vec<String> = partitions.iter().map(|(t, _)| t.clone()).collect();
        topics.dedup();
        let md = self.metadata(Some(&topics)).await?;
        let mut by_leader: BTreeMap<i32, Vec<(String, i32)>> = BTreeMap::new();
        for (topic, partition) in partitions {
            let leader = md
                .topics
                .iter()
                .find(|t| &t.name == topic)
                .and_then(|t| t.partitions.iter().find(|p| p.partition == *partition))
                .map(|p| p.leader)
                .filter(|l| *l >= 0)
                .ok_or_else(|| ClientError::NotFound(format!("{topic}-{partition} has no leader")))?;
            by_leader.entry(leader).or_default().push((topic.clone(), *partition));
        }
        let mut out = BTreeMap::new();
        for (leader, partitions) in by_leader {
            for (tp, offset) in self.broker(leader).await?.list_offsets(&partitions, spec).await? {
                out.insert(tp, offset?);
            }
        }
        Ok(out)
    }

    /// Groups of the whole cluster (each broker lists the groups it coordinates).
    pub async fn list_groups(&mut self) -> Result<Vec<GroupListing>> {
        let mut groups = Vec::new();
        for id in self.broker_ids() {
            groups.extend(self.broker(id).await?.list_groups().await?);
        }
        groups.sort_by(|a, b| a.group.cmp(&b.group));
        groups.dedup_by(|a, b| a.group == b.group);
        Ok(groups)
    }

    /// Deletes groups, each at its coordinator.
    pub async fn delete_groups(&mut self, groups: &[String]) -> Result<PerName> {
        let mut out = Vec::new();
        for g in groups {
            let outcome = match self.coordinator(g).await {
                Ok(conn) => conn.delete_groups(std::slice::from_ref(g)).await?,
                Err(e) => vec![(g.clone(), Err(e))],
            };
            out.extend(outcome);
        }
        Ok(out)
    }
}
