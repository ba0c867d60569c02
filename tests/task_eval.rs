//! Evaluation of task detection on labelled messages written for it
//! (`fixtures/task-eval.ndjson`, not taken from the lexicon). Prints precision,
//! recall and priority accuracy:
//!
//! `cargo test --release --test task_eval -- --nocapture`
//!
//! The floors asserted here are well below the measured figures: they catch a
//! broken lexicon or matcher, not a change of one word.

use recordbridge::decide::task::{Priority, TaskRules};

#[test]
fn task_detection_precision_recall_and_priority_accuracy() {
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/task-eval.ndjson"),
    )
    .unwrap();
    let rules = TaskRules::builtin();
    let (mut tp, mut fp, mut fn_, mut tn) = (0, 0, 0, 0);
    let (mut prio_ok, mut prio_n) = (0, 0);
    let mut confusion = std::collections::BTreeMap::new();
    let mut misses = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let msg = v["text"].as_str().unwrap();
        let want = v["request"].as_bool().unwrap();
        let got = rules.request(msg);
        match (want, got) {
            (true, Some(p)) => {
                tp += 1;
                let w: Priority = serde_json::from_value(v["priority"].clone()).unwrap();
                prio_n += 1;
                if p == w {
                    prio_ok += 1;
                }
                *confusion.entry((w.as_str(), p.as_str())).or_insert(0) += 1;
            }
            (true, None) => {
                fn_ += 1;
                misses.push(format!("missed request: {msg}"));
            }
            (false, Some(_)) => {
                fp += 1;
                misses.push(format!("false request:  {msg}"));
            }
            (false, None) => tn += 1,
        }
    }
    let n = tp + fp + fn_ + tn;
    let precision = tp as f64 / (tp + fp) as f64;
    let recall = tp as f64 / (tp + fn_) as f64;
    let accuracy = prio_ok as f64 / prio_n as f64;
    println!("task detection on {n} labelled messages: TP {tp}, FP {fp}, FN {fn_}, TN {tn}");
    println!(
        "precision {precision:.3}, recall {recall:.3}, F1 {:.3}",
        2.0 * precision * recall / (precision + recall)
    );
    println!("priority accuracy on detected requests: {accuracy:.3} ({prio_ok}/{prio_n})");
    println!("priority confusion (labelled -> detected): {confusion:?}");
    for m in &misses {
        println!("  {m}");
    }
    assert!(n >= 200, "at least 200 labelled messages");
    assert!(precision >= 0.75, "precision {precision:.3}");
    assert!(recall >= 0.75, "recall {recall:.3}");
    assert!(accuracy >= 0.70, "priority accuracy {accuracy:.3}");
}
