//! Every fuzz target in one binary: `EDGETUNE_FUZZ_TARGET` names the harness
//! (`edgetune_fuzz::TARGETS`), e.g. `EDGETUNE_FUZZ_TARGET=data_jsonl cargo fuzz run parsers`.
#![no_main]

use std::sync::OnceLock;

static HARNESS: OnceLock<fn(&[u8])> = OnceLock::new();

libfuzzer_sys::fuzz_target!(
    init: {
        edgetune_fuzz::alloc::report_at_exit();
        let name = std::env::var("EDGETUNE_FUZZ_TARGET").unwrap_or_default();
        match edgetune_fuzz::harness(&name) {
            Some(f) => {
                let _ = HARNESS.set(f);
            }
            None => {
                eprintln!(
                    "set EDGETUNE_FUZZ_TARGET to one of: {}",
                    edgetune_fuzz::TARGETS.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
                );
                std::process::exit(2);
            }
        }
    },
    |data: &[u8]| {
        (HARNESS.get().expect("chosen in init"))(data);
    }
);
