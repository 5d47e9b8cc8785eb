//! `outband-crdgen [CRD_DIR [REFERENCE_FILE]]`: writes the CRD YAML files (default
//! `charts/outband/crds`) and the field reference (default `docs/reference/crds.md`).

use std::path::PathBuf;

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(
        args.next()
            .unwrap_or_else(|| outband_crds::crdgen::CRD_DIR.into()),
    );
    let reference = PathBuf::from(
        args.next()
            .unwrap_or_else(|| outband_crds::crdgen::REFERENCE_FILE.into()),
    );
    std::fs::create_dir_all(&dir)?;
    for (file, yaml) in outband_crds::crdgen::crd_files() {
        std::fs::write(dir.join(file), yaml)?;
        println!("wrote {}", dir.join(file).display());
    }
    if let Some(parent) = reference.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(&reference, outband_crds::crdgen::reference_markdown())?;
    println!("wrote {}", reference.display());
    Ok(())
}
