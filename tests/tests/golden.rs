//! Golden vectors: committed content files and their expected decode. A format change that
//! breaks old files, or changes what they mean, fails here. Regenerate the `.decoded`
//! files only for an intended format change: `FAILSAFE_BLESS=1 cargo test -p failsafe-tests`.

use failsafe_loader::{RuleSet, validate};
use failsafe_tests::root;
use sha2::{Digest, Sha256};

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn golden_files_decode_as_recorded() {
    let bless = std::env::var_os("FAILSAFE_BLESS").is_some();
    let dir = root().join("golden");
    let mut seen = 0;
    for name in ["empty", "sample-v1", "every-operator"] {
        let bytes = std::fs::read(dir.join(format!("{name}.fsc"))).expect("golden file");
        let v = validate(&bytes).unwrap_or_else(|e| panic!("{name}.fsc no longer validates: {e}"));
        let decoded = format!(
            "sha256 {}\n{:#?}\n",
            hex(&Sha256::digest(&bytes)),
            v.content
        );
        let expected_path = dir.join(format!("{name}.decoded"));
        if bless {
            std::fs::write(&expected_path, &decoded).expect("write");
        }
        let expected = std::fs::read_to_string(&expected_path).expect("expected decode");
        assert_eq!(
            decoded, expected,
            "{name}.fsc decodes differently from {name}.decoded"
        );
        assert!(RuleSet::compile(&v).is_ok());
        seen += 1;
    }
    assert_eq!(seen, 3);
}

#[test]
fn regression_corpus_is_rejected_precisely() {
    let dir = root().join("corpus");
    let manifest = std::fs::read_to_string(dir.join("expected.txt")).expect("manifest");
    let mut checked = 0;
    for line in manifest
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let parts: Vec<&str> = line.split_whitespace().collect();
        let [file, code, offset] = parts[..] else {
            panic!("bad manifest line: {line}")
        };
        let bytes = std::fs::read(dir.join(file)).expect("corpus file");
        let e = validate(&bytes)
            .err()
            .unwrap_or_else(|| panic!("{file} validated"));
        assert_eq!(
            (e.code(), e.at.offset.to_string().as_str()),
            (code, offset),
            "{file}: {e}"
        );
        checked += 1;
    }
    let files = std::fs::read_dir(&dir)
        .expect("dir")
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "fsc"))
        })
        .count();
    assert_eq!(
        checked, files,
        "every corpus file is listed in expected.txt"
    );
}
