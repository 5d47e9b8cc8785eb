//! The committed CRD YAML must be exactly what the Rust types generate (`make crds`).

use outband_crds::crdgen::{CRD_DIR, REFERENCE_FILE, crd_files, reference_markdown};

#[test]
fn committed_crds_match_the_types() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(CRD_DIR);
    for (file, generated) in crd_files() {
        let path = root.join(file);
        let committed = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{} is missing ({e}): run `make crds`", path.display()));
        assert!(
            committed == generated,
            "{} differs from what crds/src generates: run `make crds` and commit the result",
            path.display()
        );
    }
}

#[test]
fn committed_reference_matches_the_types() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(REFERENCE_FILE);
    let committed = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{} is missing ({e}): run `make crds`", path.display()));
    assert!(
        committed == reference_markdown(),
        "{} differs from what crds/src generates: run `make crds` and commit the result",
        path.display()
    );
}
