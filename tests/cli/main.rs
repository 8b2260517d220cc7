//! The command line end to end: errors, trust, showing the work, multilingual shapes.
//!
//! One test binary for this stage of the flow (see `tests/README.md`): each module is a former
//! `tests/NAME.rs` binary, its tests named `NAME::test`.

#[path = "../support/mod.rs"]
mod support;

mod cli_cache;
mod cli_conventions;
mod cli_e2e;
mod cli_errors;
mod cli_json;
mod completions;
mod hostile_files;
mod multilingual_e2e;
mod show_the_work;
mod trust;
