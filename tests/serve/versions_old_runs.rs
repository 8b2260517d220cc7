//! Runs served before versions existed (`RUN/serve/models/gen-N` named by `RUN/serve/current`,
//! made by the edgetune before issue 24: `tests/fixtures/old_run`, its configs, pointer, journal
//! and `trained.json`) read as versions; the first version added is numbered after them and its
//! pointer wins; `--keep` never deletes version 0 or the current one.

use std::path::{Path, PathBuf};

use edgetune::run::versions::{MadeBy, VersionRecord, Versions};

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}

fn old_run(parent: &Path) -> PathBuf {
    let run = parent.join("run");
    copy_tree(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/old_run"),
        &run,
    );
    run
}

/// A new version folder made from version `from`'s config (the weights are not needed to list).
fn add(v: &Versions, from: u64, swapped: bool) -> u64 {
    let t = v.temp_folder().unwrap();
    std::fs::copy(
        v.folder(from).unwrap().join("config.json"),
        t.join("config.json"),
    )
    .unwrap();
    let mut r = VersionRecord::new(MadeBy::Retrain, "test");
    r.parent = Some(from);
    r.swapped = swapped;
    v.add(&t, r).unwrap().0
}

#[test]
fn an_old_runs_swapped_model_is_version_1_and_current() {
    let t = tempfile::tempdir().unwrap();
    let run = old_run(t.path());
    let v = Versions::new(&run);
    let (n, dir) = v.current().unwrap();
    assert_eq!(n, 1);
    assert!(dir.ends_with("serve/models/gen-000001"));
    let list = v.list().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0].record.made_by, MadeBy::Train);
    assert_eq!(list[1].record.journal_seq, 1, "from trained.json");
    assert!(list[1].current);
    // `history --json` on it (no ONNX Runtime needed).
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_edgetune"))
        .args(["history", "--json"])
        .arg(&run)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let h: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(h["current"], 1, "{h}");
    assert_eq!(h["versions"].as_array().unwrap().len(), 2);
}

#[test]
fn a_new_version_follows_the_old_ones_and_its_pointer_wins() {
    let t = tempfile::tempdir().unwrap();
    let run = old_run(t.path());
    let v = Versions::new(&run);
    assert_eq!(add(&v, 1, false), 2);
    assert_eq!(
        v.current().unwrap().0,
        1,
        "a refused candidate is not current"
    );
    assert_eq!(add(&v, 1, true), 3);
    assert_eq!(v.current().unwrap().0, 3);
    assert_eq!(
        std::fs::read_to_string(run.join("versions/current")).unwrap(),
        "3\n"
    );
    // The old pointer is left as it was (an older edgetune still finds a model it knows).
    assert_eq!(
        std::fs::read_to_string(run.join("serve/current"))
            .unwrap()
            .trim(),
        "models/gen-000001"
    );
}

#[test]
fn keep_never_deletes_version_0_or_the_current_one() {
    let t = tempfile::tempdir().unwrap();
    let run = old_run(t.path());
    let v = Versions::new(&run);
    for _ in 0..4 {
        add(&v, 1, false);
    }
    // Versions 1..=5; make 2 current.
    std::fs::write(run.join("versions/current"), "2\n").unwrap();
    let deleted = v.prune(2).unwrap();
    assert_eq!(deleted, vec![1, 3, 4]);
    assert_eq!(v.numbers(), vec![0, 2, 5]);
    assert_eq!(v.current().unwrap().0, 2);
    assert!(run.join("config.json").is_file(), "version 0 stays");
}

#[test]
fn a_damaged_pointer_is_an_error_naming_the_file() {
    let t = tempfile::tempdir().unwrap();
    let run = old_run(t.path());
    let v = Versions::new(&run);
    add(&v, 1, true);
    std::fs::write(run.join("versions/current"), "nine\n").unwrap();
    let e = v.current().unwrap_err().to_string();
    assert!(
        e.contains("versions/current") && e.contains("\"nine\""),
        "{e}"
    );
    std::fs::write(run.join("versions/current"), "42\n").unwrap();
    let e = v.current().unwrap_err().to_string();
    assert!(e.contains("version 42"), "{e}");
}
