//! Anti-entropy: how a broker reconciles its topic metadata with what a peer reports. Topics and partitions
//! are only ever added from a peer, never removed because a peer lacks them (a peer may have lost its disk);
//! deletions travel as tombstones (deleted topic ids). Only the controller's view may replace a topic that
//! has the same name but another id, so brokers settle on one topic per name.

use std::collections::{BTreeMap, HashSet};

use uuid::Uuid;

/// A topic as brokers exchange it: name, id, and the replicas of each partition (leader first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicView {
    pub name: String,
    pub id: Uuid,
    pub assignment: Vec<Vec<i32>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// A topic this broker does not know.
    Create(TopicView),
    /// The peer has more partitions of the same topic: add `assignment`, the partitions from `from` on.
    AddPartitions { name: String, from: i32, assignment: Vec<Vec<i32>> },
    /// The controller has another topic under this name: drop ours (`old_id`) and take its.
    Replace { old_id: Uuid, topic: TopicView },
    /// The peer still has a topic this broker knows was deleted: tell it.
    DeleteAtPeer { name: String, id: Uuid },
    /// A name with different ids here and at a non-controller peer: left for the controller to settle.
    Conflict { name: String, local: Uuid, remote: Uuid },
}

/// What to do about `remote`, a peer's topics, given this broker's topics and tombstones. `authoritative`:
/// the peer is the controller.
pub fn merge(
    local: &BTreeMap<String, TopicView>,
    deleted: &HashSet<Uuid>,
    remote: &[TopicView],
    authoritative: bool,
) -> Vec<Action> {
    let mut actions = Vec::new();
    for r in remote {
        if r.id.is_nil() || r.assignment.is_empty() || r.assignment.iter().any(Vec::is_empty) {
            continue;
        }
        if deleted.contains(&r.id) {
            actions.push(Action::DeleteAtPeer { name: r.name.clone(), id: r.id });
            continue;
        }
        match local.get(&r.name) {
            None => actions.push(Action::Create(r.clone())),
            Some(l) if l.id == r.id => {
                if r.assignment.len() > l.assignment.len() {
                    actions.push(Action::AddPartitions {
                        name: r.name.clone(),
                        from: l.assignment.len() as i32,
                        assignment: r.assignment[l.assignment.len()..].to_vec(),
                    });
                }
            }
            Some(l) if authoritative => actions.push(Action::Replace { old_id: l.id, topic: r.clone() }),
            Some(l) => actions.push(Action::Conflict { name: r.name.clone(), local: l.id, remote: r.id }),
        }
    }
    actions
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(name: &str, id: u128, leaders: &[i32]) -> TopicView {
        TopicView { name: name.into(), id: Uuid::from_u128(id), assignment: leaders.iter().map(|l| vec![*l]).collect() }
    }

    fn local(topics: &[TopicView]) -> BTreeMap<String, TopicView> {
        topics.iter().map(|t| (t.name.clone(), t.clone())).collect()
    }

    #[test]
    fn unknown_topics_and_partitions_are_adopted() {
        let here = local(&[view("a", 1, &[0, 1])]);
        let remote = [view("a", 1, &[0, 1, 2, 0]), view("b", 2, &[2])];
        let actions = merge(&here, &HashSet::new(), &remote, false);
        assert_eq!(
            actions,
            vec![
                Action::AddPartitions { name: "a".into(), from: 2, assignment: vec![vec![2], vec![0]] },
                Action::Create(view("b", 2, &[2])),
            ]
        );
        // Converged: nothing to do, in both directions (a peer with fewer partitions is not a reason to shrink).
        assert!(merge(&local(&remote), &HashSet::new(), &remote, true).is_empty());
        assert!(merge(&local(&remote), &HashSet::new(), &[view("a", 1, &[0])], true).is_empty());
    }

    #[test]
    fn topics_missing_at_a_peer_are_never_removed_here() {
        let here = local(&[view("a", 1, &[0]), view("b", 2, &[1])]);
        assert!(merge(&here, &HashSet::new(), &[], true).is_empty());
    }

    #[test]
    fn tombstones_stop_resurrection_and_are_pushed_back() {
        let deleted = HashSet::from([Uuid::from_u128(1)]);
        let actions = merge(&BTreeMap::new(), &deleted, &[view("a", 1, &[0]), view("a2", 3, &[0])], true);
        assert_eq!(
            actions,
            vec![Action::DeleteAtPeer { name: "a".into(), id: Uuid::from_u128(1) }, Action::Create(view("a2", 3, &[0]))]
        );
        // A topic recreated under the same name has a new id and is adopted.
        let actions = merge(&BTreeMap::new(), &deleted, &[view("a", 4, &[0])], false);
        assert_eq!(actions, vec![Action::Create(view("a", 4, &[0]))]);
    }

    #[test]
    fn only_the_controller_settles_a_name_with_two_ids() {
        let here = local(&[view("a", 1, &[0])]);
        let theirs = [view("a", 2, &[1])];
        assert_eq!(
            merge(&here, &HashSet::new(), &theirs, false),
            vec![Action::Conflict { name: "a".into(), local: Uuid::from_u128(1), remote: Uuid::from_u128(2) }]
        );
        assert_eq!(
            merge(&here, &HashSet::new(), &theirs, true),
            vec![Action::Replace { old_id: Uuid::from_u128(1), topic: view("a", 2, &[1]) }]
        );
    }

    #[test]
    fn malformed_views_are_ignored() {
        let bad = [
            TopicView { name: "n".into(), id: Uuid::nil(), assignment: vec![vec![0]] },
            TopicView { name: "e".into(), id: Uuid::from_u128(5), assignment: vec![] },
            TopicView { name: "r".into(), id: Uuid::from_u128(6), assignment: vec![vec![0], vec![]] },
        ];
        assert!(merge(&BTreeMap::new(), &HashSet::new(), &bad, true).is_empty());
    }
}
