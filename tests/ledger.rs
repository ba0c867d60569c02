//! The ledger suite, run on SQLite and on PostgreSQL (the local server,
//! `RECORDBRIDGE_TEST_PG_URL`, a fresh database per test): the same calls
//! must give the same results on both backends.

mod common;

use chrono::{DateTime, Utc};
use recordbridge::decide::{self, Policy};
use recordbridge::event::parse_event;
use recordbridge::identify::Identify;
use recordbridge::ledger::{Ledger, OutboxRow};

const A: &str = "9434765919";
const B: &str = "4010232137";

/// A ledger on a fresh backend, and the PostgreSQL database to drop afterwards.
async fn open(backend: &str, tmp: &tempfile::TempDir) -> (Ledger, Option<String>) {
    if backend == "sqlite" {
        return (
            Ledger::open(&tmp.path().join("ledger.db")).await.unwrap(),
            None,
        );
    }
    let (url, name) = common::pg::fresh_db("rbtest").await;
    (
        Ledger::open(std::path::Path::new(&url)).await.unwrap(),
        Some(name),
    )
}

async fn drop_db(name: Option<String>) {
    if let Some(name) = name {
        common::pg::drop_db(&name).await;
    }
}

fn now() -> DateTime<Utc> {
    "2026-11-21T12:00:00Z".parse().unwrap()
}

fn ev(id: &str, thread: Option<&str>, text: &str) -> recordbridge::event::ChatEvent {
    let mut v = serde_json::json!({"id": id, "room": "!r", "sender": "@a", "sent_at": "2026-11-21T10:00:00Z", "text": text});
    if let Some(t) = thread {
        v["thread"] = t.into();
    }
    parse_event(&v.to_string(), "chat").unwrap()
}

/// Decide and commit one event of thread `$1`, as the run does.
async fn put(l: &Ledger, e: recordbridge::event::ChatEvent, outbox: bool) -> Vec<decide::Decision> {
    let key = e.thread_key();
    let state = l.load_thread(&key).await.unwrap();
    let found = Identify::default().find(&e);
    let step = decide::decide(state, e, found, now(), &Policy::default());
    let rows: Vec<OutboxRow> = if outbox {
        step.decisions
            .iter()
            .map(|d| OutboxRow {
                platform: d.event.platform.clone(),
                event_id: d.event.id.clone(),
                routing_key: format!("{}.chat", d.outcome.as_str()),
                payload: "{}".into(),
            })
            .collect()
    } else {
        Vec::new()
    };
    l.commit(&key, &step.state, &step.decisions, &rows, now())
        .await
        .unwrap();
    step.decisions
}

async fn thread_state_and_held_content_survive(l: &Ledger) {
    put(l, ev("$1", None, "bed 12 please"), false).await;
    put(l, ev("$2", Some("$1"), "and bloods"), false).await;
    assert_eq!(l.seen("chat", "$1").await.unwrap().as_deref(), Some("held"));
    assert_eq!(l.held_count().await.unwrap(), 2);
    let key = ev("$1", None, "").thread_key();
    assert_eq!(l.load_thread(&key).await.unwrap().held.len(), 2);
    assert_eq!(
        l.thread_of("chat", "$2").await.unwrap().as_deref(),
        Some(key.as_str())
    );
    // Late identification files both held messages and deletes their content.
    let d = put(l, ev("$3", Some("$1"), &format!("pt {A}")), false).await;
    assert_eq!(d.len(), 3);
    assert_eq!(l.held_count().await.unwrap(), 0);
    let st = l.load_thread(&key).await.unwrap();
    assert_eq!(st.filed.len(), 3);
    assert!(st.tasks.contains_key("$1"), "the request became a Task");
    assert_eq!(
        l.seen("chat", "$1").await.unwrap().as_deref(),
        Some("filed")
    );
    assert_eq!(l.seen("chat", "$nope").await.unwrap(), None);
    let outcomes = l.outcomes().await.unwrap();
    assert_eq!(outcomes.len(), 3);
    assert!(
        outcomes
            .iter()
            .all(|o| o.1 == "filed" && o.3.as_deref() == Some(A))
    );
}

async fn outbox_keeps_outcomes_until_published(l: &Ledger) {
    put(l, ev("$1", None, &format!("pt {A}")), true).await;
    put(l, ev("$2", None, "no patient here"), true).await;
    let pending = l.pending_outcomes(10).await.unwrap();
    assert_eq!(pending.len(), 2);
    assert_eq!(pending[0].routing_key, "filed.chat");
    assert_eq!(l.pending_outcomes_of("chat", "$2").await.unwrap().len(), 1);
    l.published(&[pending[0].seq]).await.unwrap();
    let left = l.pending_outcomes(10).await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].seq, pending[1].seq);
}

async fn quarantine_review_is_transactional_and_audited(l: &Ledger) {
    put(l, ev("$1", None, &format!("pts {A} and {B}")), false).await;
    let items = l.quarantine_list(Some("open")).await.unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0].reason, "multi-patient");
    let qid = items[0].qid;
    let (item, content) = l.quarantine_item(qid).await.unwrap().unwrap();
    assert_eq!(item.event_id, "$1");
    assert!(content.unwrap().text.unwrap().contains(A));
    l.audit_view(qid, "Dr Ada", now()).await.unwrap();
    let key = item.thread_key.clone();
    let state = l.load_thread(&key).await.unwrap();
    let e = l.quarantine_item(qid).await.unwrap().unwrap().1.unwrap();
    let step = decide::discard(state, e);
    l.close_quarantine(
        qid,
        "discarded",
        &key,
        &step.state,
        &step.decisions,
        "Dr Ada",
        "duplicate",
        now(),
    )
    .await
    .unwrap();
    // Closed once only; the content is gone; the trail has both actions.
    let again = l
        .close_quarantine(
            qid,
            "discarded",
            &key,
            &step.state,
            &step.decisions,
            "Dr Ada",
            "x",
            now(),
        )
        .await;
    assert!(again.is_err());
    let (item, content) = l.quarantine_item(qid).await.unwrap().unwrap();
    assert_eq!(item.status, "discarded");
    assert!(content.is_none());
    let trail: Vec<String> = l
        .audit_trail(qid)
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.action)
        .collect();
    assert_eq!(trail, ["viewed", "discarded"]);
    assert_eq!(
        l.seen("chat", "$1").await.unwrap().as_deref(),
        Some("ignored")
    );
    assert!(l.quarantine_list(Some("open")).await.unwrap().is_empty());
}

async fn report_and_reconcile_inputs(l: &Ledger) {
    put(l, ev("$1", None, &format!("pt {A}")), false).await;
    put(l, ev("$2", None, "nothing yet"), false).await;
    l.record_reject("file:x:3", "not valid JSON", now())
        .await
        .unwrap();
    let rows = l.report_rows(None, None).await.unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].room, "!r");
    assert!(
        rows.iter()
            .any(|r| r.outcome == "filed" && r.sent_at.is_some())
    );
    let later: DateTime<Utc> = "2026-11-21T11:00:00Z".parse().unwrap();
    assert!(l.report_rows(Some(later), None).await.unwrap().is_empty());
    assert_eq!(l.report_rows(None, Some(later)).await.unwrap().len(), 2);
    assert_eq!(l.reject_times(None, None).await.unwrap().len(), 1);
    let (held, oldest) = l.held_summary().await.unwrap();
    assert_eq!((held, oldest), (1, Some(now())));
    let filed = l.filed_with_state().await.unwrap();
    assert_eq!(filed.len(), 1);
    assert_eq!(filed[0].1, "$1");
    assert_eq!(filed[0].2.as_deref(), Some(A));
    assert!(filed[0].3.filed.contains_key("$1"));
    assert_eq!(
        l.threads_with_expired_holds("2026-12-31T00:00:00Z".parse().unwrap())
            .await
            .unwrap()
            .len(),
        1
    );
}

/// Content kept to revert edits (thread state `versions`) is found by the
/// sweep once the thread has been idle for the window, and dropped by
/// `expire` then; a thread without kept content is not listed.
async fn kept_content_is_swept_after_the_window(l: &Ledger) {
    put(l, ev("$1", None, &format!("pt {A} HR 112")), false).await;
    put(l, ev("$9", None, "nothing identifying"), false).await;
    let key = ev("$1", None, "").thread_key();
    let state = l.load_thread(&key).await.unwrap();
    assert!(
        state.versions.contains_key("$1"),
        "the filed message's content is kept"
    );
    let window = Policy::default().hold_window;
    // Not yet: the thread was decided at now().
    let before = now() - chrono::Duration::seconds(1);
    assert!(l.threads_with_old_content(before).await.unwrap().is_empty());
    let later = now() + window + chrono::Duration::seconds(1);
    let listed = l.threads_with_old_content(later - window).await.unwrap();
    assert_eq!(
        listed,
        vec![key.clone()],
        "only the thread that keeps content"
    );
    let step = decide::expire(state, later);
    assert!(step.state.versions.is_empty());
    l.commit(&key, &step.state, &step.decisions, &[], later)
        .await
        .unwrap();
    assert!(l.threads_with_old_content(later).await.unwrap().is_empty());
    assert!(l.load_thread(&key).await.unwrap().versions.is_empty());
}

macro_rules! both {
    ($($name:ident),* $(,)?) => {
        mod on_sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let tmp = tempfile::tempdir().unwrap();
                    let (l, db) = super::open("sqlite", &tmp).await;
                    super::$name(&l).await;
                    l.close().await;
                    super::drop_db(db).await;
                }
            )*
        }
        mod on_postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let tmp = tempfile::tempdir().unwrap();
                    let (l, db) = super::open("postgres", &tmp).await;
                    super::$name(&l).await;
                    l.close().await;
                    super::drop_db(db).await;
                }
            )*
        }
    };
}

both!(
    thread_state_and_held_content_survive,
    outbox_keeps_outcomes_until_published,
    quarantine_review_is_transactional_and_audited,
    report_and_reconcile_inputs,
    kept_content_is_swept_after_the_window,
);

/// The binary with a PostgreSQL ledger: the fixture chat decides exactly as
/// with SQLite, and a second run over it writes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_runs_on_a_postgres_ledger_like_on_sqlite() {
    let tmp = tempfile::tempdir().unwrap();
    let (l, db) = open("postgres", &tmp).await;
    l.close().await;
    let name = db.clone().unwrap();
    let url = format!(
        "{}/{name}",
        common::pg::admin_url().rsplit_once('/').unwrap().0
    );
    let src = format!("file:{}", common::fixture("ward-chat.ndjson").display());
    let pg_out = tmp.path().join("pg");
    let sq_out = tmp.path().join("sq");
    common::run_ok(&[
        "run",
        "--source",
        &src,
        "--sink",
        &format!("dir:{}", pg_out.display()),
        "--ledger",
        &url,
    ]);
    common::run_ok(&[
        "run",
        "--source",
        &src,
        "--sink",
        &format!("dir:{}", sq_out.display()),
    ]);
    let n = common::bundles(&pg_out).len();
    assert_eq!(n, common::bundles(&sq_out).len());
    let report = |ledger: &str| -> serde_json::Value {
        serde_json::from_slice(&common::run_ok(&["report", "--ledger", ledger]).stdout).unwrap()
    };
    let a = report(&url);
    let b = report(&sq_out.join("ledger.db").display().to_string());
    assert_eq!(a["totals"], b["totals"]);
    assert_eq!(a["by_room"], b["by_room"]);
    // Replay: nothing new.
    common::run_ok(&[
        "run",
        "--source",
        &src,
        "--sink",
        &format!("dir:{}", pg_out.display()),
        "--ledger",
        &url,
    ]);
    assert_eq!(common::bundles(&pg_out).len(), n);
    drop_db(db).await;
}

/// A NUL in an event id cannot be kept by PostgreSQL: the event is rejected
/// with its reason and the run goes on, and so do later runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_with_a_nul_is_rejected_and_runs_on_a_postgres_ledger_go_on() {
    let tmp = tempfile::tempdir().unwrap();
    let (l, db) = open("postgres", &tmp).await;
    l.close().await;
    let name = db.clone().unwrap();
    let url = format!(
        "{}/{name}",
        common::pg::admin_url().rsplit_once('/').unwrap().0
    );
    let src = tmp.path().join("events.ndjson");
    std::fs::write(
        &src,
        [
            r#"{"id":"n1","room":"!r","sender":"@a","sent_at":"2026-11-20T08:00:00Z","text":"pt 999 765 4323 obs fine"}"#,
            r#"{"id":"n2\u0000","room":"!r","thread":"n1","sender":"@a","sent_at":"2026-11-20T08:01:00Z","text":"seen"}"#,
            r#"{"id":"n3","room":"!r","thread":"n1","sender":"@a","sent_at":"2026-11-20T08:02:00Z","text":"plan agreed"}"#,
        ]
        .join("\n"),
    )
    .unwrap();
    let out = tmp.path().join("out");
    let args = [
        "run".to_owned(),
        "--source".into(),
        format!("file:{}", src.display()),
        "--sink".into(),
        format!("dir:{}", out.display()),
        "--ledger".into(),
        url.clone(),
    ];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    for _ in 0..2 {
        common::run_ok(&args);
    }
    assert_eq!(common::bundles(&out).len(), 2, "n1 and n3 filed once");
    let rejected = std::fs::read_to_string(out.join("rejected.ndjson")).unwrap();
    assert_eq!(rejected.lines().count(), 2, "n2 rejected by each run");
    assert!(rejected.contains("contains a NUL character"), "{rejected}");
    drop_db(db).await;
}
