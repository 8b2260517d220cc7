//! The feature cache: the frozen backbone runs once per (model, tokenizer, settings, split text), and
//! training epochs read only the cache.
//!
//! A cache entry is a directory named by the SHA-256 of everything its content depends on, so a stale
//! entry is never reused: a changed model, tokenizer, layer choice or text gives another key. It is
//! written under a temporary name and renamed when complete, so a killed extraction leaves nothing
//! that could be mistaken for a finished entry. Layout:
//! - `meta.json`: [`CacheMeta`];
//! - `pooled.f32`: `[examples, hidden]` mean-pooled last hidden state (the sentence embedding);
//! - `states.f16`: for each example, `[rows, states, hidden]` in f16, rows being words (sub-tokens
//!   mean-pooled per word) or tokens, examples one after another.
//!
//! A composed entry ([`FeatureContext::compose`]) is the concatenation of other entries (a split
//! with a few examples appended): its `meta.json` lists their keys in `parts` and it has no data
//! files of its own, so only the appended examples are ever extracted.
//!
//! Extraction streams: batches are sorted by length (about twice the throughput of unsorted
//! batches), each batch's states are written at their final offsets, and only one batch is held in
//! memory. Reading is by positioned reads, so memory stays bounded by the batch, not the dataset.

use std::fs::{self, File};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use half::f16;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::backbone::{Backbone, BackboneError, ModelFiles, SessionOptions};
use crate::data::{Example, Split};
use crate::fsutil;
use crate::progress::Progress;
use crate::tokenize::{TokenizeError, Tokenized, WordTokenizer};

use super::pool::{pooled_mean, word_rows};

/// Version of the cache layout; part of every key.
pub const CACHE_VERSION: u32 = 2;

/// Errors of feature extraction and the cache.
#[derive(Debug, thiserror::Error)]
pub enum FeatureError {
    #[error(transparent)]
    Backbone(#[from] BackboneError),
    #[error(transparent)]
    Tokenize(#[from] TokenizeError),
    #[error("feature cache {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("feature cache {path}: {message}")]
    Corrupt { path: PathBuf, message: String },
}

fn io_err(path: &Path) -> impl Fn(io::Error) -> FeatureError + '_ {
    move |source| FeatureError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// What one row of cached states stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Unit {
    /// One row per word: the mean of the word's sub-token states (what the heads of a frozen backbone read).
    Words,
    /// One row per sub-token, special tokens included (what unfrozen top layers read).
    Tokens,
}

/// Which features to cache.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeatureSpec {
    /// Hidden states to store (0 = embeddings, L = last layer), in this order.
    pub states: Vec<usize>,
    /// Rows per word or per token.
    pub unit: Unit,
}

/// The cache entry's description, `meta.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CacheMeta {
    pub version: u32,
    pub key: String,
    pub examples: usize,
    pub hidden: usize,
    pub spec: FeatureSpec,
    pub max_tokens: usize,
    /// Rows stored per example.
    pub rows: Vec<u32>,
    /// Per example, per word: its sub-token range (empty if the word was truncated away).
    pub word_tokens: Vec<Vec<(u32, u32)>>,
    /// Indices of examples whose tokens were truncated at `max_tokens`.
    pub truncated: Vec<usize>,
    /// Tokens per example (special tokens included).
    pub tokens: Vec<u32>,
    /// CRC-32 of each example's stored states (checked on every read: bit rot on an SD card is an
    /// error, never silently different features).
    pub checksums: Vec<u32>,
    /// CRC-32 of `pooled.f32` (0 for a composed entry: each part checks its own).
    pub pooled_checksum: u32,
    /// For a composed entry: the keys of the entries it concatenates, in order (their data files
    /// hold its states); empty for an entry with its own data files.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parts: Vec<String>,
}

/// The cached features of one split, open for reading.
pub struct SplitFeatures {
    pub meta: CacheMeta,
    pub dir: PathBuf,
    /// Per example: the data file holding its states and its offset there, in f16 values.
    locations: Vec<(usize, u64)>,
    /// The data files (`states.f16` of the entry, or of each part of a composed entry).
    files: Vec<(PathBuf, File)>,
    /// f16 values in all data files.
    values: u64,
    pooled: Vec<f32>,
}

impl SplitFeatures {
    /// Number of examples.
    pub fn len(&self) -> usize {
        self.meta.examples
    }

    /// Whether the split is empty.
    pub fn is_empty(&self) -> bool {
        self.meta.examples == 0
    }

    /// Values per row: states × hidden.
    pub fn row_width(&self) -> usize {
        self.meta.spec.states.len() * self.meta.hidden
    }

    /// The pooled sentence embedding of example `i`.
    pub fn pooled(&self, i: usize) -> &[f32] {
        &self.pooled[i * self.meta.hidden..(i + 1) * self.meta.hidden]
    }

    /// Reads example `i`'s rows (`rows × states × hidden` values) into `out`, converted to f32.
    pub fn read_rows(
        &self,
        i: usize,
        out: &mut Vec<f32>,
        scratch: &mut Vec<f16>,
    ) -> Result<(), FeatureError> {
        let n = self.meta.rows[i] as usize * self.row_width();
        scratch.resize(n, f16::ZERO);
        let (file, offset) = self.locations[i];
        let (path, states) = &self.files[file];
        let bytes: &mut [u8] = bytemuck::cast_slice_mut(scratch.as_mut_slice());
        states
            .read_exact_at(bytes, offset * 2)
            .map_err(io_err(path))?;
        if crc32fast::hash(bytes) != self.meta.checksums[i] {
            return Err(FeatureError::Corrupt {
                path: path.clone(),
                message: format!(
                    "the states of example {} do not match their checksum (the file is damaged); \
                     remove the folder {} and run again to rebuild it",
                    i + 1,
                    self.dir.display()
                ),
            });
        }
        out.clear();
        out.extend(scratch.iter().map(|v| v.to_f32()));
        Ok(())
    }

    /// Size of the features on disk (of the parts, for a composed entry), in bytes.
    pub fn disk_bytes(&self) -> u64 {
        self.values * 2 + (self.pooled.len() as u64 * 4)
    }
}

/// Everything extraction needs, with the backbone loaded only on a cache miss.
pub struct FeatureContext {
    pub files: ModelFiles,
    pub tokenizer: WordTokenizer,
    pub session: SessionOptions,
    pub cache_dir: PathBuf,
    pub batch_size: usize,
    /// Show the extraction's progress on stderr (a bar on a terminal, lines otherwise).
    pub progress: bool,
    model_sha: String,
    tokenizer_sha: String,
    layers: usize,
    hidden: usize,
    backbone: Option<Backbone>,
}

impl FeatureContext {
    /// Prepares a context: hashes the model and tokenizer (the cache key), counts the layers.
    pub fn new(
        files: ModelFiles,
        max_tokens: Option<usize>,
        session: SessionOptions,
        cache_dir: PathBuf,
    ) -> Result<Self, FeatureError> {
        let tokenizer = WordTokenizer::from_file(&files.tokenizer, max_tokens)?;
        let model_sha = fsutil::sha256_file(&files.onnx).map_err(io_err(&files.onnx))?;
        let tokenizer_sha =
            fsutil::sha256_file(&files.tokenizer).map_err(io_err(&files.tokenizer))?;
        let model = crate::graph::load_model(&files.onnx).map_err(|e| BackboneError::Model {
            path: files.onnx.clone(),
            message: e.to_string(),
        })?;
        let layers = crate::graph::count_layers(&model).map_err(|e| BackboneError::Model {
            path: files.onnx.clone(),
            message: e.to_string(),
        })?;
        let hidden = declared_hidden(&model);
        Ok(Self {
            hidden,
            files,
            tokenizer,
            session,
            cache_dir,
            batch_size: 32,
            progress: true,
            model_sha,
            tokenizer_sha,
            layers,
            backbone: None,
        })
    }

    /// Number of transformer layers of the backbone.
    pub fn layers(&self) -> usize {
        self.layers
    }

    /// Hidden size of the backbone, as declared by the graph (0 if it does not say).
    pub fn hidden(&self) -> usize {
        self.hidden
    }

    /// SHA-256 of the backbone's ONNX file.
    pub fn model_sha(&self) -> &str {
        &self.model_sha
    }

    /// SHA-256 of `tokenizer.json`.
    pub fn tokenizer_sha(&self) -> &str {
        &self.tokenizer_sha
    }

    /// The backbone, loaded on first use with every state `spec` needs plus the last one (for pooling).
    pub fn backbone(&mut self, spec: &FeatureSpec) -> Result<&mut Backbone, FeatureError> {
        let mut want = spec.states.clone();
        if !want.contains(&self.layers) {
            want.push(self.layers);
        }
        let reload = match &self.backbone {
            Some(b) => want.iter().any(|s| !b.states.contains(s)),
            None => true,
        };
        if reload {
            self.backbone = None;
            let b = Backbone::load(&self.files, &want, self.tokenizer.pad_id(), &self.session)?;
            self.backbone = Some(b);
        }
        Ok(self.backbone.as_mut().expect("loaded above"))
    }

    /// Frees the backbone's session (its weights and memory arena) until it is needed again, and
    /// gives the freed memory back to the system: ONNX Runtime's threads allocate in their own
    /// malloc arenas, which the training threads would not reuse, so without the trim the peak of
    /// training would add to that of extraction instead of following it.
    pub fn release_backbone(&mut self) {
        self.backbone = None;
        crate::sys::trim_heap();
    }

    /// The cache key of `split` under `spec`.
    pub fn key(&self, split: &Split, spec: &FeatureSpec) -> String {
        self.key_of(&[split], spec)
    }

    /// The cache key of the split made of `parts`' examples one after another (the same as
    /// [`key`](Self::key) of that split).
    pub fn key_of(&self, parts: &[&Split], spec: &FeatureSpec) -> String {
        let mut h = Sha256::new();
        h.update(format!("edgetune-features v{CACHE_VERSION}\n").as_bytes());
        h.update(self.model_sha.as_bytes());
        h.update(self.tokenizer_sha.as_bytes());
        h.update(serde_json::to_vec(spec).expect("spec serializes"));
        h.update(self.tokenizer.max_tokens().to_le_bytes());
        for ex in parts.iter().flat_map(|p| &p.examples) {
            for w in &ex.words {
                h.update((w.len() as u64).to_le_bytes());
                h.update(w.as_bytes());
            }
            h.update([0xff]);
        }
        hex::encode(h.finalize())
    }

    /// Opens the cached features of `split`, extracting them first when no valid entry exists.
    pub fn load_or_extract(
        &mut self,
        split: &Split,
        spec: &FeatureSpec,
    ) -> Result<SplitFeatures, FeatureError> {
        let key = self.key(split, spec);
        let dir = self.cache_dir.join(&key);
        if dir.join("meta.json").is_file() {
            match open_entry(&self.cache_dir, &key) {
                Ok(f) => return Ok(f),
                Err(e) => {
                    eprintln!("warning: rebuilding damaged feature cache entry: {e}");
                    let aside = temp_entry(&self.cache_dir, &key);
                    match fs::rename(&dir, &aside) {
                        Ok(()) => fs::remove_dir_all(&aside).map_err(io_err(&aside))?,
                        // Another writer moved it first.
                        Err(_) if !dir.exists() => {}
                        Err(err) => return Err(io_err(&dir)(err)),
                    }
                }
            }
        }
        self.extract(split, spec, &key)?;
        open_entry(&self.cache_dir, &key)
    }

    /// Makes the features of the split made of `parts`' examples one after another available
    /// under that split's key, extracting only parts that are not cached yet: the entry written
    /// lists the parts' keys (a part may repeat) and holds no states of its own. A later
    /// [`load_or_extract`](Self::load_or_extract) of the concatenated split opens it.
    pub fn compose(
        &mut self,
        parts: &[&Split],
        spec: &FeatureSpec,
    ) -> Result<SplitFeatures, FeatureError> {
        let key = self.key_of(parts, spec);
        if self.cache_dir.join(&key).join("meta.json").is_file() {
            if let Ok(f) = open_entry(&self.cache_dir, &key) {
                return Ok(f);
            }
        }
        let mut metas: Vec<CacheMeta> = Vec::with_capacity(parts.len());
        for part in parts {
            let f = self.load_or_extract(part, spec)?;
            if !f.meta.parts.is_empty() {
                // Parts are plain entries, so a composed entry is never more than one level deep.
                return Err(FeatureError::Corrupt {
                    path: f.dir.clone(),
                    message: "a composed entry cannot be a part of another one".into(),
                });
            }
            metas.push(f.meta);
        }
        let first = metas.first();
        let mut meta = CacheMeta {
            version: CACHE_VERSION,
            key: key.clone(),
            examples: 0,
            hidden: first.map_or(self.hidden, |m| m.hidden),
            spec: spec.clone(),
            max_tokens: self.tokenizer.max_tokens(),
            rows: Vec::new(),
            word_tokens: Vec::new(),
            truncated: Vec::new(),
            tokens: Vec::new(),
            checksums: Vec::new(),
            pooled_checksum: 0,
            parts: metas.iter().map(|m| m.key.clone()).collect(),
        };
        for m in &metas {
            meta.truncated
                .extend(m.truncated.iter().map(|&i| i + meta.examples));
            meta.examples += m.examples;
            meta.rows.extend_from_slice(&m.rows);
            meta.word_tokens.extend(m.word_tokens.iter().cloned());
            meta.tokens.extend_from_slice(&m.tokens);
            meta.checksums.extend_from_slice(&m.checksums);
        }
        fs::create_dir_all(&self.cache_dir).map_err(io_err(&self.cache_dir))?;
        remove_stale_temps(&self.cache_dir);
        let tmp = temp_entry(&self.cache_dir, &key);
        fs::create_dir_all(&tmp).map_err(io_err(&tmp))?;
        let meta_path = tmp.join("meta.json");
        fsutil::write_atomic(
            &meta_path,
            &serde_json::to_vec(&meta).expect("meta serializes"),
        )
        .map_err(io_err(&meta_path))?;
        publish_entry(&self.cache_dir, &tmp, &key)?;
        open_entry(&self.cache_dir, &key)
    }

    /// Tokenizes the split's words (in parallel on the current rayon pool).
    pub fn tokenize(&self, split: &Split) -> Result<Vec<Tokenized>, FeatureError> {
        use rayon::prelude::*;
        let items: Vec<(&[String], String)> = split
            .examples
            .iter()
            .map(|e| {
                (
                    e.words.as_slice(),
                    format!("{}:{}", e.origin.file.display(), e.origin.line),
                )
            })
            .collect();
        Ok(self.tokenizer.encode_all(items.into_par_iter())?)
    }

    fn extract(
        &mut self,
        split: &Split,
        spec: &FeatureSpec,
        key: &str,
    ) -> Result<(), FeatureError> {
        let toks = self.tokenize(split)?;
        let rows: Vec<u32> = toks
            .iter()
            .map(|t| match spec.unit {
                Unit::Words => t.feature_words() as u32,
                Unit::Tokens => t.ids.len() as u32,
            })
            .collect();
        let progress = self.progress;
        let batch_size = self.batch_size.max(1);
        let max_tokens = self.tokenizer.max_tokens();
        let cache_dir = self.cache_dir.clone();
        let backbone = self.backbone(spec)?;
        let hidden = backbone.hidden;
        let k = spec.states.len();
        let width = (k * hidden) as u64;
        let mut offsets = Vec::with_capacity(rows.len() + 1);
        let mut acc = 0u64;
        for r in &rows {
            offsets.push(acc);
            acc += *r as u64 * width;
        }
        let tmp = new_temp_entry(&cache_dir, key)?;
        let states_path = tmp.join("states.f16");
        let states_file = File::create(&states_path).map_err(io_err(&states_path))?;
        states_file.set_len(acc * 2).map_err(io_err(&states_path))?;
        let mut pooled = vec![0f32; toks.len() * hidden];

        // Where each requested state sits among the backbone's outputs; the last state is always there.
        let (pos, last_pos) = backbone.positions(&spec.states)?;

        let mut order: Vec<usize> = (0..toks.len()).collect();
        order.sort_by_key(|&i| (toks[i].ids.len(), i));
        let mut bar = Progress::new(
            format!("extracting {}", split.name),
            toks.len() as u64,
            "sentences",
            progress,
        );
        let mut buf: Vec<f16> = Vec::new();
        let mut checksums = vec![0u32; toks.len()];
        for chunk in order.chunks(batch_size) {
            let batch: Vec<&Tokenized> = chunk.iter().map(|&i| &toks[i]).collect();
            let out = backbone.run(&batch)?;
            for (r, &i) in chunk.iter().enumerate() {
                let t = &toks[i];
                pooled[i * hidden..(i + 1) * hidden].copy_from_slice(&pooled_mean(
                    &out,
                    r,
                    t.ids.len(),
                    last_pos,
                ));
                buf.clear();
                match spec.unit {
                    Unit::Tokens => {
                        for tok in 0..t.ids.len() {
                            for &sp in &pos {
                                buf.extend(
                                    out.states[sp]
                                        .slice(ndarray::s![r, tok, ..])
                                        .iter()
                                        .map(|&v| f16::from_f32(v)),
                                );
                            }
                        }
                    }
                    Unit::Words => {
                        buf.extend(word_rows(&out, r, t, &pos).0.into_iter().map(f16::from_f32))
                    }
                }
                checksums[i] = crc32fast::hash(bytemuck::cast_slice(&buf));
                states_file
                    .write_all_at(bytemuck::cast_slice(&buf), offsets[i] * 2)
                    .map_err(io_err(&states_path))?;
            }
            bar.inc(chunk.len() as u64);
        }
        bar.finish();
        states_file.sync_all().map_err(io_err(&states_path))?;
        drop(states_file);
        let meta = entry_meta(
            key, spec, hidden, max_tokens, &toks, rows, checksums, &pooled,
        );
        commit_entry(&cache_dir, &tmp, &pooled, &meta)
    }

    /// Writes the cache entry of `split` under `spec` from features the caller computes instead
    /// of the backbone (a stand-in backbone in tests, features made elsewhere), in the layout and
    /// with the checksums extraction writes, under a temporary name renamed when complete.
    /// `features(example, tokenized)` gives one example's [`ExampleFeatures`] of width `hidden`,
    /// with as many rows as `spec.unit` asks of its tokenization
    /// ([`Tokenized::feature_words`] words, or every token). A later
    /// [`load_or_extract`](Self::load_or_extract) of the split opens the entry without running
    /// the backbone. An example whose features have another size is an error naming it.
    pub fn write_entry(
        &self,
        split: &Split,
        spec: &FeatureSpec,
        hidden: usize,
        mut features: impl FnMut(&Example, &Tokenized) -> ExampleFeatures,
    ) -> Result<SplitFeatures, FeatureError> {
        let key = self.key(split, spec);
        let toks = self.tokenize(split)?;
        let tmp = new_temp_entry(&self.cache_dir, &key)?;
        let states_path = tmp.join("states.f16");
        let mut states: Vec<f16> = Vec::new();
        let mut pooled: Vec<f32> = Vec::with_capacity(toks.len() * hidden);
        let mut rows = Vec::with_capacity(toks.len());
        let mut checksums = Vec::with_capacity(toks.len());
        for (e, t) in split.examples.iter().zip(&toks) {
            let f = features(e, t);
            let n = match spec.unit {
                Unit::Words => t.feature_words(),
                Unit::Tokens => t.ids.len(),
            };
            let width = spec.states.len() * hidden;
            if f.states.len() != n * width || f.pooled.len() != hidden {
                let _ = fs::remove_dir_all(&tmp);
                return Err(FeatureError::Corrupt {
                    path: self.cache_dir.join(&key),
                    message: format!(
                        "{}:{}: {} state values and {} pooled, expected {n} rows of {width} and {hidden}",
                        e.origin.file.display(),
                        e.origin.line,
                        f.states.len(),
                        f.pooled.len()
                    ),
                });
            }
            let start = states.len();
            states.extend(f.states.iter().map(|&v| f16::from_f32(v)));
            checksums.push(crc32fast::hash(bytemuck::cast_slice(&states[start..])));
            pooled.extend_from_slice(&f.pooled);
            rows.push(n as u32);
        }
        fsutil::write_atomic(&states_path, bytemuck::cast_slice(&states))
            .map_err(io_err(&states_path))?;
        let max_tokens = self.tokenizer.max_tokens();
        let meta = entry_meta(
            &key, spec, hidden, max_tokens, &toks, rows, checksums, &pooled,
        );
        commit_entry(&self.cache_dir, &tmp, &pooled, &meta)?;
        open_entry(&self.cache_dir, &key)
    }
}

/// One example's features for [`FeatureContext::write_entry`].
#[derive(Debug, Clone, Default)]
pub struct ExampleFeatures {
    /// `[rows, states, hidden]`, row-major: per row (word or token) the spec's states in order.
    pub states: Vec<f32>,
    /// The sentence vector (`hidden` values), stored in `pooled.f32`.
    pub pooled: Vec<f32>,
}

/// A fresh, empty temporary entry folder ([`temp_entry`]) in `cache_dir`, stale ones removed
/// first.
fn new_temp_entry(cache_dir: &Path, key: &str) -> Result<PathBuf, FeatureError> {
    fs::create_dir_all(cache_dir).map_err(io_err(cache_dir))?;
    remove_stale_temps(cache_dir);
    let tmp = temp_entry(cache_dir, key);
    fs::create_dir_all(&tmp).map_err(io_err(&tmp))?;
    Ok(tmp)
}

/// The `meta.json` of a plain entry of `toks` (`rows` rows each, `checksums` of their states).
#[allow(clippy::too_many_arguments)]
fn entry_meta(
    key: &str,
    spec: &FeatureSpec,
    hidden: usize,
    max_tokens: usize,
    toks: &[Tokenized],
    rows: Vec<u32>,
    checksums: Vec<u32>,
    pooled: &[f32],
) -> CacheMeta {
    CacheMeta {
        version: CACHE_VERSION,
        key: key.to_string(),
        examples: toks.len(),
        hidden,
        spec: spec.clone(),
        max_tokens,
        rows,
        word_tokens: toks.iter().map(|t| t.word_tokens.clone()).collect(),
        truncated: toks
            .iter()
            .enumerate()
            .filter(|(_, t)| t.truncated)
            .map(|(i, _)| i)
            .collect(),
        tokens: toks.iter().map(|t| t.ids.len() as u32).collect(),
        checksums,
        pooled_checksum: crc32fast::hash(bytemuck::cast_slice(pooled)),
        parts: Vec::new(),
    }
}

/// Writes `pooled.f32` and `meta.json` into the temporary entry `tmp` (its `states.f16` written)
/// and publishes it as the entry `meta.key` ([`publish_entry`]).
fn commit_entry(
    cache_dir: &Path,
    tmp: &Path,
    pooled: &[f32],
    meta: &CacheMeta,
) -> Result<(), FeatureError> {
    let pooled_path = tmp.join("pooled.f32");
    fsutil::write_atomic(&pooled_path, bytemuck::cast_slice(pooled))
        .map_err(io_err(&pooled_path))?;
    let meta_path = tmp.join("meta.json");
    fsutil::write_atomic(
        &meta_path,
        &serde_json::to_vec(meta).expect("meta serializes"),
    )
    .map_err(io_err(&meta_path))?;
    publish_entry(cache_dir, tmp, &meta.key)
}

/// A temporary folder in `cache_dir` for writing the entry `key`: `.{key}.{pid}-{n}.tmp`, unique
/// to this process and call (two threads of one process may write the same key).
fn temp_entry(cache_dir: &Path, key: &str) -> PathBuf {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    cache_dir.join(format!(".{key}.{}-{n}.tmp", std::process::id()))
}

/// Moves the complete entry written in `tmp` into place as `key` in one rename. When another
/// writer got there first, its entry is kept if it opens (the contents of an entry depend only on
/// its key) and this one is discarded; a damaged entry in the way is first renamed aside (so no
/// reader ever sees a half-deleted entry) and then removed.
fn publish_entry(cache_dir: &Path, tmp: &Path, key: &str) -> Result<(), FeatureError> {
    let dest = cache_dir.join(key);
    for _ in 0..3 {
        if fs::rename(tmp, &dest).is_ok() {
            return fsutil::sync_dir(cache_dir).map_err(io_err(cache_dir));
        }
        if !dest.exists() {
            // The rename failed for another reason than a winner in place: report it.
            return fs::rename(tmp, &dest)
                .and_then(|()| fsutil::sync_dir(cache_dir))
                .map_err(io_err(&dest));
        }
        if open_entry(cache_dir, key).is_ok() {
            let _ = fs::remove_dir_all(tmp);
            return Ok(());
        }
        let aside = temp_entry(cache_dir, key);
        if fs::rename(&dest, &aside).is_ok() {
            let _ = fs::remove_dir_all(&aside);
        }
    }
    Err(FeatureError::Corrupt {
        path: dest,
        message: "another process keeps replacing this entry with a damaged one".into(),
    })
}

/// Removes the temporary entries (`.{key}.{pid}-{n}.tmp`) of extractions whose process no longer runs
/// (killed, or stopped by a full disk); an entry of a running process is left alone.
pub fn remove_stale_temps(cache_dir: &Path) {
    let Ok(entries) = fs::read_dir(cache_dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix('.')
            .and_then(|n| n.strip_suffix(".tmp"))
            .and_then(|n| n.rsplit_once('.'))
            .and_then(|(_, id)| id.split('-').next()?.parse::<i32>().ok())
        else {
            continue;
        };
        if pid != std::process::id() as i32 && !process_alive(pid) {
            let _ = fs::remove_dir_all(e.path());
        }
    }
}

/// Whether a process with this id exists.
fn process_alive(pid: i32) -> bool {
    if pid <= 0 {
        return false;
    }
    // SAFETY: kill with signal 0 only checks for the process; nothing is sent.
    let r = unsafe { libc::kill(pid, 0) };
    r == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}

/// Marks the entry `dir` as used now (its folder's modification time: `cache list` shows it and
/// `cache prune` removes the least recently used first); failures are ignored (a read-only cache
/// still reads).
fn touch(dir: &Path) {
    let _ = fs::File::open(dir).and_then(|f| f.set_modified(std::time::SystemTime::now()));
}

fn open_entry(cache_dir: &Path, key: &str) -> Result<SplitFeatures, FeatureError> {
    let dir = cache_dir.join(key);
    touch(&dir);
    let corrupt = |message: String| FeatureError::Corrupt {
        path: dir.clone(),
        message,
    };
    let meta = read_meta(&dir, key)?;
    let width = (meta.spec.states.len() * meta.hidden) as u64;
    // Each data file with the metadata describing its examples: the entry's own, or its parts'.
    let mut sources: Vec<(PathBuf, CacheMeta)> = Vec::new();
    if meta.parts.is_empty() {
        sources.push((dir.clone(), meta.clone()));
    } else {
        for part in &meta.parts {
            let pdir = cache_dir.join(part);
            let pmeta = read_meta(&pdir, part)?;
            if !pmeta.parts.is_empty() || pmeta.hidden != meta.hidden || pmeta.spec != meta.spec {
                return Err(corrupt(format!("part {part} does not fit this entry")));
            }
            sources.push((pdir, pmeta));
        }
        if sources.iter().map(|(_, m)| m.examples).sum::<usize>() != meta.examples {
            return Err(corrupt("its parts do not add up to its examples".into()));
        }
    }
    let mut locations = Vec::with_capacity(meta.examples);
    let mut files = Vec::with_capacity(sources.len());
    let mut pooled = Vec::with_capacity(meta.examples * meta.hidden);
    let mut values = 0u64;
    let mut row = 0usize;
    for (f, (sdir, smeta)) in sources.iter().enumerate() {
        let mut acc = 0u64;
        for (r, c) in smeta.rows.iter().zip(&smeta.checksums) {
            if meta.rows.get(row) != Some(r) || meta.checksums.get(row) != Some(c) {
                return Err(corrupt(format!(
                    "rows of part {} differ from the entry's",
                    smeta.key
                )));
            }
            locations.push((f, acc));
            acc += *r as u64 * width;
            row += 1;
        }
        let states_path = sdir.join("states.f16");
        let states = File::open(&states_path).map_err(io_err(&states_path))?;
        let len = states.metadata().map_err(io_err(&states_path))?.len();
        if len != acc * 2 {
            return Err(FeatureError::Corrupt {
                path: sdir.clone(),
                message: format!("states.f16 has {len} bytes, expected {}", acc * 2),
            });
        }
        values += acc;
        files.push((states_path, states));
        let pooled_path = sdir.join("pooled.f32");
        let bytes = fs::read(&pooled_path).map_err(io_err(&pooled_path))?;
        if bytes.len() != smeta.examples * smeta.hidden * 4 {
            return Err(FeatureError::Corrupt {
                path: sdir.clone(),
                message: format!(
                    "pooled.f32 has {} bytes, expected {}",
                    bytes.len(),
                    smeta.examples * smeta.hidden * 4
                ),
            });
        }
        if crc32fast::hash(&bytes) != smeta.pooled_checksum {
            return Err(FeatureError::Corrupt {
                path: sdir.clone(),
                message: "pooled.f32 does not match its checksum".into(),
            });
        }
        pooled.extend(
            bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])),
        );
    }
    Ok(SplitFeatures {
        meta,
        dir,
        locations,
        files,
        values,
        pooled,
    })
}

/// Reads and checks `meta.json` of the entry `key` in `dir`.
fn read_meta(dir: &Path, key: &str) -> Result<CacheMeta, FeatureError> {
    let meta_path = dir.join("meta.json");
    let meta: CacheMeta = serde_json::from_slice(
        &fs::read(&meta_path).map_err(io_err(&meta_path))?,
    )
    .map_err(|e| FeatureError::Corrupt {
        path: dir.to_path_buf(),
        message: format!("meta.json: {e}"),
    })?;
    if meta.version != CACHE_VERSION
        || meta.key != key
        || meta.rows.len() != meta.examples
        || meta.checksums.len() != meta.examples
        || meta.word_tokens.len() != meta.examples
    {
        return Err(FeatureError::Corrupt {
            path: dir.to_path_buf(),
            message: "meta.json does not match its key".into(),
        });
    }
    Ok(meta)
}

/// The hidden size from the graph's `last_hidden_state` output shape, else from the size of its
/// first LayerNormalization's scale.
fn declared_hidden(model: &crate::graph::proto::ModelProto) -> usize {
    let Some(g) = model.graph.as_ref() else {
        return 0;
    };
    let from_output = g
        .output
        .iter()
        .find(|o| o.name.as_deref() == Some("last_hidden_state"))
        .and_then(|o| {
            use crate::graph::proto::{
                tensor_shape_proto::dimension::Value, type_proto::Value as T,
            };
            match o.r#type.as_ref()?.value.as_ref()? {
                T::TensorType(t) => match t.shape.as_ref()?.dim.get(2)?.value.as_ref()? {
                    Value::DimValue(v) => Some(*v as usize),
                    _ => None,
                },
                _ => None,
            }
        });
    from_output
        .or_else(|| {
            let ln = g
                .node
                .iter()
                .find(|n| n.op_type.as_deref() == Some("LayerNormalization"))?;
            let scale = ln.input.get(1)?;
            let init = g
                .initializer
                .iter()
                .find(|t| t.name.as_deref() == Some(scale.as_str()))?;
            init.dims.first().map(|&d| d as usize)
        })
        .unwrap_or(0)
}

/// The default cache directory: `$EDGETUNE_CACHE`, else `$XDG_CACHE_HOME/edgetune`, else
/// `~/.cache/edgetune`, else `.edgetune-cache` in the working directory.
pub fn default_cache_dir() -> PathBuf {
    if let Some(p) = std::env::var_os("EDGETUNE_CACHE").filter(|v| !v.is_empty()) {
        return PathBuf::from(p);
    }
    if let Some(p) = std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(p).join("edgetune");
    }
    if let Some(p) = std::env::var_os("HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(p).join(".cache").join("edgetune");
    }
    PathBuf::from(".edgetune-cache")
}
