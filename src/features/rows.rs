//! The features of one example in memory, as the cache stores them and the model's batches read them.

/// The features of one example, in memory: `words × states × hidden` values plus the pooled embedding.
#[derive(Debug, Clone, Default)]
pub struct ExampleRows {
    /// Row-major `[words, states, hidden]`.
    pub rows: Vec<f32>,
    /// Number of words (rows).
    pub words: usize,
    /// Per word: whether it has features (false when truncation cut it).
    pub kept: Vec<bool>,
    /// Mean-pooled last hidden state.
    pub pooled: Vec<f32>,
}

/// The cached token-level states of one example (`--unfreeze-top`): `tokens × states × hidden`
/// values (special tokens included) and each word's sub-token range.
#[derive(Debug, Clone, Default)]
pub struct TokenRows {
    /// Row-major `[tokens, states, hidden]`.
    pub rows: Vec<f32>,
    /// Number of tokens (rows).
    pub tokens: usize,
    /// Per word: its sub-token range (empty when truncation cut the word).
    pub word_tokens: Vec<(u32, u32)>,
}
