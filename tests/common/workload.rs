//! A synthetic partitioned workload: many threads in many rooms, interleaved
//! in time, each opened by a message naming a fixture patient's NHS number
//! (999 test range) and followed by messages without identifiers. Event ids
//! say their thread and position: `$p<thread>-<k>`.
#![allow(dead_code)]

/// (routing key = room, chat event v1 JSON), in publish order.
pub fn partitioned(
    events: usize,
    threads: usize,
    rooms: usize,
    nhs: &[String],
) -> Vec<(String, String)> {
    let base = chrono::DateTime::parse_from_rfc3339("2026-11-25T08:00:00Z").unwrap();
    (0..events)
        .map(|i| {
            let t = i % threads;
            let k = i / threads;
            let room = format!("!ward{}:trust.example", t % rooms);
            let root = format!("$p{t}-0");
            let id = format!("$p{t}-{k}");
            let sent = (base + chrono::Duration::seconds(i as i64)).to_rfc3339();
            let mut v = serde_json::json!({
                "id": id, "platform": "matrix", "type": "message", "room": room,
                "sender": format!("@nurse{}:trust.example", t % 17),
                "sent_at": sent,
            });
            if k == 0 {
                v["text"] = format!("Handover for NHS {}, bed {t}", nhs[t % nhs.len()]).into();
            } else {
                v["thread"] = root.into();
                v["text"] = format!("Obs repeated, update {k} for bed {t}").into();
            }
            (room, v.to_string())
        })
        .collect()
}

/// (thread, position) of a workload event id.
pub fn position(id: &str) -> Option<(usize, usize)> {
    let (t, k) = id.strip_prefix("$p")?.split_once('-')?;
    Some((t.parse().ok()?, k.parse().ok()?))
}
