//! One field's value forms in a mapping file (path, const, template, fields,
//! join; `each`, `when`, `transform`) → checked `Spec`s.

use super::transform::Transform;
use super::{Cond, Kind, Piece, Source, Spec, Test};
use crate::adapt::path::Path;

pub(super) fn specs(v: &toml::Value, kind: Kind) -> Result<Vec<Spec>, String> {
    match v {
        toml::Value::Array(alts) => {
            if alts.is_empty() {
                return Err("is an empty list of alternatives".into());
            }
            alts.iter().map(|a| spec(a, kind)).collect()
        }
        other => Ok(vec![spec(other, kind)?]),
    }
}

pub(super) fn spec(v: &toml::Value, kind: Kind) -> Result<Spec, String> {
    let plain = |source| Spec {
        each: None,
        when: Vec::new(),
        source,
        transform: None,
    };
    let t = match v {
        toml::Value::String(p) => {
            if matches!(kind, Kind::Object(_)) {
                return Err("is an object: write { fields = { ... } }".into());
            }
            let path = Path::parse(p)?;
            check_fan_out(&path, kind)?;
            return Ok(plain(Source::Path(path)));
        }
        toml::Value::Table(t) => t,
        toml::Value::Array(_) => return Err("alternatives cannot be nested".into()),
        _ => {
            return Err(
                "must be a path string or a table ({ path | const | template | fields, ... })"
                    .into(),
            );
        }
    };
    const KEYS: &[&str] = &[
        "path",
        "const",
        "template",
        "fields",
        "each",
        "when",
        "transform",
        "join",
        "separator",
    ];
    if let Some(k) = t.keys().find(|k| !KEYS.contains(&k.as_str())) {
        return Err(format!("unknown key `{k}` (one of {})", KEYS.join(", ")));
    }
    let each = t
        .get("each")
        .map(|e| {
            e.as_str()
                .ok_or("`each` must be a path string")
                .and_then(|s| Path::parse(s).map_err(|_| "`each` must be a path starting with `/`"))
        })
        .transpose()
        .map_err(str::to_owned)?;
    let when = match t.get("when") {
        None => Vec::new(),
        Some(w) => conditions_value(w)?,
    };
    let transform = t
        .get("transform")
        .map(|x| {
            x.as_str()
                .and_then(Transform::parse)
                .ok_or_else(|| format!("`transform` must be one of {}", Transform::NAMES))
        })
        .transpose()?;
    let sources: Vec<&str> = ["path", "const", "template", "fields", "join"]
        .into_iter()
        .filter(|k| t.contains_key(*k))
        .collect();
    let [which] = sources.as_slice() else {
        return Err("needs exactly one of `path`, `const`, `template`, `fields`, `join`".into());
    };
    if t.contains_key("separator") && *which != "join" {
        return Err("`separator` is only for `join`".into());
    }
    let source = match (*which, kind) {
        ("join", Kind::Str) => {
            let Some(toml::Value::Array(parts)) = t.get("join") else {
                return Err("`join` must be a list of specs".into());
            };
            if parts.is_empty() {
                return Err("`join` is an empty list".into());
            }
            let parts = parts
                .iter()
                .map(|p| spec(p, Kind::List).map_err(|m| format!("`join`: {m}")))
                .collect::<Result<Vec<_>, _>>()?;
            let sep = match t.get("separator") {
                None => "\n".to_owned(),
                Some(toml::Value::String(s)) => s.clone(),
                Some(_) => return Err("`separator` must be a string".into()),
            };
            Source::Join(parts, sep)
        }
        ("join", _) => return Err("`join` is for a text field (one string)".into()),
        ("fields", Kind::Object(members) | Kind::Objects(members)) => {
            let Some(toml::Value::Table(sub)) = t.get("fields") else {
                return Err("`fields` must be a table".into());
            };
            let mut out = Vec::new();
            for (k, v) in sub {
                let Some((name, sub_kind)) = members.iter().find(|(n, _)| n == k).copied() else {
                    let known: Vec<&str> = members.iter().map(|(n, _)| *n).collect();
                    return Err(format!("`{k}` is not one of {}", known.join(", ")));
                };
                let s = specs(v, Kind::Str).map_err(|m| format!("`{name}`: {m}"))?;
                out.push((name, sub_kind, s));
            }
            Source::Fields(out)
        }
        ("fields", _) => return Err("`fields` is only for patient and attachments".into()),
        (_, Kind::Object(_) | Kind::Objects(_)) => {
            return Err("is an object: write { fields = { ... } }".into());
        }
        ("path", _) => {
            let p = t
                .get("path")
                .and_then(|p| p.as_str())
                .ok_or("`path` must be a string")?;
            let path = Path::parse(p)?;
            check_fan_out(&path, kind)?;
            Source::Path(path)
        }
        ("template", _) => {
            let s = t
                .get("template")
                .and_then(|p| p.as_str())
                .ok_or("`template` must be a string")?;
            Source::Template(template(s)?)
        }
        _ => {
            let c = t.get("const").ok_or("`const` is missing")?;
            Source::Const(serde_json::to_value(c).map_err(|e| format!("`const`: {e}"))?)
        }
    };
    if each.is_some() && matches!(kind, Kind::Object(_)) {
        return Err("`each` is for lists; patient is one object".into());
    }
    Ok(Spec {
        each,
        when,
        source,
        transform,
    })
}

pub(super) fn check_fan_out(p: &Path, kind: Kind) -> Result<(), String> {
    if p.fans_out() && kind != Kind::List {
        return Err(format!(
            "path `{}` has `*` but the field takes one value (use `each` to pick one element)",
            p.as_str()
        ));
    }
    Ok(())
}

pub(super) fn template(s: &str) -> Result<Vec<Piece>, String> {
    let mut out = Vec::new();
    let mut rest = s;
    while let Some(open) = rest.find('{') {
        if open > 0 {
            out.push(Piece::Lit(rest[..open].to_owned()));
        }
        let close = rest[open..]
            .find('}')
            .ok_or_else(|| format!("template `{s}` has a `{{` without `}}`"))?;
        let path = Path::parse(&rest[open + 1..open + close])?;
        if path.fans_out() {
            return Err(format!(
                "template `{s}`: a placeholder takes one value, not `*`"
            ));
        }
        out.push(Piece::Path(path));
        rest = &rest[open + close + 1..];
    }
    if rest.contains('}') {
        return Err(format!("template `{s}` has a `}}` without `{{`"));
    }
    if !rest.is_empty() {
        out.push(Piece::Lit(rest.to_owned()));
    }
    Ok(out)
}

pub(super) fn conditions_value(v: &toml::Value) -> Result<Vec<Cond>, String> {
    match v {
        toml::Value::Array(items) => items.iter().map(condition).collect(),
        other => Ok(vec![condition(other)?]),
    }
}

pub(super) fn condition(v: &toml::Value) -> Result<Cond, String> {
    let toml::Value::Table(t) = v else {
        return Err(
            "a condition is a table { path = \"/...\", equals | not_equals | in | exists = ... }"
                .into(),
        );
    };
    let path = t
        .get("path")
        .and_then(|p| p.as_str())
        .ok_or("a condition needs `path`")?;
    let path = Path::parse(path)?;
    let json = |x: &toml::Value| serde_json::to_value(x).map_err(|e| e.to_string());
    let tests: Vec<&String> = t.keys().filter(|k| *k != "path").collect();
    let [op] = tests.as_slice() else {
        return Err(
            "a condition needs exactly one of `equals`, `not_equals`, `in`, `exists`, `differs_from`".into(),
        );
    };
    let arg = &t[op.as_str()];
    let test = match op.as_str() {
        "equals" => Test::Equals(json(arg)?),
        "not_equals" => Test::NotEquals(json(arg)?),
        "in" => match arg {
            toml::Value::Array(xs) => Test::In(xs.iter().map(json).collect::<Result<_, _>>()?),
            _ => return Err("`in` must be a list".into()),
        },
        "exists" => Test::Exists(arg.as_bool().ok_or("`exists` must be true or false")?),
        "differs_from" => Test::DiffersFrom(Path::parse(
            arg.as_str().ok_or("`differs_from` must be a path string")?,
        )?),
        other => {
            return Err(format!(
                "unknown test `{other}` (one of equals, not_equals, in, exists, differs_from)"
            ));
        }
    };
    Ok(Cond { path, test })
}
