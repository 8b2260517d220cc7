//! `edgetune completions` and `edgetune man`: generated from the binary's own flags, loaded by
//! the real bash (completing a subcommand, a flag, a nested subcommand and a flag's values) and
//! rendered by groff when it is installed.

use crate::support as common;

use std::process::Command;

use common::{edgetune, ok};

fn generate(args: &[&str]) -> String {
    let tmp = tempfile::tempdir().unwrap();
    let mut c = edgetune(&tmp.path().join("cache"));
    c.args(args);
    ok(c)
}

/// What bash's completion function offers for `words`, the cursor on the last word.
fn complete(script: &std::path::Path, words: &[&str]) -> Vec<String> {
    let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
    let cmd = format!(
        "source '{}'; COMP_WORDS=({}); COMP_CWORD={}; _edgetune; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        script.display(),
        quoted.join(" "),
        words.len() - 1
    );
    let out = Command::new("bash")
        .arg("-c")
        .arg(cmd)
        .output()
        .expect("bash runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn bash_completes_commands_flags_and_values() {
    let tmp = tempfile::tempdir().unwrap();
    let script = tmp.path().join("edgetune.bash");
    std::fs::write(&script, generate(&["completions", "bash"])).unwrap();
    assert_eq!(complete(&script, &["edgetune", "tr"]), ["train"]);
    assert_eq!(complete(&script, &["edgetune", "his"]), ["history"]);
    assert!(complete(&script, &["edgetune", "train", "--da"]).contains(&"--data".to_string()));
    // Global flags after the subcommand, legacy spellings hidden.
    let train = complete(&script, &["edgetune", "train", "--"]);
    assert!(train.contains(&"--json".to_string()) && train.contains(&"--threads".to_string()));
    assert!(!train.contains(&"--slot-gru".to_string()), "{train:?}");
    assert_eq!(complete(&script, &["edgetune", "cache", "pr"]), ["prune"]);
    assert_eq!(
        complete(&script, &["edgetune", "completions", "fi"]),
        ["fish"]
    );
}

#[test]
fn zsh_and_fish_scripts_name_every_command() {
    let zsh = generate(&["completions", "zsh"]);
    assert!(zsh.contains("bashcompinit") && zsh.contains("complete -o filenames"));
    let fish = generate(&["completions", "fish"]);
    for cmd in [
        "train", "eval", "infer", "export", "serve", "history", "rollback", "cache",
    ] {
        assert!(
            fish.contains(&format!("-a {cmd} -d")),
            "fish script lacks the command {cmd}"
        );
    }
    assert!(fish.contains("__fish_seen_subcommand_from train' -l data -r"));
}

#[test]
fn man_page_lists_commands_and_flags_and_renders() {
    let page = generate(&["man"]);
    assert!(page.starts_with(".TH EDGETUNE 1"));
    for section in [
        "\"edgetune train\"",
        "\"edgetune fleet join\"",
        "\"edgetune cache prune\"",
    ] {
        assert!(page.contains(section), "man page lacks {section}");
    }
    assert!(page.contains("\\fB\\-\\-data\\fR"));
    let Ok(groff) = Command::new("groff").arg("--version").output() else {
        eprintln!("groff is not installed: rendering not checked");
        return;
    };
    assert!(groff.status.success());
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("edgetune.1");
    std::fs::write(&file, &page).unwrap();
    let out = Command::new("groff")
        .args(["-man", "-Tutf8", "-ww", "-z"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "groff warns: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
