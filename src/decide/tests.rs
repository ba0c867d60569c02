//! One test per filing rule; each fails if its rule is removed or weakened.

use super::*;
use crate::event::parse_event;
use crate::identify::Identify;

const A: &str = "9434765919"; // valid
const B: &str = "4010232137"; // valid
const BAD: &str = "9434765918"; // fails Modulus 11

fn now() -> DateTime<Utc> {
    "2026-11-21T12:00:00Z".parse().unwrap()
}

fn ev(id: &str, thread: Option<&str>, text: &str) -> ChatEvent {
    let mut v = serde_json::json!({"id": id, "room": "!r", "sender": "@a", "sent_at": "2026-11-21T10:00:00Z", "text": text});
    if let Some(t) = thread {
        v["thread"] = t.into();
    }
    parse_event(&v.to_string(), "chat").unwrap()
}

fn act(kind: &str, id: &str, thread: &str, target: &str, text: &str) -> ChatEvent {
    let v = serde_json::json!({"id": id, "type": kind, "room": "!r", "thread": thread, "target": target, "key": "✅",
        "sender": "@a", "sent_at": "2026-11-21T10:00:00Z", "text": text});
    parse_event(&v.to_string(), "chat").unwrap()
}

/// Runs events through one thread, returning every decision in order.
struct Thread {
    state: ThreadState,
    idf: Identify,
    all: Vec<Decision>,
}

impl Thread {
    fn new() -> Self {
        Self {
            state: ThreadState::default(),
            idf: Identify::default(),
            all: Vec::new(),
        }
    }
    fn at(&mut self, e: ChatEvent, now: DateTime<Utc>) -> Vec<Decision> {
        let found = self.idf.find(&e);
        let step = decide(
            std::mem::take(&mut self.state),
            e,
            found,
            now,
            &Policy::default(),
        );
        self.state = step.state;
        self.all.extend(step.decisions.clone());
        step.decisions
    }
    fn put(&mut self, e: ChatEvent) -> Vec<Decision> {
        self.at(e, now())
    }
    /// Final decision of an event.
    fn last(&self, id: &str) -> (Outcome, Option<String>, Option<String>) {
        let d = self
            .all
            .iter()
            .rev()
            .find(|d| d.event.id == id)
            .expect("decided");
        (
            d.outcome,
            d.reason.clone(),
            d.patient.as_ref().map(|p| p.value.clone()),
        )
    }
}

fn filed(p: &str) -> (Outcome, Option<String>, Option<String>) {
    (Outcome::Filed, None, Some(p.to_owned()))
}
fn quarantined(r: &str) -> (Outcome, Option<String>, Option<String>) {
    (Outcome::Quarantined, Some(r.to_owned()), None)
}

#[test]
fn rule1_single_identifier_files_to_that_patient() {
    let mut t = Thread::new();
    let d = t.put(ev("$1", None, &format!("handover: pt {A} stable")));
    assert_eq!(d.len(), 1);
    assert_eq!(t.last("$1"), filed(A));
    assert_eq!(d[0].identifiers, vec![Identifier::nhs(A)]);
    assert!(matches!(
        d[0].write,
        Some(Write::Communication { part_of: None, .. })
    ));
}

#[test]
fn rule1_an_nhs_number_with_its_own_hospital_number_files_to_that_patient() {
    let mut t = Thread::new();
    let d = t.put(ev(
        "$1",
        None,
        &format!("pt {A} (H number H0658626) stable"),
    ));
    assert_eq!(t.last("$1"), filed(A));
    // Both are reported as the event's identifiers; the patient is one.
    let h = Identifier {
        system: "https://fhir.trust.example/Id/hospital-number".into(),
        value: "H0658626".into(),
    };
    assert_eq!(d[0].identifiers, vec![Identifier::nhs(A), h]);
    // Not its second identifier: two patients.
    let d = t.put(ev("$2", None, &format!("pt {A}, H0658626")));
    assert_eq!(d[0].reason.as_deref(), Some(reason::MULTI_PATIENT));
}

#[test]
fn rule2_message_without_identifier_inherits_single_thread_patient() {
    let mut t = Thread::new();
    t.put(ev("$1", None, &format!("pt {A} for review")));
    let d = t.put(ev("$2", Some("$1"), "bloods sent"));
    assert_eq!(t.last("$2"), filed(A));
    assert!(d[0].identifiers.is_empty());
    assert_eq!(
        d[0].write,
        Some(Write::Communication {
            part_of: Some("$1".into()),
            in_response_to: None,
        })
    );
}

#[test]
fn rule3_late_identification_files_held_messages_in_order() {
    let mut t = Thread::new();
    assert_eq!(
        t.put(ev("$1", None, "can someone review bed 12"))[0].outcome,
        Outcome::Held
    );
    assert_eq!(
        t.put(ev("$2", Some("$1"), "on my way"))[0].outcome,
        Outcome::Held
    );
    let d = t.put(ev("$3", Some("$1"), &format!("it's {A}")));
    let ids: Vec<_> = d.iter().map(|d| (d.event.id.as_str(), d.outcome)).collect();
    assert_eq!(
        ids,
        vec![
            ("$1", Outcome::Filed),
            ("$2", Outcome::Filed),
            ("$3", Outcome::Filed)
        ]
    );
    assert!(d.iter().all(|d| d.patient == Some(Identifier::nhs(A))));
    assert!(t.state.held.is_empty(), "held content is released");
    // the held root becomes the thread's first filed message
    assert_eq!(t.state.first_filed.as_deref(), Some("$1"));
    assert!(
        matches!(&d[2].write, Some(Write::Communication { part_of: Some(r), .. }) if r == "$1")
    );
}

#[test]
fn rule3_hold_expires_after_window() {
    let mut t = Thread::new();
    t.at(ev("$1", None, "anyone free?"), now());
    let later = now() + Duration::hours(72) + Duration::seconds(1);
    let d = t.at(ev("$2", Some("$1"), &format!("pt {A}")), later);
    assert_eq!(
        t.last("$1"),
        (
            Outcome::Ignored,
            Some(reason::NOT_PATIENT_RELATED.into()),
            None
        )
    );
    assert_eq!(d.len(), 2, "expired message not filed: {d:?}");
    // just inside the window it would have been filed
    let mut t = Thread::new();
    t.at(ev("$1", None, "anyone free?"), now());
    t.at(
        ev("$2", Some("$1"), &format!("pt {A}")),
        now() + Duration::hours(71),
    );
    assert_eq!(t.last("$1"), filed(A));
}

#[test]
fn rule4_two_patient_thread_quarantines_unidentified_messages() {
    let mut t = Thread::new();
    t.put(ev("$1", None, &format!("pt {A}")));
    t.put(ev("$2", Some("$1"), &format!("and also {B} in bay 3")));
    assert_eq!(
        t.last("$2"),
        filed(B),
        "own single identifier is still filed (rule 1)"
    );
    t.put(ev("$3", Some("$1"), "her potassium is 6.1"));
    assert_eq!(t.last("$3"), quarantined(reason::AMBIGUOUS));
    // an explicitly identified message is still filed
    t.put(ev("$4", Some("$1"), &format!("{A} is for discharge")));
    assert_eq!(t.last("$4"), filed(A));
}

#[test]
fn rule4_held_messages_become_ambiguous_when_thread_names_two() {
    let mut t = Thread::new();
    t.put(ev("$1", None, "who's on for bay 2?"));
    t.put(ev("$2", Some("$1"), &format!("{A} and {B}")));
    assert_eq!(t.last("$1"), quarantined(reason::AMBIGUOUS));
    assert_eq!(t.state.patients.len(), 2);
    assert!(t.state.held.is_empty());
}

#[test]
fn rule5_message_naming_two_patients_is_quarantined() {
    let mut t = Thread::new();
    let d = t.put(ev("$1", None, &format!("swap beds {A} and {B}")));
    assert_eq!(t.last("$1"), quarantined(reason::MULTI_PATIENT));
    assert_eq!(d[0].identifiers.len(), 2);
    assert!(d[0].write.is_none());
    // even in a thread that already has one of them
    let mut t = Thread::new();
    t.put(ev("$1", None, &format!("pt {A}")));
    t.put(ev("$2", Some("$1"), &format!("{A} next to {B}")));
    assert_eq!(t.last("$2"), quarantined(reason::MULTI_PATIENT));
}

#[test]
fn rule6_invalid_check_digit_is_never_filed_on() {
    let mut t = Thread::new();
    t.put(ev("$1", None, &format!("pt {BAD}")));
    assert_eq!(t.last("$1"), quarantined(reason::INVALID_IDENTIFIER));
    assert!(
        t.state.patients.is_empty(),
        "an invalid number never becomes the thread's patient"
    );
    // nor does a typo inherit the thread's patient
    let mut t = Thread::new();
    t.put(ev("$1", None, &format!("pt {A}")));
    t.put(ev("$2", Some("$1"), &format!("sorry I meant {BAD}")));
    assert_eq!(t.last("$2"), quarantined(reason::INVALID_IDENTIFIER));
    // and it does not override a valid identifier silently
    t.put(ev("$3", Some("$1"), &format!("{A} not {BAD}")));
    assert_eq!(t.last("$3"), quarantined(reason::INVALID_IDENTIFIER));
}

#[test]
fn rule8_thread_that_never_names_a_patient_writes_nothing() {
    let mut t = Thread::new();
    let d1 = t.put(ev("$1", None, "coffee anyone? ext 4521, 07700 900123"));
    let d2 = t.put(ev("$2", Some("$1"), "yes please"));
    assert!(
        d1.iter()
            .chain(&d2)
            .all(|d| d.write.is_none() && d.outcome == Outcome::Held)
    );
    let d = expire(t.state.clone(), now() + Duration::hours(73));
    assert!(d.state.held.is_empty(), "content deleted at expiry");
    assert!(d.decisions.iter().all(|d| d.outcome == Outcome::Ignored
        && d.reason.as_deref() == Some(reason::NOT_PATIENT_RELATED)));
    assert_eq!(d.decisions.len(), 2);
}

#[test]
fn replies_link_to_replied_message_only_when_filed() {
    let mut t = Thread::new();
    t.put(ev("$1", None, &format!("pt {A}")));
    let mut r = ev("$2", Some("$1"), "done");
    r.reply_to = Some("$1".into());
    let d = t.put(r);
    assert!(
        matches!(&d[0].write, Some(Write::Communication { in_response_to: Some(x), .. }) if x == "$1")
    );
    let mut r = ev("$3", Some("$1"), "ok");
    r.reply_to = Some("$unknown".into());
    let d = t.put(r);
    assert!(matches!(
        &d[0].write,
        Some(Write::Communication {
            in_response_to: None,
            ..
        })
    ));
}

#[test]
fn edits_and_redactions() {
    let mut t = Thread::new();
    t.put(ev("$1", None, &format!("pt {A}")));
    t.put(act("edit", "$2", "$1", "$1", "pt now in bay 4"));
    assert_eq!(t.last("$2"), filed(A));
    t.put(act("edit", "$3", "$1", "$1", &format!("oops it's {B}")));
    assert_eq!(t.last("$3"), quarantined(reason::EDIT_CHANGES_PATIENT));
    let d = t.put(act("redaction", "$4", "$1", "$1", ""));
    assert_eq!(
        d[0].write,
        Some(Write::Redact {
            target: "$1".into(),
            meta: t.state.meta.get("$1").cloned(),
        })
    );
    t.put(act("edit", "$5", "$1", "$nope", "x"));
    assert_eq!(
        t.last("$5"),
        (
            Outcome::Ignored,
            Some(reason::TARGET_NOT_FILED.into()),
            None
        )
    );
    t.put(act("reaction", "$6", "$1", "$1", ""));
    assert_eq!(
        t.last("$6"),
        (Outcome::Ignored, Some(reason::REACTION.into()), None)
    );
}

#[test]
fn redaction_of_held_message_deletes_its_content() {
    let mut t = Thread::new();
    t.put(ev("$1", None, "bed 12 please"));
    t.put(act("edit", "$2", "$1", "$1", "bed 14 please"));
    t.put(act("redaction", "$3", "$1", "$1", ""));
    assert!(t.state.held.is_empty());
    assert_eq!(
        t.last("$1"),
        (Outcome::Ignored, Some(reason::REDACTED.into()), None)
    );
    assert_eq!(
        t.last("$2"),
        (Outcome::Ignored, Some(reason::REDACTED.into()), None)
    );
    t.put(ev("$4", Some("$1"), &format!("pt {A}")));
    assert_eq!(
        t.last("$1").0,
        Outcome::Ignored,
        "a redacted message is never filed later"
    );
}

#[test]
fn held_edit_is_filed_after_its_message() {
    let mut t = Thread::new();
    t.put(ev("$1", None, "bed 12 please"));
    t.put(act("edit", "$2", "$1", "$1", "bed 14 please"));
    let d = t.put(ev("$3", Some("$1"), &format!("pt {A}")));
    let order: Vec<_> = d.iter().map(|d| d.event.id.as_str()).collect();
    assert_eq!(order, ["$1", "$2", "$3"]);
    assert!(matches!(&d[1].write, Some(Write::Edit { target, .. }) if target == "$1"));
}

#[test]
fn decision_line_matches_architecture_section_6() {
    let mut t = Thread::new();
    let d = t.put(ev("$ev1", None, &format!("pt {A}")));
    let line = serde_json::to_string(&d[0].line()).unwrap();
    assert_eq!(
        line,
        r#"{"event_id":"$ev1","outcome":"filed","patient":{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"9434765919"},"identifiers":[{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"9434765919"}],"task":null,"reason":null}"#
    );
}

/// An event with a sender, a reply target and mentions, for task tests.
fn said(id: &str, who: &str, reply_to: Option<&str>, text: &str, mentions: &[&str]) -> ChatEvent {
    let mut v = serde_json::json!({"id": id, "room": "!r", "thread": "$1", "sender": who,
        "sent_at": "2026-11-21T10:00:00Z", "text": text, "mentions": mentions});
    if id == "$1" {
        v.as_object_mut().unwrap().remove("thread");
    }
    if let Some(r) = reply_to {
        v["reply_to"] = r.into();
    }
    parse_event(&v.to_string(), "chat").unwrap()
}

/// A thread whose first message asks for a repeat gas for A (an open Task).
fn gas_request() -> Thread {
    let mut t = Thread::new();
    t.put(said(
        "$1",
        "@a",
        None,
        &format!("{A} please repeat the gas"),
        &[],
    ));
    t
}

fn task_of(d: &[Decision]) -> (String, task::Status, task::Priority, Option<String>) {
    let c = d.last().unwrap().task.as_ref().expect("a task change");
    (
        c.request_id.clone(),
        c.task.status,
        c.task.priority,
        c.task.owner.clone(),
    )
}

#[test]
fn tasks_request_then_on_it_then_done() {
    use task::{Priority, Status};
    let mut t = Thread::new();
    let d = t.put(said(
        "$1",
        "@ward",
        None,
        &format!("pt {A}: can someone take bloods urgently"),
        &[],
    ));
    assert_eq!(
        task_of(&d),
        ("$1".into(), Status::Requested, Priority::Urgent, None)
    );
    assert!(d[0].task.as_ref().unwrap().created);
    let line = serde_json::to_value(d[0].line()).unwrap();
    assert_eq!(
        line["task"],
        serde_json::json!({"priority": "urgent", "status": "requested"})
    );
    let d = t.put(said("$2", "@hana", Some("$1"), "on it", &[]));
    assert_eq!(
        task_of(&d),
        (
            "$1".into(),
            Status::InProgress,
            Priority::Urgent,
            Some("@hana".into())
        )
    );
    assert!(
        !d[0].task.as_ref().unwrap().created,
        "the same Task moves on"
    );
    let d = t.put(said("$3", "@hana", None, "done, 3 bottles sent", &[]));
    assert_eq!(
        task_of(&d),
        (
            "$1".into(),
            Status::Completed,
            Priority::Urgent,
            Some("@hana".into())
        )
    );
    // Closed: nothing moves it back, and a plain update makes no Task.
    let d = t.put(said("$4", "@ward", None, "will do", &[]));
    assert!(d[0].task.is_none());
    assert_eq!(t.state.tasks.len(), 1);
}

#[test]
fn tasks_owner_is_the_person_mentioned() {
    let mut t = Thread::new();
    let d = t.put(said(
        "$1",
        "@ward",
        None,
        &format!("{A} @bilal please prescribe his TTOs"),
        &["@bilal"],
    ));
    assert_eq!(task_of(&d).3.as_deref(), Some("@bilal"));
    assert_eq!(d[0].task.as_ref().unwrap().task.requester, "@ward");
}

#[test]
fn tasks_are_answered_by_reply_or_as_the_threads_only_open_task() {
    use task::Status;
    let mut t = gas_request();
    t.put(said(
        "$2",
        "@a",
        None,
        "and could someone chase the CXR",
        &[],
    ));
    // Two open Tasks: an unaddressed "done" cannot say which one.
    let d = t.put(said("$3", "@b", None, "done", &[]));
    assert!(d[0].task.is_none());
    let d = t.put(said("$4", "@b", Some("$2"), "done", &[]));
    assert_eq!(task_of(&d).0, "$2");
    assert_eq!(task_of(&d).1, Status::Completed);
    // Now one open Task remains: "on it" moves it without a reply.
    let d = t.put(said("$5", "@c", None, "on it", &[]));
    assert_eq!(
        (task_of(&d).0.as_str(), task_of(&d).1),
        ("$1", Status::InProgress)
    );
}

#[test]
fn tasks_reaction_moves_the_task_of_its_target() {
    use task::Status;
    let mut t = gas_request();
    let d = t.put(act("reaction", "$2", "$1", "$1", ""));
    assert_eq!(d[0].outcome, Outcome::Filed);
    assert_eq!(d[0].write, Some(Write::TaskOnly));
    assert_eq!(task_of(&d).1, Status::Completed, "✅ completes");
    // A reaction on a message without a Task is ignored.
    t.put(said("$3", "@a", None, "obs stable", &[]));
    let d = t.put(act("reaction", "$4", "$1", "$3", ""));
    assert_eq!(
        (d[0].outcome, d[0].reason.as_deref()),
        (Outcome::Ignored, Some(reason::REACTION))
    );
}

#[test]
fn tasks_edit_re_evaluates_and_redaction_cancels() {
    use task::{Priority, Status};
    let mut t = gas_request();
    let d = t.put(act(
        "edit",
        "$2",
        "$1",
        "$1",
        &format!("{A} please repeat the gas urgently"),
    ));
    assert!(matches!(&d[0].write, Some(Write::Edit { target, .. }) if target == "$1"));
    assert_eq!(
        (task_of(&d).0.as_str(), task_of(&d).2),
        ("$1", Priority::Urgent)
    );
    let d = t.put(act(
        "edit",
        "$3",
        "$1",
        "$1",
        &format!("{A} gas repeated, fine"),
    ));
    assert_eq!(task_of(&d).1, Status::Cancelled, "no longer a request");
    // An edit that turns information into a request creates the Task of that message.
    t.put(said("$4", "@a", None, "obs stable", &[]));
    let d = t.put(act(
        "edit",
        "$5",
        "$1",
        "$4",
        "obs stable, please recheck at 4pm",
    ));
    assert_eq!(task_of(&d).0, "$4");
    let d = t.put(act("redaction", "$6", "$1", "$4", ""));
    assert!(matches!(&d[0].write, Some(Write::Redact { .. })));
    assert_eq!(task_of(&d).1, Status::Cancelled);
}

// ------------------------------------------------ fail safe (issue 15)

const C: &str = "9997654323"; // valid
const D: &str = "9992468130"; // valid

#[test]
fn unrecognised_span_is_quarantined_and_the_thread_is_no_longer_inherited() {
    let mut t = Thread::new();
    t.put(ev("$1", None, &format!("pt {C} admitted")));
    t.put(ev("$2", Some("$1"), "and (999) 246-8130 in the next bay"));
    assert_eq!(t.last("$2"), quarantined(reason::UNRECOGNISED_IDENTIFIER));
    t.put(ev("$3", Some("$1"), "bloods sent"));
    assert_eq!(t.last("$3"), quarantined(reason::AMBIGUOUS));
}

#[test]
fn span_that_is_the_threads_patient_written_oddly_is_inherited() {
    let mut t = Thread::new();
    t.put(ev("$1", None, &format!("pt {C} admitted")));
    t.put(ev("$2", Some("$1"), "that's (999) 765-4323, bloods sent"));
    assert_eq!(t.last("$2"), filed(C));
}

#[test]
fn mistyped_number_even_one_slip_from_the_patient_makes_the_thread_ambiguous() {
    // One slip from C, and maybe a slip from someone else's number too: the
    // thread may be about another patient from then on (rule 2).
    let mut t = Thread::new();
    t.put(ev("$1", None, &format!("pt {C} admitted")));
    t.put(ev("$2", Some("$1"), "label says 999 765 4332?"));
    assert_eq!(t.last("$2"), quarantined(reason::INVALID_IDENTIFIER));
    t.put(ev("$3", Some("$1"), "relabelled"));
    assert_eq!(t.last("$3"), quarantined(reason::AMBIGUOUS));
    // C's own number written again explains nothing of the typo either.
    t.put(ev("$4", Some("$1"), &format!("{C} relabelled")));
    assert_eq!(t.last("$4"), filed(C));
    t.put(ev("$5", Some("$1"), "ok"));
    assert_eq!(t.last("$5"), quarantined(reason::AMBIGUOUS));
}

#[test]
fn the_senders_edit_putting_a_typo_right_clears_the_thread() {
    let mut t = Thread::new();
    t.put(ev("$1", None, &format!("pt {C} admitted")));
    t.put(ev("$2", Some("$1"), "label says 999 765 4332?"));
    t.put(act("edit", "$3", "$1", "$2", &format!("label says {C}")));
    assert_eq!(t.last("$3"), filed(C));
    t.put(ev("$4", Some("$1"), "relabelled"));
    assert_eq!(t.last("$4"), filed(C));
    // The edit puts right its own typo only: another typo stays unexplained.
    let mut t = Thread::new();
    t.put(ev("$1", None, "pt 999 765 4332 admitted"));
    t.put(ev("$2", Some("$1"), &format!("was it {BAD}?")));
    t.put(act("edit", "$3", "$1", "$1", &format!("pt {C} admitted")));
    assert_eq!(t.last("$3"), filed(C));
    t.put(ev("$4", Some("$1"), "relabelled"));
    assert_eq!(t.last("$4"), quarantined(reason::AMBIGUOUS));
    // An edit naming a number two slips away leaves the typo unexplained.
    let mut t = Thread::new();
    t.put(ev("$1", None, &format!("pt {C} admitted")));
    t.put(ev("$2", Some("$1"), "label says 999 765 4332?"));
    t.put(act("edit", "$3", "$1", "$2", &format!("label says {D}")));
    t.put(ev("$4", Some("$1"), "relabelled"));
    assert_eq!(t.last("$4"), quarantined(reason::AMBIGUOUS));
}

#[test]
fn mistyped_number_of_someone_else_makes_the_thread_ambiguous() {
    let mut t = Thread::new();
    t.put(ev("$1", None, &format!("pt {C} admitted")));
    t.put(ev("$2", Some("$1"), &format!("also {BAD} in bay 2")));
    t.put(ev("$3", Some("$1"), "bloods sent"));
    assert_eq!(t.last("$3"), quarantined(reason::AMBIGUOUS));
}

#[test]
fn held_messages_after_an_unexplained_typo_go_ambiguous_when_another_patient_is_named() {
    let mut t = Thread::new();
    t.put(ev("$1", None, &format!("majors 1 NHS {BAD}")));
    assert_eq!(t.last("$1"), quarantined(reason::INVALID_IDENTIFIER));
    assert_eq!(
        t.put(ev("$2", Some("$1"), "trop pending"))[0].outcome,
        Outcome::Held
    );
    t.put(ev("$3", Some("$1"), &format!("it's {D}")));
    assert_eq!(t.last("$2"), quarantined(reason::AMBIGUOUS));
    assert_eq!(t.last("$3"), filed(D));
}

#[test]
fn held_messages_after_a_typo_are_quarantined_when_the_corrected_number_comes() {
    let mut t = Thread::new();
    t.put(ev("$1", None, "majors 1 NHS 999 765 4332"));
    t.put(ev("$2", Some("$1"), "trop pending"));
    t.put(ev("$3", Some("$1"), &format!("sorry, {C}")));
    assert_eq!(t.last("$3"), filed(C));
    assert_eq!(t.last("$2"), quarantined(reason::AMBIGUOUS));
    // Unless the typo itself is put right by its sender's edit first.
    let mut t = Thread::new();
    t.put(ev("$1", None, "majors 1 NHS 999 765 4332"));
    t.put(ev("$2", Some("$1"), "trop pending"));
    t.put(act("edit", "$3", "$1", "$1", &format!("majors 1 NHS {C}")));
    assert_eq!(t.last("$3"), filed(C));
    assert_eq!(t.last("$2"), filed(C));
}

#[test]
fn a_negated_identifier_is_quarantined_never_filed() {
    let mut t = Thread::new();
    t.put(ev("$1", None, &format!("pt {C} admitted")));
    let d = t.put(ev("$2", Some("$1"), &format!("not {D}, wrong sticker")));
    assert_eq!(t.last("$2"), quarantined(reason::UNRECOGNISED_IDENTIFIER));
    assert_eq!(d[0].identifiers, vec![Identifier::nhs(D)]);
}

#[test]
fn another_bed_of_the_same_kind_is_quarantined_as_other_location() {
    let mut t = Thread::new();
    t.put(ev("$1", None, &format!("SR4 pt {C} temp 38.9")));
    t.put(ev("$2", Some("$1"), "SR4 chest clear"));
    assert_eq!(t.last("$2"), filed(C));
    t.put(ev("$3", Some("$1"), "seen SR3, line site red"));
    assert_eq!(t.last("$3"), quarantined(reason::OTHER_LOCATION));
    t.put(ev("$4", Some("$1"), "cannula removed"));
    assert_eq!(t.last("$4"), quarantined(reason::AMBIGUOUS));
}

#[test]
fn an_edit_naming_the_first_patient_of_a_held_thread_files_it() {
    let mut t = Thread::new();
    t.put(ev("$1", None, "bed 6 needs INR rechecked"));
    t.put(ev("$2", Some("$1"), "on it"));
    t.put(act(
        "edit",
        "$3",
        "$1",
        "$1",
        &format!("bed 6 ({C}) needs INR rechecked"),
    ));
    assert_eq!(t.last("$1"), filed(C));
    assert_eq!(t.last("$2"), filed(C));
    assert_eq!(t.last("$3"), filed(C));
}

#[test]
fn an_edit_of_a_held_message_naming_two_patients_is_not_filed() {
    let mut t = Thread::new();
    t.put(ev("$1", None, "bed 6 needs INR rechecked"));
    t.put(act(
        "edit",
        "$2",
        "$1",
        "$1",
        &format!("{C} and {D} need INR"),
    ));
    assert_eq!(t.last("$2"), quarantined(reason::EDIT_CHANGES_PATIENT));
    // The thread now names two patients: its held message is never guessed.
    assert_eq!(t.last("$1"), quarantined(reason::AMBIGUOUS));
}

#[test]
fn an_edit_with_a_mistyped_number_is_quarantined_not_filed() {
    let mut t = Thread::new();
    t.put(ev("$1", None, &format!("pt {C} admitted")));
    t.put(act(
        "edit",
        "$2",
        "$1",
        "$1",
        &format!("pt {C} admitted, see also {BAD}"),
    ));
    assert_eq!(t.last("$2"), quarantined(reason::INVALID_IDENTIFIER));
    t.put(act(
        "edit",
        "$3",
        "$1",
        "$1",
        "pt admitted, ref (999) 246-8130",
    ));
    assert_eq!(t.last("$3"), quarantined(reason::UNRECOGNISED_IDENTIFIER));
}

#[test]
fn held_messages_of_a_thread_with_an_unexplained_span_are_quarantined_at_expiry_not_deleted() {
    let mut t = Thread::new();
    t.put(ev("$1", None, "majors 1: (999) 246-8130 chest pain"));
    assert_eq!(t.last("$1"), quarantined(reason::UNRECOGNISED_IDENTIFIER));
    assert_eq!(
        t.put(ev("$2", Some("$1"), "trop pending"))[0].outcome,
        Outcome::Held
    );
    t.at(ev("$3", Some("$1"), "ok"), now() + Duration::hours(73));
    assert_eq!(t.last("$2"), quarantined(reason::AMBIGUOUS));
    // Without the span the same message would expire as not patient-related.
    let mut u = Thread::new();
    u.put(ev("$1", None, "majors 1: chest pain"));
    u.at(ev("$2", Some("$1"), "ok"), now() + Duration::hours(73));
    assert_eq!(
        u.last("$1"),
        (
            Outcome::Ignored,
            Some(reason::NOT_PATIENT_RELATED.to_owned()),
            None
        )
    );
}

#[test]
fn outcome_names_are_the_decision_line_names() {
    for o in [
        Outcome::Filed,
        Outcome::Held,
        Outcome::Quarantined,
        Outcome::Ignored,
        Outcome::Rejected,
    ] {
        assert_eq!(serde_json::to_value(o).unwrap(), o.as_str());
    }
}

#[test]
fn a_span_is_weighed_against_the_threads_patient_only_without_an_own_identifier() {
    // The message names D and, oddly written, the thread's patient C: two
    // patients, never filed to D.
    let mut t = Thread::new();
    t.put(ev("$1", None, &format!("pt {C} admitted")));
    t.put(ev(
        "$2",
        Some("$1"),
        &format!("{D} and (999) 765-4323 swap beds"),
    ));
    assert_eq!(t.last("$2"), quarantined(reason::UNRECOGNISED_IDENTIFIER));
}

#[test]
fn in_a_thread_that_may_name_another_patient_a_span_is_never_explained_by_it() {
    let mut t = Thread::new();
    t.put(ev("$1", None, &format!("pt {C} admitted")));
    t.put(ev("$2", Some("$1"), "and (999) 246-8130 next door"));
    // C written oddly: the thread may be about two patients now, so the
    // span is not taken as C.
    t.put(ev("$3", Some("$1"), "bloods for (999) 765-4323 sent"));
    assert_eq!(t.last("$3"), quarantined(reason::UNRECOGNISED_IDENTIFIER));
}

fn from(mut e: ChatEvent, room: &str, sender: &str) -> ChatEvent {
    e.room = room.into();
    e.sender = sender.into();
    e
}

#[test]
fn an_edit_by_another_sender_is_not_applied() {
    let mut t = Thread::new();
    t.put(ev("$1", None, &format!("pt {A} needs bloods")));
    let d = t.put(from(
        act("edit", "$2", "$1", "$1", "no bloods needed"),
        "!r",
        "@mallory",
    ));
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].write, None);
    assert_eq!(
        t.last("$2"),
        (Outcome::Ignored, Some(reason::NOT_SENDER.into()), None)
    );
    // The sender's own edit still applies.
    t.put(act("edit", "$3", "$1", "$1", "bloods done"));
    assert_eq!(t.last("$3"), filed(A));
}

#[test]
fn an_edit_by_another_sender_of_a_held_message_is_not_held_with_it() {
    let mut t = Thread::new();
    t.put(ev("$1", None, "bed 12 needs review"));
    t.put(from(
        act("edit", "$2", "$1", "$1", "bed 12 is fine"),
        "!r",
        "@mallory",
    ));
    assert_eq!(
        t.last("$2"),
        (Outcome::Ignored, Some(reason::NOT_SENDER.into()), None)
    );
    assert_eq!(t.state.held.len(), 1);
}

#[test]
fn edits_redactions_and_reactions_from_another_room_are_not_applied() {
    let mut t = Thread::new();
    t.put(ev("$1", None, &format!("pt {A} can someone review")));
    for (i, kind) in ["edit", "redaction", "reaction"].iter().enumerate() {
        let id = format!("$x{i}");
        let d = t.put(from(act(kind, &id, "$1", "$1", "changed"), "!other", "@a"));
        assert_eq!(d[0].write, None, "{kind}");
        assert_eq!(
            t.last(&id),
            (Outcome::Ignored, Some(reason::OTHER_ROOM.into()), None),
            "{kind}"
        );
    }
    assert!(t.state.redacted.is_empty());
    // In the target's own room, a redaction by another sender (a moderator) applies.
    let d = t.put(from(
        act("redaction", "$r", "$1", "$1", ""),
        "!r",
        "@moderator",
    ));
    assert!(
        matches!(&d[0].write, Some(Write::Redact { target, meta: Some(m) }) if target == "$1" && m.sender.as_deref() == Some("@a"))
    );
}

#[test]
fn an_edit_not_applied_still_counts_what_it_names() {
    let mut t = Thread::new();
    t.put(ev("$1", None, &format!("pt {A}")));
    t.put(from(
        act("edit", "$2", "$1", "$1", &format!("pt {B}")),
        "!r",
        "@mallory",
    ));
    t.put(ev("$3", Some("$1"), "bloods sent"));
    assert_eq!(t.last("$3"), quarantined(reason::AMBIGUOUS));
}

fn shown(d: &Decision) -> Option<String> {
    match &d.write {
        Some(Write::Edit {
            content: Some(v), ..
        }) => v.text.clone(),
        Some(Write::Edit { content: None, .. }) => d.event.text.clone(),
        _ => None,
    }
}

#[test]
fn redacting_the_shown_edit_brings_back_the_content_before_it() {
    let mut t = Thread::new();
    t.put(ev("$1", None, &format!("pt {A} HR 112")));
    t.put(act("edit", "$2", "$1", "$1", "HR 142"));
    t.put(act("edit", "$3", "$1", "$1", "HR 150"));
    // The latest edit redacted: the message shows the edit before it.
    let d = t.put(from(
        act("redaction", "$r3", "$1", "$3", ""),
        "!r",
        "@moderator",
    ));
    assert_eq!(t.last("$r3"), filed(A));
    assert!(matches!(&d[0].write, Some(Write::Edit { target, .. }) if target == "$1"));
    assert_eq!(shown(&d[0]).as_deref(), Some("HR 142"));
    // The content shown is the original sender's, whoever redacted.
    let Some(Write::Edit {
        content: Some(v), ..
    }) = &d[0].write
    else {
        panic!()
    };
    assert_eq!(v.sender, "@a");
    // That one redacted too: the message as sent.
    let d = t.put(act("redaction", "$r2", "$1", "$2", ""));
    assert_eq!(shown(&d[0]).as_deref(), Some(&*format!("pt {A} HR 112")));
}

#[test]
fn redacting_an_edit_a_later_edit_replaced_changes_nothing() {
    let mut t = Thread::new();
    t.put(ev("$1", None, &format!("pt {A} HR 112")));
    t.put(act("edit", "$2", "$1", "$1", "HR 142"));
    t.put(act("edit", "$3", "$1", "$1", "HR 150"));
    let d = t.put(act("redaction", "$r2", "$1", "$2", ""));
    assert_eq!(d[0].write, None);
    assert_eq!(
        t.last("$r2"),
        (Outcome::Ignored, Some(reason::EDIT_SUPERSEDED.into()), None)
    );
    // Now the shown edit goes: back to the message as sent, not to $2.
    let d = t.put(act("redaction", "$r3", "$1", "$3", ""));
    assert_eq!(shown(&d[0]).as_deref(), Some(&*format!("pt {A} HR 112")));
}

#[test]
fn content_kept_to_revert_goes_after_the_window_and_then_a_person_restores() {
    let mut t = Thread::new();
    t.put(ev("$1", None, &format!("pt {A} HR 112")));
    t.put(act("edit", "$2", "$1", "$1", "HR 142"));
    assert!(!t.state.versions.is_empty());
    assert!(
        format!("{:?}", t.state).contains("Version")
            && !format!("{:?}", t.state).contains("HR 142"),
        "no content in Debug"
    );
    let later = now() + Duration::hours(73);
    let d = t.at(act("redaction", "$r2", "$1", "$2", ""), later);
    assert!(
        t.state.versions.is_empty(),
        "content dropped after the window"
    );
    assert_eq!(d[0].write, None);
    assert_eq!(t.last("$r2"), quarantined(reason::REVERT_UNAVAILABLE));
}

#[test]
fn redacting_a_message_drops_what_was_kept_of_it() {
    let mut t = Thread::new();
    t.put(ev("$1", None, &format!("pt {A} HR 112")));
    t.put(act("edit", "$2", "$1", "$1", "HR 142"));
    t.put(act("redaction", "$r1", "$1", "$1", ""));
    assert!(t.state.versions.is_empty());
    let d = t.put(act("redaction", "$r2", "$1", "$2", ""));
    assert_eq!(d[0].write, None, "a withdrawn message is not brought back");
    assert_eq!(
        t.last("$r2"),
        (Outcome::Ignored, Some(reason::EDIT_SUPERSEDED.into()), None)
    );
}

#[test]
fn redacting_an_edit_whose_kept_content_has_gone_is_for_a_person_even_if_later_content_is_kept() {
    let mut t = Thread::new();
    t.put(ev("$1", None, &format!("pt {A} HR 112")));
    t.put(act("edit", "$2", "$1", "$1", "HR 142"));
    // A later edit after the window: what $1 and $2 said is gone, $3's is kept.
    t.at(
        act("edit", "$3", "$1", "$1", "HR 150"),
        now() + Duration::hours(73),
    );
    assert_eq!(t.state.versions["$1"].len(), 1);
    let d = t.at(
        act("redaction", "$r2", "$1", "$2", ""),
        now() + Duration::hours(74),
    );
    assert_eq!(
        d[0].write, None,
        "nothing rewritten from content that is not $2's predecessor"
    );
    assert_eq!(t.last("$r2"), quarantined(reason::REVERT_UNAVAILABLE));
}

#[test]
fn the_senders_edit_correcting_a_quarantined_message_is_filed_on_its_own_text() {
    let by = |e: ChatEvent, sender: &str| {
        let mut e = e;
        e.sender = sender.into();
        e
    };
    let ignored = (
        Outcome::Ignored,
        Some(reason::TARGET_NOT_FILED.into()),
        None,
    );
    // A mistyped number, put right by its sender: the edit is filed as a new
    // Communication of its own; the original stays quarantined.
    let mut t = Thread::new();
    t.put(ev("$1", None, &format!("pt {BAD} for review")));
    assert_eq!(t.last("$1"), quarantined(reason::INVALID_IDENTIFIER));
    assert_eq!(
        t.state.quarantined.get("$1").map(String::as_str),
        Some("@a")
    );
    let d = t.put(act("edit", "$2", "$1", "$1", &format!("pt {A} for review")));
    assert_eq!(t.last("$2"), filed(A));
    assert!(matches!(d[0].write, Some(Write::Communication { .. })));
    assert_eq!(t.last("$1"), quarantined(reason::INVALID_IDENTIFIER));
    // and the thread is about A from then on.
    t.put(ev("$3", Some("$1"), "bloods sent"));
    assert_eq!(t.last("$3"), filed(A));

    // Another sender's edit, an edit naming two patients, one still mistyped
    // or one holding another identifier-like number: not applied.
    for (sender, text) in [
        ("@b", format!("pt {A} for review")),
        ("@a", format!("pt {A} and {B} for review")),
        ("@a", format!("pt {A} was {BAD}")),
        ("@a", format!("pt {A} ref 5721883936")),
        ("@a", "pt for review".to_owned()),
    ] {
        let mut t = Thread::new();
        t.put(ev("$1", None, &format!("pt {BAD} for review")));
        t.put(by(act("edit", "$2", "$1", "$1", &text), sender));
        assert_eq!(t.last("$2"), ignored, "{sender} {text}");
    }
    // Only quarantined messages count: an edit of a message never seen is not.
    let mut t = Thread::new();
    t.put(act("edit", "$2", "$1", "$1", &format!("pt {A} for review")));
    assert_eq!(t.last("$2"), ignored);
}

#[test]
fn content_is_kept_up_to_the_end_of_its_window_and_no_longer() {
    let mut t = Thread::new();
    t.put(ev("$1", None, &format!("pt {A} HR 112")));
    let until = t.state.versions["$1"][0].kept_until.expect("a window");
    assert_eq!(until, now() + Policy::default().hold_window);
    let kept = expire(t.state.clone(), until - Duration::seconds(1));
    assert_eq!(kept.state.versions["$1"].len(), 1, "inside the window");
    let gone = expire(t.state.clone(), until);
    assert!(gone.state.versions.is_empty(), "at the end of the window");
}

#[test]
fn a_resolved_message_keeps_its_content_for_the_window_from_now() {
    let e = ev("$1", None, "pt for review");
    let before = Utc::now();
    let step = resolve(
        ThreadState::default(),
        e,
        Identifier::nhs(A),
        &Policy::default(),
    );
    let until = step.state.versions["$1"][0].kept_until.expect("a window");
    assert!(until >= before + Policy::default().hold_window, "{until}");
    assert_eq!(step.decisions[0].patient, Some(Identifier::nhs(A)));
}

#[test]
fn an_edit_moves_an_open_task_only_and_only_when_it_changes() {
    use task::Status;
    // Same priority after the edit: no Task change.
    let mut t = gas_request();
    let d = t.put(act(
        "edit",
        "$2",
        "$1",
        "$1",
        &format!("{A} please repeat the gas at 4"),
    ));
    assert_eq!(t.last("$2"), filed(A));
    assert!(d[0].task.is_none(), "{:?}", d[0].task);
    // A completed Task is not moved by an edit, whether it still asks or not.
    let mut t = gas_request();
    let d = t.put(said("$2", "@b", Some("$1"), "done", &[]));
    assert_eq!(task_of(&d).1, Status::Completed);
    let d = t.put(act(
        "edit",
        "$3",
        "$1",
        "$1",
        &format!("{A} please repeat the gas urgently"),
    ));
    assert!(d[0].task.is_none(), "{:?}", d[0].task);
    let d = t.put(act(
        "edit",
        "$4",
        "$1",
        "$1",
        &format!("{A} gas repeated, fine"),
    ));
    assert!(d[0].task.is_none(), "{:?}", d[0].task);
    assert_eq!(t.state.tasks["$1"].status, Status::Completed);
}

#[test]
fn an_edit_with_a_mistyped_number_of_a_filed_message_is_quarantined() {
    let mut t = Thread::new();
    t.put(ev("$1", None, &format!("pt {C} admitted")));
    // One slip from the filed patient's number, and one from no one's.
    t.put(act("edit", "$2", "$1", "$1", "pt 999 765 4332 admitted"));
    assert_eq!(t.last("$2"), quarantined(reason::INVALID_IDENTIFIER));
    t.put(act(
        "edit",
        "$3",
        "$1",
        "$1",
        &format!("pt {C} admitted, was {BAD}"),
    ));
    assert_eq!(t.last("$3"), quarantined(reason::INVALID_IDENTIFIER));
}

#[test]
fn redacting_one_held_message_keeps_the_others_held() {
    let mut t = Thread::new();
    t.put(ev("$1", None, "bed 12 please"));
    t.put(ev("$2", Some("$1"), "bloods sent"));
    t.put(act("redaction", "$3", "$1", "$1", ""));
    assert_eq!(t.state.held.len(), 1);
    assert_eq!(t.state.held[0].event.id, "$2");
    t.put(ev("$4", Some("$1"), &format!("pt {A}")));
    assert_eq!(t.last("$2"), filed(A));
}

#[test]
fn an_edit_of_a_message_filed_before_meta_was_kept_links_to_the_thread_root() {
    // A state written before filed messages kept their meta: the edit's
    // links are rebuilt, never pointing a message at itself.
    let mut t = Thread::new();
    t.put(ev("$1", None, &format!("pt {A} admitted")));
    t.put(ev("$2", Some("$1"), "bloods sent"));
    t.state.meta.clear();
    let d = t.put(act(
        "edit",
        "$3",
        "$1",
        "$1",
        &format!("pt {A} admitted to bay 4"),
    ));
    let Some(Write::Edit { meta, .. }) = &d[0].write else {
        panic!("{:?}", d[0].write)
    };
    assert_eq!(meta.part_of, None, "the root is not part of itself");
    let d = t.put(act("edit", "$4", "$1", "$2", "bloods sent 10:00"));
    let Some(Write::Edit { meta, .. }) = &d[0].write else {
        panic!("{:?}", d[0].write)
    };
    assert_eq!(meta.part_of.as_deref(), Some("$1"));
}

#[test]
fn only_quarantined_messages_are_put_right_by_an_edit() {
    // A held message that expired unfiled (the thread never named anyone):
    // an edit naming a patient later is not applied.
    let mut t = Thread::new();
    t.put(ev("$1", None, "bed 12 please"));
    let step = expire(std::mem::take(&mut t.state), now() + Duration::hours(73));
    assert_eq!(step.decisions[0].outcome, Outcome::Ignored);
    t.state = step.state;
    assert!(t.state.quarantined.is_empty());
    t.put(act("edit", "$2", "$1", "$1", &format!("bed 12 {A} please")));
    assert_eq!(
        t.last("$2"),
        (
            Outcome::Ignored,
            Some(reason::TARGET_NOT_FILED.into()),
            None
        )
    );
}

/// A step filing one message about A in a new thread.
fn filed_step() -> Step {
    let e = ev("$1", None, &format!("pt {A} for review"));
    let found = Identify::default().find(&e);
    decide(ThreadState::default(), e, found, now(), &Policy::default())
}

#[test]
fn rule7_the_sinks_verdict_makes_the_final_decision_in_the_core() {
    for (verdict, outcome, why) in [
        (
            Verdict::UnknownPatient,
            Outcome::Quarantined,
            reason::UNKNOWN_PATIENT,
        ),
        (
            Verdict::AmbiguousPatient,
            Outcome::Quarantined,
            reason::AMBIGUOUS_PATIENT,
        ),
        (
            Verdict::OtherPatient,
            Outcome::Quarantined,
            reason::MULTI_PATIENT,
        ),
        (
            Verdict::Refused {
                reason: "HTTP 422".into(),
                detail: "invalid: Elsie Quenby".into(),
            },
            Outcome::Rejected,
            "HTTP 422",
        ),
    ] {
        let mut step = filed_step();
        assert_eq!(step.decisions[0].outcome, Outcome::Filed);
        assert!(step.state.filed.contains_key("$1"));
        step.after_write(0, verdict.clone());
        let d = &step.decisions[0];
        assert_eq!(
            (d.outcome, d.reason.as_deref()),
            (outcome, Some(why)),
            "{verdict:?}"
        );
        assert!(d.write.is_none(), "{verdict:?}: nothing is written");
        // Only a refusal carries the server's words, apart from its reason.
        let refused = matches!(verdict, Verdict::Refused { .. });
        assert_eq!(
            d.detail.as_deref(),
            refused.then_some("invalid: Elsie Quenby"),
            "{verdict:?}"
        );
        // The thread forgets the filing: a reply links to nothing.
        assert!(!step.state.filed.contains_key("$1"), "{verdict:?}");
        assert_eq!(step.state.first_filed, None, "{verdict:?}");
        let reply = ev("$2", Some("$1"), "seen, plan as above");
        let found = Identify::default().find(&reply);
        let next = decide(step.state, reply, found, now(), &Policy::default());
        assert!(
            matches!(
                next.decisions[0].write,
                Some(Write::Communication { part_of: None, .. })
            ),
            "{verdict:?}: {:?}",
            next.decisions[0].write
        );
    }
    // Written: the decision stands.
    let mut step = filed_step();
    step.after_write(0, Verdict::Written);
    assert_eq!(step.decisions[0].outcome, Outcome::Filed);
    assert!(step.decisions[0].write.is_some());
    assert!(step.state.filed.contains_key("$1"));
    // A verdict on a decision the step does not hold changes nothing.
    step.after_write(1, Verdict::UnknownPatient);
    assert_eq!(step.decisions[0].outcome, Outcome::Filed);
    assert!(step.state.filed.contains_key("$1"));
}
