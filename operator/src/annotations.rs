//! The day-2 annotations a user sets on a LogCluster or a broker pod: pausing reconciliation
//! and one-shot manual rolling updates. Pure decisions; the reconciler acts on them.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::StatefulSet;
use kube::api::ObjectMeta;

use crate::names::{MANUAL_ROLLING_UPDATE_ANNOTATION, PAUSE_RECONCILIATION_ANNOTATION, RESTART_TOKEN_ANNOTATION};

/// Only the exact value `"true"` counts, as with Strimzi's annotations: a typo such as `"yes"`
/// must not silently pause a cluster or roll it.
fn is_true(meta: &ObjectMeta, key: &str) -> bool {
    meta.annotations.as_ref().and_then(|a| a.get(key)).map(String::as_str) == Some("true")
}

/// The user asked the operator to leave the cluster's objects alone.
pub fn paused(meta: &ObjectMeta) -> bool {
    is_true(meta, PAUSE_RECONCILIATION_ANNOTATION)
}

/// A manual rolling update is requested on this LogCluster or pod.
pub fn roll_requested(meta: &ObjectMeta) -> bool {
    is_true(meta, MANUAL_ROLLING_UPDATE_ANNOTATION)
}

/// The restart token on the StatefulSet's pod template, if a manual roll ever happened.
pub fn current_restart_token(sts: Option<&StatefulSet>) -> Option<&str> {
    let template = sts?.spec.template.metadata.as_ref()?;
    template.annotations.as_ref()?.get(RESTART_TOKEN_ANNOTATION).map(String::as_str)
}

/// The token the pod template should carry: a new one (`now`) when a roll is requested, else
/// the current one, so the template (and the pods) stay as they are.
pub fn restart_token(requested: bool, current: Option<&str>, now: &str) -> Option<String> {
    if requested {
        Some(now.to_string())
    } else {
        current.map(str::to_string)
    }
}

/// Puts `token` on the StatefulSet's pod template (nothing when there is none).
pub fn stamp_restart_token(sts: &mut StatefulSet, token: Option<&str>) {
    let Some(token) = token else { return };
    let template = sts.spec.template.metadata.get_or_insert_with(Default::default);
    template.annotations.get_or_insert_with(BTreeMap::new).insert(RESTART_TOKEN_ANNOTATION.to_string(), token.to_string());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(pairs: &[(&str, &str)]) -> ObjectMeta {
        let annotations = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        ObjectMeta { annotations: Some(annotations), ..Default::default() }
    }

    #[test]
    fn only_true_pauses_or_rolls() {
        type Annotations<'a> = &'a [(&'a str, &'a str)];
        // annotations -> (paused, roll requested)
        let table: [(Annotations, bool, bool); 7] = [
            (&[], false, false),
            (&[("strata.io/pause-reconciliation", "true")], true, false),
            (&[("strata.io/pause-reconciliation", "false")], false, false),
            (&[("strata.io/pause-reconciliation", "True")], false, false),
            (&[("strata.io/manual-rolling-update", "true")], false, true),
            (&[("strata.io/manual-rolling-update", "yes")], false, false),
            (&[("strata.io/pause-reconciliation", "true"), ("strata.io/manual-rolling-update", "true")], true, true),
        ];
        for (pairs, want_paused, want_roll) in table {
            let m = meta(pairs);
            assert_eq!((paused(&m), roll_requested(&m)), (want_paused, want_roll), "{pairs:?}");
        }
        assert!(!paused(&ObjectMeta::default()));
    }

    #[test]
    fn a_token_changes_only_on_request() {
        // (requested, current) -> token
        let table =
            [(false, None, None), (false, Some("t1"), Some("t1")), (true, None, Some("now")), (true, Some("t1"), Some("now"))];
        for (requested, current, want) in table {
            assert_eq!(restart_token(requested, current, "now").as_deref(), want, "{requested} {current:?}");
        }
    }

    #[test]
    fn the_token_is_read_back_from_the_template() {
        let mut sts = StatefulSet::default();
        assert_eq!(current_restart_token(Some(&sts)), None);
        assert_eq!(current_restart_token(None), None);
        stamp_restart_token(&mut sts, None);
        assert_eq!(sts, StatefulSet::default());
        stamp_restart_token(&mut sts, Some("t2"));
        assert_eq!(current_restart_token(Some(&sts)), Some("t2"));
    }
}
