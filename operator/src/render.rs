//! `strata-operator render`: the objects for a LogCluster manifest, as the controller would
//! apply them (minus owner references, which need the stored object's UID).

use serde::Serialize;

use crate::builders;
use crate::crd::LogCluster;
use crate::{membership, validation};

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("not a LogCluster manifest: {0}")]
    Parse(#[from] serde_yaml::Error),
    #[error("invalid LogCluster spec:\n  {}", .0.join("\n  "))]
    Invalid(Vec<String>),
}

fn doc<T: Serialize>(out: &mut String, obj: &T) -> Result<(), serde_yaml::Error> {
    out.push_str("---\n");
    out.push_str(&serde_yaml::to_string(obj)?);
    Ok(())
}

/// Multi-document YAML of every object, or the validation errors. Defaults the apiserver would
/// fill in from the CRD schema are applied by deserialization.
pub fn render_yaml(manifest: &str) -> Result<String, RenderError> {
    let mut lc: LogCluster = serde_yaml::from_str(manifest)?;
    if lc.metadata.namespace.is_none() {
        lc.metadata.namespace = Some("default".to_string());
    }
    // As for a new cluster: the initial voters.
    let voters = membership::initial_voter_count(lc.spec.replicas);
    let settings =
        validation::validate(&lc.spec).map_err(RenderError::Invalid)?.with_quorum(membership::static_voters(&lc, voters));
    let mut out = String::new();
    if let Some(sc) = builders::local_storage_class(&lc) {
        doc(&mut out, &sc)?;
    }
    for pv in builders::local_persistent_volumes(&lc) {
        doc(&mut out, &pv)?;
    }
    doc(&mut out, &builders::config_map(&lc, &settings))?;
    doc(&mut out, &builders::headless_service(&lc))?;
    doc(&mut out, &builders::bootstrap_service(&lc))?;
    let mut sts = builders::statefulset(&lc, &settings);
    builders::record_membership(&mut sts, voters, &Default::default());
    doc(&mut out, &sts)?;
    if let Some(pdb) = builders::pod_disruption_budget(&lc) {
        doc(&mut out, &pdb)?;
    }
    if lc.spec.metrics.service_monitor {
        doc(&mut out, &builders::service_monitor(&lc))?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = include_str!("../../e2e/examples/logcluster.yaml");

    #[test]
    fn renders_the_shipped_example() {
        let out = render_yaml(EXAMPLE).unwrap();
        let kinds: Vec<&str> = out.lines().filter_map(|l| l.strip_prefix("kind: ")).collect();
        assert_eq!(kinds, ["ConfigMap", "Service", "Service", "StatefulSet", "PodDisruptionBudget"]);
        assert!(out.contains("namespace: default"));
        assert!(out.contains("log.retention.ms=604800000"));
        assert!(out.contains("controller.quorum.voters=0@example-0.example-headless.default.svc:9093,"));
    }

    #[test]
    fn reports_invalid_specs_and_bad_yaml() {
        let bad = EXAMPLE.replace("num.partitions: \"6\"", "num.partitions: \"six\"");
        let err = render_yaml(&bad).unwrap_err().to_string();
        assert!(err.contains("num.partitions must be an integer"), "{err}");
        let err = render_yaml("kind: LogCluster\nspec: {}\n").unwrap_err().to_string();
        assert!(err.starts_with("not a LogCluster manifest"), "{err}");
    }
}
