//! Replays every fuzz seed and every input a fuzzer found (`fuzz/seeds/<target>/`,
//! `fuzz/regressions/<target>/`) through the same entry points the fuzz targets use:
//! none may panic. The fuzzers themselves run with `fuzz/run.sh` (README: Fuzzing).

use std::path::Path;

fn replay(target: &str, run: fn(&str)) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    let mut count = 0;
    for dir in ["seeds", "regressions"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir).join(target)) else {
            continue;
        };
        let mut files: Vec<_> = entries.flatten().map(|e| e.path()).collect();
        files.sort();
        for file in files {
            if file.file_name().is_some_and(|n| n == ".keep") {
                continue;
            }
            let bytes = std::fs::read(&file).unwrap();
            // The fuzz targets skip input that is not UTF-8; so does the replay.
            if let Ok(text) = std::str::from_utf8(&bytes) {
                let outcome = std::panic::catch_unwind(|| run(text));
                assert!(outcome.is_ok(), "{} panicked", file.display());
                count += 1;
            }
        }
    }
    assert!(count > 0, "no inputs for {target}");
}

#[test]
fn gotemplate() {
    replay("gotemplate", prism_engine::fuzzing::gotemplate);
}

#[test]
fn fasttemplate() {
    replay("fasttemplate", prism_engine::fuzzing::fasttemplate);
}

#[test]
fn handlebars() {
    replay("handlebars", prism_engine::fuzzing::handlebars);
}

#[test]
fn spec() {
    replay("spec", prism_engine::fuzzing::spec);
}

#[test]
fn glob() {
    replay("glob", prism_engine::fuzzing::glob);
}

#[test]
fn clusters() {
    replay("clusters", prism_engine::fuzzing::clusters);
}
