//! Task for a request message (ARCHITECTURE §5): one Task per request, written
//! with `PUT Task/<id derived from the request>`, so every change is an update
//! of the same Task (a new version) and a replay writes the same content.

use fhir_sdk::r4b::codes::{RequestPriority, TaskIntent, TaskStatus};
use fhir_sdk::r4b::resources::Task;

use super::{
    RecordCtx, URI_SYSTEM, chat_urn, communication_ref, date_time, derived_id, identifier,
    logical_ref, patient_ref, reference, user_system,
};
use crate::decide::task::{Priority, Status, TaskChange};

/// `Task/<id>` of the Task of request `request_id`.
pub fn task_id(platform: &str, request_id: &str) -> String {
    derived_id(
        "rbt",
        &format!(
            "{}:{platform}{}:{request_id}",
            platform.len(),
            request_id.len()
        ),
    )
}

fn status(s: Status) -> TaskStatus {
    match s {
        Status::Requested => TaskStatus::Requested,
        Status::Accepted => TaskStatus::Accepted,
        Status::InProgress => TaskStatus::InProgress,
        Status::Completed => TaskStatus::Completed,
        Status::Cancelled => TaskStatus::Cancelled,
    }
}

pub(crate) fn priority(p: Priority) -> RequestPriority {
    match p {
        Priority::Routine => RequestPriority::Routine,
        Priority::Urgent => RequestPriority::Urgent,
        Priority::Asap => RequestPriority::Asap,
        Priority::Stat => RequestPriority::Stat,
    }
}

/// The Task as changed by a decision. `focus` is the request's Communication:
/// its bundle-internal `urn:uuid` when created in the same Bundle, else a
/// conditional reference on its identifier.
pub fn task(platform: &str, c: &TaskChange, focus: Option<&str>, ctx: &RecordCtx<'_>) -> Task {
    let t = &c.task;
    let users = user_system(platform);
    let focus = focus.map_or_else(|| communication_ref(platform, &c.request_id), str::to_owned);
    let subject = ctx
        .patient_ref
        .map_or_else(|| patient_ref(&t.patient), str::to_owned);
    let mut task = Task::builder()
        .status(status(t.status))
        .intent(TaskIntent::Unknown) // `order` in the JSON: see bundle()
        .build()
        .expect("status and intent set");
    task.id = Some(task_id(platform, &c.request_id));
    task.identifier = vec![Some(identifier(
        URI_SYSTEM,
        &format!("{}#task", chat_urn(platform, &c.request_id)),
    ))];
    // No message text: the ledger keeps none, and every change restates the
    // whole Task. The request itself is the focus Communication.
    task.description = Some("Request made in team chat; the request message is the focus".into());
    task.priority = Some(priority(t.priority));
    task.focus = Some(reference(focus));
    task.r#for = Some(reference(subject));
    task.authored_on = Some(date_time(t.authored_on));
    task.last_modified = Some(date_time(t.last_modified));
    task.requester = Some(logical_ref(
        "Practitioner",
        &users,
        &t.requester,
        t.requester_name.as_deref(),
    ));
    task.owner = t
        .owner
        .as_deref()
        .map(|o| logical_ref("Practitioner", &users, o, None));
    task
}
