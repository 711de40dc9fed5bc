//! End-to-end scenarios across Custodia's crates. The scenarios live in `tests/tests/`; the data they
//! read (test vectors with expected outcomes, sample FHIR resources) in `tests/vectors/` and `tests/data/`.

use std::path::PathBuf;

/// The folder holding this crate's data files.
pub fn data_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}
