//! NDJSON file or stdin source: read line by line with a bounded line length,
//! on a blocking thread feeding a bounded channel (memory does not grow with
//! the file).

use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use tokio::sync::mpsc;

use super::Delivery;
use crate::event::MAX_EVENT_BYTES;

/// Spawn the reader; deliveries arrive on the returned channel. Empty lines are skipped.
pub fn spawn(path: Option<&Path>) -> anyhow::Result<mpsc::Receiver<Delivery>> {
    let reader: Box<dyn Read + Send> = match path {
        Some(p) => Box::new(
            std::fs::File::open(p)
                .map_err(|e| anyhow::anyhow!("cannot open source file {}: {e}", p.display()))?,
        ),
        None => Box::new(std::io::stdin()),
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
                        let body = match line {
                            Line::Text(s) => Ok(s),
                            Line::TooLong => {
                                Err(format!("line is longer than {MAX_EVENT_BYTES} bytes"))
                            }
                            Line::NotUtf8 => Err("line is not valid UTF-8".to_owned()),
                        };
                        if tx
                            .blocking_send(Delivery {
                                seq: no,
                                body,
                                amqp: None,
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
                        });
                        break;
                    }
                }
            }
        })?;
    Ok(rx)
}

enum Line {
    Text(String),
    TooLong,
    NotUtf8,
}

/// Read one line of at most `max` bytes; longer lines are consumed and reported.
fn read_line<R: BufRead>(r: &mut R, max: usize) -> std::io::Result<Option<Line>> {
    let mut buf = Vec::new();
    let mut too_long = false;
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
        if !too_long {
            if buf.len() + part.len() > max {
                too_long = true;
                buf = Vec::new();
            } else {
                buf.extend_from_slice(part);
            }
        }
        let n = done.unwrap_or(chunk.len());
        r.consume(n);
        if done.is_some() {
            break;
        }
    }
    if !any {
        return Ok(None);
    }
    if too_long {
        return Ok(Some(Line::TooLong));
    }
    if buf.last() == Some(&b'\r') {
        buf.pop();
    }
    Ok(Some(match String::from_utf8(buf) {
        Ok(s) => Line::Text(s),
        Err(_) => Line::NotUtf8,
    }))
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
                Line::TooLong => "<long>".into(),
                Line::NotUtf8 => "<utf8>".into(),
            });
        }
        out
    }

    #[test]
    fn splits_bounds_and_flags() {
        assert_eq!(lines(b"ab\r\ncd\n\nef", 10), ["ab", "cd", "", "ef"]);
        assert_eq!(
            lines(b"short\nthis is far too long\nok\n", 8),
            ["short", "<long>", "ok"]
        );
        assert_eq!(lines(b"\xff\xfe\nok", 8), ["<utf8>", "ok"]);
    }
}
