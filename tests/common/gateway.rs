//! A small local HTTP gateway for tests, in front of the real FHIR server:
//! an OAuth2 token endpoint (client secret or SMART JWT assertion), bearer
//! checking, and fault injection (503, 429 + Retry-After). Mocks only the
//! faults and the token issuer; every FHIR request that passes is answered by
//! the real server.
#![allow(dead_code)]

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Form, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, post};

#[derive(Clone, Debug)]
pub enum GwAuth {
    None,
    Static(String),
    ClientSecret {
        client_id: String,
        secret: String,
    },
    Jwt {
        client_id: String,
        public_pem: Vec<u8>,
        alg: jsonwebtoken::Algorithm,
    },
}

#[derive(Clone, Debug)]
pub enum Fault {
    Status(u16),
    RetryAfter(u16, u64),
}

pub struct GwState {
    upstream: String,
    auth: GwAuth,
    token_url: Mutex<String>,
    issued: Mutex<HashSet<String>>,
    pub faults: Mutex<VecDeque<Fault>>,
    /// Inject a fault on every Nth FHIR request (0 = off), from the queue's last fault kind.
    pub fault_every: AtomicUsize,
    pub tokens_issued: AtomicUsize,
    pub token_refused: AtomicUsize,
    pub unauthorised: AtomicUsize,
    pub forwarded: AtomicUsize,
    pub faults_served: AtomicUsize,
    seen: AtomicUsize,
    http: reqwest::Client,
}

pub struct Gateway {
    pub base: String,
    pub token_url: String,
    pub state: Arc<GwState>,
    handle: tokio::task::JoinHandle<()>,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.handle.abort();
    }
}

impl Gateway {
    /// Start on a free loopback port, forwarding `/fhir/...` to `upstream`.
    pub async fn start(upstream: &str, auth: GwAuth) -> Gateway {
        Self::start_with(upstream, auth, false).await
    }

    /// The same over TLS, with the test CA's server certificate for 127.0.0.1.
    pub async fn start_tls(upstream: &str, auth: GwAuth) -> Gateway {
        Self::start_with(upstream, auth, true).await
    }

    async fn start_with(upstream: &str, auth: GwAuth, tls: bool) -> Gateway {
        let state = Arc::new(GwState {
            upstream: upstream.trim_end_matches('/').to_owned(),
            auth,
            token_url: Mutex::new(String::new()),
            issued: Mutex::new(HashSet::new()),
            faults: Mutex::new(VecDeque::new()),
            fault_every: AtomicUsize::new(0),
            tokens_issued: AtomicUsize::new(0),
            token_refused: AtomicUsize::new(0),
            unauthorised: AtomicUsize::new(0),
            forwarded: AtomicUsize::new(0),
            faults_served: AtomicUsize::new(0),
            seen: AtomicUsize::new(0),
            http: reqwest::Client::new(),
        });
        let app = Router::new()
            .route("/token", post(token))
            .route("/fhir", any(forward))
            .route("/fhir/{*rest}", any(forward))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let scheme = if tls { "https" } else { "http" };
        let handle = if tls {
            let acceptor = tls_acceptor();
            tokio::spawn(async move {
                axum::serve(
                    TlsListener {
                        tcp: listener,
                        acceptor,
                    },
                    app,
                )
                .await
                .unwrap();
            })
        } else {
            tokio::spawn(async move {
                axum::serve(listener, app).await.unwrap();
            })
        };
        let token_url = format!("{scheme}://{addr}/token");
        *state.token_url.lock().unwrap() = token_url.clone();
        Gateway {
            base: format!("{scheme}://{addr}/fhir"),
            token_url,
            state,
            handle,
        }
    }

    pub fn push_faults(&self, f: impl IntoIterator<Item = Fault>) {
        self.state.faults.lock().unwrap().extend(f);
    }
}

async fn token(
    State(st): State<Arc<GwState>>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let ok = match &st.auth {
        GwAuth::ClientSecret { client_id, secret } => {
            form.get("grant_type").map(String::as_str) == Some("client_credentials")
                && form.get("client_id") == Some(client_id)
                && form.get("client_secret") == Some(secret)
        }
        GwAuth::Jwt {
            client_id,
            public_pem,
            alg,
        } => {
            let assertion_type_ok = form.get("client_assertion_type").map(String::as_str)
                == Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer");
            let key = match alg {
                jsonwebtoken::Algorithm::RS384 => {
                    jsonwebtoken::DecodingKey::from_rsa_pem(public_pem)
                }
                _ => jsonwebtoken::DecodingKey::from_ec_pem(public_pem),
            }
            .unwrap();
            let mut v = jsonwebtoken::Validation::new(*alg);
            let aud = st.token_url.lock().unwrap().clone();
            v.set_audience(&[aud]);
            v.set_issuer(&[client_id]);
            v.sub = Some(client_id.clone());
            v.set_required_spec_claims(&["exp", "aud", "iss", "sub"]);
            let valid = form
                .get("client_assertion")
                .map(|a| {
                    jsonwebtoken::decode::<serde_json::Value>(a, &key, &v)
                        .is_ok_and(|d| d.claims["jti"].is_string())
                })
                .unwrap_or(false);
            assertion_type_ok && valid
        }
        _ => false,
    };
    if !ok {
        st.token_refused.fetch_add(1, Ordering::SeqCst);
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(serde_json::json!({"error": "invalid_client"})),
        )
            .into_response();
    }
    let t = format!("tok-{}", uuid::Uuid::new_v4());
    st.issued.lock().unwrap().insert(t.clone());
    st.tokens_issued.fetch_add(1, Ordering::SeqCst);
    axum::Json(serde_json::json!({"access_token": t, "token_type": "bearer", "expires_in": 300}))
        .into_response()
}

async fn forward(
    State(st): State<Arc<GwState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_owned);
    let authorised = match &st.auth {
        GwAuth::None => true,
        GwAuth::Static(t) => bearer.as_deref() == Some(t.as_str()),
        _ => bearer.is_some_and(|b| st.issued.lock().unwrap().contains(&b)),
    };
    if !authorised {
        st.unauthorised.fetch_add(1, Ordering::SeqCst);
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let n = st.seen.fetch_add(1, Ordering::SeqCst) + 1;
    let every = st.fault_every.load(Ordering::SeqCst);
    let fault = {
        let mut q = st.faults.lock().unwrap();
        match q.pop_front() {
            Some(f) => Some(f),
            None if every > 0 && n % every == 0 => Some(Fault::Status(503)),
            None => None,
        }
    };
    if let Some(f) = fault {
        st.faults_served.fetch_add(1, Ordering::SeqCst);
        return match f {
            Fault::Status(s) => StatusCode::from_u16(s).unwrap().into_response(),
            Fault::RetryAfter(s, secs) => (
                StatusCode::from_u16(s).unwrap(),
                [("retry-after", secs.to_string())],
            )
                .into_response(),
        };
    }
    let path = uri.path().strip_prefix("/fhir").unwrap_or("");
    let q = uri.query().map(|q| format!("?{q}")).unwrap_or_default();
    let url = format!("{}{path}{q}", st.upstream);
    let mut req = st.http.request(method, url).body(body);
    for h in ["content-type", "accept", "if-none-exist"] {
        if let Some(v) = headers.get(h) {
            req = req.header(h, v.clone());
        }
    }
    st.forwarded.fetch_add(1, Ordering::SeqCst);
    match req.send().await {
        Ok(r) => {
            let status = StatusCode::from_u16(r.status().as_u16()).unwrap();
            let ct = r.headers().get("content-type").cloned();
            let body = r.bytes().await.unwrap_or_default();
            let mut resp = (status, body).into_response();
            if let Some(ct) = ct {
                resp.headers_mut().insert("content-type", ct);
            }
            resp
        }
        Err(_) => StatusCode::BAD_GATEWAY.into_response(),
    }
}

fn tls_acceptor() -> tokio_rustls::TlsAcceptor {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> =
        CertificateDer::pem_file_iter(super::fixture("keys/tls-server.pem"))
            .unwrap()
            .map(Result::unwrap)
            .collect();
    let key = PrivateKeyDer::from_pem_file(super::fixture("keys/tls-server.key")).unwrap();
    let cfg = tokio_rustls::rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    tokio_rustls::TlsAcceptor::from(Arc::new(cfg))
}

/// A TCP listener that completes a TLS handshake before handing the stream to axum.
struct TlsListener {
    tcp: tokio::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((tcp, addr)) = self.tcp.accept().await else {
                continue;
            };
            // A client that refuses our certificate fails here; keep serving others.
            if let Ok(tls) = self.acceptor.accept(tcp).await {
                return (tls, addr);
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}
