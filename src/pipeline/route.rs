//! Routing: the conversation (thread) an event belongs to, and the worker
//! that owns it.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};

use crate::event::{ChatEvent, EventKind};

use super::*;

pub(super) fn worker_of(key: &str, n: usize) -> usize {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    key.hash(&mut h);
    (h.finish() % n as u64) as usize
}

/// The conversation (thread) an event belongs to. An edit, redaction or
/// reaction goes to its target's thread: platforms such as Matrix and Teams
/// name the target, not the thread. A reply outside a thread goes to the
/// conversation of the message it answers, in the same room (ARCHITECTURE §4
/// rule 2). The target may still be in flight (dispatched, not yet
/// committed), so recently dispatched events are looked up first, then the
/// ledger.
pub(super) async fn thread_key(
    sh: &Shared,
    recent: &mut RecentThreads,
    ev: &ChatEvent,
) -> anyhow::Result<String> {
    let of = match (&ev.kind, &ev.target) {
        (EventKind::Message, _) if ev.thread.is_none() => ev.reply_to.as_ref(),
        (EventKind::Message, _) | (_, None) => None,
        (_, Some(t)) => Some(t),
    };
    let key = match of {
        None => None,
        Some(t) => match recent.get(&ev.platform, t) {
            Some(k) => Some(k.to_owned()),
            None => sh.ledger.thread_of(&ev.platform, t).await?,
        },
    };
    // A reply joins its target's conversation only within the same room.
    let same_room = crate::event::thread_key(&ev.platform, &ev.room, "");
    let key = key
        .filter(|k| ev.kind != EventKind::Message || k.starts_with(&same_room))
        .unwrap_or_else(|| match (&ev.kind, &ev.thread, &ev.target) {
            // An edit, redaction or reaction of a message never seen: the
            // thread the message would be in (an edit first seen is that
            // message, see `first_seen`).
            (EventKind::Message, ..) | (_, Some(_), _) | (_, None, None) => ev.thread_key(),
            (_, None, Some(t)) => crate::event::thread_key(&ev.platform, &ev.room, t),
        });
    recent.insert(&ev.platform, &ev.id, &key);
    Ok(key)
}

/// How many dispatched events' threads are remembered in memory (about
/// 10 MB at most); in flight at once are at most the worker queues (64 each).
pub(super) const RECENT_THREADS: usize = 65_536;

/// Thread keys of the most recently dispatched events, bounded (oldest out
/// first). It only has to cover events not yet in the ledger, which the
/// bounded worker queues keep far below the capacity.
pub(crate) struct RecentThreads {
    map: HashMap<(String, String), String>,
    order: std::collections::VecDeque<(String, String)>,
    cap: usize,
}

impl RecentThreads {
    pub(crate) fn new(cap: usize) -> Self {
        Self {
            map: HashMap::new(),
            order: std::collections::VecDeque::new(),
            cap: cap.max(1),
        }
    }

    fn get(&self, platform: &str, id: &str) -> Option<&str> {
        self.map
            .get(&(platform.to_owned(), id.to_owned()))
            .map(String::as_str)
    }

    fn insert(&mut self, platform: &str, id: &str, key: &str) {
        let k = (platform.to_owned(), id.to_owned());
        if self.map.insert(k.clone(), key.to_owned()).is_none() {
            self.order.push_back(k);
            while self.order.len() > self.cap {
                if let Some(old) = self.order.pop_front() {
                    self.map.remove(&old);
                }
            }
        }
    }
}
