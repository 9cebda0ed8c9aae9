//! This image's build identity (issue 20): the crate's version and the digest `build.rs`
//! computes over the build's inputs. `DriverEntry` passes it to the core, which counts the
//! build's unclean starts without content and makes it dormant after `threshold` of them
//! (docs/boot-safety.md, "The driver build").

use failsafe_loader::state::BuildId;

mod generated {
    include!(concat!(env!("OUT_DIR"), "/build_id.rs"));
}

/// This image's build.
pub const BUILD: BuildId = BuildId {
    version: generated::VERSION,
    digest: generated::DIGEST,
};

/// The identity as bytes in the image (`FSBUILD1`, version, digest), so that a tool finds
/// which build a `.sys` is without loading it (the hosted drill does).
#[used]
pub static MARKER: [u8; 48] = generated::MARKER;

#[cfg(test)]
#[allow(
    clippy::indexing_slicing,
    clippy::unwrap_used,
    reason = "tests: a failed expectation is a test failure"
)]
mod tests {
    use super::*;

    #[test]
    fn the_marker_carries_the_identity() {
        assert_eq!(&MARKER[..8], b"FSBUILD1");
        assert_eq!(MARKER[8..16], BUILD.version.to_le_bytes());
        assert_eq!(MARKER[16..], BUILD.digest);
        let (a, b, c) = BUILD.parts();
        assert_eq!(
            alloc::format!("{a}.{b}.{c}"),
            env!("CARGO_PKG_VERSION"),
            "version packed from the crate's"
        );
        assert_ne!(BUILD.digest, [0; 32]);
    }
}
