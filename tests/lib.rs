//! End-to-end scenarios across Custodia's crates. The scenarios live in `tests/tests/`; the data they
//! read (test vectors with expected outcomes, sample FHIR resources) in `tests/vectors/` and `tests/data/`.

use std::path::PathBuf;

/// The folder holding this crate's data files.
pub fn data_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The `custodia` binary of this build, built first if a plain `cargo test -p custodia-tests` has not.
pub fn custodia_bin() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            // Test executables live in target/<profile>/deps; binaries one level up.
            let exe = std::env::current_exe().expect("the test knows where it runs from");
            let profile_dir = exe.parent().and_then(|d| d.parent()).expect("a target/<profile>/deps layout");
            let bin = profile_dir.join(format!("custodia{}", std::env::consts::EXE_SUFFIX));
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let status = std::process::Command::new(cargo)
                .args(["build", "--quiet", "-p", "custodia-cli", "--bin", "custodia"])
                .status()
                .expect("cargo runs");
            assert!(status.success(), "building the custodia binary failed");
            bin
        })
        .clone()
}
