//! Confirmed publishing: outcome events and dead letters with a reason.

use super::*;

pub(super) async fn publish_confirmed(
    ch: &Channel,
    exchange: &str,
    routing_key: &str,
    payload: &[u8],
    props: BasicProperties,
) -> Result<(), String> {
    let confirm = ch
        .basic_publish(
            ShortString::from(exchange),
            ShortString::from(routing_key),
            BasicPublishOptions::default(),
            payload,
            props,
        )
        .await
        .map_err(|e| e.to_string())?
        .await
        .map_err(|e| e.to_string())?;
    if confirm.is_nack() {
        return Err("the broker refused the message (nack)".into());
    }
    Ok(())
}

impl Broker {
    /// Publish one message and wait for the broker's confirmation. Retries
    /// (waiting for a reconnection) until confirmed or the bridge is stopping.
    pub async fn publish(
        &self,
        exchange: &str,
        routing_key: &str,
        payload: &[u8],
        props: BasicProperties,
    ) -> anyhow::Result<()> {
        let mut backoff = reconnect_backoff(&self.cfg);
        loop {
            let ch = self
                .live
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .as_ref()
                .map(|l| l.publish.clone());
            let err = match ch {
                None => "not connected".to_owned(),
                Some(ch) => {
                    match publish_confirmed(&ch, exchange, routing_key, payload, props.clone())
                        .await
                    {
                        Ok(()) => return Ok(()),
                        Err(e) => {
                            if !ch.status().connected() && self.is_connected() {
                                // The broker closed the publishing channel (say, an
                                // exchange was deleted): rebuild the connection,
                                // which declares the topology again.
                                self.drop_connection("publishing channel closed").await;
                            }
                            e
                        }
                    }
                }
            };
            if self.stopping() && !self.is_connected() {
                anyhow::bail!("publish to {exchange} abandoned at shutdown: {err}");
            }
            let wait = backoff.next_wait();
            warn!(exchange, error = %err, retry_in_ms = wait.as_millis() as u64, "publish not confirmed; retrying");
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = self.reconnected.notified() => {}
            }
            if self.stopping() && !self.is_connected() {
                anyhow::bail!("publish to {exchange} abandoned at shutdown: {err}");
            }
        }
    }

    /// Dead-letter a message with a reason header (publisher-confirmed). The
    /// original headers and properties are kept.
    pub async fn dead_letter(
        &self,
        routing_key: &str,
        properties: &BasicProperties,
        body: &[u8],
        reason: &str,
    ) -> anyhow::Result<()> {
        let mut headers = properties.headers().clone().unwrap_or_default();
        // Reasons name a field and a problem, never content; keep them short.
        let reason: String = reason.chars().take(1000).collect();
        headers.insert(REASON_HEADER.into(), long(&reason));
        headers.insert("x-recordbridge-queue".into(), long(&self.cfg.queue));
        let props = properties
            .clone()
            .with_headers(headers)
            .with_delivery_mode(2);
        self.publish(&self.cfg.dead_exchange, routing_key, body, props)
            .await
    }
}
