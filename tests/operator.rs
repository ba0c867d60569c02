//! Operator errors and what the command line shows (issue 18, items 10, 11
//! and 16): configuration and usage errors exit 2 and name what is wrong;
//! secrets of URL settings are never printed; values from events reach the
//! terminal and the CSV report inert.

mod common;

use std::path::Path;

use common::bin;

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A command line, its environment, and what its error must name.
type Case<'a> = (Vec<&'a str>, Vec<(&'a str, &'a str)>, &'a str);

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A ledger with one event decided, so that the report and the quarantine
/// commands have something to open.
fn small_run(dir: &Path, events: &str) -> std::path::PathBuf {
    let src = dir.join("events.ndjson");
    std::fs::write(&src, events).unwrap();
    let out = dir.join("out");
    let o = bin()
        .args(["run", "--source"])
        .arg(format!("file:{}", src.display()))
        .arg("--sink")
        .arg(format!("dir:{}", out.display()))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    out.join("ledger.db")
}

#[test]
fn configuration_and_usage_errors_exit_2_and_say_what_is_wrong() {
    let tmp = tempfile::tempdir().unwrap();
    let ledger = small_run(
        tmp.path(),
        r#"{"id":"e1","platform":"matrix","room":"!r","sender":"@a","sent_at":"2026-11-20T08:00:00Z","text":"bed 4 obs fine"}"#,
    );
    let ledger = ledger.to_str().unwrap();
    let bad_tasks = tmp.path().join("tasks.toml");
    std::fs::write(&bad_tasks, "[request\nphrases = 1").unwrap();
    let src = format!("file:{}", tmp.path().join("events.ndjson").display());
    let sink = format!("dir:{}", tmp.path().join("o2").display());
    let cases: Vec<Case> = vec![
        (vec!["run", "--source", &src], vec![], "setting `sink`"),
        (vec!["run", "--sink", &sink], vec![], "setting `source`"),
        (
            vec!["run", "--source", &src, "--sink", "ftp:x"],
            vec![],
            "setting `sink`",
        ),
        (
            vec!["check"],
            vec![("RECORDBRIDGE_IDENTIFIERS", "/nonexistent/identifiers.toml")],
            "setting `identifiers`",
        ),
        (
            vec!["check"],
            vec![("RECORDBRIDGE_TASKS", bad_tasks.to_str().unwrap())],
            "setting `tasks`",
        ),
        (
            vec!["report", "--ledger", ledger, "--format", "xml"],
            vec![],
            "--format",
        ),
        (
            vec!["report", "--ledger", ledger, "--since", "last tuesday"],
            vec![],
            "--since",
        ),
        (
            vec![
                "report",
                "--ledger",
                ledger,
                "--since",
                "2026-02-01",
                "--until",
                "2026-01-01",
            ],
            vec![],
            "--until",
        ),
        (
            vec![
                "quarantine",
                "list",
                "--ledger",
                ledger,
                "--status",
                "bogus",
            ],
            vec![],
            "--status",
        ),
        (
            vec!["reconcile", "--ledger", ledger, "--sink", &sink],
            vec![],
            "fhir:URL",
        ),
    ];
    for (args, env, named) in cases {
        let o = bin().args(&args).envs(env.clone()).output().unwrap();
        assert_eq!(o.status.code(), Some(2), "{args:?} {env:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(named), "{args:?}: {}", stderr(&o));
    }
    // The same commands with what they need succeed.
    let o = bin()
        .args(["report", "--ledger", ledger, "--since", "2026-01-01"])
        .args(["--until", "2026-12-31"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let o = bin()
        .args(["quarantine", "list", "--ledger", ledger, "--status", "open"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn secrets_of_url_settings_are_never_printed() {
    let o = bin()
        .arg("check")
        .env(
            "RECORDBRIDGE_SINK",
            "fhir:https://bridge:SECRET-ONE@fhir.trust.example/r4",
        )
        .env(
            "RECORDBRIDGE_LEDGER",
            "postgres://rb@db.trust.example/ledger?sslmode=require&password=SECRET-TWO",
        )
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let shown = stdout(&o) + &stderr(&o);
    assert!(!shown.contains("SECRET"), "{shown}");
    assert!(
        shown.contains("fhir:https://bridge:***@fhir.trust.example/r4"),
        "{shown}"
    );
    assert!(shown.contains("password=***"), "{shown}");
    // A ledger that cannot be opened is named without its password.
    let tmp = tempfile::tempdir().unwrap();
    let o = bin()
        .args(["run", "--source", "file:fixtures/malformed.ndjson"])
        .arg("--sink")
        .arg(format!("dir:{}", tmp.path().display()))
        .args([
            "--ledger",
            "postgres://nosuchrole:SECRET-THREE@127.0.0.1:5432/nosuchdb?password=SECRET-FOUR",
        ])
        .output()
        .unwrap();
    assert!(!o.status.success());
    let shown = stdout(&o) + &stderr(&o);
    assert!(shown.contains("opening ledger"), "{shown}");
    assert!(!shown.contains("SECRET"), "{shown}");
}

#[test]
fn values_from_events_reach_the_terminal_and_the_csv_report_inert() {
    let tmp = tempfile::tempdir().unwrap();
    // Two patients in one thread, then a message naming neither: quarantined
    // `ambiguous`, with an id and a room that carry a terminal escape, a
    // forged table row and a spreadsheet formula.
    let room = "=HYPERLINK(\\\"http://x\\\")\\u001b[2J";
    let id = "q1\\u001b]0;owned\\u0007\\n    99  matrix      forged";
    let events = [
        format!(
            r#"{{"id":"p1","platform":"matrix","room":"{room}","sender":"@a","sent_at":"2026-11-20T08:00:00Z","text":"NHS 999 765 4323 and NHS 999 246 8130 handover"}}"#
        ),
        format!(
            r#"{{"id":"{id}","platform":"matrix","room":"{room}","thread":"p1","sender":"@a","sent_at":"2026-11-20T08:01:00Z","text":"obs stable"}}"#
        ),
    ]
    .join("\n");
    let ledger = small_run(tmp.path(), &events);
    let ledger = ledger.to_str().unwrap();
    let o = bin()
        .args(["quarantine", "list", "--ledger", ledger])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let list = stdout(&o);
    assert!(
        !list.contains('\u{1b}') && !list.contains('\u{7}'),
        "{list:?}"
    );
    assert!(list.contains("q1\\u{1b}]0;owned\\u{7}\\n"), "{list:?}");
    // One header, two items, one count: no forged row.
    assert_eq!(list.lines().count(), 4, "{list:?}");
    let qid = list
        .lines()
        .find(|l| l.contains("q1"))
        .and_then(|l| l.split_whitespace().next())
        .unwrap()
        .to_owned();
    let o = bin()
        .args([
            "quarantine",
            "show",
            &qid,
            "--by",
            "reviewer",
            "--ledger",
            ledger,
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!stdout(&o).contains('\u{1b}'), "{:?}", stdout(&o));
    let o = bin()
        .args(["report", "--ledger", ledger, "--format", "csv"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let csv = stdout(&o);
    assert!(
        csv.lines().any(|l| l.starts_with("room,\"'=HYPERLINK(")),
        "{csv}"
    );
    assert!(!csv.lines().any(|l| l.starts_with("room,=")), "{csv}");
}

#[test]
fn a_ledger_that_is_not_a_sqlite_database_is_named_at_once_with_exit_2() {
    let tmp = tempfile::tempdir().unwrap();
    let bad = tmp.path().join("ledger.db");
    std::fs::write(&bad, "these are notes, not a database\n").unwrap();
    let dir = tmp.path().join("a-directory.db");
    std::fs::create_dir(&dir).unwrap();
    let sink = format!("dir:{}", tmp.path().join("out").display());
    for (ledger, says) in [(&bad, "not a database"), (&dir, "unable to open")] {
        let ledger = ledger.to_str().unwrap();
        for args in [
            vec![
                "run",
                "--source",
                "file:fixtures/malformed.ndjson",
                "--sink",
                &sink,
                "--ledger",
                ledger,
            ],
            vec!["report", "--ledger", ledger],
        ] {
            let o = bin().args(&args).output().unwrap();
            assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
            let e = stderr(&o);
            assert!(e.contains("cannot be used as a SQLite ledger"), "{e}");
            assert!(e.contains(says), "{e}");
            // Said once, not retried until a pool timeout.
            assert_eq!(e.matches(says).count(), 1, "{e}");
        }
    }
    // The file is left as it was.
    assert_eq!(
        std::fs::read_to_string(&bad).unwrap(),
        "these are notes, not a database\n"
    );
}

/// One run per SQLite ledger (issue 18, item 1): a second run on it is
/// refused at once with what holds it, and the first goes on.
#[test]
fn a_second_run_on_one_ledger_is_refused_while_the_first_runs() {
    use std::io::Write as _;
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let mut first = common::spawn_stdin_run(&out, &[], std::process::Stdio::piped());
    let mut stdin = first.stdin.take().unwrap();
    writeln!(
        stdin,
        r#"{{"id":"$l1","room":"!r","sender":"@a","sent_at":"2026-11-21T10:00:00Z","text":"pt 943 476 5919"}}"#
    )
    .unwrap();
    stdin.flush().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !(out.exists() && common::bundles(&out).len() == 1) {
        assert!(std::time::Instant::now() < deadline, "the first run files");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let src = tmp.path().join("more.ndjson");
    std::fs::write(
        &src,
        r#"{"id":"$l2","room":"!r","sender":"@a","sent_at":"2026-11-21T10:01:00Z","text":"pt 943 476 5919"}"#,
    )
    .unwrap();
    let second = || {
        bin()
            .args(["run", "--source"])
            .arg(format!("file:{}", src.display()))
            .arg("--sink")
            .arg(format!("dir:{}", out.display()))
            .output()
            .unwrap()
    };
    let o = second();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("another `recordbridge run` is using it"),
        "{}",
        stderr(&o)
    );
    assert_eq!(
        common::bundles(&out).len(),
        1,
        "the refused run wrote nothing"
    );
    // The first goes on to its end; then the ledger is free again.
    drop(stdin);
    let o = first.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let o = second();
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(common::bundles(&out).len(), 2);
}
