//! The corrections journal: one JSON line per entry, appended and fsynced before the client is
//! told, so an acknowledged correction survives a crash.
//!
//! Entries: `{"seq", "time", "correct": Correction}` and `{"seq", "time", "forget": SEQ}`. Each is
//! written with one `write` on a file opened for appending, then `fdatasync`. A crash can only
//! leave the entry in flight half-written, as the last line; opening the journal drops such a
//! tail (it was never acknowledged) and says so. A damaged line before the last one is an error
//! naming the file and line.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::correction::Correction;
use super::error::ServeError;

/// Largest journal read (a correction is a few hundred bytes: millions of them).
pub const MAX_JOURNAL_BYTES: u64 = 1 << 30;

/// One journal line.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    seq: u64,
    time: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    correct: Option<Correction>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    forget: Option<u64>,
}

/// The journal, open for appending, with its live corrections in memory.
pub struct Journal {
    path: PathBuf,
    file: File,
    next_seq: u64,
    live: Vec<(u64, Correction)>,
    /// Corrections appended since [`Journal::mark_retrained`].
    pending: usize,
}

impl Journal {
    /// Opens (or creates) the journal at `path` and replays it. Returns the journal and a warning
    /// when a torn last entry was dropped.
    pub fn open(path: &Path) -> Result<(Self, Option<String>), ServeError> {
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)
            .map_err(ServeError::io(path))?;
        let len = file.metadata().map_err(ServeError::io(path))?.len();
        if len > MAX_JOURNAL_BYTES {
            return Err(ServeError::Corrupt {
                path: path.into(),
                message: format!("{len} bytes, over the limit of {MAX_JOURNAL_BYTES}"),
            });
        }
        let mut bytes = Vec::with_capacity(len as usize);
        file.read_to_end(&mut bytes).map_err(ServeError::io(path))?;
        let mut live: Vec<(u64, Correction)> = Vec::new();
        let mut next_seq = 1;
        let mut good_end = 0usize;
        let mut warning = None;
        let mut start = 0usize;
        let mut number = 0usize;
        while start < bytes.len() {
            number += 1;
            let end = bytes[start..]
                .iter()
                .position(|&b| b == b'\n')
                .map(|i| start + i);
            let line = &bytes[start..end.unwrap_or(bytes.len())];
            let is_last = end.is_none_or(|e| e + 1 >= bytes.len());
            let parsed = serde_json::from_slice::<Entry>(line)
                .map_err(|e| e.to_string())
                .and_then(|entry| match (&entry.correct, entry.forget) {
                    (Some(_), None) | (None, Some(_)) => Ok(entry),
                    _ => Err("an entry has either \"correct\" or \"forget\"".to_string()),
                });
            match (parsed, end) {
                (Ok(entry), Some(e)) => {
                    next_seq = next_seq.max(entry.seq + 1);
                    match (entry.correct, entry.forget) {
                        (Some(c), _) => live.push((entry.seq, c)),
                        (None, Some(seq)) => live.retain(|(s, _)| *s != seq),
                        (None, None) => {}
                    }
                    good_end = e + 1;
                    start = e + 1;
                }
                (result, _) if is_last => {
                    let why = match result {
                        Err(e) => e,
                        Ok(_) => "no line end".to_string(),
                    };
                    warning = Some(format!(
                        "{}:{number}: dropped an incomplete last entry ({} bytes: {why}); it was never \
                         acknowledged",
                        path.display(),
                        bytes.len() - start
                    ));
                    break;
                }
                (Err(e), _) => {
                    return Err(ServeError::Corrupt {
                        path: PathBuf::from(format!("{}:{number}", path.display())),
                        message: format!("damaged journal entry: {e}"),
                    })
                }
                (Ok(_), None) => unreachable!("an entry without a line end is the last one"),
            }
        }
        if good_end < bytes.len() {
            file.set_len(good_end as u64)
                .map_err(ServeError::io(path))?;
            file.sync_all().map_err(ServeError::io(path))?;
        }
        Ok((
            Self {
                path: path.to_path_buf(),
                file,
                next_seq,
                live,
                pending: 0,
            },
            warning,
        ))
    }

    /// The journal's file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn append(&mut self, mut entry: Entry) -> Result<u64, ServeError> {
        entry.seq = self.next_seq;
        entry.time = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        let mut line = serde_json::to_vec(&entry).map_err(|e| ServeError::Corrupt {
            path: self.path.clone(),
            message: format!("cannot encode an entry: {e}"),
        })?;
        line.push(b'\n');
        self.file
            .write_all(&line)
            .map_err(ServeError::io(&self.path))?;
        self.file.sync_data().map_err(ServeError::io(&self.path))?;
        self.next_seq += 1;
        Ok(entry.seq)
    }

    /// Appends a correction; returns its number once it is on disk.
    pub fn add(&mut self, correction: Correction) -> Result<u64, ServeError> {
        let seq = self.append(Entry {
            seq: 0,
            time: 0.0,
            correct: Some(correction.clone()),
            forget: None,
        })?;
        self.live.push((seq, correction));
        self.pending += 1;
        Ok(seq)
    }

    /// Withdraws correction `seq`; false when there is no live correction with that number.
    pub fn forget(&mut self, seq: u64) -> Result<bool, ServeError> {
        if !self.live.iter().any(|(s, _)| *s == seq) {
            return Ok(false);
        }
        self.append(Entry {
            seq: 0,
            time: 0.0,
            correct: None,
            forget: Some(seq),
        })?;
        self.live.retain(|(s, _)| *s != seq);
        Ok(true)
    }

    /// The live corrections (not withdrawn), oldest first, with their numbers.
    pub fn live(&self) -> &[(u64, Correction)] {
        &self.live
    }

    /// Corrections added since the last [`mark_retrained`](Self::mark_retrained).
    pub fn pending(&self) -> usize {
        self.pending
    }

    /// A retrain has taken every correction so far.
    pub fn mark_retrained(&mut self) {
        self.pending = 0;
    }

    /// The number of the last entry written (0 for an empty journal).
    pub fn last_seq(&self) -> u64 {
        self.next_seq - 1
    }

    /// Counts as pending the live corrections numbered after `seq` (those the serving model was
    /// not trained on), so that `--retrain-every` counts across restarts.
    pub fn set_trained_through(&mut self, seq: u64) {
        self.pending = self.live.iter().filter(|(s, _)| *s > seq).count();
    }

    /// Flushes the file to disk (every entry already is; for shutdown).
    pub fn sync(&self) -> Result<(), ServeError> {
        self.file.sync_all().map_err(ServeError::io(&self.path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Labels;
    use crate::serve::correction::Source;

    fn correction(text: &str) -> Correction {
        let mut labels = Labels::default();
        labels.sentence.insert("intent".into(), "turn_on".into());
        Correction {
            text: text.into(),
            words: text.split(' ').map(str::to_string).collect(),
            labels,
            given: vec!["intent".into()],
            source: Source::Client,
        }
    }

    #[test]
    fn replays_and_drops_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.jsonl");
        {
            let (mut j, w) = Journal::open(&path).unwrap();
            assert!(w.is_none());
            assert_eq!(j.add(correction("a b")).unwrap(), 1);
            assert_eq!(j.add(correction("c")).unwrap(), 2);
            assert!(j.forget(1).unwrap());
            assert!(!j.forget(9).unwrap());
        }
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(br#"{"seq":4,"time":1.0,"correct":{"te"#)
            .unwrap();
        drop(f);
        let (mut j, w) = Journal::open(&path).unwrap();
        assert!(w
            .unwrap()
            .contains("journal.jsonl:4: dropped an incomplete last entry"));
        assert_eq!(j.live().len(), 1);
        assert_eq!(j.live()[0].1.text, "c");
        assert_eq!(j.add(correction("d")).unwrap(), 4);
        let (j2, w) = Journal::open(&path).unwrap();
        assert!(w.is_none());
        assert_eq!(
            j2.live().iter().map(|(s, _)| *s).collect::<Vec<_>>(),
            [2, 4]
        );
        drop(j);
    }

    #[test]
    fn a_damaged_middle_line_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.jsonl");
        std::fs::write(&path, "garbage\n{\"seq\":1,\"time\":0,\"forget\":3}\n").unwrap();
        let err = Journal::open(&path).err().unwrap().to_string();
        assert!(
            err.contains("journal.jsonl:1: damaged journal entry"),
            "{err}"
        );
    }
}
