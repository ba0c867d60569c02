//! Authorisation for the FHIR server: none, a static bearer token, OAuth2
//! client credentials, or SMART Backend Services (a signed JWT client
//! assertion, RS384 or ES384). Tokens are cached until shortly before expiry
//! and refreshed on a 401. Secrets come only from the environment or a file
//! and are never logged (`Secret`'s Debug prints `***`).

use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Deserialize;
use tokio::sync::Mutex;

use crate::config::AuthConfig;

/// A secret string that never prints.
#[derive(Clone)]
pub struct Secret(String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// Read the configured secret from its environment variable or file.
pub fn load_secret(cfg: &AuthConfig) -> anyhow::Result<Secret> {
    if let Some(var) = &cfg.secret_env {
        let v = std::env::var(var).with_context(|| {
            format!("setting `fhir.auth.secret_env`: environment variable {var} is not set")
        })?;
        if !v.trim().is_empty() {
            return Ok(Secret(v.trim().to_owned()));
        }
    }
    if let Some(path) = &cfg.secret_file {
        let v = std::fs::read_to_string(path).with_context(|| {
            format!(
                "setting `fhir.auth.secret_file`: cannot read {}",
                path.display()
            )
        })?;
        return Ok(Secret(v.trim().to_owned()));
    }
    anyhow::bail!("setting `fhir.auth.secret_env`/`secret_file`: the secret is empty")
}

#[derive(Debug)]
enum Mode {
    None,
    Bearer(Secret),
    ClientCredentials {
        token_url: String,
        client_id: String,
        secret: Secret,
        scope: Option<String>,
    },
    Smart {
        token_url: String,
        client_id: String,
        key: Box<jsonwebtoken::EncodingKey>,
        alg: jsonwebtoken::Algorithm,
        kid: Option<String>,
        scope: Option<String>,
    },
}

/// Supplies the `Authorization` header value for FHIR requests.
pub struct Auth {
    mode: Mode,
    cached: Mutex<Option<(Secret, Instant)>>,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("mode", &self.mode_name())
            .finish()
    }
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
}

/// Refresh this long before the token's stated expiry.
const EARLY: Duration = Duration::from_secs(30);

impl Auth {
    pub fn from_config(cfg: &AuthConfig) -> anyhow::Result<Self> {
        let mode = match cfg.mode.as_str() {
            "none" => Mode::None,
            "bearer" => Mode::Bearer(load_secret(cfg)?),
            "client-credentials" => Mode::ClientCredentials {
                token_url: cfg.token_url.clone().unwrap_or_default(),
                client_id: cfg.client_id.clone().unwrap_or_default(),
                secret: load_secret(cfg)?,
                scope: cfg.scope.clone(),
            },
            "smart-backend" => {
                let pem = load_secret(cfg)?;
                let (alg, key) = match cfg.algorithm.as_str() {
                    "RS384" => (
                        jsonwebtoken::Algorithm::RS384,
                        jsonwebtoken::EncodingKey::from_rsa_pem(pem.expose().as_bytes()),
                    ),
                    _ => (
                        jsonwebtoken::Algorithm::ES384,
                        jsonwebtoken::EncodingKey::from_ec_pem(pem.expose().as_bytes()),
                    ),
                };
                let key = key.map_err(|e| {
                    anyhow::anyhow!(
                        "setting `fhir.auth.secret_file`: not a {} private key PEM ({e})",
                        cfg.algorithm
                    )
                })?;
                Mode::Smart {
                    token_url: cfg.token_url.clone().unwrap_or_default(),
                    client_id: cfg.client_id.clone().unwrap_or_default(),
                    key: Box::new(key),
                    alg,
                    kid: cfg.key_id.clone(),
                    scope: cfg.scope.clone(),
                }
            }
            other => anyhow::bail!("setting `fhir.auth.mode`: unknown mode `{other}`"),
        };
        Ok(Self {
            mode,
            cached: Mutex::new(None),
        })
    }

    pub fn mode_name(&self) -> &'static str {
        match self.mode {
            Mode::None => "none",
            Mode::Bearer(_) => "bearer",
            Mode::ClientCredentials { .. } => "client-credentials",
            Mode::Smart { .. } => "smart-backend",
        }
    }

    /// Forget a cached token (after a 401).
    pub async fn invalidate(&self) {
        *self.cached.lock().await = None;
    }

    /// The bearer token to send, fetching a new one when needed.
    pub async fn token(&self, http: &reqwest::Client) -> Result<Option<Secret>, TokenError> {
        match &self.mode {
            Mode::None => return Ok(None),
            Mode::Bearer(s) => return Ok(Some(s.clone())),
            _ => {}
        }
        let mut cached = self.cached.lock().await;
        if let Some((t, until)) = cached.as_ref()
            && Instant::now() < *until
        {
            return Ok(Some(t.clone()));
        }
        let (url, form) = match &self.mode {
            Mode::ClientCredentials {
                token_url,
                client_id,
                secret,
                scope,
            } => {
                let mut f = vec![
                    ("grant_type", "client_credentials".to_owned()),
                    ("client_id", client_id.clone()),
                    ("client_secret", secret.expose().to_owned()),
                ];
                if let Some(s) = scope {
                    f.push(("scope", s.clone()));
                }
                (token_url, f)
            }
            Mode::Smart {
                token_url,
                client_id,
                key,
                alg,
                kid,
                scope,
            } => {
                let now = chrono::Utc::now().timestamp();
                let claims = serde_json::json!({
                    "iss": client_id, "sub": client_id, "aud": token_url,
                    "exp": now + 300, "iat": now, "jti": uuid::Uuid::new_v4().to_string(),
                });
                let mut header = jsonwebtoken::Header::new(*alg);
                header.typ = Some("JWT".into());
                header.kid.clone_from(kid);
                let jwt = jsonwebtoken::encode(&header, &claims, key).map_err(|e| {
                    TokenError::Refused(format!("signing the SMART client assertion failed: {e}"))
                })?;
                let mut f = vec![
                    ("grant_type", "client_credentials".to_owned()),
                    (
                        "client_assertion_type",
                        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".to_owned(),
                    ),
                    ("client_assertion", jwt),
                ];
                if let Some(s) = scope {
                    f.push(("scope", s.clone()));
                }
                (token_url, f)
            }
            Mode::None | Mode::Bearer(_) => unreachable!("handled above"),
        };
        let resp = http
            .post(url.as_str())
            .form(&form)
            .send()
            .await
            .map_err(|e| {
                TokenError::Unavailable(format!("token endpoint unreachable: {}", without_url(&e)))
            })?;
        let status = resp.status();
        if status.is_server_error() || status == reqwest::StatusCode::TOO_MANY_REQUESTS {
            return Err(TokenError::Unavailable(format!(
                "token endpoint answered {status}"
            )));
        }
        if !status.is_success() {
            return Err(TokenError::Refused(format!(
                "token endpoint answered {status} (check fhir.auth)"
            )));
        }
        let t: TokenResponse = resp.json().await.map_err(|_| {
            TokenError::Refused("token endpoint answer is not a token response".to_owned())
        })?;
        let life = Duration::from_secs(t.expires_in.unwrap_or(300));
        let until = Instant::now() + life.saturating_sub(EARLY);
        let token = Secret(t.access_token);
        *cached = Some((token.clone(), until));
        Ok(Some(token))
    }
}

/// Why no token could be had.
#[derive(Debug)]
pub enum TokenError {
    /// Worth retrying (network, 5xx, 429).
    Unavailable(String),
    /// Credentials refused or misconfigured: retrying cannot help.
    Refused(String),
}

/// A reqwest error without its URL (URLs may carry identifiers in queries).
pub fn without_url(e: &reqwest::Error) -> String {
    let mut s = e.to_string();
    if let Some(u) = e.url() {
        s = s.replace(u.as_str(), "<url>");
    }
    let kind = if e.is_timeout() {
        " (timeout)"
    } else if e.is_connect() {
        " (connect)"
    } else {
        ""
    };
    format!("{s}{kind}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn errors_lose_their_url_and_identifiers() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = format!(
            "http://127.0.0.1:{port}/Patient?identifier=https://fhir.nhs.uk/Id/nhs-number|9434765919"
        );
        let e = reqwest::Client::new().get(&url).send().await.unwrap_err();
        assert!(
            e.to_string().contains("9434765919"),
            "reqwest puts the URL in its message"
        );
        let s = without_url(&e);
        assert!(!s.contains("9434765919") && s.contains("<url>"), "{s}");
    }

    #[test]
    fn secrets_do_not_print() {
        let s = Secret("hunter2".into());
        assert_eq!(format!("{s:?}"), "***");
    }
}
