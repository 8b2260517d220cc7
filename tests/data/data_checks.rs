//! Data a person can trust: a one-label task is refused, labels of valid/test that train lacks are
//! reported per label, TSV/CSV headers are found by the text column's name.

use std::path::Path;

use edgetune::data::{load_dataset, ReadOptions};

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join(name), text).unwrap();
}

#[test]
fn one_label_task_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    write(
        tmp.path(),
        "train.tsv",
        "text\tlabel\nturn on the light\ton\nswitch the lamp on\ton\nlights on please\ton\n",
    );
    let ds = load_dataset(tmp.path(), &ReadOptions::default(), 0.34, 1).unwrap();
    let err = ds.check_tasks().unwrap_err().to_string();
    assert!(
        err.contains("train.tsv") && err.contains("`intent`") && err.contains("single label"),
        "{err}"
    );
}

#[test]
fn unknown_valid_and_test_labels_are_reported_per_label() {
    let tmp = tempfile::tempdir().unwrap();
    write(
        tmp.path(),
        "train.tsv",
        "on\tturn on the light\noff\tturn off the light\n",
    );
    write(
        tmp.path(),
        "valid.tsv",
        "on\tlights on\ndim\tdim the light\ndim\tdim it\n",
    );
    write(
        tmp.path(),
        "test.tsv",
        "off\tlights off\nblink\tblink twice\n",
    );
    let ds = load_dataset(tmp.path(), &ReadOptions::default(), 0.1, 1).unwrap();
    ds.check_tasks().unwrap();
    let got = ds.unknown_labels();
    assert_eq!(got.len(), 2, "{got:?}");
    assert!(
        got[0].contains("valid.tsv") && got[0].contains("`dim` (2 examples)"),
        "{got:?}"
    );
    assert!(
        got[1].contains("test.tsv") && got[1].contains("`blink` (1 examples)"),
        "{got:?}"
    );
}

#[test]
fn header_by_column_name_and_text_column_flag() {
    let tmp = tempfile::tempdir().unwrap();
    // The CR layout: the text column named `sentence`, first.
    write(
        &tmp.path().join("a"),
        "train.tsv",
        "sentence\tlabel\ngreat phone\tpositive\nbattery died\tnegative\n",
    );
    let ds = load_dataset(&tmp.path().join("a"), &ReadOptions::default(), 0.5, 1).unwrap();
    let tasks = ds.train.tasks();
    assert_eq!(tasks.len(), 1);
    assert_eq!(tasks[0].name, "intent");
    // `--text-column body`: a column of any name.
    write(
        &tmp.path().join("b"),
        "train.csv",
        "mood,body\nhappy,so good\nsad,so bad\nhappy,great\n",
    );
    let opts = ReadOptions {
        text_column: Some("body".into()),
        ..ReadOptions::default()
    };
    let ds = load_dataset(&tmp.path().join("b"), &opts, 0.34, 1).unwrap();
    assert_eq!(ds.train.tasks()[0].name, "mood");
    let err = load_dataset(&tmp.path().join("b"), &ReadOptions::default(), 0.34, 1)
        .err()
        .map(|e| e.to_string());
    // Without the flag `mood,body` is read as data (two labels `mood`/`happy` ...): no error
    // is claimed here, only that the flag is what names the column.
    let _ = err;
}
