//! Chunks of BIO / IOB1 tag sequences, with conlleval's semantics.

use serde::{Deserialize, Serialize};

/// A chunk of consecutive words with one slot type.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Span {
    /// The slot type (`X` of `B-X`/`I-X`).
    pub kind: String,
    /// Index of the first word.
    pub start: usize,
    /// Index one past the last word.
    pub end: usize,
}

/// Splits a tag into conlleval's (prefix, type); anything but `O`, `B-X`, `I-X` counts as `O`.
pub fn parse_tag(tag: &str) -> (char, &str) {
    if let Some(kind) = tag.strip_prefix("B-").filter(|k| !k.is_empty()) {
        ('B', kind)
    } else if let Some(kind) = tag.strip_prefix("I-").filter(|k| !k.is_empty()) {
        ('I', kind)
    } else {
        ('O', "")
    }
}

/// The chunks of a tag sequence, with conlleval's semantics for BIO and IOB1: a chunk starts at
/// `B-X`, or at `I-X` after `O` or after a tag of another type; it ends before `O`, `B-*`, or a tag
/// of another type. Malformed tags are treated as `O`. Never fails.
pub fn spans(tags: &[String]) -> Vec<Span> {
    let mut out = Vec::new();
    let mut open: Option<(String, usize)> = None;
    let (mut prev_tag, mut prev_kind) = ('O', "");
    for (i, tag) in tags.iter().enumerate() {
        let (tag, kind) = parse_tag(tag);
        // conlleval's endOfChunk and startOfChunk, restricted to B/I/O.
        let in_chunk = prev_tag != 'O';
        let ends = in_chunk && (tag == 'B' || tag == 'O' || prev_kind != kind);
        let starts = tag == 'B' || (tag == 'I' && (prev_tag == 'O' || prev_kind != kind));
        if ends {
            if let Some((k, s)) = open.take() {
                out.push(Span {
                    kind: k,
                    start: s,
                    end: i,
                });
            }
        }
        if starts {
            open = Some((kind.to_string(), i));
        }
        (prev_tag, prev_kind) = (tag, kind);
    }
    if let Some((kind, start)) = open {
        out.push(Span {
            kind,
            start,
            end: tags.len(),
        });
    }
    out
}
