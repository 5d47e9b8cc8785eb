//! `outband-crdgen [DIR]`: writes the CRD YAML files (default `charts/outband/crds`).

use std::path::PathBuf;

fn main() -> std::io::Result<()> {
    let dir = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| outband_crds::crdgen::CRD_DIR.to_string()),
    );
    std::fs::create_dir_all(&dir)?;
    for (file, yaml) in outband_crds::crdgen::crd_files() {
        std::fs::write(dir.join(file), yaml)?;
        println!("wrote {}", dir.join(file).display());
    }
    Ok(())
}
