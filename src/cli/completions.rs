//! `edgetune completions bash|zsh|fish` and `edgetune man`: shell completion scripts and a man
//! page, generated at run time from the command line's own definition (clap's `Command`), so they
//! always list the flags this binary takes. Hidden flags (legacy aliases) are left out.

use clap::{Command, CommandFactory};
use std::fmt::Write;

/// Flags of `edgetune completions`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The shell: bash (`source <(edgetune completions bash)`), zsh (`source <(edgetune
    /// completions zsh)`) or fish (`edgetune completions fish | source`).
    #[arg(value_enum)]
    pub shell: Shell,
}

/// A shell completions are written for.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Shell {
    /// GNU bash (`complete -F`).
    Bash,
    /// zsh (through its bash completion layer, `bashcompinit`).
    Zsh,
    /// fish (`complete -c`).
    Fish,
}

/// Flags of `edgetune man` (none: the page goes to stdout, `edgetune man > edgetune.1`).
#[derive(Debug, clap::Args)]
pub struct ManArgs {}

/// One (sub)command as the generators see it: its path of names and what it takes.
struct Node {
    path: Vec<String>,
    about: String,
    subcommands: Vec<String>,
    flags: Vec<Flag>,
    /// The listed values of its positional arguments (`completions bash|zsh|fish`).
    values: Vec<String>,
}

/// One visible flag.
struct Flag {
    long: Option<String>,
    short: Option<char>,
    help: String,
    value: Option<String>,
    choices: Vec<String>,
}

/// Every command reachable from `cmd`, depth first, the root first.
fn nodes(cmd: &Command, path: Vec<String>, out: &mut Vec<Node>) {
    let flags = cmd
        .get_arguments()
        .filter(|a| !a.is_hide_set() && !a.is_positional())
        .map(|a| Flag {
            long: a.get_long().map(str::to_string),
            short: a.get_short(),
            help: a.get_help().map(|h| h.to_string()).unwrap_or_default(),
            value: a.get_action().takes_values().then(|| {
                a.get_value_names()
                    .and_then(|v| v.first())
                    .map_or("VALUE".to_string(), |v| v.to_string())
            }),
            choices: choices(a),
        })
        .collect();
    let subs: Vec<&Command> = cmd
        .get_subcommands()
        .filter(|c| !c.is_hide_set() && c.get_name() != "help")
        .collect();
    out.push(Node {
        path: path.clone(),
        about: cmd.get_about().map(|h| h.to_string()).unwrap_or_default(),
        subcommands: subs.iter().map(|c| c.get_name().to_string()).collect(),
        flags,
        values: cmd
            .get_arguments()
            .filter(|a| a.is_positional())
            .flat_map(choices)
            .collect(),
    });
    for c in subs {
        let mut p = path.clone();
        p.push(c.get_name().to_string());
        nodes(c, p, out);
    }
}

/// The listed values of a flag that takes a value (none for a switch).
fn choices(a: &clap::Arg) -> Vec<String> {
    if !a.get_action().takes_values() {
        return Vec::new();
    }
    a.get_possible_values()
        .iter()
        .filter(|v| !v.is_hide_set())
        .map(|v| v.get_name().to_string())
        .collect()
}

fn all_nodes() -> Vec<Node> {
    let mut out = Vec::new();
    nodes(&super::Cli::command(), vec![], &mut out);
    out
}

/// The first line of a help text, without characters that break a quoted shell word.
fn short_help(h: &str) -> String {
    h.lines()
        .next()
        .unwrap_or_default()
        .replace(['\'', '"', '`', '$', '\\'], "")
}

/// The bash script: the command path is read from the words before the cursor; a word starting
/// with `-` completes the flags of that command, a flag with listed values completes them, else
/// subcommands or file names.
fn bash() -> String {
    let mut s = String::from(
        "# edgetune bash completion: source <(edgetune completions bash)\n_edgetune() {\n    \
         local cur prev path i w\n    cur=\"${COMP_WORDS[COMP_CWORD]}\"\n    \
         prev=\"${COMP_WORDS[COMP_CWORD-1]}\"\n    path=\"\"\n    \
         for ((i = 1; i < COMP_CWORD; i++)); do\n        w=\"${COMP_WORDS[i]}\"\n        \
         case \"$path:$w\" in\n",
    );
    let nodes = all_nodes();
    for n in &nodes {
        for sub in &n.subcommands {
            let from = n.path.join(" ");
            let to = if from.is_empty() {
                sub.clone()
            } else {
                format!("{from} {sub}")
            };
            let _ = writeln!(s, "            \"{from}:{sub}\") path=\"{to}\" ;;");
        }
    }
    s.push_str("        esac\n    done\n    case \"$path\" in\n");
    let global: Vec<String> = nodes[0].flags.iter().flat_map(flag_words).collect();
    for n in &nodes {
        let mut words: Vec<String> = n.flags.iter().flat_map(flag_words).collect();
        words.extend(global.iter().cloned());
        words.sort();
        words.dedup();
        let _ = writeln!(s, "        \"{}\")", n.path.join(" "));
        for f in n.flags.iter().chain(&nodes[0].flags) {
            if let (Some(l), false) = (&f.long, f.choices.is_empty()) {
                let _ = writeln!(
                    s,
                    "            if [[ \"$prev\" == --{l} ]]; then COMPREPLY=($(compgen -W \"{}\" -- \"$cur\")); return; fi",
                    f.choices.join(" ")
                );
            }
        }
        let _ = writeln!(
            s,
            "            if [[ \"$cur\" == -* ]]; then COMPREPLY=($(compgen -W \"{}\" -- \"$cur\")); return; fi",
            words.join(" ")
        );
        if !n.values.is_empty() {
            let _ = writeln!(
                s,
                "            COMPREPLY=($(compgen -W \"{}\" -- \"$cur\")) ;;",
                n.values.join(" ")
            );
        } else if n.subcommands.is_empty() {
            s.push_str("            COMPREPLY=($(compgen -f -- \"$cur\")) ;;\n");
        } else {
            let _ = writeln!(
                s,
                "            COMPREPLY=($(compgen -W \"{}\" -- \"$cur\")) ;;",
                n.subcommands.join(" ")
            );
        }
    }
    s.push_str("    esac\n}\ncomplete -o filenames -o bashdefault -F _edgetune edgetune\n");
    s
}

fn flag_words(f: &Flag) -> Vec<String> {
    let mut w: Vec<String> = f.long.iter().map(|l| format!("--{l}")).collect();
    w.extend(f.short.map(|c| format!("-{c}")));
    w
}

/// zsh reads the bash script through its bash completion layer.
fn zsh() -> String {
    format!(
        "# edgetune zsh completion: source <(edgetune completions zsh)\n\
         autoload -U +X bashcompinit && bashcompinit\n{}",
        bash()
    )
}

/// The fish script: one `complete` line per subcommand and per flag.
fn fish() -> String {
    let mut s = String::from("# edgetune fish completion: edgetune completions fish | source\n");
    let nodes = all_nodes();
    for n in &nodes {
        let cond = match n.path.as_slice() {
            [] => "__fish_use_subcommand".to_string(),
            p => p
                .iter()
                .map(|c| format!("__fish_seen_subcommand_from {c}"))
                .collect::<Vec<_>>()
                .join("; and "),
        };
        for sub in &n.subcommands {
            let about = nodes
                .iter()
                .find(|m| m.path.last() == Some(sub) && m.path.len() == n.path.len() + 1)
                .map_or(String::new(), |m| short_help(&m.about));
            let _ = writeln!(
                s,
                "complete -c edgetune -f -n '{cond}' -a {sub} -d '{about}'"
            );
        }
        for f in &n.flags {
            let mut line = format!("complete -c edgetune -n '{cond}'");
            if let Some(l) = &f.long {
                let _ = write!(line, " -l {l}");
            }
            if let Some(c) = f.short {
                let _ = write!(line, " -s {c}");
            }
            if f.value.is_some() {
                line.push_str(" -r");
            }
            if !f.choices.is_empty() {
                let _ = write!(line, " -f -a '{}'", f.choices.join(" "));
            }
            let _ = writeln!(s, "{line} -d '{}'", short_help(&f.help));
        }
    }
    s
}

/// Escapes text for roff.
fn roff(t: &str) -> String {
    t.replace('\\', "\\e")
        .lines()
        .map(|l| {
            if l.starts_with(['.', '\'']) {
                format!("\\&{l}")
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The man page (section 1): every command with its description and flags.
fn man() -> String {
    let nodes = all_nodes();
    let root = &nodes[0];
    let mut s = format!(
        ".TH EDGETUNE 1 \"\" \"edgetune {}\" \"User Commands\"\n.SH NAME\nedgetune \\- {}\n\
         .SH SYNOPSIS\n\\fBedgetune\\fR [\\fIGLOBAL FLAGS\\fR] \\fICOMMAND\\fR [\\fIFLAGS\\fR]\n\
         .SH GLOBAL FLAGS\n",
        env!("CARGO_PKG_VERSION"),
        roff(&root.about)
    );
    for f in &root.flags {
        man_flag(&mut s, f);
    }
    s.push_str(".SH COMMANDS\n");
    for n in nodes.iter().skip(1).filter(|n| n.subcommands.is_empty()) {
        let _ = writeln!(
            s,
            ".SS \"edgetune {}\"\n{}",
            n.path.join(" "),
            roff(&n.about)
        );
        for f in &n.flags {
            man_flag(&mut s, f);
        }
    }
    s.push_str(
        ".SH ENVIRONMENT\n.TP\n\\fBEDGETUNE_MODEL\\fR\nthe default backbone\n.TP\n\
         \\fBEDGETUNE_ORT_LIB\\fR\nONNX Runtime's shared library\n.TP\n\\fBEDGETUNE_CACHE\\fR\n\
         the feature cache folder\n",
    );
    s
}

fn man_flag(s: &mut String, f: &Flag) {
    let mut names: Vec<String> = f.short.iter().map(|c| format!("\\fB\\-{c}\\fR")).collect();
    names.extend(
        f.long
            .iter()
            .map(|l| format!("\\fB\\-\\-{}\\fR", l.replace('-', "\\-"))),
    );
    let value = f
        .value
        .as_ref()
        .map_or(String::new(), |v| format!(" \\fI{v}\\fR"));
    let choices = if f.choices.is_empty() {
        String::new()
    } else {
        format!(" [{}]", f.choices.join(", "))
    };
    let _ = writeln!(
        s,
        ".TP\n{}{value}\n{}{choices}",
        names.join(", "),
        roff(&f.help)
    );
}

pub fn run(a: Args) -> anyhow::Result<()> {
    print!(
        "{}",
        match a.shell {
            Shell::Bash => bash(),
            Shell::Zsh => zsh(),
            Shell::Fish => fish(),
        }
    );
    Ok(())
}

pub fn run_man(_a: ManArgs) -> anyhow::Result<()> {
    print!("{}", man());
    Ok(())
}
