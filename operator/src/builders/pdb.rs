use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::owned_meta;
use crate::crd::LogCluster;
use crate::names;

/// Limits voluntary evictions (node drains) to `maxUnavailable` brokers at a time.
/// `None` when disabled. Only fields that policy/v1beta1 also has are set, so the same object
/// can be applied to clusters older than 1.21.
pub fn pod_disruption_budget(lc: &LogCluster) -> Option<PodDisruptionBudget> {
    let pdb = &lc.spec.pod_disruption_budget;
    pdb.enabled.then(|| PodDisruptionBudget {
        metadata: owned_meta(lc, names::cluster_name(lc)),
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(pdb.max_unavailable)),
            selector: Some(LabelSelector { match_labels: Some(names::selector_labels(lc)), ..Default::default() }),
            ..Default::default()
        }),
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builders::assert_owned;
    use crate::testing::{cluster, spec};

    #[test]
    fn defaults_to_one_unavailable_broker() {
        let lc = cluster(spec());
        let pdb = pod_disruption_budget(&lc).unwrap();
        assert_owned(&pdb.metadata);
        let s = pdb.spec.unwrap();
        assert_eq!(s.max_unavailable, Some(IntOrString::Int(1)));
        assert_eq!(s.min_available, None);
        assert_eq!(s.selector.unwrap().match_labels.unwrap(), names::selector_labels(&lc));
    }

    #[test]
    fn can_be_disabled() {
        let mut s = spec();
        s.pod_disruption_budget.enabled = false;
        assert!(pod_disruption_budget(&cluster(s)).is_none());
    }
}
