//! Words to sub-word tokens, keeping the alignment that tags and predictions need.
//!
//! Every example is encoded from its words (pre-tokenized input), so each sub-token knows its word.
//! Padding is done per batch by the backbone (batch-longest), never by the tokenizer: `tokenizer.json`
//! files often pad to a fixed length (MiniLM's pads to 128), which would waste most of the compute.

use std::path::{Path, PathBuf};

use rayon::prelude::*;
use tokenizers::{InputSequence, Tokenizer, TruncationParams};

use crate::data::split_words;

/// Errors while loading or running a tokenizer.
#[derive(Debug, thiserror::Error)]
pub enum TokenizeError {
    /// `tokenizer.json` could not be loaded.
    #[error("tokenizer {path}: {message}")]
    Load {
        /// The file.
        path: PathBuf,
        /// What failed.
        message: String,
    },
    /// An example could not be encoded.
    #[error("{origin}: tokenizer failed: {message}")]
    Encode {
        /// The example (file:line, or a description).
        origin: String,
        /// What failed.
        message: String,
    },
}

/// One example as the backbone sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tokenized {
    /// Token ids, including special tokens, at most the model's limit.
    pub ids: Vec<u32>,
    /// Segment ids (all zero for single sentences).
    pub type_ids: Vec<u32>,
    /// For each word, the half-open range of its sub-tokens in `ids`; empty when the word was cut by
    /// truncation (or produced no token at all).
    pub word_tokens: Vec<(u32, u32)>,
    /// Whether truncation removed tokens of this example.
    pub truncated: bool,
}

impl Tokenized {
    /// The words that can have features: up to and including the last word with a token (the
    /// words after it were cut by truncation). Features, batches and model outputs cover these
    /// words only, so their size is bounded by the token limit, not by the input.
    pub fn feature_words(&self) -> usize {
        feature_words(&self.word_tokens)
    }

    /// Number of words that kept at least one token.
    pub fn kept_words(&self) -> usize {
        self.word_tokens.iter().filter(|(s, e)| e > s).count()
    }
}

/// The number of words up to and including the last one with a token (see
/// [`Tokenized::feature_words`]).
pub fn feature_words(word_tokens: &[(u32, u32)]) -> usize {
    word_tokens
        .iter()
        .rposition(|(s, e)| e > s)
        .map_or(0, |p| p + 1)
}

/// A tokenizer with batch-longest padding disabled, truncation at the model's limit.
pub struct WordTokenizer {
    inner: Tokenizer,
    max_tokens: usize,
}

/// Largest `tokenizer.json` read: 256 MiB (XLM-R's, with a 250k vocabulary, is 17 MB).
pub const MAX_TOKENIZER_BYTES: u64 = 256 << 20;

impl WordTokenizer {
    /// Default token limit when neither `tokenizer.json` nor the caller sets one (BERT's position limit).
    pub const DEFAULT_MAX_TOKENS: usize = 512;

    /// Loads `tokenizer.json`. `max_tokens` overrides the truncation length found in the file.
    pub fn from_file(path: &Path, max_tokens: Option<usize>) -> Result<Self, TokenizeError> {
        let err = |message: String| TokenizeError::Load {
            path: path.to_path_buf(),
            message,
        };
        // A regular file only, read with a bound (a link to /dev/zero or a FIFO is refused).
        let bytes =
            crate::fsutil::read_bounded(path, MAX_TOKENIZER_BYTES, crate::fsutil::Links::Follow)
                .map_err(|e| err(e.to_string()))?;
        let mut inner = Tokenizer::from_bytes(&bytes).map_err(|e| err(e.to_string()))?;
        let max_tokens = max_tokens
            .or_else(|| inner.get_truncation().map(|t| t.max_length))
            .unwrap_or(Self::DEFAULT_MAX_TOKENS);
        if max_tokens < 3 {
            return Err(err(format!("token limit {max_tokens} is too small")));
        }
        inner.with_padding(None);
        inner
            .with_truncation(Some(TruncationParams {
                max_length: max_tokens,
                ..Default::default()
            }))
            .map_err(|e| err(e.to_string()))?;
        Ok(Self { inner, max_tokens })
    }

    /// The truncation length in tokens, special tokens included.
    pub fn max_tokens(&self) -> usize {
        self.max_tokens
    }

    /// The id of the padding token (0 when the tokenizer does not name one).
    pub fn pad_id(&self) -> u32 {
        ["[PAD]", "<pad>"]
            .iter()
            .find_map(|t| self.inner.token_to_id(t))
            .unwrap_or(0)
    }

    /// Encodes one example given as words. `origin` names it in errors. Every word yields at
    /// least one token, so words beyond the token limit are cut before tokenizing: the work is
    /// bounded by the limit, not by the input.
    pub fn encode_words(
        &self,
        words: &[String],
        origin: &dyn Fn() -> String,
    ) -> Result<Tokenized, TokenizeError> {
        let kept = words.len().min(self.max_tokens);
        let input =
            InputSequence::from(words[..kept].iter().map(String::as_str).collect::<Vec<_>>());
        let enc = self
            .inner
            .encode(input, true)
            .map_err(|e| TokenizeError::Encode {
                origin: origin(),
                message: e.to_string(),
            })?;
        let mut word_tokens = vec![(0u32, 0u32); words.len()];
        for (t, w) in enc.get_word_ids().iter().enumerate() {
            if let Some(span) = w.and_then(|w| word_tokens.get_mut(w as usize)) {
                if span.1 == span.0 {
                    *span = (t as u32, t as u32 + 1);
                } else {
                    span.1 = t as u32 + 1;
                }
            }
        }
        let truncated = kept < words.len()
            || !enc.get_overflowing().is_empty()
            || word_tokens.last().is_some_and(|(s, e)| s == e) && enc.len() >= self.max_tokens;
        Ok(Tokenized {
            ids: enc.get_ids().to_vec(),
            type_ids: enc.get_type_ids().to_vec(),
            word_tokens,
            truncated,
        })
    }

    /// Encodes a raw input line: its whitespace-separated words (see [`split_words`]).
    pub fn encode_text(
        &self,
        text: &str,
        origin: &dyn Fn() -> String,
    ) -> Result<Tokenized, TokenizeError> {
        let words: Vec<String> = split_words(text)
            .into_iter()
            .map(|(s, e)| text[s..e].to_string())
            .collect();
        self.encode_words(&words, origin)
    }

    /// Encodes many examples in parallel (on the current rayon pool), keeping order.
    pub fn encode_all<'a, I>(&self, examples: I) -> Result<Vec<Tokenized>, TokenizeError>
    where
        I: IndexedParallelIterator<Item = (&'a [String], String)>,
    {
        examples
            .map(|(words, origin)| self.encode_words(words, &|| origin.clone()))
            .collect()
    }
}
