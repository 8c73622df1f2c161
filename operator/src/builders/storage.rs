use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    LocalVolumeSource, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, PersistentVolume, PersistentVolumeSpec,
    VolumeNodeAffinity,
};
use k8s_openapi::api::storage::v1::StorageClass;

use super::cluster_scoped_meta;
use crate::crd::LogCluster;
use crate::names;

const HOSTNAME_LABEL: &str = "kubernetes.io/hostname";

/// The no-provisioner class for `storage.local`: binding waits for the pod to be scheduled, so
/// the scheduler picks a node that has a free volume.
pub fn local_storage_class(lc: &LogCluster) -> Option<StorageClass> {
    lc.spec.storage.local.as_ref()?;
    Some(StorageClass {
        metadata: cluster_scoped_meta(lc, names::local_storage_class(lc)),
        provisioner: "kubernetes.io/no-provisioner".to_string(),
        volume_binding_mode: Some("WaitForFirstConsumer".to_string()),
        // Local disks hold data the operator must never wipe on its own.
        reclaim_policy: Some("Retain".to_string()),
        ..Default::default()
    })
}

/// One `local` PersistentVolume per `storage.local` entry, pinned to its node.
pub fn local_persistent_volumes(lc: &LogCluster) -> Vec<PersistentVolume> {
    let Some(local) = &lc.spec.storage.local else {
        return Vec::new();
    };
    local
        .iter()
        .enumerate()
        .map(|(i, v)| PersistentVolume {
            metadata: cluster_scoped_meta(lc, names::local_volume(lc, i)),
            spec: Some(PersistentVolumeSpec {
                capacity: Some(BTreeMap::from([(
                    "storage".to_string(),
                    v.capacity.clone().unwrap_or_else(|| lc.spec.storage.size.clone()),
                )])),
                access_modes: Some(vec!["ReadWriteOnce".to_string()]),
                persistent_volume_reclaim_policy: Some("Retain".to_string()),
                storage_class_name: Some(names::local_storage_class(lc)),
                volume_mode: Some("Filesystem".to_string()),
                local: Some(LocalVolumeSource { path: v.path.clone(), fs_type: None }),
                node_affinity: Some(VolumeNodeAffinity {
                    required: Some(NodeSelector {
                        node_selector_terms: vec![NodeSelectorTerm {
                            match_expressions: Some(vec![NodeSelectorRequirement {
                                key: HOSTNAME_LABEL.to_string(),
                                operator: "In".to_string(),
                                values: Some(vec![v.node.clone()]),
                            }]),
                            ..Default::default()
                        }],
                    }),
                }),
                ..Default::default()
            }),
            ..Default::default()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::LocalVolume;
    use crate::testing::{cluster, quantity, spec};

    #[test]
    fn nothing_without_local_storage() {
        let lc = cluster(spec());
        assert!(local_storage_class(&lc).is_none());
        assert!(local_persistent_volumes(&lc).is_empty());
    }

    #[test]
    fn one_pinned_volume_per_disk() {
        let mut s = spec();
        s.storage.local = Some(vec![
            LocalVolume { node: "n1".into(), path: "/mnt/d0".into(), capacity: None },
            LocalVolume { node: "n2".into(), path: "/mnt/d1".into(), capacity: Some(quantity("100Gi")) },
        ]);
        let lc = cluster(s);
        let sc = local_storage_class(&lc).unwrap();
        assert_eq!(sc.metadata.name.as_deref(), Some("strata-local-prod-logs"));
        assert_eq!(sc.provisioner, "kubernetes.io/no-provisioner");
        assert_eq!(sc.volume_binding_mode.as_deref(), Some("WaitForFirstConsumer"));
        assert!(sc.metadata.owner_references.is_none());
        assert_eq!(sc.metadata.labels.unwrap()["strata.io/cluster-namespace"], "prod");

        let pvs = local_persistent_volumes(&lc);
        assert_eq!(pvs.len(), 2);
        assert_eq!(pvs[1].metadata.name.as_deref(), Some("strata-prod-logs-1"));
        let s0 = pvs[0].spec.as_ref().unwrap();
        let s1 = pvs[1].spec.as_ref().unwrap();
        assert_eq!(s0.capacity.as_ref().unwrap()["storage"], quantity("10Gi"));
        assert_eq!(s1.capacity.as_ref().unwrap()["storage"], quantity("100Gi"));
        assert_eq!(s1.local.as_ref().unwrap().path, "/mnt/d1");
        assert_eq!(s1.storage_class_name.as_deref(), Some("strata-local-prod-logs"));
        let term = &s1.node_affinity.as_ref().unwrap().required.as_ref().unwrap().node_selector_terms[0];
        let req = &term.match_expressions.as_ref().unwrap()[0];
        assert_eq!(
            (req.key.as_str(), req.operator.as_str(), req.values.clone().unwrap()),
            ("kubernetes.io/hostname", "In", vec!["n2".to_string()])
        );
    }
}
