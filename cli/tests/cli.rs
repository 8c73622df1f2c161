//! `strata` against a real strata-broker process: every command's text and JSON output, exit codes and
//! errors; produce/consume round trips byte for byte; group seek moves a real group's committed offsets.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{run_strata, Cluster};
use serde_json::Value;

#[test]
fn cluster_info_and_health() {
    let c = Cluster::start();
    let port = c.brokers[0].addr.rsplit(':').next().unwrap();
    let text = c.ok(&["cluster", "info"]);
    assert!(text.starts_with("cluster id: "), "{text}");
    assert!(text.contains("\ncontroller: 0\n"), "{text}");
    assert!(text.lines().any(|l| l.split_whitespace().eq(["0", "127.0.0.1", port, "-", "no"])), "{text}");
    // A single node is its own one-voter controller quorum.
    assert!(text.contains("quorum: leader 0, epoch "), "{text}");
    let info = c.json(&["cluster", "info"]);
    assert_eq!(info["brokers"][0]["port"].to_string(), port);
    assert_eq!((info["controller_id"].as_i64(), info["brokers"][0]["fenced"].as_bool()), (Some(0), Some(false)));
    assert!(info["cluster_id"].is_string(), "{info}");
    assert_eq!(info["quorum"]["leader_id"].as_i64(), Some(0), "{info}");

    c.ok(&["topic", "create", "h", "-p", "2"]);
    assert!(c.ok(&["cluster", "health"]).starts_with("healthy: yes\noffline partitions: 0\n"));
    assert_eq!(c.json(&["cluster", "health"])["healthy"], true);
    // More in-sync replicas required than the topic has replicas: unhealthy, exit code 3.
    c.ok(&["topic", "alter-config", "h", "--set", "min.insync.replicas=2"]);
    let out = c.strata(&["cluster", "health"], b"");
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(
        out.text().contains("healthy: no\n") && out.text().contains("under-min-ISR partitions: 2 (h-0, h-1)\n"),
        "{}",
        out.text()
    );
    let out = c.strata(&["cluster", "health", "--format", "json"], b"");
    let health: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((out.code, &health["healthy"], &health["under_min_isr"][1]), (3, &Value::Bool(false), &Value::from("h-1")));
}

#[test]
fn topic_lifecycle() {
    let c = Cluster::start();
    assert_eq!(c.ok(&["topic", "create", "demo", "-p", "2", "-c", "retention.ms=60000"]), "NAME  RESULT\ndemo  created\n");
    let out = c.strata(&["topic", "create", "demo", "other"], b"");
    assert_eq!(out.code, 1);
    assert_eq!(out.text(), "NAME   RESULT\ndemo   FAILED\nother  created\n");
    assert!(
        out.stderr.contains(&format!("error: {}: creating topic demo: TOPIC_ALREADY_EXISTS (36)", c.bootstrap())),
        "{}",
        out.stderr
    );

    assert_eq!(c.ok(&["topic", "list"]), "NAME   PARTITIONS  REPLICAS\ndemo   2           1\nother  1           1\n");
    let list = c.json(&["topic", "list"]);
    assert_eq!(
        (list[0]["name"].as_str(), list[0]["partitions"].as_i64(), list[0]["internal"].as_bool()),
        (Some("demo"), Some(2), Some(false))
    );

    c.strata(&["produce", "demo", "-p", "1"], b"a\nb\nc\n");
    let text = c.ok(&["topic", "describe", "demo"]);
    assert!(text.contains("PARTITION  LEADER  EPOCH  REPLICAS  ISR  LOG-START  LOG-END  SIZE\n"), "{text}");
    let row = |l: &str| l.split_whitespace().map(String::from).collect::<Vec<_>>();
    let p1 = text.lines().map(row).find(|r| r.len() == 8 && r[..7] == ["1", "0", "0", "0", "0", "0", "3"]);
    assert!(p1.is_some_and(|r| r[7].parse::<u64>().unwrap() > 0), "{text}");
    assert!(text.lines().any(|l| l.split_whitespace().eq(["retention.ms", "60000", "DYNAMIC_TOPIC_CONFIG"])), "{text}");
    let described = c.json(&["topic", "describe", "demo"]);
    let topic = &described[0];
    assert_eq!(topic["partitions"].as_array().unwrap().len(), 2);
    let p1 = &topic["partitions"][1];
    assert_eq!(
        (p1["leader"].as_i64(), p1["log_start_offset"].as_i64(), p1["log_end_offset"].as_i64()),
        (Some(0), Some(0), Some(3))
    );
    assert_eq!(p1["isr"], serde_json::json!([0]));
    // The leader's replica size, from DescribeLogDirs.
    assert!(p1["size_bytes"].as_i64().unwrap() > 0, "{p1}");
    let config = |v: &Value, name: &str| v[0]["configs"].as_array().unwrap().iter().find(|c| c["name"] == name).cloned().unwrap();
    assert_eq!(config(&described, "retention.ms")["source"], "DYNAMIC_TOPIC_CONFIG");

    assert_eq!(
        c.ok(&["topic", "alter-config", "demo", "--set", "retention.bytes=1000000", "--delete", "retention.ms"]),
        "NAME  RESULT\ndemo  altered\n"
    );
    let described = c.json(&["topic", "describe", "demo"]);
    assert_eq!(config(&described, "retention.bytes")["value"], "1000000");
    assert_eq!(config(&described, "retention.ms")["source"], "DEFAULT_CONFIG");

    assert_eq!(c.ok(&["topic", "add-partitions", "demo", "-n", "2"]), "NAME  RESULT\ndemo  now 4 partitions\n");
    assert_eq!(c.json(&["topic", "describe", "demo"])[0]["partitions"].as_array().unwrap().len(), 4);

    let deleted = c.json(&["topic", "delete", "demo", "other"]);
    assert_eq!(deleted, serde_json::json!([{"name": "demo", "ok": true}, {"name": "other", "ok": true}]));
    assert_eq!(c.ok(&["topic", "list"]), "NAME  PARTITIONS  REPLICAS\n");
}

#[test]
fn errors_name_the_broker_and_the_code() {
    let c = Cluster::start();
    let unknown = format!("{}: topic nope: UNKNOWN_TOPIC_OR_PARTITION (3)", c.bootstrap());
    for args in [
        &["topic", "describe", "nope"][..],
        &["consume", "nope", "-e"],
        &["produce", "nope"],
        &["topic", "add-partitions", "nope", "-n", "1"],
    ] {
        let out = c.strata(args, b"x\n");
        assert_eq!((out.code, out.stderr.trim_end()), (1, format!("error: {unknown}").as_str()), "{args:?}");
    }
    let out = c.strata(&["consume", "nope", "-e", "--group", "g"], b"");
    assert!(out.code == 1 && out.stderr.contains(&unknown), "{}", out.stderr);

    let out = run_strata("127.0.0.1:1", &["topic", "list"], b"");
    assert_eq!(out.code, 1);
    assert!(out.stderr.starts_with("error: no broker reachable: 127.0.0.1:1: cannot connect: "), "{}", out.stderr);
    // --brokers wins over STRATA_BROKERS.
    let out = run_strata("127.0.0.1:1", &["topic", "list", "--brokers", &c.bootstrap()], b"");
    assert_eq!(out.code, 0, "{}", out.stderr);

    for args in
        [&["topic", "list", "--bogus"][..], &["group", "seek", "g"], &["consume"], &["cluster", "info", "--format", "yaml"]]
    {
        let out = c.strata(args, b"");
        assert_eq!(out.code, 2, "{args:?}: {}", out.stderr);
        assert!(out.stderr.starts_with("error: "), "{args:?}: {}", out.stderr);
    }
    let out = c.strata(&["topic", "list", "-X", "novalue"], b"");
    assert_eq!((out.code, out.stderr.as_str()), (1, "error: -X novalue: expected KEY=VALUE\n"));
    let out = c.strata(&["consume", "t", "-f", "%q"], b"");
    assert!(out.code == 1 && out.stderr.contains("unknown format token %q"), "{}", out.stderr);
    assert!(c.ok(&["--help"]).contains("Usage: strata"));
    for sub in ["cluster", "topic", "group", "produce", "consume"] {
        assert!(c.ok(&[sub, "--help"]).contains(&format!("Usage: strata {sub}")), "{sub}");
    }
}

#[test]
fn consume_returns_what_produce_wrote_byte_for_byte() {
    let c = Cluster::start();
    c.ok(&["topic", "create", "rt", "-p", "2"]);
    let input: &[u8] = b"k1\tplain value\nk2\tvalue with\ttab and \xc3\xbcn\xc3\xafc\xc3\xb8d\xc3\xa9\n\tempty key\nk3\t\nk4\t\xff\xfe binary \x00 bytes\r\n";
    let out = c.strata(&["produce", "rt", "-p", "1", "-K", "\\t", "-H", "h1=v1", "-H", "h2=x=y", "-z", "lz4"], input);
    assert_eq!((out.code, out.text().as_str()), (0, "produced 5 records to rt\n"), "{}", out.stderr);

    let out = c.strata(&["consume", "rt", "-e", "-f", "%k\\t%s\\n"], b"");
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stdout, input);
    let out = c.ok(&["consume", "rt", "-e", "-f", "%t %p %o %K %S [%h]\\n"]);
    assert_eq!(out.lines().next(), Some("rt 1 0 2 11 [h1=v1,h2=x=y]"));
    assert_eq!(out.lines().count(), 5);

    let json_input = br#"{"key":"jk","value":"jv","headers":{"a":"1","n":null},"partition":0}
{"value":"no key","partition":1}
{"key":"tombstone","value":null,"partition":0}
"#;
    let out = c.strata(&["produce", "rt", "--json", "--format", "json"], json_input);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(serde_json::from_slice::<Value>(&out.stdout).unwrap(), serde_json::json!({"topic": "rt", "produced": 3}));
    let out = c.ok(&["consume", "rt", "-p", "0", "-e", "--format", "json"]);
    let records: Vec<Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let keyed: Vec<&Value> = records.iter().filter(|r| !r["key"].is_null()).collect();
    assert_eq!(keyed.len(), 2, "{out}");
    assert_eq!(
        (&keyed[0]["key"], &keyed[0]["value"], &keyed[0]["headers"]),
        (&"jk".into(), &"jv".into(), &serde_json::json!({"a": "1", "n": null}))
    );
    assert_eq!((&keyed[1]["offset"], &keyed[1]["value"]), (&Value::from(1), &Value::Null));
    assert!(keyed[0]["timestamp"].as_i64().unwrap() > 1_600_000_000_000);

    // Start positions and counts (partition 1 holds 6 records now).
    assert_eq!(c.ok(&["consume", "rt", "-p", "1", "-o", "3", "-e", "-f", "%o\\n"]), "3\n4\n5\n");
    assert_eq!(c.ok(&["consume", "rt", "-p", "1", "-o", "-2", "-e", "-f", "%o\\n"]), "4\n5\n");
    assert_eq!(c.ok(&["consume", "rt", "-p", "1", "-c", "2", "-f", "%o\\n"]), "0\n1\n");
    assert_eq!(c.ok(&["consume", "rt", "-p", "1", "-o", "@0", "-c", "1", "-f", "%o\\n"]), "0\n");
    assert_eq!(c.ok(&["consume", "rt", "-p", "1", "-o", "end", "-e", "-f", "%o\\n"]), "");

    for codec in ["none", "gzip", "snappy", "lz4", "zstd"] {
        let topic = format!("z-{codec}");
        c.ok(&["topic", "create", &topic, "-p", "1"]);
        let out = c.strata(&["produce", &topic, "-z", codec, "--acks", "1"], b"one\ntwo\nthree\n");
        assert_eq!(out.code, 0, "{codec}: {}", out.stderr);
        assert_eq!(c.ok(&["consume", &topic, "-e"]), "one\ntwo\nthree\n", "{codec}");
    }
}

#[test]
fn perf_produce_writes_what_it_reports() {
    let c = Cluster::start();
    c.ok(&["topic", "create", "perf", "-p", "2"]);
    // Paced: 2000 records at 4000/s take about half a second; every record is acknowledged and written.
    let r = c.json(&["perf", "produce", "perf", "-n", "2000", "-s", "100", "-r", "4000"]);
    assert_eq!((r["acked"].as_u64(), r["failed"].as_u64(), r["size"].as_u64()), (Some(2000), Some(0), Some(100)), "{r}");
    assert!(r["seconds"].as_f64().unwrap() >= 0.45, "the schedule paces the records: {r}");
    let lat = &r["latency_ms"];
    let (p50, p99, max) = (lat["p50"].as_f64().unwrap(), lat["p99"].as_f64().unwrap(), lat["max"].as_f64().unwrap());
    assert!(0.0 < p50 && p50 <= p99 && p99 <= max, "{r}");
    // Unpaced, acks=1.
    let r = c.json(&["perf", "produce", "perf", "-n", "3000", "-s", "10", "--acks", "1"]);
    assert_eq!((r["acked"].as_u64(), r["rate"].as_u64()), (Some(3000), Some(0)), "{r}");
    let described = c.json(&["topic", "describe", "perf"]);
    let end: i64 = described[0]["partitions"].as_array().unwrap().iter().map(|p| p["log_end_offset"].as_i64().unwrap()).sum();
    assert_eq!(end, 1 + 2000 + 1 + 3000, "each run writes one record first to connect");
    let out = c.strata(&["perf", "produce", "missing", "-n", "1"], b"");
    assert_eq!(out.code, 1);
    assert!(out.text().is_empty() && out.stderr.contains("UNKNOWN_TOPIC_OR_PARTITION"), "{}", out.stderr);
}

/// The group's committed offset of partition 0 (`group describe --format json`).
fn committed(c: &Cluster, group: &str) -> i64 {
    let d = c.json(&["group", "describe", group]);
    d["offsets"][0]["committed"].as_i64().unwrap_or_else(|| panic!("{d}"))
}

#[test]
fn group_seek_moves_committed_offsets() {
    let c = Cluster::start();
    c.ok(&["topic", "create", "gt", "-p", "1"]);
    let values: String = (0..10).map(|i| format!("{i}\n")).collect();
    assert_eq!(c.strata(&["produce", "gt"], values.as_bytes()).code, 0);
    assert_eq!(c.ok(&["consume", "gt", "-g", "g1", "-c", "4"]), "0\n1\n2\n3\n");

    assert_eq!(c.ok(&["group", "list"]), "GROUP  STATE  PROTOCOL-TYPE\ng1     Empty  consumer\n");
    let d = c.json(&["group", "describe", "g1"]);
    assert_eq!((d["state"].as_str(), d["members"].as_array().map(Vec::len)), (Some("Empty"), Some(0)));
    assert_eq!(
        d["offsets"],
        serde_json::json!([{"topic": "gt", "partition": 0, "committed": 4, "log_end": 10, "lag": 6, "member": null}])
    );
    let text = c.ok(&["group", "describe", "g1"]);
    assert!(
        text.contains("TOPIC  PARTITION  COMMITTED  LOG-END  LAG  MEMBER\ngt     0          4          10       6    -\n"),
        "{text}"
    );

    // A dry run shows the plan and changes nothing.
    let out = c.strata(&["group", "seek", "g1", "--to-earliest"], b"");
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.text(), "TOPIC  PARTITION  CURRENT  NEW\ngt     0          4        0\n");
    assert!(out.stderr.contains("dry run"), "{}", out.stderr);
    assert_eq!(committed(&c, "g1"), 4);

    c.ok(&["group", "seek", "g1", "--to-offset", "7", "--execute"]);
    assert_eq!(committed(&c, "g1"), 7);
    assert_eq!(c.ok(&["consume", "gt", "-g", "g1", "-e"]), "7\n8\n9\n");
    assert_eq!(committed(&c, "g1"), 10);
    let seek = c.json(&["group", "seek", "g1", "--shift-by", "-5", "--execute"]);
    assert_eq!(
        seek,
        serde_json::json!({"group": "g1", "executed": true, "offsets": [{"topic": "gt", "partition": 0, "current": 10, "new": 5}]})
    );
    assert_eq!(committed(&c, "g1"), 5);
    c.ok(&["group", "seek", "g1", "--to-timestamp", "0", "--execute"]);
    assert_eq!(committed(&c, "g1"), 0);
    c.ok(&["group", "seek", "g1", "--to-latest", "--execute", "--topic", "gt"]);
    assert_eq!(committed(&c, "g1"), 10);
    // Offsets beyond the log are clamped to it.
    c.ok(&["group", "seek", "g1", "--to-offset", "99", "--execute"]);
    assert_eq!(committed(&c, "g1"), 10);

    assert_eq!(c.ok(&["group", "delete", "g1"]), "NAME  RESULT\ng1    deleted\n");
    assert_eq!(c.ok(&["group", "list"]), "GROUP  STATE  PROTOCOL-TYPE\n");
    let out = c.strata(&["group", "describe", "g1"], b"");
    assert!(out.code == 1 && out.stderr.contains("group g1 does not exist"), "{}", out.stderr);

    // A group with a live member is not moved: its next commit would undo the seek.
    let mut member = Command::new(env!("CARGO_BIN_EXE_strata"))
        .args(["consume", "gt", "-g", "g2", "--brokers", &c.bootstrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    // Before it joins, describe fails (no such group): poll until it succeeds and says Stable.
    let state = || serde_json::from_slice::<Value>(&c.strata(&["group", "describe", "g2", "--format", "json"], b"").stdout).ok();
    while state().is_none_or(|d| d["state"] != "Stable") {
        assert!(started.elapsed() < Duration::from_secs(20), "the consumer did not join g2");
        std::thread::sleep(Duration::from_millis(100));
    }
    let d = c.json(&["group", "describe", "g2"]);
    assert_eq!(d["members"][0]["assignment"], serde_json::json!({"gt": [0]}));
    let out = c.strata(&["group", "seek", "g2", "--to-earliest", "--execute", "--topic", "gt"], b"");
    let _ = member.kill();
    let _ = member.wait();
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("group g2 is Stable with 1 member(s): stop its consumers"), "{}", out.stderr);
}

/// Against three brokers (a controller quorum): the cluster and its quorum described, a topic spread over all
/// three, records produced through one broker and read back through another.
#[test]
fn three_brokers() {
    let c = Cluster::start_three();
    let info = c.json(&["cluster", "info"]);
    let voters: Vec<i64> = info["quorum"]["voters"].as_array().unwrap().iter().map(|v| v["id"].as_i64().unwrap()).collect();
    assert_eq!(voters, vec![0, 1, 2], "{info}");
    assert!((0..3).contains(&info["quorum"]["leader_id"].as_i64().unwrap()), "{info}");
    assert!(c.ok(&["cluster", "health"]).starts_with("healthy: yes\n"));

    c.ok(&["topic", "create", "spread", "-p", "6"]);
    let topic = c.json(&["topic", "describe", "spread"]);
    let leaders: std::collections::BTreeSet<i64> =
        topic[0]["partitions"].as_array().unwrap().iter().map(|p| p["leader"].as_i64().unwrap()).collect();
    assert_eq!(leaders, [0, 1, 2].into(), "{topic}");
    // Every partition is led by its preferred (only) replica: nothing to elect, which is no failure.
    let out = c.strata(&["topic", "elect-leaders", "spread"], b"");
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stderr.contains("already led as asked: spread-0, spread-1"), "{}", out.stderr);
    let out = c.strata(&["topic", "elect-leaders"], b"");
    assert_eq!((out.code, out.text().lines().count()), (0, 1), "only the header: {}", out.text());

    let lines: Vec<String> = (0..60).map(|i| format!("k{i}\tv{i}")).collect();
    let input = format!("{}\n", lines.join("\n"));
    let out = run_strata(&c.brokers[0].addr, &["produce", "spread", "-K", "\\t"], input.as_bytes());
    assert_eq!(out.code, 0, "{}", out.stderr);
    let out = run_strata(&c.brokers[2].addr, &["consume", "spread", "-e", "-f", "%k\\t%s\\n"], b"");
    assert_eq!(out.code, 0, "{}", out.stderr);
    let mut got: Vec<String> = out.text().lines().map(String::from).collect();
    let mut want = lines;
    got.sort();
    want.sort();
    assert_eq!(got, want);

    // A reassignment: one replica on one broker becomes two on the others, with the records.
    c.ok(&["topic", "create", "moved", "-p", "1", "-r", "1"]);
    let out = run_strata(&c.brokers[0].addr, &["produce", "moved"], b"a\nb\nc\n");
    assert_eq!(out.code, 0, "{}", out.stderr);
    let from = c.json(&["topic", "describe", "moved"])[0]["partitions"][0]["replicas"][0].as_i64().unwrap();
    let to = format!("{},{}", (from + 1) % 3, (from + 2) % 3);
    let text = c.ok(&["topic", "reassign", "moved", "-p", "0", "--replicas", &to, "--wait"]);
    assert_eq!(text, "NAME     RESULT\nmoved-0  reassigning\nreassignment complete\n");
    let p = &c.json(&["topic", "describe", "moved"])[0]["partitions"][0];
    let want: Vec<i64> = to.split(',').map(|b| b.parse().unwrap()).collect();
    assert_eq!((&p["replicas"], &p["isr"]), (&serde_json::json!(want), &serde_json::json!(want)), "{p}");
    assert_eq!(p["log_end_offset"].as_i64(), Some(3), "{p}");
    assert_eq!(c.ok(&["topic", "reassignments"]), "TOPIC  PARTITION  REPLICAS  ADDING  REMOVING\n");
    assert_eq!(c.json(&["topic", "reassignments", "moved"]), serde_json::json!([]));
    let out = c.strata(&["topic", "reassign", "moved", "-p", "0", "--cancel"], b"");
    assert_eq!((out.code, out.text()), (1, "NAME     RESULT\nmoved-0  FAILED\n".to_string()));
    assert!(out.stderr.contains("reassigning moved-0: NO_REASSIGNMENT_IN_PROGRESS (85)"), "{}", out.stderr);
    let out = c.strata(&["topic", "reassign", "moved", "-p", "0"], b"");
    assert_eq!(out.code, 2, "--replicas or --cancel is required: {}", out.stderr);
}

/// The commands that speak through strata-client authenticate with librdkafka's -X security settings.
#[test]
fn sasl_with_the_x_security_settings() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let listeners = format!("PLAINTEXT://127.0.0.1:0,SASL_PLAINTEXT://127.0.0.1:{port}");
    let jaas = r#"org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="admin-secret";"#;
    let _broker = common::TestBroker::start(&[("listeners", &listeners), ("sasl.jaas.config", jaas)]);
    let sasl = format!("127.0.0.1:{port}");
    let x = |password: &str| {
        ["security.protocol=SASL_PLAINTEXT", "sasl.mechanism=SCRAM-SHA-512", "sasl.username=admin"]
            .iter()
            .map(|s| s.to_string())
            .chain([format!("sasl.password={password}")])
            .flat_map(|s| ["-X".to_string(), s])
            .collect::<Vec<_>>()
    };
    let args = |cmd: &[&str], password: &str| cmd.iter().map(|s| s.to_string()).chain(x(password)).collect::<Vec<_>>();
    let run = |cmd: &[&str], password: &str| {
        let a = args(cmd, password);
        run_strata(&sasl, &a.iter().map(String::as_str).collect::<Vec<_>>(), b"")
    };
    let out = run(&["topic", "create", "secured"], "admin-secret");
    assert_eq!((out.code, out.text()), (0, "NAME     RESULT\nsecured  created\n".to_string()), "{}", out.stderr);
    assert!(run(&["topic", "list"], "admin-secret").text().contains("secured"));
    let out = run(&["topic", "list"], "wrong");
    assert_ne!(out.code, 0);
    assert!(out.stderr.contains("SASL_AUTHENTICATION_FAILED (58)"), "{}", out.stderr);
    assert!(out.stderr.contains("invalid credentials with SASL mechanism SCRAM-SHA-512"), "{}", out.stderr);
    // Without the settings the listener closes the connection.
    assert_ne!(run_strata(&sasl, &["topic", "list"], b"").code, 0);
}

#[test]
fn acls_and_scram_users() {
    let c = Cluster {
        brokers: vec![common::TestBroker::start(&[
            ("authorizer.class.name", "org.apache.kafka.metadata.authorizer.StandardAuthorizer"),
            ("super.users", "User:ANONYMOUS"),
        ])],
    };
    assert_eq!(c.ok(&["acl", "list"]), "PRINCIPAL  PERMISSION  OPERATION  RESOURCE  NAME  PATTERN  HOST\n");
    let added = c.ok(&[
        "acl",
        "add",
        "--topic",
        "orders-",
        "--prefixed",
        "--principal",
        "User:alice",
        "--operation",
        "read",
        "--operation",
        "describe",
    ]);
    assert_eq!(added.lines().count(), 3, "{added}");
    c.ok(&["acl", "add", "--cluster", "--principal", "User:bob", "--operation", "idempotent-write", "--deny"]);
    let alice = c.json(&["acl", "list", "--principal", "User:alice"]);
    assert_eq!(alice.as_array().map(Vec::len), Some(2), "{alice}");
    assert_eq!((&alice[0]["operation"], &alice[0]["pattern_type"]), (&Value::from("READ"), &Value::from("PREFIXED")), "{alice}");
    let cluster = c.ok(&["acl", "list", "--cluster"]);
    assert!(cluster.contains("User:bob   DENY        IDEMPOTENT_WRITE  CLUSTER   kafka-cluster  LITERAL  *"), "{cluster}");
    // Bad input: a clear error, exit code 2 for usage, 1 for what the broker refuses.
    let out = c.strata(&["acl", "add", "--topic", "t", "--principal", "User:a", "--operation", "reed"], b"");
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("expected one of ALL, READ"), "{}", out.stderr);
    let out = c.strata(&["acl", "add", "--topic", "t", "--principal", "alice", "--operation", "read"], b"");
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("expected Type:name"), "{}", out.stderr);
    let removed = c.ok(&["acl", "remove", "--principal", "User:alice", "--operation", "read"]);
    assert!(removed.contains("User:alice  ALLOW       READ") && removed.lines().count() == 2, "{removed}");
    assert_eq!(c.json(&["acl", "list", "--principal", "User:alice"]).as_array().map(Vec::len), Some(1));

    let out = c.strata(&["user", "set-password", "carol", "--iterations", "4096"], b"s3cret\n");
    assert_eq!((out.code, out.text()), (0, "SCRAM-SHA-512 credential of carol set\n".to_string()), "{}", out.stderr);
    assert_eq!(c.ok(&["user", "describe", "carol"]), "USER   MECHANISM      ITERATIONS\ncarol  SCRAM-SHA-512  4096\n");
    assert_eq!(c.strata(&["user", "set-password", "carol", "--iterations", "100"], b"x\n").code, 2);
    c.ok(&["user", "delete", "carol"]);
    assert_eq!(c.json(&["user", "describe", "carol"]), Value::Array(vec![]));
}
