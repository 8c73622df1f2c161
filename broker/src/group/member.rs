//! One member of a classic group: what it sent in JoinGroup (protocols and their metadata, timeouts), what the
//! leader assigned to it, and where it is in the join/sync handshake.

use bytes::Bytes;

/// One assignor a member supports (`range`, `cooperative-sticky`, ...) with its subscription metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Protocol {
    pub name: String,
    pub metadata: Bytes,
}

#[derive(Debug, Clone)]
pub struct Member {
    pub id: String,
    /// `group.instance.id` of a static member (KIP-345).
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub protocol_type: String,
    /// In the member's order of preference.
    pub protocols: Vec<Protocol>,
    pub assignment: Bytes,
    /// A JoinGroup of this member waits for the rebalance to complete.
    pub awaiting_join: bool,
    /// A SyncGroup of this member waits for the leader's assignment.
    pub awaiting_sync: bool,
    /// Joined in the current rebalance and never completed one: bounded by the new-member join timeout.
    pub is_new: bool,
    /// When the member is removed unless it heartbeats (or is exempt, see [`Member::expired`]).
    pub heartbeat_deadline: i64,
}

impl Member {
    pub fn metadata(&self, protocol: &str) -> Option<&Bytes> {
        self.protocols.iter().find(|p| p.name == protocol).map(|p| &p.metadata)
    }

    pub fn supports(&self, protocol: &str) -> bool {
        self.protocols.iter().any(|p| p.name == protocol)
    }

    /// Same protocols with the same metadata, in the same order: a rejoin that changes nothing.
    pub fn matches(&self, protocols: &[Protocol]) -> bool {
        self.protocols == protocols
    }

    /// The member's most preferred protocol among `candidates`.
    pub fn vote<'a>(&'a self, candidates: &[&str]) -> Option<&'a str> {
        self.protocols.iter().map(|p| p.name.as_str()).find(|n| candidates.contains(n))
    }

    /// Kafka's rule: members waiting in a rebalance need no heartbeats (the rebalance timeout bounds them),
    /// except new members, which the new-member join timeout bounds.
    fn exempt(&self) -> bool {
        !self.is_new && (self.awaiting_join || self.awaiting_sync)
    }

    pub fn expired(&self, now: i64) -> bool {
        !self.exempt() && now >= self.heartbeat_deadline
    }

    /// The next time [`Member::expired`] may turn true.
    pub fn deadline(&self) -> Option<i64> {
        (!self.exempt()).then_some(self.heartbeat_deadline)
    }

    pub fn touch(&mut self, now: i64) {
        self.heartbeat_deadline = now + i64::from(self.session_timeout_ms);
    }
}

/// The topics of a consumer-protocol subscription (`ConsumerProtocolSubscription`): every version starts with
/// a version (int16) and the topic array (int32 count, int16-length strings), which is all this reads.
/// `None` if the metadata is not in that format.
pub fn subscribed_topics(metadata: &[u8]) -> Option<Vec<String>> {
    let mut b = metadata.get(2..)?;
    let count = i32::from_be_bytes(b.get(..4)?.try_into().ok()?);
    b = &b[4..];
    let mut topics = Vec::with_capacity(usize::try_from(count).ok()?.min(b.len() / 2));
    for _ in 0..count {
        let len = usize::try_from(i16::from_be_bytes(b.get(..2)?.try_into().ok()?)).ok()?;
        topics.push(std::str::from_utf8(b.get(2..2 + len)?).ok()?.to_string());
        b = &b[2 + len..];
    }
    Some(topics)
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// A consumer-protocol subscription of `topics` (null user data).
    pub fn subscription(version: i16, topics: &[&str]) -> Bytes {
        let mut v = version.to_be_bytes().to_vec();
        v.extend((topics.len() as i32).to_be_bytes());
        for t in topics {
            v.extend((t.len() as i16).to_be_bytes());
            v.extend(t.as_bytes());
        }
        v.extend((-1i32).to_be_bytes()); // null user data
        Bytes::from(v)
    }

    #[test]
    fn subscriptions_of_any_version_are_read_and_garbage_is_none() {
        assert_eq!(subscribed_topics(&subscription(0, &["a", "bb"])), Some(vec!["a".into(), "bb".into()]));
        assert_eq!(subscribed_topics(&subscription(3, &[])), Some(vec![]));
        for bad in [&b""[..], &[0, 0, 0, 0, 0, 1][..], &[0, 0, 0, 0, 0, 1, 0, 9, b'a'][..], &[0, 0, 0x7f, 0, 0, 0][..]] {
            assert_eq!(subscribed_topics(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn waiting_members_are_exempt_from_heartbeats_unless_new() {
        let mut m = Member {
            id: "m".into(),
            instance_id: None,
            client_id: "c".into(),
            client_host: "/127.0.0.1".into(),
            session_timeout_ms: 10,
            rebalance_timeout_ms: 100,
            protocol_type: "consumer".into(),
            protocols: vec![Protocol { name: "range".into(), metadata: Bytes::new() }],
            assignment: Bytes::new(),
            awaiting_join: false,
            awaiting_sync: false,
            is_new: false,
            heartbeat_deadline: 0,
        };
        m.touch(100);
        assert!(!m.expired(109) && m.expired(110));
        m.awaiting_join = true;
        assert!(!m.expired(1000) && m.deadline().is_none());
        m.is_new = true;
        assert!(m.expired(1000));
        assert_eq!(m.vote(&["x", "range"]), Some("range"));
        assert_eq!(m.vote(&["x"]), None);
    }
}
