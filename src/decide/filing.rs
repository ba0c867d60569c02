//! Filing: a message or an edit filed to a patient, with the Task it creates
//! or moves on. Every rule that files ends here.

use super::{Decision, Outcome, Policy, Write};
use crate::decide::state::{FiledMeta, ThreadState, Version};
use crate::decide::task::{Status, TaskChange, TaskRules, TaskState};
use crate::event::ChatEvent;
use crate::identify::Identifier;

/// File `event` to `patient`, linking it into the thread; create or move on
/// a Task (see `mappings/tasks.toml` for the order of evaluation).
pub(super) fn file(
    state: &mut ThreadState,
    event: ChatEvent,
    patient: Identifier,
    ids: Vec<Identifier>,
    policy: &Policy,
) -> Decision {
    let part_of = state.first_filed.clone().filter(|root| *root != event.id);
    let in_response_to = event
        .reply_to
        .clone()
        .filter(|r| state.filed.contains_key(r));
    if state.first_filed.is_none() {
        state.first_filed = Some(event.id.clone());
    }
    state.filed.insert(event.id.clone(), patient.clone());
    state.meta.insert(
        event.id.clone(),
        FiledMeta {
            sent: event.sent_at,
            part_of: part_of.clone(),
            in_response_to: in_response_to.clone(),
            room: Some(event.room.clone()),
            sender: Some(event.sender.clone()),
        },
    );
    state
        .versions
        .insert(event.id.clone(), vec![Version::of(&event)]);
    let mut d = Decision::new(event, Outcome::Filed, None, ids);
    d.patient = Some(patient);
    d.write = Some(Write::Communication {
        part_of,
        in_response_to,
    });
    d.task = message_task(state, &d, &policy.tasks);
    d
}

/// The Task a filed message creates or moves on.
pub(super) fn message_task(
    state: &mut ThreadState,
    d: &Decision,
    rules: &TaskRules,
) -> Option<TaskChange> {
    let e = &d.event;
    let text = e.text.as_deref().unwrap_or("");
    // 1. Lifecycle of the open Task this message answers.
    if let Some(req) = answered_task(state, e)
        && let Some(to) = rules.lifecycle(text)
        && let Some(t) = state.tasks.get_mut(&req)
        && t.status.can_move_to(to)
    {
        move_task(t, to, e);
        return Some(TaskChange {
            request_id: req,
            task: t.clone(),
            created: false,
        });
    }
    // 2. A new request.
    let priority = rules.request(text)?;
    let t = TaskState {
        patient: d.patient.clone()?,
        priority,
        status: Status::Requested,
        requester: e.sender.clone(),
        requester_name: e.sender_name.clone(),
        owner: e.mentions.first().cloned(),
        authored_on: e.sent_at,
        last_modified: e.sent_at,
    };
    state.tasks.insert(e.id.clone(), t.clone());
    Some(TaskChange {
        request_id: e.id.clone(),
        task: t,
        created: true,
    })
}

/// Move a Task on because of event `e`: its sender takes it on (not for a cancel).
pub(super) fn move_task(t: &mut TaskState, to: Status, e: &ChatEvent) {
    t.status = to;
    if to != Status::Cancelled {
        t.owner = Some(e.sender.clone());
    }
    t.last_modified = e.sent_at;
}

/// The open Task a message answers: the one of the message it replies to, or
/// the thread's only open Task.
pub(super) fn answered_task(state: &ThreadState, e: &ChatEvent) -> Option<String> {
    if let Some(r) = &e.reply_to
        && state.tasks.get(r).is_some_and(|t| t.status.is_open())
    {
        return Some(r.clone());
    }
    let mut open = state
        .tasks
        .iter()
        .filter(|(id, t)| t.status.is_open() && **id != e.id);
    match (open.next(), open.next()) {
        (Some((id, _)), None) => Some(id.clone()),
        _ => None,
    }
}

/// File an edit of the filed message `target`: its Communication is replaced
/// and its Task re-evaluated.
pub(super) fn file_edit(
    state: &mut ThreadState,
    event: ChatEvent,
    patient: Identifier,
    ids: Vec<Identifier>,
    target: String,
    policy: &Policy,
) -> Decision {
    // Messages filed before edits were kept whole have no meta: the edit's time stands in.
    let meta = state.meta.get(&target).cloned().unwrap_or(FiledMeta {
        sent: event.sent_at,
        part_of: state.first_filed.clone().filter(|r| *r != target),
        in_response_to: None,
        room: None,
        sender: None,
    });
    let text = event.text.clone().unwrap_or_default();
    let mut d = Decision::new(event, Outcome::Filed, None, ids);
    d.patient = Some(patient.clone());
    let now_request = policy.tasks.request(&text);
    d.task = match (state.tasks.get_mut(&target), now_request) {
        (Some(t), Some(p)) if t.status.is_open() && t.priority != p => {
            t.priority = p;
            t.last_modified = d.event.sent_at;
            Some((t.clone(), false))
        }
        (Some(t), None) if t.status.is_open() => {
            t.status = Status::Cancelled;
            t.last_modified = d.event.sent_at;
            Some((t.clone(), false))
        }
        (None, Some(p)) => {
            let t = TaskState {
                patient,
                priority: p,
                status: Status::Requested,
                requester: d.event.sender.clone(),
                requester_name: d.event.sender_name.clone(),
                owner: d.event.mentions.first().cloned(),
                authored_on: meta.sent,
                last_modified: d.event.sent_at,
            };
            state.tasks.insert(target.clone(), t.clone());
            // The Communication already exists: the Task refers to it.
            Some((t, false))
        }
        _ => None,
    }
    .map(|(task, created)| TaskChange {
        request_id: target.clone(),
        task,
        created,
    });
    state
        .versions
        .entry(target.clone())
        .or_default()
        .push(Version::of(&d.event));
    state.edits.insert(d.event.id.clone(), target.clone());
    d.write = Some(Write::Edit {
        target,
        meta,
        content: None,
    });
    d
}
