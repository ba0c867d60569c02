//! FHIR REST sink: one transaction Bundle per decided event, patient
//! resolution by identifier search, and a retry policy for transient faults.
//!
//! Written on reqwest directly rather than fhir-sdk's client: fhir-sdk's
//! `create()` cannot send conditional creates, its retries cover only
//! connect/timeout errors (never 429/5xx), and it hides `Retry-After` and the
//! server's OperationOutcome, all of which this sink needs. The resources
//! themselves are fhir-sdk models (see `record`).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderMap, RETRY_AFTER};
use tokio::sync::Mutex;
use tracing::warn;

use super::WriteError;
use super::auth::{Auth, TokenError, without_url};
use crate::backoff::Backoff;
use crate::config::FhirConfig;
use crate::identify::Identifier;
use crate::record::identifier_criterion;

const FHIR_JSON: &str = "application/fhir+json";
/// Cap on any single wait, whatever `Retry-After` asks for.
const MAX_WAIT: Duration = Duration::from_secs(300);
/// Cap on cached patient resolutions (bounded memory).
const CACHE_MAX: usize = 100_000;

/// What an identifier search found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolution {
    /// Exactly one Patient: its reference (`Patient/<id>`).
    Found(String),
    Unknown,
    Ambiguous,
}

/// One attempt's failure.
enum Attempt {
    Retry {
        reason: String,
        after: Option<Duration>,
    },
    Fail(WriteError),
}

#[derive(Debug)]
pub struct FhirSink {
    base: String,
    http: reqwest::Client,
    auth: Auth,
    max_retries: u32,
    backoff_initial: Duration,
    backoff_max: Duration,
    ttl: Duration,
    cache: Mutex<HashMap<Identifier, (Resolution, Instant)>>,
}

impl FhirSink {
    pub fn new(base: &str, cfg: &FhirConfig) -> anyhow::Result<Self> {
        let mut b = reqwest::Client::builder()
            .timeout(Duration::from_secs(cfg.timeout_secs))
            .connect_timeout(Duration::from_secs(cfg.timeout_secs.min(10)))
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(cfg.concurrency.max(1) * 2)
            .tcp_keepalive(Duration::from_secs(60))
            .user_agent(concat!("recordbridge/", env!("CARGO_PKG_VERSION")));
        if let Some(ca) = &cfg.ca_bundle {
            let pem = std::fs::read(ca).map_err(|e| {
                anyhow::anyhow!(
                    "setting `fhir.ca_bundle`: cannot read {}: {e}",
                    ca.display()
                )
            })?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                anyhow::anyhow!("setting `fhir.ca_bundle`: not a PEM certificate bundle: {e}")
            })?;
            b = b.tls_certs_merge(certs);
        }
        Ok(Self {
            base: base.trim_end_matches('/').to_owned(),
            http: b.build()?,
            auth: Auth::from_config(&cfg.auth)?,
            max_retries: cfg.max_retries,
            backoff_initial: Duration::from_millis(cfg.backoff_initial_ms),
            backoff_max: Duration::from_millis(cfg.backoff_max_ms),
            ttl: Duration::from_secs(cfg.patient_cache_ttl_secs),
            cache: Mutex::new(HashMap::new()),
        })
    }

    /// Does the server answer `GET [base]/metadata` (any status below 500)?
    /// One attempt through the sink's own client (its CA bundle and
    /// timeouts); no token is needed to read the capability statement.
    pub async fn answers(&self) -> bool {
        self.http
            .get(format!("{}/metadata", self.base))
            .header(ACCEPT, FHIR_JSON)
            .send()
            .await
            .is_ok_and(|r| r.status().as_u16() < 500)
    }

    /// Post one transaction Bundle; returns the resources it wrote (`Type/id`).
    pub async fn write(&self, bundle: &[u8]) -> Result<Vec<String>, WriteError> {
        self.with_retries("transaction", || async {
            let resp = self
                .send(|h| {
                    h.post(&self.base)
                        .header(CONTENT_TYPE, FHIR_JSON)
                        .body(bundle.to_vec())
                })
                .await?;
            let body: serde_json::Value = resp.json().await.map_err(|e| Attempt::Retry {
                reason: format!("unreadable transaction response: {}", without_url(&e)),
                after: None,
            })?;
            Ok(locations(&body))
        })
        .await
    }

    /// Resources matching a search (`Type?params`, first page), with retries.
    pub async fn search(&self, query: &str) -> Result<Vec<serde_json::Value>, WriteError> {
        let url = format!("{}/{query}", self.base);
        self.with_retries("search", || async {
            let resp = self.send(|h| h.get(&url)).await?;
            let body: serde_json::Value = resp.json().await.map_err(|e| Attempt::Retry {
                reason: format!("unreadable search response: {}", without_url(&e)),
                after: None,
            })?;
            Ok(body["entry"]
                .as_array()
                .map(|es| {
                    es.iter()
                        .filter(|e| e["search"]["mode"].as_str().is_none_or(|m| m == "match"))
                        .map(|e| e["resource"].clone())
                        .collect()
                })
                .unwrap_or_default())
        })
        .await
    }

    /// Resolve an identifier to a Patient, cached for the configured TTL.
    pub async fn resolve(&self, id: &Identifier) -> Result<Resolution, WriteError> {
        if let Some((r, at)) = self.cache.lock().await.get(id)
            && at.elapsed() < self.ttl
        {
            return Ok(r.clone());
        }
        let url = format!(
            "{}/Patient?{}&_count=2",
            self.base,
            identifier_criterion(&id.system, &id.value)
        );
        let r = self
            .with_retries("patient search", || async {
                let resp = self.send(|h| h.get(&url)).await?;
                let body: serde_json::Value = resp.json().await.map_err(|e| Attempt::Retry {
                    reason: format!("unreadable search response: {}", without_url(&e)),
                    after: None,
                })?;
                Ok(resolution(&body))
            })
            .await?;
        let mut cache = self.cache.lock().await;
        if cache.len() >= CACHE_MAX {
            let ttl = self.ttl;
            cache.retain(|_, (_, at)| at.elapsed() < ttl);
            if cache.len() >= CACHE_MAX {
                cache.clear();
            }
        }
        cache.insert(id.clone(), (r.clone(), Instant::now()));
        Ok(r)
    }

    /// One request with auth; a 401 refreshes the token once.
    async fn send(
        &self,
        build: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, Attempt> {
        for refreshed in [false, true] {
            let mut req = build(&self.http).header(ACCEPT, FHIR_JSON);
            match self.auth.token(&self.http).await {
                Ok(Some(t)) => req = req.bearer_auth(t.expose()),
                Ok(None) => {}
                Err(TokenError::Unavailable(reason)) => {
                    return Err(Attempt::Retry {
                        reason,
                        after: None,
                    });
                }
                Err(TokenError::Refused(reason)) => {
                    return Err(Attempt::Fail(WriteError::Fatal(reason)));
                }
            }
            let resp = match req.send().await {
                Ok(r) => r,
                Err(e) => {
                    return Err(Attempt::Retry {
                        reason: format!("request failed: {}", without_url(&e)),
                        after: None,
                    });
                }
            };
            let status = resp.status();
            if status.is_success() {
                return Ok(resp);
            }
            if status == StatusCode::UNAUTHORIZED
                && !refreshed
                && !matches!(self.auth.mode_name(), "none" | "bearer")
            {
                self.auth.invalidate().await;
                continue;
            }
            if matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) {
                // Not this event's fault: stop rather than reject every event.
                return Err(Attempt::Fail(WriteError::Fatal(format!(
                    "FHIR server answered {} (check fhir.auth)",
                    status.as_u16()
                ))));
            }
            if matches!(
                status,
                StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED
            ) {
                return Err(Attempt::Fail(WriteError::Fatal(format!(
                    "FHIR server answered {} for the base URL (check the sink URL)",
                    status.as_u16()
                ))));
            }
            let after = retry_after(resp.headers());
            if status == StatusCode::REQUEST_TIMEOUT
                || status == StatusCode::TOO_MANY_REQUESTS
                || status.is_server_error()
            {
                return Err(Attempt::Retry {
                    reason: format!("HTTP {}", status.as_u16()),
                    after,
                });
            }
            let body = resp.text().await.unwrap_or_default();
            return Err(Attempt::Fail(WriteError::Rejected {
                reason: format!("HTTP {}", status.as_u16()),
                detail: outcome_text(&body),
            }));
        }
        Err(Attempt::Fail(WriteError::Fatal(
            "FHIR server answered 401 after the token was refreshed (check fhir.auth)".into(),
        )))
    }

    async fn with_retries<T, F, Fut>(&self, what: &str, mut f: F) -> Result<T, WriteError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, Attempt>>,
    {
        let mut attempt = 0u32;
        let mut backoff = Backoff::new(self.backoff_initial, self.backoff_max);
        loop {
            match f().await {
                Ok(v) => return Ok(v),
                Err(Attempt::Fail(e)) => return Err(e),
                Err(Attempt::Retry { reason, after }) => {
                    crate::metrics::metrics().retries.inc();
                    if attempt >= self.max_retries {
                        return Err(WriteError::Retryable(format!(
                            "{what}: {reason} (gave up after {} retries)",
                            self.max_retries
                        )));
                    }
                    let nominal = backoff.next_wait();
                    let wait = after.unwrap_or(nominal).min(MAX_WAIT);
                    attempt += 1;
                    warn!(what, reason = %reason, attempt, wait_ms = wait.as_millis() as u64, "FHIR server not available; retrying");
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }
}

fn retry_after(h: &HeaderMap) -> Option<Duration> {
    let v = h.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = chrono::DateTime::parse_from_rfc2822(v).ok()?;
    (when.with_timezone(&chrono::Utc) - chrono::Utc::now())
        .to_std()
        .ok()
        .or(Some(Duration::ZERO))
}

/// `Type/id` of each entry's `response.location` (history suffix removed).
fn locations(bundle: &serde_json::Value) -> Vec<String> {
    bundle["entry"]
        .as_array()
        .map(|es| {
            es.iter()
                .filter_map(|e| e["response"]["location"].as_str())
                .map(|l| {
                    let l = l.split("/_history").next().unwrap_or(l);
                    let parts: Vec<&str> = l.rsplitn(3, '/').collect();
                    if parts.len() >= 2 {
                        format!("{}/{}", parts[1], parts[0])
                    } else {
                        l.to_owned()
                    }
                })
                .collect()
        })
        .unwrap_or_default()
}

fn resolution(bundle: &serde_json::Value) -> Resolution {
    let ids: Vec<&str> = bundle["entry"]
        .as_array()
        .map(|es| {
            es.iter()
                .filter(|e| e["resource"]["resourceType"] == "Patient")
                .filter(|e| e["search"]["mode"].as_str().is_none_or(|m| m == "match"))
                .filter_map(|e| e["resource"]["id"].as_str())
                .collect()
        })
        .unwrap_or_default();
    match ids.as_slice() {
        [] => Resolution::Unknown,
        [one] => Resolution::Found(format!("Patient/{one}")),
        _ => Resolution::Ambiguous,
    }
}

/// The text of an OperationOutcome (or a short raw body), with long digit runs
/// masked so identifiers the server echoes never reach logs.
pub fn outcome_text(body: &str) -> String {
    let text = match serde_json::from_str::<serde_json::Value>(body) {
        Ok(v) if v["resourceType"] == "OperationOutcome" => v["issue"]
            .as_array()
            .map(|is| {
                is.iter()
                    .filter_map(|i| {
                        i["diagnostics"]
                            .as_str()
                            .or_else(|| i["details"]["text"].as_str())
                    })
                    .collect::<Vec<_>>()
                    .join("; ")
            })
            .unwrap_or_default(),
        _ => body.chars().take(200).collect(),
    };
    let text = if text.is_empty() {
        "no OperationOutcome".to_owned()
    } else {
        text
    };
    mask_digits(&text).chars().take(500).collect()
}

/// Replace runs of 6 or more digits (possibly spaced) by `***`.
pub fn mask_digits(s: &str) -> String {
    let re = regex_digits();
    re.replace_all(s, "***").into_owned()
}

fn regex_digits() -> &'static regex::Regex {
    static RE: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    RE.get_or_init(|| regex::Regex::new(r"\d(?:[\s.\-]?\d){5,}").expect("valid regex"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_locations_and_resolutions() {
        let b = serde_json::json!({"entry":[{"response":{"location":"Communication/12/_history/1"}},{"response":{"location":"http://x/fhir/Provenance/rb-1/_history/2"}}]});
        assert_eq!(locations(&b), ["Communication/12", "Provenance/rb-1"]);
        let one = serde_json::json!({"entry":[{"resource":{"resourceType":"Patient","id":"7"},"search":{"mode":"match"}},{"resource":{"resourceType":"OperationOutcome"}}]});
        assert_eq!(resolution(&one), Resolution::Found("Patient/7".into()));
        let two = serde_json::json!({"entry":[{"resource":{"resourceType":"Patient","id":"7"}},{"resource":{"resourceType":"Patient","id":"8"}}]});
        assert_eq!(resolution(&two), Resolution::Ambiguous);
        assert_eq!(
            resolution(&serde_json::json!({"resourceType":"Bundle"})),
            Resolution::Unknown
        );
    }

    #[test]
    fn outcome_text_masks_identifiers() {
        let oo = r#"{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"not-found","diagnostics":"No Patient matches identifier 943 476 5919"}]}"#;
        let t = outcome_text(oo);
        assert!(
            t.contains("No Patient matches") && !t.contains("5919"),
            "{t}"
        );
    }

    #[test]
    fn retry_after_seconds_and_date() {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, "3".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(3)));
        h.insert(
            RETRY_AFTER,
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&h), Some(Duration::ZERO));
    }
}
