//! Bundle directory sink: one file per transaction Bundle, written atomically
//! (temporary dot-file, fsync, rename, fsync of the directory) and named with a zero-padded sequence
//! number so that a poller sorting names sees bundles in write order.
//! Files starting with `.` are incomplete and must be ignored by pollers.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::WriteError;

#[derive(Debug)]
pub struct DirSink {
    dir: PathBuf,
    next: AtomicU64,
}

impl DirSink {
    /// Open (creating) the directory and continue its sequence.
    pub fn open(dir: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir).map_err(|e| {
            anyhow::anyhow!("cannot create bundle directory {}: {e}", dir.display())
        })?;
        let mut max = 0u64;
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
        Ok(Self {
            dir: dir.to_owned(),
            next: AtomicU64::new(max + 1),
        })
    }

    /// The directory bundles are written to.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Write one bundle; returns the file name.
    pub fn write(&self, body: &[u8]) -> Result<String, WriteError> {
        let n = self.next.fetch_add(1, Ordering::SeqCst);
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
            names.iter().all(|n| !n.to_string_lossy().starts_with('.')),
            "no temp files left"
        );
    }
}
