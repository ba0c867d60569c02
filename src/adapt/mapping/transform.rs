//! Named transforms of a field's value (`transform = "..."`).

use serde_json::Value;

use crate::adapt::html;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Transform {
    EpochMillis,
    EpochSeconds,
    HtmlToText,
    StripReplyFallback,
    AdaptiveCardText,
}

impl Transform {
    pub(super) const NAMES: &'static str =
        "epoch-millis, epoch-seconds, html-to-text, strip-reply-fallback, adaptive-card-text";

    pub(super) fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "epoch-millis" => Self::EpochMillis,
            "epoch-seconds" => Self::EpochSeconds,
            "html-to-text" => Self::HtmlToText,
            "strip-reply-fallback" => Self::StripReplyFallback,
            "adaptive-card-text" => Self::AdaptiveCardText,
            _ => return None,
        })
    }

    pub(super) fn apply(self, v: &Value) -> Result<Value, String> {
        match self {
            Self::EpochMillis | Self::EpochSeconds => {
                let n = match v {
                    Value::Number(n) => n.as_i64(),
                    Value::String(s) => s.trim().parse::<i64>().ok(),
                    _ => None,
                }
                .ok_or("is not a whole number of epoch milliseconds/seconds")?;
                let t = if self == Self::EpochMillis {
                    chrono::DateTime::from_timestamp_millis(n)
                } else {
                    chrono::DateTime::from_timestamp(n, 0)
                }
                .ok_or("is outside the range of dates")?;
                Ok(Value::String(
                    t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
                ))
            }
            Self::HtmlToText => match v {
                Value::String(s) => html::to_text(s).map(Value::String),
                _ => Err("is not a string of HTML".into()),
            },
            Self::StripReplyFallback => match v {
                Value::String(s) => Ok(Value::String(strip_reply_fallback(s).to_owned())),
                _ => Err("is not a string".into()),
            },
            Self::AdaptiveCardText => {
                let card = match v {
                    // Graph gives the card as a JSON string.
                    Value::String(s) => serde_json::from_str::<Value>(s)
                        .map_err(|_| "is not an Adaptive Card (not JSON)".to_owned())?,
                    Value::Object(_) => v.clone(),
                    _ => return Err("is not an Adaptive Card".into()),
                };
                let mut lines = Vec::new();
                card_text(&card, &mut lines, 0);
                Ok(Value::String(lines.join("\n")))
            }
        }
    }
}

/// The text an Adaptive Card shows, in document order: `text` of TextBlocks
/// and TextRuns, `title: value` of FactSet facts, `title` of actions and
/// `label`/`placeholder` of inputs are not content and are left out. Nesting
/// is bounded (the parser already bounds depth; this is a second guard).
pub(super) fn card_text(v: &Value, out: &mut Vec<String>, depth: usize) {
    if depth > 64 {
        return;
    }
    match v {
        Value::Object(o) => {
            if let Some(Value::String(t)) = o.get("text")
                && !t.trim().is_empty()
            {
                out.push(t.trim().to_owned());
            }
            if let (Some(Value::String(t)), Some(Value::String(val))) =
                (o.get("title"), o.get("value"))
            {
                out.push(format!("{}: {}", t.trim(), val.trim()));
            }
            for (k, x) in o {
                if k != "actions" && (x.is_object() || x.is_array()) {
                    card_text(x, out, depth + 1);
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| card_text(x, out, depth + 1)),
        _ => {}
    }
}

/// Matrix reply fallback: the leading `> <@sender> …` quote block and the
/// blank line after it are the replied-to message, not this one
/// (client-server API, "Fallbacks for rich replies"), so a number quoted from
/// another message does not identify a patient in the reply. Only that shape
/// is removed: a body that merely starts with `> ` (a clinician quoting obs)
/// is kept whole, and so is a body that would be left with nothing of its own
/// (fail safe: what it quotes is still read). The mapping applies this only
/// to replies (`m.in_reply_to`).
pub(super) fn strip_reply_fallback(s: &str) -> &str {
    if !s.starts_with("> <") {
        return s;
    }
    let mut rest = s;
    while rest.starts_with('>') {
        match rest.find('\n') {
            Some(end) => rest = &rest[end + 1..],
            None => return s,
        }
    }
    match rest.strip_prefix('\n') {
        Some(own) if !own.trim().is_empty() => own,
        _ => s,
    }
}

#[cfg(test)]
mod tests {
    use super::strip_reply_fallback;

    #[test]
    fn reply_fallback_quote_is_removed() {
        let body = "> <@alice:example.org> NHS 943 476 5919 bed 4\n> second line\n\nSeen, obs fine";
        assert_eq!(strip_reply_fallback(body), "Seen, obs fine");
        assert_eq!(strip_reply_fallback("no quote > here"), "no quote > here");
        // Not a fallback's shape: kept whole.
        let obs = "> BP 80/40, sats 85%\n\nneeds urgent review";
        assert_eq!(strip_reply_fallback(obs), obs);
        // Nothing of its own after the quote, or no blank line: kept whole.
        assert_eq!(
            strip_reply_fallback("> <@a:x> only a quote"),
            "> <@a:x> only a quote"
        );
        assert_eq!(strip_reply_fallback("> <@a:x> q\n\n  "), "> <@a:x> q\n\n  ");
        assert_eq!(
            strip_reply_fallback("> <@a:x> q\nno blank"),
            "> <@a:x> q\nno blank"
        );
    }
}
