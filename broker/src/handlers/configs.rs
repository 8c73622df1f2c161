//! DescribeConfigs, IncrementalAlterConfigs and the legacy AlterConfigs for topics and this broker. Topic
//! overrides and dynamic broker defaults apply to the logs at once, without a restart.

use std::collections::BTreeMap;
use std::future::{ready, Future};
use std::pin::Pin;
use std::sync::Arc;

use kafka_protocol::messages::{
    alter_configs_request, alter_configs_response, describe_configs_response, incremental_alter_configs_request,
    incremental_alter_configs_response, AlterConfigsRequest, AlterConfigsResponse, ApiKey, DescribeConfigsRequest,
    DescribeConfigsResponse, IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
};
use strata_storage::LogConfig;

use super::{forwarded, respond_later, s};
use crate::broker::BrokerState;
use crate::cluster::{push, Role};
use crate::config::{topic_key_for, LOG_DEFAULT_KEYS};
use crate::errors::code;
use crate::protocol::RequestHeader;
use crate::server::Reply;
use crate::topics::TopicMeta;

const TOPIC: i8 = 2;
const BROKER: i8 = 4;

// Kafka's ConfigSource values.
const DYNAMIC_TOPIC_CONFIG: i8 = 1;
const DYNAMIC_BROKER_CONFIG: i8 = 2;
const DYNAMIC_DEFAULT_BROKER_CONFIG: i8 = 3;
const STATIC_BROKER_CONFIG: i8 = 4;
const DEFAULT_CONFIG: i8 = 5;

// Kafka's ConfigType values.
const TYPE_BOOLEAN: i8 = 1;
const TYPE_STRING: i8 = 2;
const TYPE_INT: i8 = 3;
const TYPE_LONG: i8 = 5;
const TYPE_DOUBLE: i8 = 6;
const TYPE_LIST: i8 = 7;

fn config_type(topic_key: &str) -> i8 {
    match topic_key {
        "cleanup.policy" => TYPE_LIST,
        "log.write.mode" | "compression.type" | "message.timestamp.type" => TYPE_STRING,
        "segment.bytes" | "segment.index.bytes" | "index.interval.bytes" | "max.message.bytes" | "min.insync.replicas" => {
            TYPE_INT
        }
        "unclean.leader.election.enable" | "preallocate" | "message.downconversion.enable" => TYPE_BOOLEAN,
        "min.cleanable.dirty.ratio" => TYPE_DOUBLE,
        _ => TYPE_LONG,
    }
}

pub struct ConfigEntry {
    pub name: String,
    pub value: String,
    pub read_only: bool,
    pub source: i8,
    /// (name, value, source), strongest first, as Kafka lists synonyms.
    pub synonyms: Vec<(String, String, i8)>,
    pub config_type: i8,
}

fn broker_key_for(topic_key: &str) -> &'static str {
    LOG_DEFAULT_KEYS.iter().find(|(_, t)| *t == topic_key).map_or("", |(b, _)| b)
}

/// Every topic-level config of `meta` (or only `keys`) with where its value comes from.
pub fn describe_topic_configs(state: &BrokerState, meta: &TopicMeta, keys: Option<&[String]>) -> Vec<ConfigEntry> {
    let defaults = state.replicas.defaults();
    let effective = defaults
        .config
        .with_overrides(meta.configs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .unwrap_or_else(|_| defaults.config.clone());
    let base = LogConfig::default();
    LogConfig::KEYS
        .iter()
        .filter(|k| keys.is_none_or(|ks| ks.iter().any(|x| x == *k)))
        .map(|key| {
            let broker_key = broker_key_for(key).to_string();
            let mut synonyms = Vec::new();
            if let Some(v) = meta.configs.get(*key) {
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
                config_type: config_type(key),
            }
        })
        .collect()
}

/// The broker's settings: dynamic log defaults (alterable) and the static ones (read-only).
fn describe_broker_configs(state: &BrokerState, by_node_id: bool, keys: Option<&[String]>) -> Vec<ConfigEntry> {
    let defaults = state.replicas.defaults();
    let base = LogConfig::default();
    let dynamic_source = if by_node_id { DYNAMIC_BROKER_CONFIG } else { DYNAMIC_DEFAULT_BROKER_CONFIG };
    let c = &state.config;
    let listeners = |ls: &[crate::config::Listener]| ls.iter().map(ToString::to_string).collect::<Vec<_>>().join(",");
    let mut out: Vec<ConfigEntry> = LOG_DEFAULT_KEYS
        .iter()
        .map(|(broker_key, topic_key)| {
            let mut synonyms = Vec::new();
            if let Some(v) = defaults.dynamic_overrides.get(*topic_key) {
                synonyms.push((broker_key.to_string(), v.clone(), dynamic_source));
            }
            if let Some(v) = defaults.static_overrides.get(*topic_key) {
                synonyms.push((broker_key.to_string(), v.clone(), STATIC_BROKER_CONFIG));
            }
            synonyms.push((broker_key.to_string(), base.get(topic_key).unwrap_or_default(), DEFAULT_CONFIG));
            ConfigEntry {
                name: broker_key.to_string(),
                value: defaults.config.get(topic_key).unwrap_or_default(),
                read_only: false,
                source: synonyms[0].2,
                synonyms,
                config_type: config_type(topic_key),
            }
        })
        .collect();
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
    let (brokers, set_at_run_time) = state.cluster.brokers_setting();
    let source = if set_at_run_time { dynamic_source } else { STATIC_BROKER_CONFIG };
    out.push(ConfigEntry {
        name: CLUSTER_BROKERS.into(),
        synonyms: vec![(CLUSTER_BROKERS.into(), brokers.clone(), source)],
        value: brokers,
        read_only: false,
        source,
        config_type: TYPE_LIST,
    });
    out.retain(|e| keys.is_none_or(|ks| ks.contains(&e.name)));
    out
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

pub fn describe_configs(state: &BrokerState, header: &RequestHeader, req: DescribeConfigsRequest) -> DescribeConfigsResponse {
    let version = header.api_version;
    let results = req
        .resources
        .into_iter()
        .map(|r| {
            let name = r.resource_name.to_string();
            let keys: Option<Vec<String>> = r.configuration_keys.as_ref().map(|ks| ks.iter().map(|k| k.to_string()).collect());
            let entries = match r.resource_type {
                TOPIC => match state.replicas.topic(&name) {
                    Some(meta) => Ok(describe_topic_configs(state, &meta, keys.as_deref())),
                    None => Err((code::UNKNOWN_TOPIC_OR_PARTITION, format!("unknown topic {name}"))),
                },
                BROKER => match is_this_broker(state, &name) {
                    Some(by_id) => Ok(describe_broker_configs(state, by_id, keys.as_deref())),
                    None => Err((code::INVALID_REQUEST, format!("unexpected broker id {name}"))),
                },
                other => Err((code::INVALID_REQUEST, format!("config resource type {other} is not supported"))),
            };
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

/// A config operation: key, AlterConfigOp type, value.
type Op = (String, i8, Option<String>);

// AlterConfigOp types.
const SET: i8 = 0;
const DELETE: i8 = 1;
const APPEND: i8 = 2;
const SUBTRACT: i8 = 3;

/// Applies incremental operations to an override map (keys already in topic-level form).
fn apply_ops(current: &mut BTreeMap<String, String>, ops: &[Op], effective: &LogConfig) -> Result<(), String> {
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

/// The broker setting that lists the cluster's brokers (settable at run time).
const CLUSTER_BROKERS: &str = "cluster.brokers";

/// An answer that may have to wait (for the controller, or for the pushes to the other brokers).
type Answer<T> = Pin<Box<dyn Future<Output = T> + Send>>;

pub fn incremental_alter_configs(state: &Arc<BrokerState>, header: &RequestHeader, req: IncrementalAlterConfigsRequest) -> Reply {
    respond_later(header, alter(state, header, req))
}

/// Broker settings are each broker's own and change here; topic configs are the cluster's, changed by the
/// controller, which then pushes the topics' complete overrides to the other brokers. What this broker
/// changes, it changes before it returns, so the requests after this one on the connection see it.
fn alter(
    state: &Arc<BrokerState>,
    header: &RequestHeader,
    req: IncrementalAlterConfigsRequest,
) -> Answer<IncrementalAlterConfigsResponse> {
    let has_topics = req.resources.iter().any(|r| r.resource_type == TOPIC);
    let role = if has_topics { state.cluster.role(header.client_id.as_deref()) } else { Role::Alone };
    let (topics, others): (Vec<_>, Vec<_>) = req.resources.iter().cloned().partition(|r| r.resource_type == TOPIC);
    let part =
        |resources| IncrementalAlterConfigsRequest::default().with_resources(resources).with_validate_only(req.validate_only);
    let (topics, others) = (part(topics), part(others));
    let remote: Answer<IncrementalAlterConfigsResponse> = match role {
        Role::Alone | Role::Apply => return Box::pin(ready(alter_here(state, req))),
        Role::Controller(peers) => {
            let validate_only = req.validate_only;
            let resp = alter_here(state, req);
            let changed: Vec<TopicMeta> = resp
                .responses
                .iter()
                .filter(|r| r.resource_type == TOPIC && r.error_code == 0 && !validate_only)
                .filter_map(|r| state.replicas.topic(r.resource_name.as_str()))
                .collect();
            return Box::pin(async move {
                if !changed.is_empty() {
                    let request = push::topic_configs(&changed);
                    push::broadcast(&peers, ApiKey::IncrementalAlterConfigs, push::ALTER_CONFIGS_VERSION, &request, refusals)
                        .await;
                }
                resp
            });
        }
        Role::Forward(controller) => {
            Box::pin(forwarded(header, controller, topics, |req, msg| alter_failed(req, code::NOT_CONTROLLER, msg)))
        }
        Role::NotController(id) => {
            Box::pin(ready(alter_failed(&topics, code::NOT_CONTROLLER, format!("broker {id} is the controller"))))
        }
    };
    // Topic configs from the controller, the rest from here, in the request's order.
    let local = alter_here(state, others);
    Box::pin(async move {
        let (mut remote, mut local) = (remote.await.responses.into_iter(), local.responses.into_iter());
        let responses =
            req.resources.iter().filter_map(|r| if r.resource_type == TOPIC { remote.next() } else { local.next() }).collect();
        IncrementalAlterConfigsResponse::default().with_responses(responses)
    })
}

/// AlterConfigs, the API IncrementalAlterConfigs replaced: the given configs become the resource's only
/// dynamic ones. Carried out as the IncrementalAlterConfigs that sets them and deletes the others, so both
/// APIs share validation, persistence and the way through the controller.
pub fn alter_configs(state: &Arc<BrokerState>, header: &RequestHeader, req: AlterConfigsRequest) -> Reply {
    let mut resources = Vec::with_capacity(req.resources.len());
    let refused: Vec<Option<(i16, String)>> =
        req.resources.iter().map(|r| as_incremental(state, r).map(|r| resources.push(r)).err()).collect();
    let incremental = IncrementalAlterConfigsRequest::default().with_resources(resources).with_validate_only(req.validate_only);
    // The controller is passed the IncrementalAlterConfigs request, which is what the change now is.
    let header_as_incremental =
        RequestHeader { api_key: ApiKey::IncrementalAlterConfigs, api_version: push::ALTER_CONFIGS_VERSION, ..header.clone() };
    let answer = alter(state, &header_as_incremental, incremental);
    respond_later(header, async move {
        let mut answers = answer.await.responses.into_iter();
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
        // Not cluster.brokers: the membership is the operator's, changed only when given, so that a client
        // tuning retention with this older API cannot take brokers out of the cluster.
        BROKER => state.replicas.defaults().dynamic_overrides.keys().map(|k| broker_key_for(k).to_string()).collect(),
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
fn replace_ops(given: &[(String, Option<String>)], dynamic: &[String]) -> Result<Vec<Op>, String> {
    let nulls: Vec<&str> = given.iter().filter(|(_, v)| v.is_none()).map(|(k, _)| k.as_str()).collect();
    if !nulls.is_empty() {
        return Err(format!("null value not supported for: {}", nulls.join(",")));
    }
    let deletes = dynamic.iter().filter(|k| !given.iter().any(|(g, _)| g == *k)).map(|k| (k.clone(), DELETE, None));
    Ok(deletes.chain(given.iter().map(|(k, v)| (k.clone(), SET, v.clone()))).collect())
}

fn refusals(r: &IncrementalAlterConfigsResponse) -> Vec<String> {
    r.responses
        .iter()
        .filter(|c| c.error_code != 0)
        .map(|c| format!("{}: {:?}", c.resource_name.as_str(), c.error_message))
        .collect()
}

fn alter_failed(req: &IncrementalAlterConfigsRequest, error_code: i16, msg: String) -> IncrementalAlterConfigsResponse {
    IncrementalAlterConfigsResponse::default().with_responses(
        req.resources
            .iter()
            .map(|r| {
                incremental_alter_configs_response::AlterConfigsResourceResponse::default()
                    .with_resource_type(r.resource_type)
                    .with_resource_name(r.resource_name.clone())
                    .with_error_code(error_code)
                    .with_error_message(Some(s(msg.clone())))
            })
            .collect(),
    )
}

fn alter_here(state: &BrokerState, req: IncrementalAlterConfigsRequest) -> IncrementalAlterConfigsResponse {
    let responses = req
        .resources
        .into_iter()
        .map(|r| {
            let name = r.resource_name.to_string();
            let ops: Vec<Op> = r
                .configs
                .iter()
                .map(|c| (c.name.to_string(), c.config_operation, c.value.as_ref().map(|v| v.to_string())))
                .collect();
            let outcome: Result<(), (i16, String)> = match r.resource_type {
                TOPIC => match state.replicas.topic(&name) {
                    None => Err((code::UNKNOWN_TOPIC_OR_PARTITION, format!("unknown topic {name}"))),
                    Some(meta) => {
                        let mut overrides = meta.configs.clone();
                        let effective = state.replicas.defaults().config;
                        apply_ops(&mut overrides, &ops, &effective).map_err(|m| (code::INVALID_CONFIG, m)).and_then(|()| {
                            state
                                .replicas
                                .set_topic_configs(&name, overrides, req.validate_only)
                                .map_err(|e| (e.code(), e.to_string()))
                        })
                    }
                },
                BROKER => match is_this_broker(state, &name) {
                    None => Err((code::INVALID_REQUEST, format!("unexpected broker id {name}"))),
                    Some(_) => {
                        let mut topic_ops = Vec::with_capacity(ops.len());
                        let mut refused = None;
                        // None: unchanged; Some(None): back to the configured value.
                        let mut brokers: Option<Option<String>> = None;
                        for (key, op, value) in ops {
                            match (key.as_str(), op, value) {
                                (CLUSTER_BROKERS, SET, Some(v)) => brokers = Some(Some(v)),
                                (CLUSTER_BROKERS, DELETE, _) => brokers = Some(None),
                                (CLUSTER_BROKERS, _, _) => {
                                    refused = Some(format!("{CLUSTER_BROKERS} can only be set or deleted"))
                                }
                                (_, op, value) => match topic_key_for(&key) {
                                    Some(t) => topic_ops.push((t.to_string(), op, value)),
                                    None => refused = Some(format!("{key} cannot be updated dynamically")),
                                },
                            }
                        }
                        let set_brokers = |validate_only| match &brokers {
                            Some(v) => state
                                .cluster
                                .set_dynamic_brokers(v.as_deref(), validate_only)
                                .map_err(|m| (code::INVALID_CONFIG, format!("{CLUSTER_BROKERS}: {m}"))),
                            None => Ok(()),
                        };
                        match refused {
                            Some(msg) => Err((code::INVALID_REQUEST, msg)),
                            None => {
                                let defaults = state.replicas.defaults();
                                let mut dynamic = defaults.dynamic_overrides.clone();
                                // Everything is checked before anything changes.
                                set_brokers(true)
                                    .and_then(|()| {
                                        apply_ops(&mut dynamic, &topic_ops, &defaults.config)
                                            .map_err(|m| (code::INVALID_CONFIG, m))
                                    })
                                    .and_then(|()| {
                                        state
                                            .replicas
                                            .set_dynamic_broker_overrides(dynamic, req.validate_only)
                                            .map_err(|e| (e.code(), e.to_string()))
                                    })
                                    .and_then(|()| if req.validate_only { Ok(()) } else { set_brokers(false) })
                            }
                        }
                    }
                },
                other => Err((code::INVALID_REQUEST, format!("config resource type {other} is not supported"))),
            };
            let resp = incremental_alter_configs_response::AlterConfigsResourceResponse::default()
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name);
            match outcome {
                Ok(()) => resp,
                Err((error_code, msg)) => {
                    tracing::info!(resource = %name, error = %msg, "config change refused");
                    resp.with_error_code(error_code).with_error_message(Some(s(msg)))
                }
            }
        })
        .collect();
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let types: Vec<i8> = keys.iter().map(|k| config_type(k)).collect();
        assert_eq!(types, vec![TYPE_INT, TYPE_STRING, TYPE_LONG, TYPE_BOOLEAN, TYPE_DOUBLE]);
    }

    #[test]
    fn incremental_operations() {
        let effective = LogConfig::default();
        let mut m = BTreeMap::from([("retention.ms".to_string(), "1".to_string())]);
        let ops = vec![
            ("segment.bytes".to_string(), SET, Some("1024".to_string())),
            ("retention.ms".to_string(), DELETE, None),
            ("cleanup.policy".to_string(), APPEND, Some("delete".to_string())),
        ];
        apply_ops(&mut m, &ops, &effective).unwrap();
        assert_eq!(m, BTreeMap::from([("segment.bytes".into(), "1024".into()), ("cleanup.policy".into(), "delete".into())]));
        apply_ops(&mut m, &[("cleanup.policy".into(), SUBTRACT, Some("delete".into()))], &effective).unwrap();
        assert_eq!(m["cleanup.policy"], "", "then refused by validation as an empty policy");
        for bad in [("retention.ms", APPEND, Some("1")), ("retention.ms", SET, None), ("retention.ms", 9, Some("1"))] {
            let op = [(bad.0.to_string(), bad.1, bad.2.map(String::from))];
            assert!(apply_ops(&mut m, &op, &effective).is_err(), "{bad:?}");
        }
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
        apply_ops(&mut current, &ops, &LogConfig::default()).unwrap();
        assert_eq!(current, BTreeMap::from([("segment.bytes".into(), "1024".into()), ("retention.ms".into(), "5".into())]));
        // Nothing given: every dynamic config goes.
        assert!(replace_ops(&[], &dynamic).unwrap().iter().all(|(_, op, v)| *op == DELETE && v.is_none()));
        let nulls = [("a".to_string(), None), ("b".to_string(), Some("1".to_string())), ("c".to_string(), None)];
        assert_eq!(replace_ops(&nulls, &dynamic).unwrap_err(), "null value not supported for: a,c");
    }
}
