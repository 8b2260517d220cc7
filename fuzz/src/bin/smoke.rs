//! The CI run of the fuzz targets without coverage instrumentation (so it builds with the main
//! crate's already compiled dependencies in a minute, not a quarter of an hour): every seed and
//! regression input of every target, then `N` inputs per target made from them by seeded random
//! mutations (byte flips, insertions, deletions, duplications, splices of two inputs). The heap
//! limit of the fuzz build holds here too. Coverage-guided runs are `fuzz/run.sh`.
//!
//! Usage: smoke [N] (default 20000). Exits non-zero on the first panic or limit hit (the input is
//! written to `fuzz/artifacts/smoke-TARGET` first).

use std::path::{Path, PathBuf};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn inputs(dir: &Path) -> Vec<Vec<u8>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files.iter().filter_map(|p| std::fs::read(p).ok()).collect()
}

fn mutate(rng: &mut ChaCha8Rng, pool: &[Vec<u8>]) -> Vec<u8> {
    let mut x = pool[rng.random_range(0..pool.len())].clone();
    for _ in 0..rng.random_range(1..=8) {
        let len = x.len();
        match rng.random_range(0..6) {
            0 if len > 0 => {
                let i = rng.random_range(0..len);
                x[i] ^= 1 << rng.random_range(0..8);
            }
            1 => {
                let i = rng.random_range(0..=len);
                let b = match rng.random_range(0..4) {
                    0 => b'\n',
                    1 => b'"',
                    2 => rng.random_range(b'0'..=b'9'),
                    _ => rng.random(),
                };
                x.insert(i, b);
            }
            2 if len > 0 => {
                let i = rng.random_range(0..len);
                let n = rng.random_range(1..=(len - i).min(16));
                x.drain(i..i + n);
            }
            3 if len > 0 => {
                let i = rng.random_range(0..len);
                let n = rng.random_range(1..=(len - i).min(64));
                let chunk: Vec<u8> = x[i..i + n].to_vec();
                let at = rng.random_range(0..=len);
                x.splice(at..at, chunk);
            }
            4 => {
                let other = &pool[rng.random_range(0..pool.len())];
                if !other.is_empty() {
                    let i = rng.random_range(0..other.len());
                    let at = rng.random_range(0..=len);
                    x.truncate(at);
                    x.extend_from_slice(&other[i..]);
                }
            }
            _ if len > 0 => {
                let i = rng.random_range(0..len);
                x[i] = [0u8, 0xff, 0x7f, 0x80, b'-', b'9'][rng.random_range(0..6)];
            }
            _ => {}
        }
    }
    x
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(20_000);
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut failed = false;
    for (name, harness) in edgetune_fuzz::TARGETS {
        let mut pool = inputs(&fuzz.join("corpus").join(name));
        pool.extend(inputs(&fuzz.join("regressions").join(name)));
        if pool.is_empty() {
            pool.push(Vec::new());
        }
        let t0 = std::time::Instant::now();
        let mut rng = ChaCha8Rng::seed_from_u64(0x5eed ^ name.len() as u64);
        let seeds = pool.len();
        for i in 0..seeds + n {
            let input = if i < seeds {
                pool[i].clone()
            } else {
                mutate(&mut rng, &pool)
            };
            let artifact = fuzz.join("artifacts").join(format!("smoke-{name}"));
            let r = std::panic::catch_unwind(|| harness(&input));
            if r.is_err() {
                let _ = std::fs::create_dir_all(artifact.parent().unwrap_or(fuzz));
                let _ = std::fs::write(&artifact, &input);
                eprintln!(
                    "{name}: input {i} panicked; written to {}",
                    artifact.display()
                );
                failed = true;
                break;
            }
        }
        println!(
            "{name}: {seeds} seed and regression inputs, {n} mutated inputs, {:.1} s",
            t0.elapsed().as_secs_f64()
        );
    }
    if failed {
        std::process::exit(1);
    }
}
