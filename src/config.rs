//! One typed configuration: defaults < TOML file (`--config`) <
//! `RECORDBRIDGE_*` environment variables (`__` separates sections, e.g.
//! `RECORDBRIDGE_FHIR__CONCURRENCY=4`) < command-line flags.
//! Validated at start; errors name the setting.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

mod sections;

pub use sections::{AmqpConfig, AuthConfig, FhirConfig, HealthConfig, LogConfig};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// `file:PATH`, `-` (stdin) or `amqp://…`.
    pub source: Option<String>,
    /// `dir:PATH` or `fhir:URL`.
    pub sink: Option<String>,
    /// Ledger: a SQLite file (default `<bundle dir>/ledger.db`, or `./recordbridge-ledger.db`),
    /// or a PostgreSQL URL `postgres://USER[:PASS]@HOST/DB` shared by replicas.
    pub ledger: Option<PathBuf>,
    /// Platform assumed for events that do not name one.
    pub platform: String,
    /// Format of the source's events: `v1` (chat event v1) or the name of a
    /// mapping file in `formats` (`matrix` is `formats/matrix.toml`). An AMQP
    /// message can name its own in the `amqp.format_header` header.
    pub format: String,
    /// Directory of mapping files of source formats. The built-in formats
    /// (`matrix`, `teams`) need none; a file here adds a format or replaces
    /// the built-in one of its name.
    pub formats: Option<PathBuf>,
    /// Identifier patterns file; unset: the built-in `mappings/identifiers.toml`.
    pub identifiers: Option<PathBuf>,
    /// Task detection rules file; unset: the built-in `mappings/tasks.toml`.
    pub tasks: Option<PathBuf>,
    /// Hours held content waits for its thread's patient (fractions allowed).
    pub hold_window_hours: f64,
    /// Seconds between sweeps that delete expired held content during a long run.
    pub sweep_interval_secs: u64,
    /// Device name of the bridge in Provenance.
    pub device: String,
    pub log: LogConfig,
    pub fhir: FhirConfig,
    pub amqp: AmqpConfig,
    pub health: HealthConfig,
}

/// A setting that does not fit (a mapping file that cannot be read or
/// parsed): exit status 2, like an invalid setting.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SettingError(pub String);

impl Default for Config {
    fn default() -> Self {
        Self {
            source: None,
            sink: None,
            ledger: None,
            platform: "chat".into(),
            format: "v1".into(),
            formats: None,
            identifiers: None,
            tasks: None,
            hold_window_hours: 72.0,
            sweep_interval_secs: 60,
            device: "recordbridge".into(),
            log: LogConfig::default(),
            fhir: FhirConfig::default(),
            amqp: AmqpConfig::default(),
            health: HealthConfig::default(),
        }
    }
}

/// Where the events come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceSpec {
    File(PathBuf),
    Stdin,
    /// An AMQP URL (with credentials: never log it, see [`redact_url`]).
    Amqp(String),
}

/// Query parameters that carry a secret (libpq's `password`, OAuth's
/// `client_secret` and `access_token`, ...), compared without case.
const SECRET_PARAMS: &[&str] = &[
    "password",
    "passwd",
    "pwd",
    "pass",
    "sslpassword",
    "secret",
    "client_secret",
    "token",
    "access_token",
    "api_key",
    "apikey",
    "key",
];

/// A setting with the secrets of every URL in it replaced by `***`, for
/// logs, errors and `check`: the password of each `scheme://user:password@`
/// (also inside a prefix such as `fhir:https://...`) and the value of each
/// secret query parameter (`?password=...`).
pub fn redact_url(url: &str) -> String {
    let mut out = String::with_capacity(url.len());
    let mut rest = url;
    while let Some(at) = rest.find("://") {
        let (head, tail) = rest.split_at(at + 3);
        out.push_str(head);
        let end = tail.find(['/', '?', '#']).unwrap_or(tail.len());
        let (authority, after) = tail.split_at(end);
        match authority
            .rsplit_once('@')
            .and_then(|(userinfo, host)| Some((userinfo.split_once(':')?.0, host)))
        {
            Some((user, host)) => out.push_str(&format!("{user}:***@{host}")),
            None => out.push_str(authority),
        }
        rest = after;
    }
    out.push_str(rest);
    redact_params(&out)
}

/// `text` with the value of every secret query parameter replaced by `***`.
fn redact_params(text: &str) -> String {
    static PARAM: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    let re = PARAM.get_or_init(|| {
        let names = SECRET_PARAMS.join("|");
        regex::Regex::new(&format!(r"(?i)([?&;](?:{names})=)[^&#;]*")).expect("constant regex")
    });
    re.replace_all(text, "${1}***").into_owned()
}

/// Where the bundles go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SinkSpec {
    Dir(PathBuf),
    Fhir(String),
}

impl Config {
    /// Load: defaults < file < environment < `overrides` (from flags).
    pub fn load(file: Option<&Path>, overrides: &Config) -> Result<Self, String> {
        let mut fig = Figment::from(Serialized::defaults(Config::default()));
        if let Some(f) = file {
            if !f.exists() {
                return Err(format!("config file {} does not exist", f.display()));
            }
            fig = fig.merge(Toml::file_exact(f));
        }
        fig = fig.merge(Env::prefixed("RECORDBRIDGE_").split("__").filter(|k| {
            // RECORDBRIDGE_CONFIG names the file; RECORDBRIDGE_TEST_* belong to the test suite.
            let k = k.as_str().to_ascii_lowercase();
            !k.starts_with("test_") && k != "config"
        }));
        let mut cfg: Config = fig.extract().map_err(|e| {
            let mut msg = String::from("invalid configuration: ");
            for (i, err) in e.into_iter().enumerate() {
                if i > 0 {
                    msg.push_str("; ");
                }
                let path = err.path.join(".");
                if path.is_empty() {
                    msg.push_str(&err.kind.to_string());
                } else {
                    msg.push_str(&format!("setting `{path}`: {}", err.kind));
                }
            }
            msg
        })?;
        cfg.apply(overrides);
        cfg.validate()?;
        Ok(cfg)
    }

    fn apply(&mut self, o: &Config) {
        if o.source.is_some() {
            self.source.clone_from(&o.source);
        }
        if o.sink.is_some() {
            self.sink.clone_from(&o.sink);
        }
        if o.ledger.is_some() {
            self.ledger.clone_from(&o.ledger);
        }
    }

    /// Check every setting; the error names the setting.
    pub fn validate(&self) -> Result<(), String> {
        if self.platform.trim().is_empty() {
            return Err("setting `platform`: must not be empty".into());
        }
        if self.format.trim().is_empty() {
            return Err("setting `format`: must not be empty (`v1` is chat event v1)".into());
        }
        if !(self.hold_window_hours.is_finite()
            && self.hold_window_hours > 0.0
            && self.hold_window_hours <= 8760.0)
        {
            return Err(
                "setting `hold_window_hours`: must be more than 0 and at most 8760 (a year)".into(),
            );
        }
        if self.sweep_interval_secs == 0 {
            return Err("setting `sweep_interval_secs`: must be at least 1".into());
        }
        if !matches!(self.log.format.as_str(), "json" | "text") {
            return Err(format!(
                "setting `log.format`: must be `json` or `text`, not `{}`",
                self.log.format
            ));
        }
        if tracing_subscriber::EnvFilter::try_new(&self.log.level).is_err() {
            return Err("setting `log.level`: not a valid filter directive".into());
        }
        if self.fhir.concurrency == 0 || self.fhir.concurrency > 256 {
            return Err("setting `fhir.concurrency`: must be between 1 and 256".into());
        }
        if self.fhir.timeout_secs == 0 {
            return Err("setting `fhir.timeout_secs`: must be at least 1".into());
        }
        if self.fhir.backoff_initial_ms == 0
            || self.fhir.backoff_max_ms < self.fhir.backoff_initial_ms
        {
            return Err(
                "setting `fhir.backoff_initial_ms`/`fhir.backoff_max_ms`: need 0 < initial <= max"
                    .into(),
            );
        }
        match self.fhir.auth.mode.as_str() {
            "none" => {}
            "bearer" => self.need_secret()?,
            "client-credentials" => {
                self.need_secret()?;
                self.need("fhir.auth.token_url", &self.fhir.auth.token_url)?;
                self.need("fhir.auth.client_id", &self.fhir.auth.client_id)?;
            }
            "smart-backend" => {
                self.need_secret()?;
                self.need("fhir.auth.token_url", &self.fhir.auth.token_url)?;
                self.need("fhir.auth.client_id", &self.fhir.auth.client_id)?;
                if !matches!(self.fhir.auth.algorithm.as_str(), "RS384" | "ES384") {
                    return Err("setting `fhir.auth.algorithm`: must be RS384 or ES384".into());
                }
            }
            other => {
                return Err(format!(
                    "setting `fhir.auth.mode`: `{other}` is not one of none, bearer, client-credentials, smart-backend"
                ));
            }
        }
        let a = &self.amqp;
        for (name, v) in [
            ("amqp.exchange", &a.exchange),
            ("amqp.queue", &a.queue),
            ("amqp.dead_exchange", &a.dead_exchange),
            ("amqp.dead_queue", &a.dead_queue),
            ("amqp.outcomes_exchange", &a.outcomes_exchange),
            ("amqp.format_header", &a.format_header),
            ("amqp.partition_exchange", &a.partition_exchange),
        ] {
            if v.trim().is_empty() || v.len() > 255 {
                return Err(format!("setting `{name}`: must be 1 to 255 characters"));
            }
        }
        if a.partitions > 1024 {
            return Err("setting `amqp.partitions`: at most 1024".into());
        }
        if a.partitions > 0 && !(3..=3600).contains(&a.lease_secs) {
            return Err("setting `amqp.lease_secs`: 3 to 3600 seconds".into());
        }
        if a.exchange == a.dead_exchange || a.queue == a.dead_queue {
            return Err(
                "setting `amqp.dead_exchange`/`amqp.dead_queue`: must differ from `amqp.exchange`/`amqp.queue`"
                    .into(),
            );
        }
        if a.prefetch == 0 {
            return Err("setting `amqp.prefetch`: must be at least 1".into());
        }
        if a.delivery_limit == 0 || a.delivery_limit > 1000 {
            return Err("setting `amqp.delivery_limit`: must be between 1 and 1000".into());
        }
        if a.reconnect_initial_ms == 0 || a.reconnect_max_ms < a.reconnect_initial_ms {
            return Err(
                "setting `amqp.reconnect_initial_ms`/`amqp.reconnect_max_ms`: need 0 < initial <= max"
                    .into(),
            );
        }
        if self.health.listen != "off"
            && self.health.listen.parse::<std::net::SocketAddr>().is_err()
        {
            return Err(format!(
                "setting `health.listen`: must be HOST:PORT (e.g. 0.0.0.0:9464) or `off`, not `{}`",
                self.health.listen
            ));
        }
        if let Some(s) = &self.source {
            self.source_spec_of(s)?;
        }
        if let Some(s) = &self.sink {
            Self::sink_spec_of(s)?;
        }
        Ok(())
    }

    fn need(&self, name: &str, v: &Option<String>) -> Result<(), String> {
        match v {
            Some(s) if !s.trim().is_empty() => Ok(()),
            _ => Err(format!(
                "setting `{name}`: required for auth mode `{}`",
                self.fhir.auth.mode
            )),
        }
    }

    fn need_secret(&self) -> Result<(), String> {
        let a = &self.fhir.auth;
        if a.secret_env.is_none() && a.secret_file.is_none() {
            return Err(format!(
                "setting `fhir.auth.secret_env` or `fhir.auth.secret_file`: required for auth mode `{}` (secrets come only from the environment or a file)",
                a.mode
            ));
        }
        Ok(())
    }

    pub fn source_spec(&self) -> Result<SourceSpec, String> {
        let s = self
            .source
            .as_deref()
            .ok_or("setting `source`: required (e.g. --source file:events.ndjson)")?;
        self.source_spec_of(s)
    }

    fn source_spec_of(&self, s: &str) -> Result<SourceSpec, String> {
        if s == "-" || s == "file:-" {
            Ok(SourceSpec::Stdin)
        } else if let Some(p) = s.strip_prefix("file:") {
            if p.is_empty() {
                return Err("setting `source`: `file:` needs a path".into());
            }
            Ok(SourceSpec::File(PathBuf::from(p)))
        } else if s.starts_with("amqp://") || s.starts_with("amqps://") {
            lapin::uri::AMQPUri::from_str(s)
                .map_err(|e| format!("setting `source`: not a valid AMQP URL ({e})"))?;
            Ok(SourceSpec::Amqp(s.to_owned()))
        } else {
            Err("setting `source`: must be file:PATH, - (stdin) or amqp://…".into())
        }
    }

    pub fn sink_spec(&self) -> Result<SinkSpec, String> {
        let s = self
            .sink
            .as_deref()
            .ok_or("setting `sink`: required (e.g. --sink dir:out)")?;
        Self::sink_spec_of(s)
    }

    fn sink_spec_of(s: &str) -> Result<SinkSpec, String> {
        if let Some(p) = s.strip_prefix("dir:") {
            if p.is_empty() {
                return Err("setting `sink`: `dir:` needs a path".into());
            }
            Ok(SinkSpec::Dir(PathBuf::from(p)))
        } else if let Some(u) = s.strip_prefix("fhir:") {
            if !(u.starts_with("http://") || u.starts_with("https://")) {
                return Err("setting `sink`: `fhir:` needs an http(s) base URL".into());
            }
            Ok(SinkSpec::Fhir(u.trim_end_matches('/').to_owned()))
        } else {
            Err("setting `sink`: must be dir:PATH or fhir:URL".into())
        }
    }

    /// The ledger path: configured, or next to the bundles, or the working directory.
    pub fn ledger_path(&self) -> PathBuf {
        if let Some(p) = &self.ledger {
            return p.clone();
        }
        match self.sink_spec() {
            Ok(SinkSpec::Dir(d)) => d.join("ledger.db"),
            _ => PathBuf::from("recordbridge-ledger.db"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_then_overrides() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("c.toml");
        std::fs::write(
            &f,
            "sink = \"dir:a\"\nhold_window_hours = 5\n[fhir]\nconcurrency = 3\n",
        )
        .unwrap();
        let o = Config {
            sink: Some("dir:b".into()),
            ..Config::default()
        };
        let c = Config::load(Some(&f), &o).unwrap();
        assert_eq!(c.sink.as_deref(), Some("dir:b"), "flags override the file");
        assert_eq!(c.hold_window_hours, 5.0);
        assert_eq!(c.fhir.concurrency, 3);
    }

    #[test]
    fn example_file_documents_every_setting_and_loads() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/recordbridge.example.toml");
        let c = Config::load(Some(&path), &Config::default()).unwrap();
        assert_eq!(
            c.fhir,
            FhirConfig::default(),
            "the example shows the defaults"
        );
        let text = std::fs::read_to_string(&path).unwrap();
        let shown = toml::to_string(&Config::default()).unwrap();
        for line in shown.lines().filter(|l| l.contains(" = ")) {
            let key = line.split(" = ").next().unwrap();
            assert!(text.contains(&format!("{key} =")), "example lacks `{key}`");
        }
    }

    #[test]
    fn errors_name_the_setting() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("c.toml");
        std::fs::write(&f, "[fhir]\nconcurrency = \"many\"\n").unwrap();
        let e = Config::load(Some(&f), &Config::default()).unwrap_err();
        assert!(e.contains("fhir.concurrency"), "{e}");
        std::fs::write(&f, "colour = 1\n").unwrap();
        let e = Config::load(Some(&f), &Config::default()).unwrap_err();
        assert!(e.contains("colour"), "{e}");
        std::fs::write(&f, "[fhir.auth]\nmode = \"bearer\"\n").unwrap();
        let e = Config::load(Some(&f), &Config::default()).unwrap_err();
        assert!(e.contains("fhir.auth.secret_env"), "{e}");
        let o = Config {
            sink: Some("ftp:x".into()),
            ..Config::default()
        };
        assert!(
            Config::load(None, &o)
                .unwrap_err()
                .contains("setting `sink`")
        );
    }

    #[test]
    fn every_secret_of_a_url_setting_is_redacted() {
        let cases = [
            (
                "fhir:https://user:pw1@fhir.trust.example/r4",
                "fhir:https://user:***@fhir.trust.example/r4",
            ),
            (
                "postgres://rb@db/ledger?password=pw2&sslmode=require",
                "postgres://rb@db/ledger?password=***&sslmode=require",
            ),
            (
                "postgres://rb:pw3@db/ledger?sslmode=require&PASSWORD=pw4#x",
                "postgres://rb:***@db/ledger?sslmode=require&PASSWORD=***#x",
            ),
            (
                "fhir:https://h/r4?client_secret=pw5&access_token=pw6&_format=json",
                "fhir:https://h/r4?client_secret=***&access_token=***&_format=json",
            ),
            // The last @ of the authority ends the user information; an @ in
            // the path is not user information.
            ("amqp://u:p@w7@mq/vh", "amqp://u:***@mq/vh"),
            ("https://h/a@b", "https://h/a@b"),
            // A URL inside another's query is redacted too.
            (
                "https://h/?next=https://u:pw8@x/&token=pw9",
                "https://h/?next=https://u:***@x/&token=***",
            ),
            ("dir:out", "dir:out"),
            ("postgres://rb@db/ledger", "postgres://rb@db/ledger"),
        ];
        for (given, shown) in cases {
            assert_eq!(redact_url(given), shown, "{given}");
            assert!(!redact_url(given).contains("pw"), "{given}");
        }
    }

    #[test]
    fn amqp_source_is_parsed_and_its_password_never_shown() {
        let o = Config {
            source: Some("amqp://bridge:s3cret@mq.trust.example:5672/clinical".into()),
            ..Config::default()
        };
        let c = Config::load(None, &o).unwrap();
        assert!(matches!(c.source_spec(), Ok(SourceSpec::Amqp(_))));
        assert_eq!(
            redact_url(c.source.as_deref().unwrap()),
            "amqp://bridge:***@mq.trust.example:5672/clinical"
        );
        assert_eq!(redact_url("amqp://localhost"), "amqp://localhost");
        assert_eq!(
            redact_url("postgres://rb:pw@db.trust.example/ledger"),
            "postgres://rb:***@db.trust.example/ledger"
        );
        let bad = Config {
            source: Some("amqp://host:notaport/".into()),
            ..Config::default()
        };
        assert!(
            Config::load(None, &bad)
                .unwrap_err()
                .contains("setting `source`")
        );
        let mut same = Config::default();
        same.amqp.dead_queue = same.amqp.queue.clone();
        assert!(same.validate().unwrap_err().contains("amqp.dead_queue"));
        let mut h = Config::default();
        h.health.listen = "everywhere".into();
        assert!(h.validate().unwrap_err().contains("health.listen"));
    }
}
