//! Black-box tests of the embedded default: the real binary, file source →
//! bundle directory, SQLite ledger.

mod common;

use std::collections::HashMap;
use std::io::Write;

use common::*;

fn fixtures_src() -> String {
    format!("file:{}", fixture("ward-chat.ndjson").display())
}

#[test]
fn fixtures_end_to_end_match_expected_decisions() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let sink = format!("dir:{}", out.display());
    // dry run first: decision lines, nothing written
    let dry = dry_run(&fixtures_src(), &sink);
    assert!(!out.exists(), "--dry-run must write nothing");
    let got = final_decisions(&dry.stdout);
    let want = expected();
    assert_eq!(got.len(), want.len());
    for (id, w) in &want {
        assert_eq!(got.get(id), Some(w), "final decision of {id}");
    }
    // real run: one bundle per filed decision, subject = the expected patient
    run_src_sink(&fixtures_src(), &sink);
    let bs = bundles(&out);
    let filed: HashMap<_, _> = want.iter().filter(|(_, w)| w.0 == "filed").collect();
    assert_eq!(bs.len(), filed.len(), "one bundle per filed event");
    let kinds: HashMap<String, String> = std::fs::read_to_string(fixture("ward-chat.ndjson"))
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (
                v["id"].as_str().unwrap().to_owned(),
                v["type"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let mut seen = std::collections::HashSet::new();
    for b in &bs {
        assert_eq!(b["type"], "transaction");
        let ev = bundle_event(b);
        assert!(seen.insert(ev.clone()), "{ev}: two bundles");
        let patient = filed
            .get(&ev)
            .unwrap_or_else(|| panic!("bundle for {ev}, which is not expected filed"))
            .2
            .clone()
            .unwrap();
        let entries = b["entry"].as_array().unwrap();
        for e in entries {
            let r = &e["resource"];
            let subject = match r["resourceType"].as_str().unwrap() {
                "Communication" => r["subject"]["reference"].as_str(),
                "Task" => r["for"]["reference"].as_str(),
                _ => continue,
            }
            .unwrap();
            assert!(
                subject.starts_with("Patient?identifier=")
                    && subject.ends_with(&format!("|{patient}")),
                "{ev}: {subject}"
            );
        }
        match communication(b) {
            Some((c, id)) => {
                let req = &entries[0]["request"];
                if req["method"] == "POST" {
                    assert_eq!(id, ev);
                    assert!(
                        req["ifNoneExist"].as_str().unwrap().contains(&id),
                        "conditional create on the identifier"
                    );
                } else if kinds[&ev] == "redaction" {
                    assert_eq!(c["status"], "entered-in-error");
                    assert!(c.get("payload").is_none());
                } else {
                    // An edit replaces the edited message's Communication.
                    assert_eq!(kinds[&ev], "edit", "{ev}");
                    assert!(
                        req["url"]
                            .as_str()
                            .unwrap()
                            .starts_with("Communication?identifier=")
                    );
                    assert_eq!(c["status"], "completed");
                }
            }
            // Only a Task moves: a reaction.
            None => assert_eq!(kinds[&ev], "reaction", "{ev}"),
        }
        let prov = &entries.last().unwrap()["resource"];
        assert_eq!(prov["resourceType"], "Provenance");
        assert_eq!(prov["agent"].as_array().unwrap().len(), 2);
        assert_eq!(
            prov["target"].as_array().unwrap().len(),
            entries.len() - 1,
            "Provenance names every resource written"
        );
    }
    // quarantine list shows every quarantined event, without text
    let q = run_ok(&[
        "quarantine",
        "list",
        "--json",
        "--ledger",
        &out.join("ledger.db").display().to_string(),
    ]);
    let items: Vec<serde_json::Value> = String::from_utf8_lossy(&q.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let want_q: Vec<_> = want.iter().filter(|(_, w)| w.0 == "quarantined").collect();
    assert_eq!(items.len(), want_q.len());
    for i in &items {
        let id = i["event_id"].as_str().unwrap();
        assert_eq!(
            Some(i["reason"].as_str().unwrap()),
            want[id].1.as_deref(),
            "{id}"
        );
        assert!(i.get("text").is_none() && i.get("content").is_none());
    }
}

#[test]
fn replies_and_thread_members_are_linked() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    run_src_sink(&fixtures_src(), &format!("dir:{}", out.display()));
    let events: HashMap<String, serde_json::Value> =
        std::fs::read_to_string(fixture("ward-chat.ndjson"))
            .unwrap()
            .lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                (v["id"].as_str().unwrap().to_owned(), v)
            })
            .collect();
    let (mut part_of, mut in_response) = (0, 0);
    for b in bundles(&out) {
        let Some((c, id)) = communication(&b) else {
            continue;
        };
        if b["entry"][0]["request"]["method"] != "POST" {
            continue; // edits and redactions replace an earlier Communication
        }
        let e = &events[&id];
        if let Some(r) = c["inResponseTo"][0]["reference"].as_str() {
            assert!(
                r.ends_with(&format!(":{}", e["reply_to"].as_str().unwrap())),
                "{id}: {r}"
            );
            in_response += 1;
        }
        if let Some(r) = c["partOf"][0]["reference"].as_str() {
            assert!(
                e.get("thread").is_some(),
                "{id}: only thread members have partOf"
            );
            assert!(r.starts_with("Communication?identifier="), "{r}");
            part_of += 1;
        }
    }
    assert!(
        part_of > 50 && in_response > 5,
        "partOf {part_of}, inResponseTo {in_response}"
    );
}

#[test]
fn same_events_twice_write_once() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let sink = format!("dir:{}", out.display());
    // duplicates inside one input and across runs
    let input = tmp.path().join("dup.ndjson");
    let text = std::fs::read_to_string(fixture("ward-chat.ndjson")).unwrap();
    let first: Vec<&str> = text.lines().take(60).collect();
    std::fs::write(
        &input,
        format!("{}\n{}\n", first.join("\n"), first.join("\n")),
    )
    .unwrap();
    run_src_sink(&format!("file:{}", input.display()), &sink);
    let n1 = bundles(&out).len();
    assert!(n1 > 0);
    let ids: std::collections::HashSet<String> = bundles(&out).iter().map(bundle_event).collect();
    assert_eq!(ids.len(), n1, "no event written twice within a run");
    run_src_sink(&format!("file:{}", input.display()), &sink);
    assert_eq!(bundles(&out).len(), n1, "a replay writes nothing new");
}

#[test]
fn second_run_continues_threads_of_the_first() {
    let tmp = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(fixture("ward-chat.ndjson")).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let (a, b) = lines.split_at(lines.len() / 2);
    let fa = tmp.path().join("a.ndjson");
    let fb = tmp.path().join("b.ndjson");
    std::fs::write(&fa, a.join("\n")).unwrap();
    std::fs::write(&fb, b.join("\n")).unwrap();
    let out = tmp.path().join("out");
    let sink = format!("dir:{}", out.display());
    run_src_sink(&format!("file:{}", fa.display()), &sink);
    // the dry run of the second half starts from the first run's ledger
    let dry = dry_run(&format!("file:{}", fb.display()), &sink);
    let got = final_decisions(&dry.stdout);
    let want = expected();
    for (id, g) in &got {
        assert_eq!(Some(g), want.get(id), "final decision of {id} across runs");
    }
    run_src_sink(&format!("file:{}", fb.display()), &sink);
    let filed = want.values().filter(|w| w.0 == "filed").count();
    assert_eq!(bundles(&out).len(), filed);
}

#[test]
fn late_identification_in_a_later_run_files_held_messages() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let sink = format!("dir:{}", out.display());
    let fa = tmp.path().join("a.ndjson");
    let fb = tmp.path().join("b.ndjson");
    std::fs::write(&fa, concat!(
        r#"{"id":"$h1","room":"!r","sender":"@a","sent_at":"2026-11-21T10:00:00Z","text":"can someone review bed 12"}"#, "\n",
        r#"{"id":"$h2","room":"!r","thread":"$h1","sender":"@b","sent_at":"2026-11-21T10:01:00Z","text":"on my way"}"#, "\n",
    )).unwrap();
    std::fs::write(&fb, concat!(
        r#"{"id":"$h3","room":"!r","thread":"$h1","sender":"@a","sent_at":"2026-11-21T10:05:00Z","text":"it's 943 476 5919"}"#, "\n",
    )).unwrap();
    run_src_sink(&format!("file:{}", fa.display()), &sink);
    assert!(bundles(&out).is_empty(), "held messages are not written");
    let dry = dry_run(&format!("file:{}", fb.display()), &sink);
    let got = final_decisions(&dry.stdout);
    for id in ["$h1", "$h2", "$h3"] {
        assert_eq!(
            got[id],
            ("filed".into(), None, Some("9434765919".into())),
            "{id}"
        );
    }
    run_src_sink(&format!("file:{}", fb.display()), &sink);
    let ids: Vec<String> = bundles(&out).iter().map(bundle_event).collect();
    assert_eq!(
        ids,
        ["$h1", "$h2", "$h3"],
        "held messages filed in order, before the identifying one"
    );
}

#[test]
fn malformed_events_are_rejected_with_line_and_reason_and_the_rest_flows() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let o = run_src_sink(
        &format!("file:{}", fixture("malformed.ndjson").display()),
        &format!("dir:{}", out.display()),
    );
    assert!(o.status.success(), "rejected events do not fail the run");
    let want: HashMap<String, Option<String>> =
        serde_json::from_str(&std::fs::read_to_string(fixture("malformed-expected.json")).unwrap())
            .unwrap();
    let report = std::fs::read_to_string(out.join("rejected.ndjson")).unwrap();
    let got: HashMap<String, serde_json::Value> = report
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (v["line"].to_string(), v)
        })
        .collect();
    for (line, reason) in &want {
        match reason {
            Some(r) => {
                let g = got
                    .get(line)
                    .unwrap_or_else(|| panic!("line {line} not rejected"));
                assert!(
                    g["reason"].as_str().unwrap().contains(r.as_str()),
                    "line {line}: {} lacks {r}",
                    g["reason"]
                );
                assert!(
                    g["raw"].is_string(),
                    "the raw line is kept so nothing is lost"
                );
            }
            None => assert!(
                !got.contains_key(line),
                "valid line {line} rejected: {:?}",
                got.get(line)
            ),
        }
    }
    assert_eq!(got.len(), want.values().filter(|r| r.is_some()).count());
    // garbage bytes and a truncated line do not panic either
    let junk = tmp.path().join("junk.ndjson");
    let mut f = std::fs::File::create(&junk).unwrap();
    f.write_all(b"\xff\xfe\x00garbage\n{\"id\":\n\n{}").unwrap();
    drop(f);
    let o = run_src_sink(
        &format!("file:{}", junk.display()),
        &format!("dir:{}", tmp.path().join("j").display()),
    );
    assert!(o.status.success());
    let n = std::fs::read_to_string(tmp.path().join("j/rejected.ndjson"))
        .unwrap()
        .lines()
        .count();
    assert_eq!(n, 3);
}

#[test]
fn stdin_source_works() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let mut child = spawn_stdin_run(&out, &[], std::process::Stdio::null());
    child.stdin.take().unwrap().write_all(
        br#"{"id":"$s1","room":"!r","sender":"@a","sent_at":"2026-11-21T10:00:00Z","text":"pt 943 476 5919 seen"}
"#,
    ).unwrap();
    assert!(child.wait().unwrap().success());
    assert_eq!(bundles(&out).len(), 1);
}

#[test]
fn logs_never_contain_message_text_or_identifiers() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let mut all_stderr = Vec::new();
    for src in [fixture("ward-chat.ndjson"), fixture("malformed.ndjson")] {
        for level in ["trace", "debug"] {
            let o = bin()
                .args([
                    "run",
                    "--source",
                    &format!("file:{}", src.display()),
                    "--sink",
                    &format!("dir:{}", out.display()),
                ])
                .env("RECORDBRIDGE_LOG__LEVEL", level)
                .output()
                .unwrap();
            assert!(o.status.success());
            all_stderr.extend_from_slice(&o.stderr);
        }
    }
    let logs = String::from_utf8_lossy(&all_stderr);
    assert!(logs.contains("decided"), "logging was on at debug level");
    let patients: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(fixture("patients.json")).unwrap()).unwrap();
    for p in &patients {
        for k in ["nhs_number", "hospital_number", "family"] {
            let v = p[k].as_str().unwrap();
            assert!(!logs.contains(v), "logs contain a patient's {k}");
        }
        let nhs = p["nhs_number"].as_str().unwrap();
        let spaced = format!("{} {} {}", &nhs[..3], &nhs[3..6], &nhs[6..]);
        assert!(!logs.contains(&spaced));
    }
    for l in std::fs::read_to_string(fixture("ward-chat.ndjson"))
        .unwrap()
        .lines()
    {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        if let Some(t) = v["text"].as_str().filter(|t| t.len() >= 16) {
            let snippet: String = t.chars().take(16).collect();
            assert!(!logs.contains(&snippet), "logs contain message text");
        }
    }
}

#[test]
fn config_file_env_and_flags_with_named_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("rb.toml");
    std::fs::write(
        &cfg,
        format!(
            "source = \"{}\"\nsink = \"dir:{}\"\nhold_window_hours = 24\n",
            fixtures_src(),
            tmp.path().join("a").display()
        ),
    )
    .unwrap();
    let o = run_ok(&["--config", cfg.to_str().unwrap(), "check"]);
    let s = String::from_utf8_lossy(&o.stdout);
    assert!(s.contains("hold_window_hours = 24"), "{s}");
    // environment overrides the file
    let o = bin()
        .args(["--config", cfg.to_str().unwrap(), "check"])
        .env("RECORDBRIDGE_HOLD_WINDOW_HOURS", "12")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&o.stdout).contains("hold_window_hours = 12"));
    // the test suite's own variables and the config file variable are not settings
    let o = bin()
        .args(["check"])
        .env("RECORDBRIDGE_TEST_ANYTHING", "x")
        .env("RECORDBRIDGE_CONFIG", cfg.to_str().unwrap())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("hold_window_hours = 24"),
        "RECORDBRIDGE_CONFIG names the file"
    );
    // a bad setting is named, exit status 2
    let o = bin()
        .args(["--config", cfg.to_str().unwrap(), "check"])
        .env("RECORDBRIDGE_FHIR__CONCURRENCY", "0")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("fhir.concurrency"));
    // flags override file and environment: the run writes where --sink says
    let b = tmp.path().join("b");
    run_ok(&[
        "--config",
        cfg.to_str().unwrap(),
        "run",
        "--sink",
        &format!("dir:{}", b.display()),
    ]);
    assert!(!bundles(&b).is_empty());
    assert!(!tmp.path().join("a").exists());
    // a run that cannot work fails with non-zero status
    let o = bin()
        .args([
            "run",
            "--source",
            "file:/nonexistent/x.ndjson",
            "--sink",
            &format!("dir:{}", tmp.path().join("c").display()),
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("cannot open source file"));
}

#[test]
fn help_on_every_command() {
    for args in [
        vec!["--help"],
        vec!["run", "--help"],
        vec!["quarantine", "--help"],
        vec!["quarantine", "list", "--help"],
        vec!["check", "--help"],
    ] {
        let o = run_ok(&args);
        assert!(
            String::from_utf8_lossy(&o.stdout).contains("Usage"),
            "{args:?}"
        );
    }
}

#[test]
fn sigterm_stops_gracefully_after_committing_what_was_read() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let mut child = spawn_stdin_run(&out, &[], std::process::Stdio::piped());
    let mut stdin = child.stdin.take().unwrap();
    for i in 0..3 {
        writeln!(stdin, r#"{{"id":"$g{i}","room":"!r","sender":"@a","sent_at":"2026-11-21T10:00:00Z","text":"pt 943 476 5919"}}"#).unwrap();
    }
    stdin.flush().unwrap();
    // stdin stays open: the run would wait for more; wait until the three are written
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !(out.exists() && bundles(&out).len() == 3) {
        assert!(
            std::time::Instant::now() < deadline,
            "events were not processed"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // SAFETY: sending a signal to our own child process.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let o = child.wait_with_output().unwrap();
    assert!(
        o.status.success(),
        "graceful shutdown exits 0: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("shutdown requested"));
    drop(stdin);
    // the ledger has them: a rerun of the same events writes nothing new
    let src = tmp.path().join("again.ndjson");
    std::fs::write(&src, (0..3).map(|i| format!(r#"{{"id":"$g{i}","room":"!r","sender":"@a","sent_at":"2026-11-21T10:00:00Z","text":"pt 943 476 5919"}}"#)).collect::<Vec<_>>().join("\n")).unwrap();
    run_src_sink(
        &format!("file:{}", src.display()),
        &format!("dir:{}", out.display()),
    );
    assert_eq!(bundles(&out).len(), 3);
}

#[test]
fn held_content_expires_during_a_long_run() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let mut child = spawn_stdin_run(
        &out,
        &[
            ("RECORDBRIDGE_HOLD_WINDOW_HOURS", "0.002"),
            ("RECORDBRIDGE_SWEEP_INTERVAL_SECS", "1"),
        ],
        std::process::Stdio::null(),
    );
    let mut stdin = child.stdin.take().unwrap();
    writeln!(stdin, r#"{{"id":"$x1","room":"!r","sender":"@a","sent_at":"2026-11-21T10:00:00Z","text":"can someone review bed 12"}}"#).unwrap();
    // A filed message in another thread: what it said is kept (to revert a
    // redacted edit) for the hold window only, then swept while the run goes on.
    writeln!(stdin, r#"{{"id":"$f1","room":"!r2","sender":"@a","sent_at":"2026-11-21T10:00:00Z","text":"pt 943 476 5919 HR 112"}}"#).unwrap();
    stdin.flush().unwrap();
    let filed_key = recordbridge::event::thread_key("chat", "!r2", "$f1");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let ledger_path = out.join("ledger.db");
    let state = |path: &std::path::Path| {
        rt.block_on(async {
            if !path.exists() {
                return (0, None);
            }
            let l = recordbridge::ledger::Ledger::open(path).await.unwrap();
            let kept = l.load_thread(&filed_key).await.unwrap().versions.len();
            let held = l.held_count().await.unwrap() + kept as i64;
            let outcome = l
                .outcomes()
                .await
                .unwrap()
                .into_iter()
                .find(|o| o.0 == "$x1")
                .map(|o| (o.1, o.2));
            l.close().await;
            (held, outcome)
        })
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let mut saw_held = false;
    loop {
        let (held, outcome) = state(&ledger_path);
        saw_held |= held == 2 && outcome.as_ref().is_some_and(|o| o.0 == "held");
        if held == 0 && outcome.as_ref().is_some_and(|o| o.0 == "ignored") {
            assert_eq!(outcome.unwrap().1.as_deref(), Some("not-patient-related"));
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "held content (or the filed message's kept content) never expired while the run was going"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(
        saw_held,
        "the event was held, and the filed message's content kept, before both expired"
    );
    assert!(
        child.try_wait().unwrap().is_none(),
        "expired while the run was still going"
    );
    // SAFETY: sending a signal to our own child process.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert!(child.wait().unwrap().success());
    drop(stdin);
}

/// The binary carries its default mappings: run from a folder with no
/// `mappings/`, with only --source and --sink, it decides the fixture chat
/// exactly as from the repository (the identifier rules, task rules and
/// formats are all there).
#[test]
fn runs_from_any_folder_with_only_source_and_sink() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let run = |dir: &std::path::Path, out: &std::path::Path| {
        let o = bin()
            .current_dir(dir)
            .args([
                "run",
                "--dry-run",
                "--source",
                &fixtures_src(),
                "--sink",
                &format!("dir:{}", out.display()),
            ])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        final_decisions(&o.stdout)
    };
    let elsewhere = run(tmp.path(), &out);
    let want = expected();
    let differ: Vec<_> = want
        .iter()
        .filter(|(id, w)| elsewhere.get(*id) != Some(w))
        .map(|(id, w)| format!("{id}: {:?} not {w:?}", elsewhere.get(id)))
        .collect();
    assert!(
        differ.is_empty(),
        "decided as in the repository: {differ:?}"
    );
    assert_eq!(elsewhere.len(), want.len());
    // A real run from there writes bundles, and Matrix events map with the built-in format.
    let o = bin()
        .current_dir(tmp.path())
        .args([
            "run",
            "--format",
            "matrix",
            "--source",
            &format!(
                "file:{}",
                fixture("formats/matrix/ward-chat.ndjson").display()
            ),
            "--sink",
            &format!("dir:{}", out.display()),
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(!bundles(&out).is_empty());
}

/// `--mappings DIR` moves the identifier and task rules too, and a mapping
/// file that cannot be read or does not fit is a setting error (exit 2).
#[test]
fn mappings_dir_moves_every_mapping_file_and_its_errors_exit_2() {
    let tmp = tempfile::tempdir().unwrap();
    let m = tmp.path().join("m");
    std::fs::create_dir_all(m.join("formats")).unwrap();
    let sink = format!("dir:{}", tmp.path().join("out").display());
    let args = |extra: &[&str]| {
        let mut a = vec!["run", "--dry-run", "--source", "-", "--sink", &sink];
        a.extend_from_slice(extra);
        a.iter().map(|s| s.to_string()).collect::<Vec<_>>()
    };
    for (file, field) in [("identifiers.toml", "identifiers"), ("tasks.toml", "tasks")] {
        std::fs::write(m.join(file), "this is = = not toml").unwrap();
        let o = bin()
            .args(args(&["--mappings", m.to_str().unwrap()]))
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(2), "{file}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(&format!("setting `{field}`")), "{err}");
        std::fs::remove_file(m.join(file)).unwrap();
    }
    // A local identifier pattern from --mappings is used.
    std::fs::write(
        m.join("identifiers.toml"),
        "[[local]]\nname = \"mrn\"\nsystem = \"https://trust.example/mrn\"\npattern = '\\bZQ\\d{6}\\b'\n",
    )
    .unwrap();
    let mut child = bin()
        .args(args(&["--mappings", m.to_str().unwrap()]))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"{\"id\":\"$1\",\"room\":\"!r\",\"sender\":\"@a\",\"sent_at\":\"2026-11-21T10:00:00Z\",\"text\":\"pt ZQ123456 for review\"}\n")
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let d = final_decisions(&o.stdout);
    assert_eq!(d["$1"].0, "filed", "{d:?}");
    // A file named by a setting that does not exist: exit 2, named.
    let o = bin()
        .args(args(&[]))
        .env("RECORDBRIDGE_IDENTIFIERS", "/nonexistent/identifiers.toml")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("setting `identifiers`"));
}

/// Lines that are not text keep their bytes in the reject report: a line
/// of invalid UTF-8 whole, an over-long line as its first bytes with its
/// length and hash (memory stays bounded).
#[test]
fn undecodable_and_over_long_lines_keep_their_bytes_in_the_reject_report() {
    use base64::Engine as _;
    use sha2::Digest as _;
    let tmp = tempfile::tempdir().unwrap();
    let bad_utf8: &[u8] = b"{\"id\":\"x\",\"text\":\"caf\xe9 9997654323\"}";
    let max = recordbridge::event::MAX_EVENT_BYTES;
    let long: Vec<u8> = std::iter::repeat_n(b'a', max + 10).collect();
    let mut input = Vec::new();
    input.extend_from_slice(bad_utf8);
    input.push(b'\n');
    input.extend_from_slice(&long);
    input.push(b'\n');
    let src = tmp.path().join("bytes.ndjson");
    std::fs::write(&src, &input).unwrap();
    let out = tmp.path().join("out");
    let o = run_src_sink(
        &format!("file:{}", src.display()),
        &format!("dir:{}", out.display()),
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let report = std::fs::read_to_string(out.join("rejected.ndjson")).unwrap();
    let recs: Vec<serde_json::Value> = report
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(recs.len(), 2, "{report}");
    let b64 = |v: &serde_json::Value| {
        base64::engine::general_purpose::STANDARD
            .decode(v["raw_base64"].as_str().unwrap())
            .unwrap()
    };
    let hex = |b: &[u8]| -> String {
        sha2::Sha256::digest(b)
            .iter()
            .map(|x| format!("{x:02x}"))
            .collect()
    };
    assert_eq!(recs[0]["line"], 1);
    assert_eq!(b64(&recs[0]), bad_utf8);
    assert_eq!(recs[0]["raw_bytes"], bad_utf8.len());
    assert!(recs[0].get("raw_kept").is_none());
    assert_eq!(recs[0]["raw_sha256"], hex(bad_utf8));
    assert_eq!(recs[1]["line"], 2);
    assert_eq!(b64(&recs[1]), &long[..max]);
    assert_eq!(recs[1]["raw_bytes"], long.len());
    assert_eq!(recs[1]["raw_kept"], max);
    assert_eq!(recs[1]["raw_sha256"], hex(&long));
}

/// Dependencies log content at debug and trace (html5ever the message HTML,
/// lapin the bodies): whatever the level asks, even by target, only the
/// bridge's own events pass below `warn`, and they never carry content.
#[test]
fn no_dependency_logs_content_at_any_level() {
    let tmp = tempfile::tempdir().unwrap();
    let src = fixture("formats/teams/ward-chat.ndjson");
    let text = std::fs::read_to_string(&src).unwrap();
    let mut logs = Vec::new();
    for level in [
        "trace",
        "debug,html5ever=trace,markup5ever=trace,html2text=trace",
    ] {
        let o = bin()
            .args(["run", "--format", "teams", "--source"])
            .arg(format!("file:{}", src.display()))
            .arg("--sink")
            .arg(format!(
                "dir:{}",
                tmp.path().join(level.len().to_string()).display()
            ))
            .env("RECORDBRIDGE_LOG__LEVEL", level)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        logs.extend_from_slice(&o.stderr);
    }
    let logs = String::from_utf8_lossy(&logs);
    assert!(logs.contains("decided"), "the bridge's own trace is on");
    for line in logs.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let target = v["target"].as_str().unwrap_or("");
        let level = v["level"].as_str().unwrap_or("");
        assert!(
            target.starts_with("recordbridge") || level == "WARN" || level == "ERROR",
            "a dependency's {level} event: {line}"
        );
    }
    // No message text (a 16-character piece of any HTML body's text) in any line.
    for l in text.lines() {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        let body = v["body"]["content"].as_str().unwrap_or("");
        let plain: String = body
            .split(['<', '>'])
            .enumerate()
            .filter(|(i, _)| i % 2 == 0)
            .map(|(_, s)| s)
            .collect();
        let words: Vec<&str> = plain.split_whitespace().collect();
        if words.len() >= 4 {
            let piece = words[..4].join(" ");
            assert!(!logs.contains(&piece), "logs contain message text: {piece}");
        }
    }
}

/// stdin cannot be read again: a stop decides every line the bridge has
/// already taken from it (issue 18, item 5). stdin is here a file shared
/// with the test, so its offset after the run tells how much was taken.
#[test]
fn sigterm_on_stdin_decides_every_line_already_read() {
    use std::io::Seek as _;
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let input = tmp.path().join("stream.ndjson");
    let n = 40_000;
    let mut text = String::new();
    for i in 0..n {
        text.push_str(&format!(
            r#"{{"id":"$s{i}","room":"!r","sender":"@a","sent_at":"2026-11-21T10:00:00Z","text":"pt 943 476 5919 obs {i}"}}"#
        ));
        text.push('\n');
    }
    std::fs::write(&input, &text).unwrap();
    let mut shared = std::fs::File::open(&input).unwrap();
    let child = bin()
        .args(["run", "--source", "-", "--sink"])
        .arg(format!("dir:{}", out.display()))
        .stdin(shared.try_clone().unwrap())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while !(out.exists() && bundles(&out).len() >= 200) {
        assert!(
            std::time::Instant::now() < deadline,
            "events were not processed"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // SAFETY: sending a signal to our own child process.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let taken = shared.stream_position().unwrap() as usize;
    assert!(taken < text.len(), "stopped before the end of the stream");
    let whole = text.as_bytes()[..taken]
        .iter()
        .filter(|b| **b == b'\n')
        .count();
    let partial = usize::from(taken > 0 && text.as_bytes()[taken - 1] != b'\n');
    let ledger = out.join("ledger.db");
    let r: serde_json::Value =
        serde_json::from_slice(&run_ok(&["report", "--ledger", ledger.to_str().unwrap()]).stdout)
            .unwrap();
    assert_eq!(
        r["totals"]["seen"].as_u64().unwrap() as usize,
        whole + partial,
        "every line taken from stdin is decided: {}",
        r["totals"]
    );
    assert_eq!(bundles(&out).len(), whole, "each whole line filed once");
}
