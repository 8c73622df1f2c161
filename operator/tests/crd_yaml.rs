//! The committed CRD must be exactly what the Rust types generate; regenerate with
//! `cargo run -p strata-operator -- crd > crds/logclusters.strata.io.yaml`.

#[test]
fn committed_crd_matches_the_types() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../crds/logclusters.strata.io.yaml");
    let committed = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {path}: {e}"));
    let generated = strata_operator::crd::crd_yaml().expect("serialize CRD");
    assert!(
        committed == generated,
        "{path} is stale; regenerate it with `cargo run -p strata-operator -- crd > crds/logclusters.strata.io.yaml`"
    );
}
