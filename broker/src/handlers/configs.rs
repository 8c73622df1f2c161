//! DescribeConfigs, IncrementalAlterConfigs and the legacy AlterConfigs for topics and this broker. Topic
//! overrides and dynamic broker defaults apply to the logs at once, without a restart.

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::messages::{
    alter_configs_request, alter_configs_response, describe_configs_response, incremental_alter_configs_request,
    incremental_alter_configs_response, AlterConfigsRequest, AlterConfigsResponse, DescribeConfigsRequest,
    DescribeConfigsResponse, IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
};
use strata_storage::LogConfig;

use super::admin::call_each;
use super::{respond_later, s};
use crate::authorizer::{Check, Operation, Resource};
use crate::broker::{BrokerState, DYNAMIC_VOTERS_FILE};
use crate::config::{parse_voters, topic_key_for, LOG_DEFAULT_KEYS};
use crate::config_ops::{self, ConfigOp, DELETE, SET, TYPE_BOOLEAN, TYPE_INT, TYPE_LIST, TYPE_LONG, TYPE_STRING};
use crate::controller::decisions::{default_replication_factor, is_broker_setting, DEFAULT_REPLICATION_FACTOR};
use crate::controller::image::Refused;
use crate::controller::service::{ConfigResource, ControllerRequest};
use crate::errors::code;
use crate::protocol::RequestHeader;
use crate::server::{Peer, Reply};
use crate::throttle;

const TOPIC: i8 = 2;
const BROKER: i8 = 4;
const BROKER_LOGGER: i8 = 8;

// Kafka's ConfigSource values.
const DYNAMIC_TOPIC_CONFIG: i8 = 1;
const DYNAMIC_BROKER_CONFIG: i8 = 2;
const DYNAMIC_DEFAULT_BROKER_CONFIG: i8 = 3;
const STATIC_BROKER_CONFIG: i8 = 4;
const DEFAULT_CONFIG: i8 = 5;

pub struct ConfigEntry {
    pub name: String,
    pub value: String,
    pub read_only: bool,
    pub source: i8,
    /// (name, value, source), strongest first, as Kafka lists synonyms.
    pub synonyms: Vec<(String, String, i8)>,
    pub config_type: i8,
}

/// The broker-level name of a dynamic config: a log default's, or the key itself (topic-only configs, and the
/// broker-only replication throttle rates).
fn broker_key_for(topic_key: &str) -> &str {
    LOG_DEFAULT_KEYS.iter().find(|(_, t)| *t == topic_key).map_or(topic_key, |(b, _)| b)
}

/// Every topic-level config of a topic with `overrides` (or only `keys`) with where its value comes from.
pub fn describe_topic_configs(
    state: &BrokerState,
    overrides: &BTreeMap<String, String>,
    keys: Option<&[String]>,
) -> Vec<ConfigEntry> {
    let defaults = state.replicas.defaults();
    let effective = defaults.topic_config(overrides).unwrap_or_else(|_| defaults.config.clone());
    let base = LogConfig::default();
    LogConfig::KEYS
        .iter()
        .filter(|k| keys.is_none_or(|ks| ks.iter().any(|x| x == *k)))
        .map(|key| {
            let broker_key = broker_key_for(key).to_string();
            let mut synonyms = Vec::new();
            if let Some(v) = overrides.get(*key) {
                synonyms.push((key.to_string(), v.clone(), DYNAMIC_TOPIC_CONFIG));
            }
            if let Some(v) = defaults.dynamic_overrides.get(*key) {
                synonyms.push((broker_key.clone(), v.clone(), DYNAMIC_DEFAULT_BROKER_CONFIG));
            }
            if let Some(v) = defaults.static_overrides.get(*key) {
                synonyms.push((broker_key.clone(), v.clone(), STATIC_BROKER_CONFIG));
            }
            synonyms.push((broker_key, base.get(key).unwrap_or_default(), DEFAULT_CONFIG));
            ConfigEntry {
                name: key.to_string(),
                value: effective.get(key).unwrap_or_default(),
                read_only: false,
                source: synonyms[0].2,
                synonyms,
                config_type: config_ops::config_type(key),
            }
        })
        .collect()
}

/// The broker's settings: dynamic log defaults (alterable) and the static ones (read-only). By node id, this
/// broker's own dynamic values come first, then the cluster-wide ones (resource ""), as Kafka layers them.
fn describe_broker_configs(state: &BrokerState, by_node_id: bool, keys: Option<&[String]>) -> Vec<ConfigEntry> {
    let defaults = state.replicas.defaults();
    let image = state.image();
    let empty = BTreeMap::new();
    let own = if by_node_id { image.broker_configs.get(&state.config.node_id.to_string()).unwrap_or(&empty) } else { &empty };
    let cluster_wide = image.broker_configs.get("").unwrap_or(&empty);
    let base = LogConfig::default();
    let effective = match by_node_id {
        true => defaults.config.clone(),
        false => base
            .with_overrides(defaults.static_overrides.iter().chain(cluster_wide).map(|(k, v)| (k.as_str(), v.as_str())))
            .unwrap_or_else(|_| defaults.config.clone()),
    };
    let c = &state.config;
    let listeners = |ls: &[crate::config::Listener]| ls.iter().map(ToString::to_string).collect::<Vec<_>>().join(",");
    // A dynamic setting with its layers, strongest first.
    let dynamic = |name: &str, stored: &str, static_value: Option<&String>, default: String, value: String, config_type| {
        let layers = [
            (own.get(stored), DYNAMIC_BROKER_CONFIG),
            (cluster_wide.get(stored), DYNAMIC_DEFAULT_BROKER_CONFIG),
            (static_value, STATIC_BROKER_CONFIG),
        ];
        let mut synonyms: Vec<(String, String, i8)> =
            layers.into_iter().filter_map(|(v, source)| Some((name.to_string(), v?.clone(), source))).collect();
        synonyms.push((name.to_string(), default, DEFAULT_CONFIG));
        ConfigEntry { name: name.to_string(), value, read_only: false, source: synonyms[0].2, synonyms, config_type }
    };
    let mut out: Vec<ConfigEntry> = LOG_DEFAULT_KEYS
        .iter()
        .map(|(broker_key, topic_key)| {
            let (default, value) = (base.get(topic_key).unwrap_or_default(), effective.get(topic_key).unwrap_or_default());
            dynamic(
                broker_key,
                topic_key,
                defaults.static_overrides.get(*topic_key),
                default,
                value,
                config_ops::config_type(topic_key),
            )
        })
        .collect();
    out.extend(throttle::RATE_KEYS.iter().map(|key| {
        let value = own.get(*key).or(cluster_wide.get(*key)).cloned().unwrap_or(throttle::UNLIMITED.to_string());
        dynamic(key, key, None, throttle::UNLIMITED.to_string(), value, TYPE_LONG)
    }));
    let configured = c.default_replication_factor.to_string();
    let factor = default_replication_factor(&image, c.default_replication_factor).to_string();
    out.push(dynamic(DEFAULT_REPLICATION_FACTOR, DEFAULT_REPLICATION_FACTOR, Some(&configured), "1".into(), factor, TYPE_INT));
    let fixed = [
        ("node.id", c.node_id.to_string(), TYPE_INT),
        ("listeners", listeners(&c.listeners), TYPE_LIST),
        ("advertised.listeners", listeners(&c.advertised_listeners), TYPE_LIST),
        ("log.dirs", c.log_dir.display().to_string(), TYPE_LIST),
        ("num.partitions", c.num_partitions.to_string(), TYPE_INT),
        ("auto.create.topics.enable", c.auto_create_topics.to_string(), TYPE_BOOLEAN),
        ("socket.request.max.bytes", c.socket_request_max_bytes.to_string(), TYPE_INT),
        ("fetch.mode", format!("{:?}", c.fetch_mode).to_lowercase(), TYPE_STRING),
    ];
    out.extend(fixed.into_iter().map(|(name, value, config_type)| ConfigEntry {
        name: name.into(),
        synonyms: vec![(name.into(), value.clone(), STATIC_BROKER_CONFIG)],
        value,
        read_only: true,
        source: STATIC_BROKER_CONFIG,
        config_type,
    }));
    let voters = state.controller.voters().iter().map(|(id, addr)| format!("{id}@{addr}")).collect::<Vec<_>>().join(",");
    let set_at_run_time = c.log_dir.join(DYNAMIC_VOTERS_FILE).exists();
    let source = if set_at_run_time { DYNAMIC_BROKER_CONFIG } else { STATIC_BROKER_CONFIG };
    out.push(ConfigEntry {
        name: QUORUM_VOTERS.into(),
        synonyms: vec![(QUORUM_VOTERS.into(), voters.clone(), source)],
        value: voters,
        read_only: false,
        source,
        config_type: TYPE_LIST,
    });
    out.retain(|e| keys.is_none_or(|ks| ks.contains(&e.name)));
    out
}

/// Whether the client may do `operation` on a config resource, else the error: a topic's configs are the
/// topic's, a broker's the cluster's (as Kafka checks them). Unknown types are refused later.
fn authorize_configs(auth: &Check, operation: Operation, resource_type: i8, name: &str) -> Result<(), Refused> {
    let (resource, error) = match resource_type {
        TOPIC => (Resource::topic(name), code::TOPIC_AUTHORIZATION_FAILED),
        BROKER | BROKER_LOGGER => (Resource::cluster(), code::CLUSTER_AUTHORIZATION_FAILED),
        _ => return Ok(()),
    };
    match auth.allows(operation, resource) {
        true => Ok(()),
        false => Err(super::admin::denied(error, operation, if resource_type == TOPIC { "the topic" } else { "the cluster" })),
    }
}

/// An empty name means the cluster-wide default; otherwise it must be this broker's id.
fn is_this_broker(state: &BrokerState, name: &str) -> Option<bool> {
    if name.is_empty() {
        Some(false)
    } else if name == state.config.node_id.to_string() {
        Some(true)
    } else {
        None
    }
}

pub fn describe_configs(
    state: &BrokerState,
    peer: &Peer,
    header: &RequestHeader,
    req: DescribeConfigsRequest,
) -> DescribeConfigsResponse {
    let version = header.api_version;
    let auth = state.authorizer.check(peer);
    let results = req
        .resources
        .into_iter()
        .map(|r| {
            let name = r.resource_name.to_string();
            let keys: Option<Vec<String>> = r.configuration_keys.as_ref().map(|ks| ks.iter().map(|k| k.to_string()).collect());
            let entries = authorize_configs(&auth, Operation::DescribeConfigs, r.resource_type, &name)
                .map_err(|e| (e.code, e.message))
                .and_then(|()| match r.resource_type {
                    TOPIC => match state.image().topic(&name) {
                        Some(t) => Ok(describe_topic_configs(state, &t.configs, keys.as_deref())),
                        None => Err((code::UNKNOWN_TOPIC_OR_PARTITION, format!("unknown topic {name}"))),
                    },
                    BROKER => match is_this_broker(state, &name) {
                        Some(by_id) => Ok(describe_broker_configs(state, by_id, keys.as_deref())),
                        None => Err((code::INVALID_REQUEST, format!("unexpected broker id {name}"))),
                    },
                    other => Err((code::INVALID_REQUEST, format!("config resource type {other} is not supported"))),
                });
            let result = describe_configs_response::DescribeConfigsResult::default()
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name);
            match entries {
                Ok(entries) => result.with_configs(
                    entries
                        .into_iter()
                        .map(|e| {
                            let synonyms = if req.include_synonyms {
                                e.synonyms
                                    .into_iter()
                                    .map(|(n, v, src)| {
                                        describe_configs_response::DescribeConfigsSynonym::default()
                                            .with_name(s(n))
                                            .with_value(Some(s(v)))
                                            .with_source(src)
                                    })
                                    .collect()
                            } else {
                                vec![]
                            };
                            describe_configs_response::DescribeConfigsResourceResult::default()
                                .with_name(s(e.name))
                                .with_value(Some(s(e.value)))
                                .with_read_only(e.read_only)
                                .with_config_source(e.source)
                                .with_synonyms(synonyms)
                                .with_config_type(if version >= 3 { e.config_type } else { 0 })
                        })
                        .collect(),
                ),
                Err((error_code, msg)) => result.with_error_code(error_code).with_error_message(Some(s(msg))),
            }
        })
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}

/// The voters' addresses, which the operator sets at run time (pod IPs are known late); this node's own.
const QUORUM_VOTERS: &str = "controller.quorum.voters";

pub fn incremental_alter_configs(
    state: &Arc<BrokerState>,
    peer: &Peer,
    header: &RequestHeader,
    req: IncrementalAlterConfigsRequest,
) -> Reply {
    let auth = state.authorizer.check(peer);
    let state = state.clone();
    respond_later(header, async move { alter(&state, &auth, req).await })
}

/// What one resource of a request changes.
enum Change {
    /// Decided by the active controller (topic configs, dynamic broker defaults).
    Controller(ConfigResource, Vec<ConfigOp>),
    /// This node's voter addresses: Some(value) or None (back to the configured value).
    Voters(Option<String>),
}

fn change_of(state: &BrokerState, r: &incremental_alter_configs_request::AlterConfigsResource) -> Result<Change, Refused> {
    let name = r.resource_name.to_string();
    let ops: Vec<ConfigOp> =
        r.configs.iter().map(|c| (c.name.to_string(), c.config_operation, c.value.as_ref().map(|v| v.to_string()))).collect();
    match r.resource_type {
        TOPIC => Ok(Change::Controller(ConfigResource::Topic(name), ops)),
        BROKER => {
            if is_this_broker(state, &name).is_none() {
                return Err(Refused::new(code::INVALID_REQUEST, format!("unexpected broker id {name}")));
            }
            if ops.iter().any(|(k, _, _)| k == QUORUM_VOTERS) {
                return match ops.as_slice() {
                    [(_, SET, Some(v))] => Ok(Change::Voters(Some(v.clone()))),
                    [(_, DELETE, _)] => Ok(Change::Voters(None)),
                    _ => Err(Refused::new(code::INVALID_REQUEST, format!("{QUORUM_VOTERS} is set or deleted alone"))),
                };
            }
            let mut topic_ops = Vec::with_capacity(ops.len());
            for (key, op, value) in ops {
                match topic_key_for(&key) {
                    Some(t) => topic_ops.push((t.to_string(), op, value)),
                    None if is_broker_setting(&key) => topic_ops.push((key, op, value)),
                    None => return Err(Refused::new(code::INVALID_REQUEST, format!("{key} cannot be updated dynamically"))),
                }
            }
            Ok(Change::Controller(ConfigResource::Broker(name), topic_ops))
        }
        other => Err(Refused::new(code::INVALID_REQUEST, format!("config resource type {other} is not supported"))),
    }
}

/// Sets (or resets) this node's voter addresses, stored so a restart keeps them.
fn set_voters(state: &BrokerState, value: Option<&str>, validate_only: bool) -> Result<(), Refused> {
    let invalid = |m: String| Refused::new(code::INVALID_CONFIG, format!("{QUORUM_VOTERS}: {m}"));
    let voters = match value {
        Some(v) => parse_voters(v).map_err(invalid)?,
        None => state.config.quorum_voters.clone(),
    };
    if validate_only {
        return Ok(());
    }
    let path = state.config.log_dir.join(DYNAMIC_VOTERS_FILE);
    state.controller.set_voter_addresses(voters.clone()).map_err(invalid)?;
    let stored = match value {
        Some(_) => crate::topics::save_json(&path, &voters),
        None => std::fs::remove_file(&path)
            .or_else(|e| if e.kind() == std::io::ErrorKind::NotFound { Ok(()) } else { Err(e) })
            .map_err(|e| crate::topics::MetaError::Io { op: "remove", path: path.clone(), source: e }),
    };
    stored.map_err(|e| Refused::new(code::KAFKA_STORAGE_ERROR, e.to_string()))?;
    tracing::info!(voters = ?voters, "controller quorum voter addresses changed");
    Ok(())
}

/// Topic configs and dynamic broker defaults change through the active controller; this node's voter
/// addresses change here. The answer comes once this broker applied the change.
async fn alter(state: &BrokerState, auth: &Check, req: IncrementalAlterConfigsRequest) -> IncrementalAlterConfigsResponse {
    let changes: Vec<Result<Change, Refused>> = req
        .resources
        .iter()
        .map(|r| {
            authorize_configs(auth, Operation::AlterConfigs, r.resource_type, &r.resource_name).and_then(|()| change_of(state, r))
        })
        .collect();
    let to_controller: Vec<(ConfigResource, Vec<ConfigOp>)> = changes
        .iter()
        .filter_map(|c| match c {
            Ok(Change::Controller(r, ops)) => Some((r.clone(), ops.clone())),
            _ => None,
        })
        .collect();
    let count = to_controller.len();
    let mut decided = if count == 0 {
        vec![]
    } else {
        call_each(
            state,
            ControllerRequest::AlterConfigs { changes: to_controller, validate_only: req.validate_only },
            count,
            super::admin::timeout_of(0),
        )
        .await
    }
    .into_iter();
    let responses = req
        .resources
        .iter()
        .zip(changes)
        .map(|(r, change)| {
            let outcome = change.and_then(|c| match c {
                Change::Controller(..) => decided.next().unwrap_or(Ok(())),
                Change::Voters(v) => set_voters(state, v.as_deref(), req.validate_only),
            });
            let resp = incremental_alter_configs_response::AlterConfigsResourceResponse::default()
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name.clone());
            match outcome {
                Ok(()) => resp,
                Err(e) => {
                    tracing::info!(resource = %r.resource_name.as_str(), error = %e, "config change refused");
                    resp.with_error_code(e.code).with_error_message(Some(s(e.message)))
                }
            }
        })
        .collect();
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}

/// AlterConfigs, the API IncrementalAlterConfigs replaced: the given configs become the resource's only
/// dynamic ones. Carried out as the IncrementalAlterConfigs that sets them and deletes the others, so both
/// APIs share validation, persistence and the way through the controller.
pub fn alter_configs(state: &Arc<BrokerState>, peer: &Peer, header: &RequestHeader, req: AlterConfigsRequest) -> Reply {
    let auth = state.authorizer.check(peer);
    let mut resources = Vec::with_capacity(req.resources.len());
    let refused: Vec<Option<(i16, String)>> = req
        .resources
        .iter()
        .map(|r| {
            authorize_configs(&auth, Operation::AlterConfigs, r.resource_type, &r.resource_name)
                .map_err(|e| (e.code, e.message))
                .and_then(|()| as_incremental(state, r))
                .map(|r| resources.push(r))
                .err()
        })
        .collect();
    let incremental = IncrementalAlterConfigsRequest::default().with_resources(resources).with_validate_only(req.validate_only);
    let state = state.clone();
    respond_later(header, async move {
        let mut answers = alter(&state, &auth, incremental).await.responses.into_iter();
        let responses = req
            .resources
            .into_iter()
            .zip(refused)
            .filter_map(|(r, refused)| {
                let (error_code, error_message) = match refused {
                    Some((error_code, msg)) => (error_code, Some(s(msg))),
                    None => answers.next().map(|a| (a.error_code, a.error_message))?,
                };
                Some(
                    alter_configs_response::AlterConfigsResourceResponse::default()
                        .with_resource_type(r.resource_type)
                        .with_resource_name(r.resource_name)
                        .with_error_code(error_code)
                        .with_error_message(error_message),
                )
            })
            .collect();
        AlterConfigsResponse::default().with_responses(responses)
    })
}

/// The IncrementalAlterConfigs resource that makes `r`'s configs exactly the ones it gives.
fn as_incremental(
    state: &BrokerState,
    r: &alter_configs_request::AlterConfigsResource,
) -> Result<incremental_alter_configs_request::AlterConfigsResource, (i16, String)> {
    let dynamic: Vec<String> = match r.resource_type {
        // Every topic config, not only those this broker has as set: the controller's may be newer.
        TOPIC => LogConfig::KEYS.iter().map(ToString::to_string).collect(),
        // Not controller.quorum.voters: the addresses are the operator's, changed only when given.
        BROKER => state
            .image()
            .broker_configs
            .get(r.resource_name.as_str())
            .map(|m| m.keys().map(|k| broker_key_for(k).to_string()).collect())
            .unwrap_or_default(),
        other => {
            return Err((
                code::INVALID_REQUEST,
                format!("AlterConfigs changes topics (2) and brokers (4), not resource type {other}"),
            ))
        }
    };
    let given: Vec<(String, Option<String>)> =
        r.configs.iter().map(|c| (c.name.to_string(), c.value.as_ref().map(|v| v.to_string()))).collect();
    let ops = replace_ops(&given, &dynamic).map_err(|m| (code::INVALID_REQUEST, m))?;
    Ok(incremental_alter_configs_request::AlterConfigsResource::default()
        .with_resource_type(r.resource_type)
        .with_resource_name(r.resource_name.clone())
        .with_configs(
            ops.into_iter()
                .map(|(name, op, value)| {
                    incremental_alter_configs_request::AlterableConfig::default()
                        .with_name(s(name))
                        .with_config_operation(op)
                        .with_value(value.map(s))
                })
                .collect(),
        ))
}

/// The operations that make `given` a resource's complete dynamic configs: each of the `dynamic` keys
/// (those that may hold a value now) that is not given is deleted, each given key is set. A null value
/// is refused, as Kafka does.
fn replace_ops(given: &[(String, Option<String>)], dynamic: &[String]) -> Result<Vec<ConfigOp>, String> {
    let nulls: Vec<&str> = given.iter().filter(|(_, v)| v.is_none()).map(|(k, _)| k.as_str()).collect();
    if !nulls.is_empty() {
        return Err(format!("null value not supported for: {}", nulls.join(",")));
    }
    let deletes = dynamic.iter().filter(|k| !given.iter().any(|(g, _)| g == *k)).map(|k| (k.clone(), DELETE, None));
    Ok(deletes.chain(given.iter().map(|(k, v)| (k.clone(), SET, v.clone()))).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config_ops::TYPE_DOUBLE;

    #[test]
    fn every_topic_config_has_a_broker_default_and_kafkas_type() {
        for key in LogConfig::KEYS {
            assert!(!broker_key_for(key).is_empty(), "{key} has no broker-level synonym");
        }
        let keys = [
            "min.insync.replicas",
            "compression.type",
            "message.timestamp.after.max.ms",
            "preallocate",
            "min.cleanable.dirty.ratio",
        ];
        let types: Vec<i8> = keys.iter().map(|k| config_ops::config_type(k)).collect();
        assert_eq!(types, vec![TYPE_INT, TYPE_STRING, TYPE_LONG, TYPE_BOOLEAN, TYPE_DOUBLE]);
    }

    #[test]
    fn replacing_sets_the_given_configs_and_deletes_the_other_dynamic_ones() {
        let strings = |ks: &[&str]| ks.iter().map(ToString::to_string).collect::<Vec<_>>();
        let given =
            vec![("segment.bytes".to_string(), Some("1024".to_string())), ("retention.ms".to_string(), Some("5".to_string()))];
        let dynamic = strings(&["retention.ms", "cleanup.policy", "flush.ms"]);
        let ops = replace_ops(&given, &dynamic).unwrap();
        assert_eq!(
            ops,
            vec![
                ("cleanup.policy".to_string(), DELETE, None),
                ("flush.ms".to_string(), DELETE, None),
                ("segment.bytes".to_string(), SET, Some("1024".to_string())),
                ("retention.ms".to_string(), SET, Some("5".to_string())),
            ]
        );
        // Applied to the current overrides, the result is exactly the given configs.
        let mut current =
            BTreeMap::from([("retention.ms".to_string(), "1".to_string()), ("cleanup.policy".to_string(), "delete".to_string())]);
        config_ops::apply(&mut current, &ops, &LogConfig::default()).unwrap();
        assert_eq!(current, BTreeMap::from([("segment.bytes".into(), "1024".into()), ("retention.ms".into(), "5".into())]));
        // Nothing given: every dynamic config goes.
        assert!(replace_ops(&[], &dynamic).unwrap().iter().all(|(_, op, v)| *op == DELETE && v.is_none()));
        let nulls = [("a".to_string(), None), ("b".to_string(), Some("1".to_string())), ("c".to_string(), None)];
        assert_eq!(replace_ops(&nulls, &dynamic).unwrap_err(), "null value not supported for: a,c");
    }
}
