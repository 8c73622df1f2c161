"""Three strata-broker processes as one cluster (each a voter of the controller quorum), driven by
confluent-kafka: a topic is spread over the brokers, records go in through one broker and come out through
another, a broker restarted with an empty data directory catches up from the metadata log, a topic deleted
while a broker was down stays deleted, consumers of one group that bootstrap through different brokers form
one group, and the admin client describes the cluster and its quorum."""

import shutil
import socket
import time

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicCollection, TopicPartition
from confluent_kafka import ConsumerGroupState

from kafka_util import admin, consume_all, create_topic

SETTINGS = ("--cluster.id", "py-cluster", "--num.partitions", "3", "--controller.quorum.election.timeout.ms", "1000",
            "--broker.heartbeat.interval.ms", "250", "--broker.session.timeout.ms", "5000")
PARTITIONS = 6


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_cluster(make_broker, *extra_args):
    ports = [free_port() for _ in range(3)]
    voters = ",".join(f"{i}@127.0.0.1:{p}" for i, p in enumerate(ports))
    brokers = [
        make_broker("--node.id", str(i), "--controller.quorum.voters", voters, *SETTINGS, *extra_args, controller_port=port)
        for i, port in enumerate(ports)
    ]
    wait_in_service(brokers)
    return brokers


def wait_in_service(brokers):
    """Until every broker lists all of them (registered with the quorum and unfenced)."""
    def listed(b):
        return sorted(admin(b.bootstrap).list_topics(timeout=10).brokers)
    wait_for("every broker is in service", lambda: all(listed(b) == list(range(len(brokers))) for b in brokers))


def view(bootstrap, topic):
    """(topic id, leader per partition) of `topic` as one broker describes it, or None if it has no such topic."""
    a = admin(bootstrap)
    try:
        d = a.describe_topics(TopicCollection([topic]))[topic].result(10)
    except KafkaException as e:
        assert e.args[0].code() == KafkaError.UNKNOWN_TOPIC_OR_PART, e
        return None
    # A partition whose broker is fenced (restarting) has no leader for a moment.
    return str(d.topic_id), [p.leader.id if p.leader else -1 for p in sorted(d.partitions, key=lambda p: p.id)]


def wait_for(what, done, timeout=30):
    deadline = time.time() + timeout
    while not done():
        assert time.time() < deadline, f"timed out waiting until {what}"
        time.sleep(0.2)


def same_everywhere(brokers, topic):
    views = {repr(view(b.bootstrap, topic)) for b in brokers}
    return len(views) == 1 and views != {"None"}


def test_topic_spread_over_three_brokers(make_broker, topic_name):
    brokers = start_cluster(make_broker)
    create_topic(brokers[1].bootstrap, topic_name, PARTITIONS)
    wait_for("every broker describes the topic alike", lambda: same_everywhere(brokers, topic_name))
    _, leaders = view(brokers[2].bootstrap, topic_name)
    assert set(leaders) == {0, 1, 2}, leaders
    md = admin(brokers[2].bootstrap).list_topics(timeout=10)
    assert sorted((b.id, f"{b.host}:{b.port}") for b in md.brokers.values()) == [
        (i, b.bootstrap) for i, b in enumerate(brokers)
    ]
    # Clients are told to send admin requests to the broker that answered (librdkafka asks any broker it
    # knows), which passes them to the active controller, as Kafka's KRaft brokers name a live broker.
    assert md.controller_id in (0, 1, 2)
    # The admin client's view of the cluster (DescribeCluster): a live controller id, and the brokers.
    a = admin(brokers[2].bootstrap)  # must outlive the future
    cluster = a.describe_cluster(request_timeout=10).result(10)
    assert cluster.controller.id in (0, 1, 2)
    assert sorted(n.id for n in cluster.nodes) == [0, 1, 2]

    n = 30_000
    p = Producer({"bootstrap.servers": brokers[1].bootstrap, "acks": "all", "linger.ms": 5})
    for i in range(n):
        while True:
            try:
                p.produce(topic_name, key=str(i).encode(), value=f"v{i}".encode(), partition=i % PARTITIONS)
                break
            except BufferError:
                p.poll(0.1)
    assert p.flush(60) == 0
    got = consume_all(brokers[2].bootstrap, topic_name, PARTITIONS, n)
    for part in range(PARTITIONS):
        assert [m.value().decode() for m in got[part]] == [f"v{i}" for i in range(part, n, PARTITIONS)]
    # A one-member consumer group reads everything and commits offsets of partitions led by every broker.
    c = Consumer({"bootstrap.servers": brokers[0].bootstrap, "group.id": f"g-{topic_name}",
                  "auto.offset.reset": "earliest", "enable.auto.commit": False})
    try:
        c.subscribe([topic_name])
        seen, deadline = 0, time.time() + 120
        while seen < n and time.time() < deadline:
            for m in c.consume(10000, 1.0):
                assert m.error() is None, m.error()
                seen += 1
        assert seen == n
        c.commit(asynchronous=False)
        committed = c.committed([TopicPartition(topic_name, p) for p in range(PARTITIONS)], timeout=30)
        assert [(tp.error, tp.offset) for tp in committed] == [(None, n // PARTITIONS)] * PARTITIONS
    finally:
        c.close()
    # Every partition's log lives on its leader only.
    for part, leader in enumerate(leaders):
        for i, b in enumerate(brokers):
            assert (b.data_dir / f"{topic_name}-{part}").exists() == (i == leader), (part, i)


def test_restarted_brokers_catch_up_and_deleted_topics_stay_deleted(make_broker, topic_name):
    brokers = start_cluster(make_broker)
    kept, doomed = f"{topic_name}-kept", f"{topic_name}-doomed"
    for t in (kept, doomed):
        create_topic(brokers[0].bootstrap, t, 3)
    wait_for("both topics are everywhere", lambda: same_everywhere(brokers, kept) and same_everywhere(brokers, doomed))
    kept_view = view(brokers[0].bootstrap, kept)

    # Broker 1 is down while a topic is deleted; it comes back with its data and still has it.
    assert brokers[1].stop() == 0
    a = admin(brokers[0].bootstrap)
    a.delete_topics([doomed])[doomed].result(30)
    brokers[1].start()
    wait_for("broker 1 dropped the deleted topic", lambda: view(brokers[1].bootstrap, doomed) is None)
    wait_in_service(brokers)
    assert all(view(b.bootstrap, doomed) is None for b in brokers)

    # Broker 2 restarted with an empty data directory learns every topic from the metadata log.
    assert brokers[2].stop() == 0
    shutil.rmtree(brokers[2].data_dir)
    brokers[2].start()
    wait_in_service(brokers)
    wait_for("broker 2 knows the topics again", lambda: view(brokers[2].bootstrap, kept) == kept_view)
    assert view(brokers[2].bootstrap, doomed) is None


def test_one_group_across_brokers(make_broker, topic_name):
    brokers = start_cluster(make_broker, "--group.initial.rebalance.delay.ms", "300")
    create_topic(brokers[0].bootstrap, topic_name, PARTITIONS)
    wait_for("every broker describes the topic alike", lambda: same_everywhere(brokers, topic_name))
    group = f"g-{topic_name}"
    config = {"group.id": group, "auto.offset.reset": "earliest", "enable.auto.commit": False}
    members = [Consumer({"bootstrap.servers": brokers[i].bootstrap, **config}) for i in (1, 2)]
    try:
        for m in members:
            m.subscribe([topic_name])

        def split():
            for m in members:
                for msg in m.consume(100, 0.1):
                    assert msg.error() is not None, "nothing is produced yet"
            mine = [{tp.partition for tp in m.assignment()} for m in members]
            return all(mine) and not mine[0] & mine[1] and mine[0] | mine[1] == set(range(PARTITIONS))

        wait_for("the two consumers share the partitions", split, timeout=60)
        # Every broker's admin client finds the same coordinator, which knows both members.
        coordinators = set()
        for b in brokers:
            a = admin(b.bootstrap)  # must outlive the future
            d = a.describe_consumer_groups([group])[group].result(10)
            assert (d.state, len(d.members)) == (ConsumerGroupState.STABLE, 2), (d.state, d.members)
            coordinators.add(d.coordinator.id)
        assert len(coordinators) == 1, coordinators
        # ListGroups is answered by every broker; only the coordinator lists the group.
        a = admin(brokers[0].bootstrap)
        listed = a.list_consumer_groups().result(10)
        assert [g.group_id for g in listed.valid].count(group) == 1

        n = 600
        p = Producer({"bootstrap.servers": brokers[0].bootstrap, "acks": "all"})
        for i in range(n):
            p.produce(topic_name, value=f"v{i}".encode(), partition=i % PARTITIONS)
        assert p.flush(60) == 0
        got = [set(), set()]
        seen, deadline = 0, time.time() + 60
        while seen < n:
            assert time.time() < deadline, f"consumed {seen} of {n}"
            for i, m in enumerate(members):
                for msg in m.consume(1000, 0.1):
                    assert msg.error() is None, msg.error()
                    got[i].add(msg.partition())
                    seen += 1
        for i, m in enumerate(members):
            assert got[i] == {tp.partition for tp in m.assignment()}, "each consumer reads its own partitions"
            m.commit(asynchronous=False)
    finally:
        for m in members:
            m.close()
    # The committed offsets are found through every broker.
    for b in brokers:
        c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": group})
        try:
            tps = c.committed([TopicPartition(topic_name, p) for p in range(PARTITIONS)], timeout=30)
            assert [(tp.error, tp.offset) for tp in tps] == [(None, n // PARTITIONS)] * PARTITIONS
        finally:
            c.close()


def test_kafka_python_describes_the_cluster_and_its_quorum(make_broker):
    """kafka-python's admin client (its own protocol code, not librdkafka's): DescribeCluster names every broker
    unfenced; DescribeQuorum names the leader, the three voters and their log end offsets."""
    from kafka.admin import KafkaAdminClient

    brokers = start_cluster(make_broker)
    a = KafkaAdminClient(bootstrap_servers=brokers[1].bootstrap, client_id="kafka-python-describe")
    try:
        cluster = a.describe_cluster()
        assert cluster["cluster_id"] == "py-cluster"
        assert sorted((b["broker_id"], f"{b['host']}:{b['port']}", b["is_fenced"]) for b in cluster["brokers"]) == [
            (i, b.bootstrap, False) for i, b in enumerate(brokers)
        ]
        quorum = a.describe_metadata_quorum()["topics"][0]
        assert quorum["topic_name"] == "__cluster_metadata"
        part = quorum["partitions"][0]
        # As Kafka's KRaft brokers do, DescribeCluster names a live broker for admin requests (it passes them to
        # the active controller); DescribeQuorum names the Raft leader.
        assert cluster["controller_id"] in (0, 1, 2), cluster
        assert part["error"] is None and part["leader_id"] in (0, 1, 2), part
        assert part["leader_epoch"] >= 1 and part["high_watermark"] > 0, part
        voters = sorted(part["current_voters"], key=lambda v: v["replica_id"])
        assert [v["replica_id"] for v in voters] == [0, 1, 2], voters
        # Replication progress of every voter, as the leader knows it.
        assert all(v["log_end_offset"] >= 0 for v in voters), voters
        assert part["observers"] == [], part
    finally:
        a.close()
