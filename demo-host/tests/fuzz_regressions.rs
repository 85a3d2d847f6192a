//! Replays every saved `script_line` fuzz input (the seed corpus and each crash the fuzzer
//! found) through the same function the `cargo fuzz` target runs; see `fuzz/README.md`. Runs on
//! stable, in `cargo test`; the fuzzer itself is not part of CI.

use std::path::{Path, PathBuf};

#[test]
fn script_line() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/regressions/script_line");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(
        files.len() >= 3,
        "{}: expected a seed corpus",
        dir.display()
    );
    for file in files {
        let data = std::fs::read(&file).expect("a saved input");
        let outcome = std::panic::catch_unwind(|| demo_host::fuzzing::script_line(&data));
        assert!(
            outcome.is_ok(),
            "{} fails again (input {:?})",
            file.display(),
            String::from_utf8_lossy(&data)
        );
    }
}
