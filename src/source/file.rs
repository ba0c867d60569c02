//! NDJSON file or stdin source: read line by line with a bounded line length,
//! on a blocking thread feeding a bounded channel (memory does not grow with
//! the file).

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::mpsc;

use sha2::{Digest, Sha256};

use super::{Delivery, RawLine};
use crate::event::MAX_EVENT_BYTES;

/// How a stream that cannot be read again (stdin) is stopped without losing
/// what was taken from it: after [`Drain::stop`] the reader takes no more
/// input, and delivers every line it has already read (the channel then
/// ends). While it waits for input ([`Drain::idle`]), everything it read is
/// already in the channel.
#[derive(Debug, Clone, Default)]
pub struct Drain {
    stop: Arc<AtomicBool>,
    waiting: Arc<AtomicBool>,
}

impl Drain {
    /// Take no more input; what was read is still delivered.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }

    /// Is the reader blocked waiting for input (so it holds nothing unsent)?
    pub fn idle(&self) -> bool {
        self.waiting.load(Ordering::SeqCst)
    }
}

/// The input, seen through [`Drain`]: after `stop`, the end of input.
struct Watched<R> {
    inner: R,
    drain: Drain,
}

impl<R: Read> Read for Watched<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.drain.stop.load(Ordering::SeqCst) {
            return Ok(0);
        }
        self.drain.waiting.store(true, Ordering::SeqCst);
        let n = self.inner.read(buf);
        self.drain.waiting.store(false, Ordering::SeqCst);
        n
    }
}

/// Spawn the reader; deliveries arrive on the returned channel. Empty lines
/// are skipped. The [`Drain`] stops it without losing what it has read.
pub fn spawn(path: Option<&Path>) -> anyhow::Result<(mpsc::Receiver<Delivery>, Drain)> {
    let inner: Box<dyn Read + Send> = match path {
        Some(p) => Box::new(
            std::fs::File::open(p)
                .map_err(|e| anyhow::anyhow!("cannot open source file {}: {e}", p.display()))?,
        ),
        None => Box::new(std::io::stdin()),
    };
    let drain = Drain::default();
    let reader = Watched {
        inner,
        drain: drain.clone(),
    };
    let (tx, rx) = mpsc::channel(256);
    std::thread::Builder::new()
        .name("file-source".into())
        .spawn(move || {
            let mut r = BufReader::with_capacity(64 * 1024, reader);
            let mut no = 0u64;
            loop {
                no += 1;
                match read_line(&mut r, MAX_EVENT_BYTES) {
                    Ok(None) => break,
                    Ok(Some(Line::Text(s))) if s.trim().is_empty() => continue,
                    Ok(Some(line)) => {
                        let (body, raw) = match line {
                            Line::Text(s) => (Ok(s), None),
                            Line::TooLong(raw) => (
                                Err(format!("line is longer than {MAX_EVENT_BYTES} bytes")),
                                Some(raw),
                            ),
                            Line::NotUtf8(raw) => {
                                (Err("line is not valid UTF-8".to_owned()), Some(raw))
                            }
                        };
                        if tx
                            .blocking_send(Delivery {
                                seq: no,
                                body,
                                amqp: None,
                                raw,
                            })
                            .is_err()
                        {
                            break;
                        }
                    }
                    Err(e) => {
                        let _ = tx.blocking_send(Delivery {
                            seq: no,
                            body: Err(format!("read error: {e}")),
                            amqp: None,
                            raw: None,
                        });
                        break;
                    }
                }
            }
        })?;
    Ok((rx, drain))
}

enum Line {
    Text(String),
    /// Longer than the limit: its first bytes, length and hash.
    TooLong(RawLine),
    NotUtf8(RawLine),
}

/// Read one line of at most `max` bytes; longer lines are consumed and
/// reported with their first `max` bytes, their length and their hash.
fn read_line<R: BufRead>(r: &mut R, max: usize) -> std::io::Result<Option<Line>> {
    let mut buf = Vec::new();
    let mut len = 0u64;
    let mut hash = Sha256::new();
    let mut any = false;
    loop {
        let chunk = r.fill_buf()?;
        if chunk.is_empty() {
            break;
        }
        any = true;
        let (part, done) = match memchr(chunk) {
            Some(i) => (&chunk[..i], Some(i + 1)),
            None => (chunk, None),
        };
        hash.update(part);
        len += part.len() as u64;
        let room = max.saturating_sub(buf.len());
        buf.extend_from_slice(&part[..part.len().min(room)]);
        let n = done.unwrap_or(chunk.len());
        r.consume(n);
        if done.is_some() {
            break;
        }
    }
    if !any {
        return Ok(None);
    }
    let raw = |kept: Vec<u8>, len: u64, hash: Sha256| RawLine {
        kept,
        len,
        sha256: hex(&hash.finalize()),
    };
    if len > max as u64 {
        return Ok(Some(Line::TooLong(raw(buf, len, hash))));
    }
    if buf.last() == Some(&b'\r') {
        buf.pop();
    }
    Ok(Some(match String::from_utf8(buf) {
        Ok(s) => Line::Text(s),
        Err(e) => Line::NotUtf8(raw(e.into_bytes(), len, hash)),
    }))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn memchr(b: &[u8]) -> Option<usize> {
    b.iter().position(|&c| c == b'\n')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(input: &[u8], max: usize) -> Vec<String> {
        let mut r = BufReader::with_capacity(4, input);
        let mut out = Vec::new();
        while let Some(l) = read_line(&mut r, max).unwrap() {
            out.push(match l {
                Line::Text(s) => s,
                Line::TooLong(r) => format!("<long {} kept {}>", r.len, r.kept.len()),
                Line::NotUtf8(r) => format!("<utf8 {:?}>", r.kept),
            });
        }
        out
    }

    #[test]
    fn splits_bounds_and_flags() {
        assert_eq!(lines(b"ab\r\ncd\n\nef", 10), ["ab", "cd", "", "ef"]);
        assert_eq!(
            lines(b"short\nthis is far too long\nok\n", 8),
            ["short", "<long 20 kept 8>", "ok"]
        );
        assert_eq!(lines(b"\xff\xfe\nok", 8), ["<utf8 [255, 254]>", "ok"]);
        // Exactly the limit is a line; one byte more is too long.
        assert_eq!(
            lines(b"12345678\n123456789\n", 8),
            ["12345678", "<long 9 kept 8>"]
        );
    }

    #[test]
    fn an_unreadable_line_keeps_its_bytes_length_and_hash() {
        let mut r = BufReader::with_capacity(3, &b"abcdefghij\n"[..]);
        let Some(Line::TooLong(raw)) = read_line(&mut r, 4).unwrap() else {
            panic!("too long");
        };
        assert_eq!(raw.kept, b"abcd");
        assert_eq!(raw.len, 10);
        // sha256("abcdefghij")
        assert_eq!(
            raw.sha256,
            "72399361da6a7754fec986dca5b7cbaf1c810a28ded4abaf56b2106d06cb78b0"
        );
    }
}
