//! The writer's on-disk spool: batches InfluxDB could not take yet, kept in order as numbered
//! files (`<seq>.lp`) until they are written. Bounded: past `max_bytes` the oldest batches are
//! dropped, counted and logged — the only way data is lost, and never silently.

use std::collections::VecDeque;
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    max_bytes: u64,
    /// `(sequence number, size in bytes)`, oldest first.
    segments: VecDeque<(u64, u64)>,
    bytes: u64,
    next_seq: u64,
}

/// A batch dropped because the spool was full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dropped {
    pub lines: usize,
}

impl Spool {
    /// Opens (or creates) the spool in `dir`, picking up what an earlier run left there.
    pub fn open(dir: &Path, max_bytes: u64) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let mut segments = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().to_string();
            if name.ends_with(".tmp") {
                // A write cut short by a crash; its batch was still in memory, so never acknowledged.
                std::fs::remove_file(entry.path())?;
            } else if let Some(seq) = name.strip_suffix(".lp").and_then(|s| s.parse::<u64>().ok()) {
                segments.push((seq, entry.metadata()?.len()));
            }
        }
        segments.sort_unstable();
        let bytes = segments.iter().map(|(_, b)| b).sum();
        let next_seq = segments.last().map_or(0, |(s, _)| s + 1);
        Ok(Spool {
            dir: dir.to_path_buf(),
            max_bytes,
            segments: segments.into(),
            bytes,
            next_seq,
        })
    }

    fn path(&self, seq: u64) -> PathBuf {
        self.dir.join(format!("{seq:020}.lp"))
    }

    /// Appends a batch (atomically: written to a temporary file, synced, then renamed).
    /// Returns what had to be dropped to stay within the bound.
    pub fn push(&mut self, batch: &str) -> std::io::Result<Vec<Dropped>> {
        let seq = self.next_seq;
        let tmp = self.dir.join(format!("{seq:020}.tmp"));
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(batch.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, self.path(seq))?;
        self.next_seq += 1;
        self.segments.push_back((seq, batch.len() as u64));
        self.bytes += batch.len() as u64;
        let mut dropped = Vec::new();
        while self.bytes > self.max_bytes && self.segments.len() > 1 {
            if let Some((_, batch)) = self.oldest()? {
                dropped.push(Dropped {
                    lines: batch.lines().count(),
                });
            }
            self.pop_oldest()?;
        }
        Ok(dropped)
    }

    /// The oldest batch, if any.
    pub fn oldest(&self) -> std::io::Result<Option<(u64, String)>> {
        match self.segments.front() {
            None => Ok(None),
            Some(&(seq, _)) => Ok(Some((seq, std::fs::read_to_string(self.path(seq))?))),
        }
    }

    /// Removes the oldest batch (after it was written).
    pub fn pop_oldest(&mut self) -> std::io::Result<()> {
        if let Some((seq, size)) = self.segments.pop_front() {
            std::fs::remove_file(self.path(seq))?;
            self.bytes -= size;
        }
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.segments.is_empty()
    }

    pub fn len(&self) -> usize {
        self.segments.len()
    }

    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("kubemeter-spool-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn batches_come_back_in_order_after_a_restart() {
        let dir = temp_dir("order");
        let mut spool = Spool::open(&dir, 1 << 20).unwrap();
        spool.push("a 1\n").unwrap();
        spool.push("b 2\n").unwrap();
        drop(spool);
        let mut spool = Spool::open(&dir, 1 << 20).unwrap();
        assert_eq!(spool.len(), 2);
        assert_eq!(spool.oldest().unwrap().unwrap().1, "a 1\n");
        spool.pop_oldest().unwrap();
        spool.push("c 3\n").unwrap();
        assert_eq!(spool.oldest().unwrap().unwrap().1, "b 2\n");
        spool.pop_oldest().unwrap();
        assert_eq!(spool.oldest().unwrap().unwrap().1, "c 3\n");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_full_spool_drops_the_oldest_batches_and_says_how_many_lines() {
        let dir = temp_dir("full");
        let mut spool = Spool::open(&dir, 10).unwrap();
        assert!(spool.push("1234\n").unwrap().is_empty());
        assert!(spool.push("5678\n").unwrap().is_empty());
        let dropped = spool.push("9abc\n").unwrap();
        assert_eq!(dropped, vec![Dropped { lines: 1 }]);
        assert_eq!(spool.len(), 2);
        assert_eq!(spool.bytes(), 10);
        assert_eq!(spool.oldest().unwrap().unwrap().1, "5678\n");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_write_cut_short_by_a_crash_is_cleaned_up() {
        let dir = temp_dir("crash");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("00000000000000000007.tmp"), "half").unwrap();
        let spool = Spool::open(&dir, 1 << 20).unwrap();
        assert!(spool.is_empty());
        assert!(!dir.join("00000000000000000007.tmp").exists());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
