//! The committed CRDs must be exactly what the Rust types generate, in `crds/` and in the chart;
//! regenerate with `cargo run -p strata-operator -- crd [KIND] > crds/<plural>.strata.io.yaml`
//! and copy them to `charts/strata-operator/crds/`.

fn check(file: &str, kind: &str, generated: String) {
    for dir in ["crds", "charts/strata-operator/crds"] {
        let path = format!("{}/../{dir}/{file}", env!("CARGO_MANIFEST_DIR"));
        let committed = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {path}: {e}"));
        assert!(
            committed == generated,
            "{path} is stale; regenerate it with `cargo run -p strata-operator -- crd {kind} > crds/{file}` (and copy it into the chart)"
        );
    }
}

#[test]
fn committed_crds_match_the_types() {
    check("logclusters.strata.io.yaml", "LogCluster", strata_operator::crd::crd_yaml().expect("serialize CRD"));
    check("logtopics.strata.io.yaml", "LogTopic", strata_operator::topic::crd::crd_yaml().expect("serialize CRD"));
    check("logusers.strata.io.yaml", "LogUser", strata_operator::user::crd::crd_yaml().expect("serialize CRD"));
}
