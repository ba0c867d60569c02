//! Bundle directory sink: one file per transaction Bundle, written atomically
//! (temporary dot-file, fsync, rename, fsync of the directory) and named with a zero-padded sequence
//! number so that a poller sorting names sees bundles in write order.
//! Files starting with `.` are incomplete and must be ignored by pollers.
//!
//! The sequence never goes back: its last number is also kept in
//! `.recordbridge-seq`, so that it goes on after a poller has moved the
//! bundles away; a name whose number leaves no room after it is refused at
//! start rather than wrapping to 0 and overwriting earlier bundles. Each
//! write holds an exclusive lock on that file and takes the next number from
//! it, so processes writing to one folder at once (a run and a reviewer)
//! never give two bundles one name.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use super::WriteError;

/// Where the last number of the sequence is kept.
const SEQ_FILE: &str = ".recordbridge-seq";

#[derive(Debug)]
pub struct DirSink {
    dir: PathBuf,
    /// The next number (`None` once the last possible one is used); held
    /// for the whole write.
    next: Mutex<Option<u64>>,
    /// The open `.recordbridge-seq`, locked by each write.
    seq: std::fs::File,
}

impl DirSink {
    /// Open (creating) the directory and continue its sequence: after the
    /// highest number of its bundles and of `.recordbridge-seq`.
    pub fn open(dir: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir).map_err(|e| {
            anyhow::anyhow!("cannot create bundle directory {}: {e}", dir.display())
        })?;
        let seq = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(dir.join(SEQ_FILE))
            .map_err(|e| anyhow::anyhow!("cannot open {SEQ_FILE} in {}: {e}", dir.display()))?;
        // A number that cannot be read counts as none: the names still count.
        let mut max = last_number(&seq).ok().flatten().unwrap_or(0);
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
        Ok(Self {
            dir: dir.to_owned(),
            next: Mutex::new(Some(next)),
            seq,
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
        let fatal = |what: &str, e: std::io::Error| {
            WriteError::Fatal(format!("{what} {SEQ_FILE} in {}: {e}", self.dir.display()))
        };
        // Another process may write here too: the file's lock orders us, and
        // its number (theirs or ours) is the last one given.
        self.seq.lock().map_err(|e| fatal("locking", e))?;
        let _unlock = Unlock(&self.seq);
        let theirs = last_number(&self.seq)
            .map_err(|e| fatal("reading", e))?
            .and_then(|n| n.checked_add(1));
        let n = match (*next, theirs) {
            (Some(ours), Some(theirs)) => Some(ours.max(theirs)),
            (ours, None) => ours,
            (None, Some(_)) => None,
        }
        .ok_or_else(|| {
            WriteError::Fatal(format!(
                "bundle directory {}: the sequence has reached its last number",
                self.dir.display()
            ))
        })?;
        // The number is kept before the bundle is renamed into place, in
        // place and fixed width (one write, no fsync: after a power loss the
        // names of the bundles still there count).
        self.seq
            .write_all_at(format!("{n:020}").as_bytes(), 0)
            .map_err(|e| fatal("writing", e))?;
        *next = n.checked_add(1);
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

/// The number kept in the sequence file (`None` when it holds none: new,
/// or damaged, as after a power loss).
fn last_number(seq: &std::fs::File) -> std::io::Result<Option<u64>> {
    use std::os::unix::fs::FileExt as _;
    let mut buf = [0u8; 20];
    let read = seq.read_at(&mut buf, 0)?;
    Ok(std::str::from_utf8(&buf[..read])
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok()))
}

/// Releases the sequence file's lock when the write is done (or fails).
struct Unlock<'a>(&'a std::fs::File);

impl Drop for Unlock<'_> {
    fn drop(&mut self) {
        let _ = self.0.unlock();
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
    fn two_writers_on_one_folder_never_give_two_bundles_one_name() {
        let d = tempfile::tempdir().unwrap();
        let a = DirSink::open(d.path()).unwrap();
        let b = DirSink::open(d.path()).unwrap();
        let mut names = Vec::new();
        std::thread::scope(|s| {
            let ha = s.spawn(|| (0..50).map(|_| a.write(b"{}").unwrap()).collect::<Vec<_>>());
            let hb = s.spawn(|| (0..50).map(|_| b.write(b"[]").unwrap()).collect::<Vec<_>>());
            names.extend(ha.join().unwrap());
            names.extend(hb.join().unwrap());
        });
        let distinct: std::collections::BTreeSet<_> = names.iter().collect();
        assert_eq!(distinct.len(), 100, "each bundle its own name");
        let files = std::fs::read_dir(d.path())
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .path()
                    .extension()
                    .is_some_and(|x| x == "json")
            })
            .count();
        assert_eq!(files, 100, "none overwritten");
        // Each writer's own names still go up.
        let a_names: Vec<_> = names[..50].to_vec();
        assert!(a_names.windows(2).all(|w| w[0] < w[1]));
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
