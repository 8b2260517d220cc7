//! Reading data: formats, task discovery, tokenization, the fuzz regressions and the feature cache.
//!
//! One test binary for this stage of the flow (see `tests/README.md`): each module is a former
//! `tests/NAME.rs` binary, its tests named `NAME::test`.

#[path = "../support/mod.rs"]
mod support;

mod cache_writer;
mod data_check;
mod data_checks;
mod data_formats;
mod feature_cache;
mod feature_cache_race;
mod features_compose;
mod fuzz_regressions;
mod multilingual_tokenize;
mod offsets;
mod task_discovery;
mod tokenize;
