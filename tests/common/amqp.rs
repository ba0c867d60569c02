//! The real RabbitMQ for tests (127.0.0.1:5672, or `RECORDBRIDGE_TEST_AMQP_URL`).
//! Each test gets its own exchange and queue names, so tests run in parallel
//! on one broker and never see each other's messages; [`Rabbit::cleanup`]
//! deletes them.
#![allow(dead_code)]

use std::collections::HashMap;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicGetOptions, BasicPublishOptions,
    ConfirmSelectOptions, ExchangeDeleteOptions, QueueBindOptions, QueueDeclareOptions,
    QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use recordbridge::config::AmqpConfig;

pub type Expected = HashMap<String, (String, Option<String>, Option<String>)>;

/// `copies` renamed copies of the fixture chat (ids, threads, targets and
/// replies renamed consistently, so each copy is its own set of threads with
/// the same decisions), with the expected final decision of every event.
pub fn replicated(copies: usize) -> (String, Expected, Vec<String>) {
    let text = std::fs::read_to_string(super::fixture("ward-chat.ndjson")).unwrap();
    let want = super::expected();
    let mut out = String::new();
    let mut exp = HashMap::new();
    let mut order = Vec::new();
    for k in 0..copies {
        for l in text.lines() {
            let l = l.replace("\"$ev", &format!("\"$c{k}ev"));
            let v: serde_json::Value = serde_json::from_str(&l).unwrap();
            let id = v["id"].as_str().unwrap().to_owned();
            let orig = id.replacen(&format!("$c{k}ev"), "$ev", 1);
            exp.insert(id.clone(), want[&orig].clone());
            order.push(id);
            out.push_str(&l);
            out.push('\n');
        }
    }
    (out, exp, order)
}

pub fn amqp_url() -> String {
    std::env::var("RECORDBRIDGE_TEST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into())
}

pub struct Rabbit {
    pub url: String,
    pub cfg: AmqpConfig,
    conn: Connection,
    pub ch: Channel,
    /// Queues the test itself declared (outcome listeners).
    extra: Vec<String>,
}

/// A message taken from a queue.
#[derive(Debug, Clone)]
pub struct Got {
    pub body: Vec<u8>,
    pub routing_key: String,
    pub headers: HashMap<String, String>,
}

fn header_text(v: &AMQPValue) -> String {
    match v {
        AMQPValue::LongString(s) => String::from_utf8_lossy(s.as_bytes()).into_owned(),
        AMQPValue::ShortString(s) => s.to_string(),
        other => format!("{other:?}"),
    }
}

impl Rabbit {
    /// Connect and choose unique names (nothing declared yet).
    pub async fn new() -> Rabbit {
        let url = amqp_url();
        let conn = Connection::connect(&url, ConnectionProperties::default())
            .await
            .unwrap_or_else(|e| {
                panic!("RabbitMQ not reachable at {url} ({e}): run deploy/local/test.sh")
            });
        let ch = conn.create_channel().await.unwrap();
        ch.confirm_select(ConfirmSelectOptions::default())
            .await
            .unwrap();
        let p = format!(
            "rbtest-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..10]
        );
        let cfg = AmqpConfig {
            exchange: format!("{p}.chat"),
            queue: format!("{p}.events"),
            dead_exchange: format!("{p}.dlx"),
            dead_queue: format!("{p}.dead"),
            outcomes_exchange: format!("{p}.outcomes"),
            partition_exchange: format!("{p}.partition"),
            ..AmqpConfig::default()
        };
        Rabbit {
            url,
            cfg,
            conn,
            ch,
            extra: Vec::new(),
        }
    }

    /// Unique names, the topology declared, and a queue listening to outcome events.
    pub async fn declared() -> (Rabbit, String) {
        let mut r = Rabbit::new().await;
        r.declare().await;
        let listener = r.listen_outcomes().await;
        (r, listener)
    }

    /// A new connection (after a broker restart), same names.
    pub async fn reconnect(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match Connection::connect(&self.url, ConnectionProperties::default()).await {
                Ok(c) => {
                    let ch = c.create_channel().await.unwrap();
                    ch.confirm_select(ConfirmSelectOptions::default())
                        .await
                        .unwrap();
                    self.conn = c;
                    self.ch = ch;
                    return;
                }
                Err(e) => {
                    assert!(Instant::now() < deadline, "RabbitMQ did not come back: {e}");
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
            }
        }
    }

    /// Environment for the binary: these names, this broker, a free health port.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            (
                "RECORDBRIDGE_AMQP__EXCHANGE".into(),
                self.cfg.exchange.clone(),
            ),
            ("RECORDBRIDGE_AMQP__QUEUE".into(), self.cfg.queue.clone()),
            (
                "RECORDBRIDGE_AMQP__DEAD_EXCHANGE".into(),
                self.cfg.dead_exchange.clone(),
            ),
            (
                "RECORDBRIDGE_AMQP__DEAD_QUEUE".into(),
                self.cfg.dead_queue.clone(),
            ),
            (
                "RECORDBRIDGE_AMQP__OUTCOMES_EXCHANGE".into(),
                self.cfg.outcomes_exchange.clone(),
            ),
            (
                "RECORDBRIDGE_AMQP__RECONNECT_INITIAL_MS".into(),
                "200".into(),
            ),
            ("RECORDBRIDGE_AMQP__RECONNECT_MAX_MS".into(), "2000".into()),
            ("RECORDBRIDGE_HEALTH__LISTEN".into(), "off".into()),
            (
                "RECORDBRIDGE_AMQP__PARTITIONS".into(),
                self.cfg.partitions.to_string(),
            ),
            (
                "RECORDBRIDGE_AMQP__PARTITION_EXCHANGE".into(),
                self.cfg.partition_exchange.clone(),
            ),
            (
                "RECORDBRIDGE_AMQP__LEASE_SECS".into(),
                self.cfg.lease_secs.to_string(),
            ),
        ]
    }

    /// Declare the topology as the bridge does (so a backlog can be published first).
    pub async fn declare(&self) {
        recordbridge::source::amqp::declare_topology(&self.ch, &self.cfg)
            .await
            .unwrap();
    }

    /// A queue bound to the outcomes exchange (declared before the bridge runs).
    pub async fn listen_outcomes(&mut self) -> String {
        self.ch
            .exchange_declare(
                self.cfg.outcomes_exchange.as_str().into(),
                lapin::ExchangeKind::Topic,
                lapin::options::ExchangeDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .unwrap();
        let q = format!("{}.listener", self.cfg.outcomes_exchange);
        self.ch
            .queue_declare(
                q.as_str().into(),
                QueueDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .unwrap();
        self.ch
            .queue_bind(
                q.as_str().into(),
                self.cfg.outcomes_exchange.as_str().into(),
                "#".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
        self.extra.push(q.clone());
        q
    }

    /// Publish to the chat exchange, persistent, waiting for every confirm.
    pub async fn publish(&self, bodies: &[Vec<u8>]) {
        self.publish_with(bodies, FieldTable::default()).await;
    }

    /// Publish with a format header (`x-recordbridge-format`), as a gateway
    /// carrying several platforms' events on one exchange would.
    pub async fn publish_format(&self, bodies: &[Vec<u8>], format: &str) {
        let mut h = FieldTable::default();
        h.insert(
            "x-recordbridge-format".into(),
            AMQPValue::LongString(format.into()),
        );
        self.publish_with(bodies, h).await;
    }

    /// Publish each body with its own routing key (partitioned consumption
    /// hashes the routing key: publishers set it to the room).
    pub async fn publish_keyed(&self, msgs: &[(String, Vec<u8>)]) {
        self.publish_all(
            msgs.iter().map(|(k, b)| (k.as_str(), b)),
            FieldTable::default(),
        )
        .await;
    }

    /// Publish with these headers, persistent, waiting for every confirm.
    pub async fn publish_with(&self, bodies: &[Vec<u8>], headers: FieldTable) {
        self.publish_all(bodies.iter().map(|b| ("chat.ward", b)), headers)
            .await;
    }

    /// Publish (routing key, body) pairs, persistent, waiting for every confirm.
    async fn publish_all<'a>(
        &self,
        msgs: impl Iterator<Item = (&'a str, &'a Vec<u8>)>,
        headers: FieldTable,
    ) {
        let mut confirms = Vec::with_capacity(1000);
        for (key, b) in msgs {
            confirms.push(
                self.ch
                    .basic_publish(
                        self.cfg.exchange.as_str().into(),
                        key.into(),
                        BasicPublishOptions::default(),
                        b,
                        BasicProperties::default()
                            .with_delivery_mode(2)
                            .with_content_type("application/json".into())
                            .with_headers(headers.clone()),
                    )
                    .await
                    .unwrap(),
            );
            // Bound the confirms in flight.
            if confirms.len() >= 1000 {
                for c in confirms.drain(..) {
                    assert!(c.await.unwrap().is_ack(), "broker refused a publish");
                }
            }
        }
        for c in confirms {
            assert!(c.await.unwrap().is_ack(), "broker refused a publish");
        }
    }

    pub async fn publish_lines(&self, text: &str) -> usize {
        let bodies: Vec<Vec<u8>> = text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| l.as_bytes().to_vec())
            .collect();
        self.publish(&bodies).await;
        bodies.len()
    }

    /// Ready messages in a queue.
    pub async fn count(&self, queue: &str) -> u32 {
        let ch = self.conn.create_channel().await.unwrap();
        let q = ch
            .queue_declare(
                queue.into(),
                QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .unwrap_or_else(|e| panic!("queue {queue} missing: {e}"));
        let _ = ch.close(200, "ok".into()).await;
        q.message_count()
    }

    /// Take (and acknowledge) every ready message of a queue.
    pub async fn take_all(&self, queue: &str) -> Vec<Got> {
        let mut out = Vec::new();
        while let Some(m) = self
            .ch
            .basic_get(queue.into(), BasicGetOptions::default())
            .await
            .unwrap()
        {
            let d = &m.delivery;
            let headers = d
                .properties
                .headers()
                .as_ref()
                .map(|h| {
                    h.inner()
                        .iter()
                        .map(|(k, v)| (k.to_string(), header_text(v)))
                        .collect()
                })
                .unwrap_or_default();
            out.push(Got {
                body: d.data.clone(),
                routing_key: d.routing_key.to_string(),
                headers,
            });
            d.acker.ack(BasicAckOptions::default()).await.unwrap();
        }
        out
    }

    /// Collect messages from a queue until `done(&all)` holds or `timeout` passes.
    pub async fn collect_until(
        &self,
        queue: &str,
        timeout: Duration,
        done: impl Fn(&[Got]) -> bool,
    ) -> Vec<Got> {
        let deadline = Instant::now() + timeout;
        let mut all = Vec::new();
        loop {
            all.extend(self.take_all(queue).await);
            if done(&all) || Instant::now() > deadline {
                return all;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A consumer stream on a queue (for latency measurement).
    pub async fn consume(&self, queue: &str) -> lapin::Consumer {
        let ch = self.conn.create_channel().await.unwrap();
        ch.basic_consume(
            queue.into(),
            "".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap()
    }

    /// Delete everything this test declared.
    pub async fn cleanup(self) {
        let ch = self.conn.create_channel().await.unwrap();
        for q in self
            .extra
            .iter()
            .chain([&self.cfg.queue, &self.cfg.dead_queue])
        {
            let _ = ch
                .queue_delete(q.as_str().into(), QueueDeleteOptions::default())
                .await;
        }
        for e in [
            &self.cfg.exchange,
            &self.cfg.dead_exchange,
            &self.cfg.outcomes_exchange,
        ] {
            let _ = ch
                .exchange_delete(e.as_str().into(), ExchangeDeleteOptions::default())
                .await;
        }
        for p in 0..self.cfg.partitions {
            let q = recordbridge::source::amqp::partition_queue(&self.cfg, p);
            let _ = ch
                .queue_delete(q.as_str().into(), QueueDeleteOptions::default())
                .await;
        }
        let _ = ch
            .exchange_delete(
                self.cfg.partition_exchange.as_str().into(),
                ExchangeDeleteOptions::default(),
            )
            .await;
        let _ = self.conn.close(200, "bye".into()).await;
    }
}

/// Outcome events as JSON, in arrival order.
pub fn outcome_json(got: &[Got]) -> Vec<serde_json::Value> {
    got.iter()
        .map(|g| serde_json::from_slice(&g.body).expect("outcome event is JSON"))
        .collect()
}

/// Start `recordbridge run --source AMQP --sink SINK` with extra environment.
pub fn spawn_bridge(
    url: &str,
    sink: &str,
    ledger: &std::path::Path,
    env: &[(String, String)],
    stderr: Stdio,
) -> Child {
    let mut c = super::bin();
    c.args([
        "run",
        "--source",
        url,
        "--sink",
        sink,
        "--ledger",
        &ledger.display().to_string(),
    ]);
    for (k, v) in env {
        c.env(k, v);
    }
    c.stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .expect("binary starts")
}

/// SIGTERM a bridge and wait for it (it must exit by itself, within a bound).
pub fn stop(mut child: Child) -> std::process::Output {
    // SAFETY: plain kill(2) on our own child's pid.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("bridge did not stop within 60 s of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Run `rabbitmqctl` (root on the test machine), which must succeed.
pub fn rabbitmqctl(args: &[&str]) -> std::process::Output {
    let o = std::process::Command::new("rabbitmqctl")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("rabbitmqctl runs (deploy/local/test.sh installs RabbitMQ)");
    assert!(
        o.status.success(),
        "rabbitmqctl {args:?}: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    o
}
