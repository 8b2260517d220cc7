//! Features: the frozen backbone's hidden states pooled per word (or kept per token) and cached
//! on disk, so that training epochs never run the backbone.
//!
//! - [`cache`]: the content-addressed cache and extraction into it;
//! - [`pool`]: pooling token states to words and sentences (shared with inference);
//! - [`rows`]: one example's features in memory.

pub mod cache;
pub mod manage;
pub mod pool;
pub mod rows;

pub use cache::{
    default_cache_dir, CacheMeta, ExampleFeatures, FeatureContext, FeatureError, FeatureSpec,
    SplitFeatures, Unit, CACHE_VERSION,
};
pub use pool::{example_rows, pooled_mean, token_rows, word_rows};
pub use rows::{ExampleRows, TokenRows};
