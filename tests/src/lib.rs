//! End-to-end tests of the Failsafe workspace (see `tests/`): golden content vectors, the
//! regression corpus of known-bad files and the structure of the minifilter INF. The crash
//! drills live with the binary they spawn, in `cli/tests/drills.rs`.

use std::path::{Path, PathBuf};

/// Root of this crate (holds `golden/` and `corpus/`).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}
