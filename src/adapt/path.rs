//! Field paths of mapping files: JSON Pointer (RFC 6901) with one extension,
//! `*` for every element of an array.
//!
//! JSON Pointer rather than dotted paths because Matrix keys contain dots
//! (`m.relates_to`, `m.new_content`): `/content/m.relates_to/event_id` is
//! unambiguous. `serde_json::Value::pointer` does not fan out over arrays,
//! so evaluation is written here; it is a few lines over `serde_json::Value`.

use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Seg {
    /// An object key, or an array index when it is all digits.
    Key(String),
    /// Every element of an array.
    Any,
}

/// A parsed path. The empty path `""` is the value itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Path {
    raw: String,
    segs: Vec<Seg>,
}

impl Path {
    /// Parse a path; the error says what is wrong with it (never data).
    pub fn parse(raw: &str) -> Result<Self, String> {
        if raw.is_empty() {
            return Ok(Self {
                raw: String::new(),
                segs: Vec::new(),
            });
        }
        let Some(rest) = raw.strip_prefix('/') else {
            return Err(format!(
                "path `{raw}` must start with `/` (JSON Pointer, e.g. `/content/body`; \
                 a constant is written {{ const = \"...\" }})"
            ));
        };
        let mut segs = Vec::new();
        for part in rest.split('/') {
            if part == "*" {
                segs.push(Seg::Any);
                continue;
            }
            let mut key = String::with_capacity(part.len());
            let mut chars = part.chars();
            while let Some(c) = chars.next() {
                if c != '~' {
                    key.push(c);
                    continue;
                }
                match chars.next() {
                    Some('0') => key.push('~'),
                    Some('1') => key.push('/'),
                    _ => {
                        return Err(format!(
                            "path `{raw}` has a `~` that is not `~0` (for ~) or `~1` (for /)"
                        ));
                    }
                }
            }
            segs.push(Seg::Key(key));
        }
        Ok(Self {
            raw: raw.to_owned(),
            segs,
        })
    }

    /// The path as written.
    pub fn as_str(&self) -> &str {
        &self.raw
    }

    /// Whether the path can give more than one value (has a `*`).
    pub fn fans_out(&self) -> bool {
        self.segs.contains(&Seg::Any)
    }

    /// The values at this path, in document order; `null`s count as absent.
    pub fn eval<'a>(&self, root: &'a Value) -> Vec<&'a Value> {
        let mut out = Vec::new();
        walk(root, &self.segs, &mut out);
        out
    }

    /// The first value at this path.
    pub fn first<'a>(&self, root: &'a Value) -> Option<&'a Value> {
        self.eval(root).into_iter().next()
    }
}

fn walk<'a>(v: &'a Value, segs: &[Seg], out: &mut Vec<&'a Value>) {
    let Some((head, rest)) = segs.split_first() else {
        if !v.is_null() {
            out.push(v);
        }
        return;
    };
    match (head, v) {
        (Seg::Any, Value::Array(items)) => {
            for item in items {
                walk(item, rest, out);
            }
        }
        (Seg::Key(k), Value::Object(map)) => {
            if let Some(next) = map.get(k) {
                walk(next, rest, out);
            }
        }
        (Seg::Key(k), Value::Array(items)) => {
            // RFC 6901: an array index is decimal digits without leading zeros.
            let is_index = !k.is_empty() && k.bytes().all(|b| b.is_ascii_digit());
            if is_index
                && (k == "0" || !k.starts_with('0'))
                && let Some(next) = k.parse::<usize>().ok().and_then(|i| items.get(i))
            {
                walk(next, rest, out);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keys_with_dots_and_escapes_are_single_segments() {
        let v = json!({"content": {"m.relates_to": {"event_id": "$a"}, "a/b": 1, "t~x": 2}});
        let p = Path::parse("/content/m.relates_to/event_id").unwrap();
        assert_eq!(p.first(&v), Some(&json!("$a")));
        assert_eq!(
            Path::parse("/content/a~1b").unwrap().first(&v),
            Some(&json!(1))
        );
        assert_eq!(
            Path::parse("/content/t~0x").unwrap().first(&v),
            Some(&json!(2))
        );
        assert_eq!(Path::parse("/content/absent").unwrap().first(&v), None);
    }

    #[test]
    fn star_fans_out_over_arrays_and_indexes_pick_one() {
        let v = json!({"m": [{"u": {"id": "a"}}, {"u": null}, {"u": {"id": "c"}}]});
        let p = Path::parse("/m/*/u/id").unwrap();
        assert!(p.fans_out());
        let got: Vec<_> = p.eval(&v).into_iter().cloned().collect();
        assert_eq!(got, vec![json!("a"), json!("c")]);
        assert_eq!(
            Path::parse("/m/2/u/id").unwrap().first(&v),
            Some(&json!("c"))
        );
        assert_eq!(Path::parse("/m/02/u/id").unwrap().first(&v), None);
        assert_eq!(
            Path::parse("").unwrap().first(&json!("x")),
            Some(&json!("x"))
        );
    }

    #[test]
    fn nulls_are_absent() {
        let v = json!({"deletedDateTime": null});
        assert!(Path::parse("/deletedDateTime").unwrap().eval(&v).is_empty());
    }

    #[test]
    fn bad_paths_say_why() {
        let e = Path::parse("content.body").unwrap_err();
        assert!(e.contains("must start with `/`"), "{e}");
        let e = Path::parse("/a~2b").unwrap_err();
        assert!(e.contains("`~0`"), "{e}");
    }
}
