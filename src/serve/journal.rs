//! The corrections journal: one JSON line per entry, appended and fsynced before the client is
//! told, so an acknowledged correction survives a crash.
//!
//! Entries: `{"seq", "time", "correct": Correction}` and `{"seq", "time", "forget": SEQ}`. Each is
//! written with one `write` on a file opened for appending, then `fdatasync`; the correction is
//! acknowledged only after both succeeded. A crash can only leave the entry in flight
//! half-written, as the last line; opening the journal drops such a tail (it was never
//! acknowledged) and says so. A write or sync that fails (a full disk) cuts the file back to the
//! end of the last complete entry at once, and again before the next write if that cut failed,
//! so a later entry is never glued onto a torn one. A damaged line before the last one is an
//! error naming the file and line.
//!
//! The file is opened without following a link and must be a regular file; it is read back with
//! a bound on the bytes read ([`MAX_JOURNAL_BYTES`]). Corrections are refused once the journal
//! holds `max_bytes` ([`DEFAULT_MAX_JOURNAL_BYTES`]): withdrawals are still taken up to
//! [`FORGET_RESERVE`] more.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::correction::Correction;
use super::error::ServeError;
use crate::fsutil;

/// Largest journal read back at start-up (a hard bound, far above [`DEFAULT_MAX_JOURNAL_BYTES`]).
pub const MAX_JOURNAL_BYTES: u64 = 1 << 30;

/// Default of `serve --max-journal-bytes`: 64 MiB, about 200,000 corrections of a few hundred
/// bytes, read back in well under a second on a Raspberry Pi class board.
pub const DEFAULT_MAX_JOURNAL_BYTES: u64 = 64 << 20;

/// Room kept past the cap for withdrawals (`forget`), so a full journal can still be thinned.
pub const FORGET_RESERVE: u64 = 1 << 20;

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
    /// Bytes of complete entries: where the file ends when no write is in flight.
    len: u64,
    /// Lines of the file (complete entries), and the line of each live correction.
    lines: usize,
    line_of: std::collections::HashMap<u64, usize>,
    /// A failed write could not be cut back: cut to `len` before the next write.
    torn: bool,
    /// Corrections are refused once `len` reaches this.
    max_bytes: u64,
}

/// Why an entry was not journalled.
fn full_error(path: &Path, message: String) -> ServeError {
    ServeError::Full {
        path: path.to_path_buf(),
        message,
    }
}

/// Whether an I/O error means the disk (or the user's quota) is full.
pub fn is_disk_full(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT))
}

impl Journal {
    /// Opens (or creates) the journal at `path` and replays it. Returns the journal and a warning
    /// when a torn last entry was dropped.
    pub fn open(path: &Path) -> Result<(Self, Option<String>), ServeError> {
        Self::open_capped(path, DEFAULT_MAX_JOURNAL_BYTES)
    }

    /// [`open`](Self::open) with corrections refused past `max_bytes`.
    pub fn open_capped(path: &Path, max_bytes: u64) -> Result<(Self, Option<String>), ServeError> {
        let file = fsutil::open_append(path).map_err(ServeError::io(path))?;
        let bytes = fsutil::read_limited(
            file.try_clone().map_err(ServeError::io(path))?,
            MAX_JOURNAL_BYTES,
        )
        .map_err(ServeError::io(path))?;
        let mut live: Vec<(u64, Correction)> = Vec::new();
        let mut line_of = std::collections::HashMap::new();
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
                        (Some(c), _) => {
                            line_of.insert(entry.seq, number);
                            live.push((entry.seq, c))
                        }
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
                len: good_end as u64,
                lines: bytes[..good_end].iter().filter(|&&b| b == b'\n').count(),
                line_of,
                torn: false,
                max_bytes,
            },
            warning,
        ))
    }

    /// Bytes of the journal's complete entries.
    pub fn bytes(&self) -> u64 {
        self.len
    }

    /// The cap on the journal's bytes past which corrections are refused.
    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    /// Cuts the file back to its complete entries after a failed write; `torn` stays set when the
    /// cut itself fails (tried again before the next write).
    fn cut_back(&mut self) {
        self.torn = self.file.set_len(self.len).is_err() || self.file.sync_data().is_err();
    }

    /// Writes one line and syncs it; on any failure the file is cut back and the error returned
    /// (the entry is not journalled).
    fn write_line(&mut self, line: &[u8]) -> Result<(), ServeError> {
        if self.torn {
            self.cut_back();
            if self.torn {
                return Err(full_error(
                    &self.path,
                    "an earlier write failed and its partial entry cannot be removed yet (disk full?)"
                        .into(),
                ));
            }
        }
        let result = self
            .file
            .write_all(line)
            .and_then(|()| self.file.sync_data());
        if let Err(e) = result {
            self.cut_back();
            return Err(if is_disk_full(&e) {
                full_error(
                    &self.path,
                    format!("the disk is full ({e}); the correction was not journalled"),
                )
            } else {
                ServeError::io(&self.path)(e)
            });
        }
        self.len += line.len() as u64;
        self.lines += 1;
        Ok(())
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
        let cap = match entry.correct {
            Some(_) => self.max_bytes,
            None => self.max_bytes.saturating_add(FORGET_RESERVE),
        };
        if self.len + line.len() as u64 > cap {
            return Err(full_error(
                &self.path,
                format!(
                    "the journal is full ({} bytes; --max-journal-bytes {}): withdraw corrections \
                     (forget) or raise the cap",
                    self.len, self.max_bytes
                ),
            ));
        }
        self.write_line(&line)?;
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
        self.line_of.insert(seq, self.lines);
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

    /// The journal line (1-based) of live correction `seq`.
    pub fn line_of(&self, seq: u64) -> Option<usize> {
        self.line_of.get(&seq).copied()
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
    use std::fs::OpenOptions;

    pub(super) fn correction(text: &str) -> Correction {
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

/// The disk-full tests: a small tmpfs (needs root, as the test machines run).
#[cfg(test)]
mod full_disk {
    use super::tests::correction;
    use super::*;

    /// A tmpfs of `size` mounted on a fresh folder, unmounted when dropped.
    struct Tmpfs(tempfile::TempDir);

    impl Tmpfs {
        fn mount(size: &str) -> Self {
            let dir = tempfile::tempdir().unwrap();
            let ok = std::process::Command::new("mount")
                .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
                .arg(dir.path())
                .status()
                .is_ok_and(|s| s.success());
            assert!(
                ok,
                "mounting a tmpfs needs root (the disk-full tests make a small disk)"
            );
            Self(dir)
        }
    }

    impl Drop for Tmpfs {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount")
                .arg(self.0.path())
                .status();
        }
    }

    /// Fills the disk, so that the next entries fail part-way; then frees it. Every acknowledged
    /// correction must be replayed, the journal must reopen, and the entry after the failure
    /// must not be glued onto a torn one.
    #[test]
    fn a_full_disk_loses_nothing_acknowledged_and_tears_nothing() {
        let disk = Tmpfs::mount("64k");
        let path = disk.0.path().join("journal.jsonl");
        let filler = disk.0.path().join("filler");
        let (mut j, _) = Journal::open(&path).unwrap();
        let mut acked = vec![j.add(correction("first one")).unwrap()];
        // Fill all but a little of the disk, then add corrections until one fails.
        {
            let mut f = File::create(&filler).unwrap();
            let block = vec![b'x'; 1024];
            while f.write_all(&block).is_ok() {}
            let _ = f.sync_all();
        }
        let long = "word ".repeat(60);
        let mut failures = 0;
        for i in 0..200 {
            match j.add(correction(&format!("{long}{i}"))) {
                Ok(seq) => acked.push(seq),
                Err(e) => {
                    assert!(matches!(e, ServeError::Full { .. }), "{e}");
                    assert!(e.to_string().contains("disk is full"), "{e}");
                    failures += 1;
                    if failures == 3 {
                        break;
                    }
                }
            }
        }
        assert_eq!(failures, 3, "the disk never filled");
        // The file holds complete entries only, even right after the failures.
        let bytes = std::fs::read(&path).unwrap();
        assert!(
            bytes.ends_with(b"\n"),
            "a torn entry is left in the journal"
        );
        std::fs::remove_file(&filler).unwrap();
        acked.push(j.add(correction("after the disk was freed")).unwrap());
        drop(j);
        let (j, warning) = Journal::open(&path).expect("the journal reopens after a full disk");
        assert!(warning.is_none(), "{warning:?}");
        let live: Vec<u64> = j.live().iter().map(|(s, _)| *s).collect();
        assert_eq!(live, acked, "an acknowledged correction was lost");
    }

    #[test]
    fn the_cap_refuses_corrections_but_takes_withdrawals() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.jsonl");
        let (mut j, _) = Journal::open_capped(&path, 400).unwrap();
        let first = j.add(correction("a b")).unwrap();
        let mut refused = None;
        for i in 0..10 {
            if let Err(e) = j.add(correction(&format!("c {i}"))) {
                refused = Some(e.to_string());
                break;
            }
        }
        let refused = refused.expect("the cap refused nothing");
        assert!(refused.contains("journal is full"), "{refused}");
        assert!(
            j.forget(first).unwrap(),
            "a withdrawal past the cap is taken"
        );
        assert!(j.bytes() <= 400 + FORGET_RESERVE);
    }

    #[test]
    fn a_linked_or_special_journal_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("outside");
        std::fs::write(&outside, "keep me\n").unwrap();
        let path = dir.path().join("journal.jsonl");
        std::os::unix::fs::symlink(&outside, &path).unwrap();
        let e = Journal::open(&path).err().unwrap().to_string();
        assert!(e.contains("symbolic link"), "{e}");
        assert_eq!(std::fs::read(&outside).unwrap(), b"keep me\n");
        std::fs::remove_file(&path).unwrap();
        std::os::unix::fs::symlink("/dev/zero", &path).unwrap();
        let t0 = std::time::Instant::now();
        assert!(Journal::open(&path).is_err());
        assert!(t0.elapsed().as_secs() < 5);
    }
}
