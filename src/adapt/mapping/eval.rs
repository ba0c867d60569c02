//! Evaluating a loaded mapping on a platform event: conditions, fields, values.

use serde_json::{Map, Value};

use super::{Cond, Field, Kind, Piece, Source, Spec, Sub, Test};

impl Cond {
    pub(super) fn holds(&self, v: &Value) -> bool {
        let vals = self.path.eval(v);
        match &self.test {
            Test::Equals(x) => vals.contains(&x),
            Test::NotEquals(x) => !vals.contains(&x),
            Test::In(xs) => vals.iter().any(|v| xs.contains(v)),
            Test::Exists(b) => vals.is_empty() != *b,
            Test::DiffersFrom(other) => {
                let o = other.eval(v);
                !vals.is_empty() && vals != o
            }
        }
    }
}

impl Field {
    /// Paths tried, for "nothing at ..." errors.
    pub(super) fn tried(&self) -> String {
        let all: Vec<String> = self
            .specs
            .iter()
            .map(|s| match &s.source {
                Source::Path(p) => p.as_str().to_owned(),
                Source::Template(_) => "(template)".to_owned(),
                Source::Const(_) => "(constant)".to_owned(),
                Source::Fields(_) => "(fields)".to_owned(),
                Source::Join(..) => "(join)".to_owned(),
            })
            .collect();
        all.join(" or ")
    }

    pub(super) fn eval(&self, v: &Value) -> Result<Option<Value>, String> {
        match self.kind {
            Kind::Str => first_scalar(&self.specs, v, Sub::Str),
            Kind::List => {
                for s in &self.specs {
                    let mut out = Vec::new();
                    for x in s.values(v)? {
                        match to_string(&x) {
                            Some(x) => out.push(Value::String(x)),
                            None => return Err("has a value that is not a string".into()),
                        }
                    }
                    if !out.is_empty() {
                        return Ok(Some(Value::Array(out)));
                    }
                }
                Ok(None)
            }
            Kind::Object(_) => {
                for s in &self.specs {
                    if let Some(o) = s.objects(v)?.into_iter().next() {
                        return Ok(Some(o));
                    }
                }
                Ok(None)
            }
            Kind::Objects(_) => {
                for s in &self.specs {
                    let objs = s.objects(v)?;
                    if !objs.is_empty() {
                        return Ok(Some(Value::Array(objs)));
                    }
                }
                Ok(None)
            }
        }
    }
}

pub(super) fn first_scalar(specs: &[Spec], v: &Value, sub: Sub) -> Result<Option<Value>, String> {
    for s in specs {
        if let Some(x) = s.values(v)?.into_iter().next() {
            return match sub {
                Sub::Str => to_string(&x)
                    .map(|s| Some(Value::String(s)))
                    .ok_or_else(|| format!("is {}, not a string", json_kind(&x))),
                Sub::Num => match &x {
                    Value::Number(_) => Ok(Some(x)),
                    Value::String(s) => s
                        .trim()
                        .parse::<u64>()
                        .map(|n| Some(Value::from(n)))
                        .map_err(|_| "is not a whole number".to_owned()),
                    _ => Err(format!("is {}, not a number", json_kind(&x))),
                },
            };
        }
    }
    Ok(None)
}

impl Spec {
    /// The scopes this spec applies to: the `each` elements whose `when`
    /// holds, or the event itself when its `when` holds.
    pub(super) fn scopes<'a>(&self, v: &'a Value) -> Vec<&'a Value> {
        let candidates = match &self.each {
            Some(each) => each.eval(v),
            None => vec![v],
        };
        candidates
            .into_iter()
            .filter(|s| self.when.iter().all(|c| c.holds(s)))
            .collect()
    }

    /// Values (after the transform), in document order.
    pub(super) fn values(&self, v: &Value) -> Result<Vec<Value>, String> {
        let mut out = Vec::new();
        for scope in self.scopes(v) {
            let raw: Vec<Value> = match &self.source {
                Source::Path(p) => p.eval(scope).into_iter().cloned().collect(),
                Source::Const(c) => vec![c.clone()],
                Source::Template(pieces) => template_value(pieces, scope).into_iter().collect(),
                Source::Fields(_) => Vec::new(),
                Source::Join(parts, sep) => {
                    let mut texts = Vec::new();
                    for p in parts {
                        texts.extend(
                            p.values(scope)?
                                .iter()
                                .filter_map(to_string)
                                .filter(|t| !t.trim().is_empty()),
                        );
                    }
                    match texts.is_empty() {
                        true => Vec::new(),
                        false => vec![Value::String(texts.join(sep))],
                    }
                }
            };
            for x in raw {
                let x = match self.transform {
                    Some(t) => t.apply(&x).map_err(|m| format!("value {m}"))?,
                    None => x,
                };
                out.push(x);
            }
        }
        Ok(out)
    }

    pub(super) fn objects(&self, v: &Value) -> Result<Vec<Value>, String> {
        let Source::Fields(members) = &self.source else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for scope in self.scopes(v) {
            let mut obj = Map::new();
            for (name, sub, specs) in members {
                if let Some(x) =
                    first_scalar(specs, scope, *sub).map_err(|m| format!("`{name}` {m}"))?
                {
                    obj.insert((*name).to_owned(), x);
                }
            }
            if !obj.is_empty() {
                out.push(Value::Object(obj));
            }
        }
        Ok(out)
    }
}

pub(super) fn template_value(pieces: &[Piece], scope: &Value) -> Option<Value> {
    let mut s = String::new();
    for p in pieces {
        match p {
            Piece::Lit(l) => s.push_str(l),
            Piece::Path(p) => s.push_str(&to_string(p.first(scope)?)?),
        }
    }
    Some(Value::String(s))
}

/// Strings as they are; numbers as their decimal text (numeric ids).
pub(super) fn to_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

pub(super) fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}
