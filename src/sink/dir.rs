//! Bundle directory sink: one file per transaction Bundle, written atomically
//! (temporary dot-file, fsync, rename, fsync of the directory) and named with a zero-padded sequence
//! number so that a poller sorting names sees bundles in write order.
//! Files starting with `.` are incomplete and must be ignored by pollers.
//!
//! The sequence never goes back: its last number is also kept in
//! `.recordbridge-seq`, so that it goes on after a poller has moved the
//! bundles away; a name whose number leaves no room after it is refused at
//! start rather than wrapping to 0 and overwriting earlier bundles.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use super::WriteError;

/// Where the last number of the sequence is kept.
const SEQ_FILE: &str = ".recordbridge-seq";

#[derive(Debug)]
pub struct DirSink {
    dir: PathBuf,
    /// The next number (`None` once the last possible one is used), and the
    /// open `.recordbridge-seq` it is written to.
    next: Mutex<(Option<u64>, std::fs::File)>,
}

impl DirSink {
    /// Open (creating) the directory and continue its sequence: after the
    /// highest number of its bundles and of `.recordbridge-seq`.
    pub fn open(dir: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir).map_err(|e| {
            anyhow::anyhow!("cannot create bundle directory {}: {e}", dir.display())
        })?;
        let mut max = std::fs::read_to_string(dir.join(SEQ_FILE))
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .unwrap_or(0);
        for entry in std::fs::read_dir(dir)? {
            let name = entry?.file_name();
            let name = name.to_string_lossy();
            if let Some(n) = name
                .strip_suffix(".json")
                .and_then(|s| s.split('-').next())
                .and_then(|s| s.parse::<u64>().ok())
            {
                max = max.max(n);
            }
        }
        let next = max.checked_add(1).ok_or_else(|| {
            anyhow::anyhow!(
                "bundle directory {}: a bundle is numbered {max}, the last number there is; move it away to go on",
                dir.display()
            )
        })?;
        let seq = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join(SEQ_FILE))
            .map_err(|e| anyhow::anyhow!("cannot open {SEQ_FILE} in {}: {e}", dir.display()))?;
        Ok(Self {
            dir: dir.to_owned(),
            next: Mutex::new((Some(next), seq)),
        })
    }

    /// The directory bundles are written to.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Write one bundle; returns the file name.
    pub fn write(&self, body: &[u8]) -> Result<String, WriteError> {
        use std::os::unix::fs::FileExt as _;
        let mut next = self.next.lock().unwrap_or_else(PoisonError::into_inner);
        let n = next.0.ok_or_else(|| {
            WriteError::Fatal(format!(
                "bundle directory {}: the sequence has reached its last number",
                self.dir.display()
            ))
        })?;
        // The number is kept before the bundle is renamed into place, in
        // place and fixed width (one write, no fsync: after a power loss the
        // names of the bundles still there count).
        next.1
            .write_all_at(format!("{n:020}").as_bytes(), 0)
            .map_err(|e| {
                WriteError::Fatal(format!("writing {SEQ_FILE} in {}: {e}", self.dir.display()))
            })?;
        next.0 = n.checked_add(1);
        let name = format!("{n:012}-bundle.json");
        let tmp = self.dir.join(format!(".{name}.tmp"));
        let fin = self.dir.join(&name);
        let io = |e: std::io::Error| {
            WriteError::Fatal(format!("writing bundle file {}: {e}", fin.display()))
        };
        let mut f = std::fs::File::create(&tmp).map_err(io)?;
        f.write_all(body).map_err(io)?;
        f.sync_all().map_err(io)?;
        drop(f);
        std::fs::rename(&tmp, &fin).map_err(io)?;
        // Make the rename itself durable before the ledger records the event as written.
        std::fs::File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(io)?;
        Ok(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_ordered_and_continues_sequence() {
        let d = tempfile::tempdir().unwrap();
        let s = DirSink::open(d.path()).unwrap();
        assert_eq!(s.write(b"{}").unwrap(), "000000000001-bundle.json");
        assert_eq!(s.write(b"{}").unwrap(), "000000000002-bundle.json");
        let s = DirSink::open(d.path()).unwrap();
        assert_eq!(s.write(b"{}").unwrap(), "000000000003-bundle.json");
        let names: Vec<_> = std::fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(
            names
                .iter()
                .all(|n| !n.to_string_lossy().starts_with('.') || n == SEQ_FILE),
            "no temp files left: {names:?}"
        );
    }

    #[test]
    fn the_sequence_goes_on_after_bundles_are_moved_away() {
        let d = tempfile::tempdir().unwrap();
        let s = DirSink::open(d.path()).unwrap();
        for _ in 0..3 {
            s.write(b"{}").unwrap();
        }
        drop(s);
        for e in std::fs::read_dir(d.path()).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "json") {
                std::fs::remove_file(p).unwrap();
            }
        }
        let s = DirSink::open(d.path()).unwrap();
        assert_eq!(s.write(b"{}").unwrap(), "000000000004-bundle.json");
        // A damaged sequence file is read as nothing: the names still count.
        std::fs::write(d.path().join(SEQ_FILE), "garbage").unwrap();
        let s = DirSink::open(d.path()).unwrap();
        assert_eq!(s.write(b"{}").unwrap(), "000000000005-bundle.json");
    }

    #[test]
    fn a_number_with_no_room_after_it_is_refused_never_wrapped() {
        let d = tempfile::tempdir().unwrap();
        let last = format!("{}-bundle.json", u64::MAX);
        std::fs::write(d.path().join(&last), "{}").unwrap();
        let e = DirSink::open(d.path()).unwrap_err().to_string();
        assert!(e.contains(&u64::MAX.to_string()), "{e}");
        assert_eq!(std::fs::read_to_string(d.path().join(&last)).unwrap(), "{}");
        // One below the last: that one is written, then the sequence stops.
        std::fs::remove_file(d.path().join(&last)).unwrap();
        std::fs::write(d.path().join(format!("{}-bundle.json", u64::MAX - 1)), "{}").unwrap();
        let s = DirSink::open(d.path()).unwrap();
        assert_eq!(s.write(b"[]").unwrap(), last);
        assert!(matches!(s.write(b"[]"), Err(WriteError::Fatal(_))));
        assert_eq!(std::fs::read_to_string(d.path().join(&last)).unwrap(), "[]");
    }
}
