//! The controller's broker connection: connect once (no reconnect: a CLI
//! run is short), subscribe, publish with PUBACK, and a sync barrier.
//!
//! The barrier makes "all retained messages received" exact instead of a
//! guess: after subscribing, edgectl publishes a nonce to its own topic
//! `fleet/ctl/{client}/sync`; the broker handles a connection's packets in
//! order, so the nonce comes back after the retained messages of every
//! earlier subscription.

use std::time::Duration;

use anyhow::{anyhow, bail, Result};
use fleet::client::mqtt_options;
use fleet::TlsSettings;
use rumqttc::{AsyncClient, ConnectReturnCode, Event, Packet, QoS};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Broker options shared by every subcommand.
#[derive(Debug, Clone, clap::Args)]
pub struct BrokerArgs {
    /// Broker `host:port`.
    #[arg(long, global = true, env = "EDGECTL_BROKER", default_value = "localhost:8883")]
    pub broker: String,
    /// CA certificate (PEM) that signed the broker's certificate.
    #[arg(long, global = true, env = "EDGECTL_CA")]
    pub ca: Option<std::path::PathBuf>,
    /// Client certificate (PEM); its CN is the identity the ACL sees.
    #[arg(long, global = true, env = "EDGECTL_CERT")]
    pub cert: Option<std::path::PathBuf>,
    /// Client key (PKCS#8 PEM).
    #[arg(long, global = true, env = "EDGECTL_KEY")]
    pub key: Option<std::path::PathBuf>,
    /// Plain TCP without TLS (local development only).
    #[arg(long, global = true)]
    pub insecure_plaintext: bool,
    /// Seconds to wait for the broker and for answers.
    #[arg(long, global = true, default_value_t = 10)]
    pub timeout: u64,
}

impl BrokerArgs {
    /// The TLS settings, or `None` for `--insecure-plaintext`.
    pub fn tls(&self) -> Result<Option<TlsSettings>> {
        if self.insecure_plaintext {
            return Ok(None);
        }
        match (&self.ca, &self.cert, &self.key) {
            (Some(ca), Some(cert), Some(key)) => Ok(Some(TlsSettings { ca: ca.clone(), cert: cert.clone(), key: key.clone() })),
            _ => bail!("--ca, --cert and --key are required (or --insecure-plaintext)"),
        }
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout.max(1))
    }
}

/// A message received on a subscription.
#[derive(Debug)]
pub struct Msg {
    pub topic: String,
    pub payload: Vec<u8>,
}

enum Net {
    Msg(Msg),
    PubAck(u16),
    OutgoingPublish(u16),
    Error(String),
}

/// A connected controller.
pub struct Ctl {
    client: AsyncClient,
    events: mpsc::Receiver<Net>,
    sync_topic: String,
    nonce: u64,
    /// Messages read while waiting for something else, in order.
    backlog: std::collections::VecDeque<Msg>,
}

impl Ctl {
    /// Connects and subscribes to the sync topic.
    pub async fn connect(args: &BrokerArgs) -> Result<Ctl> {
        let client_id = format!("edgectl-{}-{:08x}", std::process::id(), fastrand::u32(..));
        let opts = mqtt_options(&client_id, &args.broker, args.tls()?.as_ref(), 30)?;
        let (client, mut eventloop) = AsyncClient::new(opts, 1024);
        let (tx, rx) = mpsc::channel(4096);
        let (conn_tx, conn_rx) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            let mut conn_tx = Some(conn_tx);
            loop {
                let ev = eventloop.poll().await;
                let net = match ev {
                    Ok(Event::Incoming(Packet::ConnAck(a))) => {
                        if let Some(t) = conn_tx.take() {
                            let _ = t.send(if a.code == ConnectReturnCode::Success { Ok(()) } else { Err(format!("{:?}", a.code)) });
                        }
                        continue;
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => Net::Msg(Msg { topic: p.topic, payload: p.payload.to_vec() }),
                    Ok(Event::Incoming(Packet::PubAck(a))) => Net::PubAck(a.pkid),
                    Ok(Event::Outgoing(rumqttc::Outgoing::Publish(pkid))) => Net::OutgoingPublish(pkid),
                    Ok(_) => continue,
                    Err(e) => {
                        if let Some(t) = conn_tx.take() {
                            let _ = t.send(Err(e.to_string()));
                        }
                        let _ = tx.send(Net::Error(e.to_string())).await;
                        return;
                    }
                };
                if tx.send(net).await.is_err() {
                    return;
                }
            }
        });
        match tokio::time::timeout(args.timeout(), conn_rx).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => bail!("cannot connect to {}: {e}", args.broker),
            Ok(Err(_)) => bail!("cannot connect to {}", args.broker),
            Err(_) => bail!("cannot connect to {} within {} s", args.broker, args.timeout),
        }
        let sync_topic = format!("fleet/ctl/{client_id}/sync");
        let ctl = Ctl { client, events: rx, sync_topic, nonce: 0, backlog: Default::default() };
        ctl.client.subscribe(ctl.sync_topic.clone(), QoS::AtLeastOnce).await?;
        Ok(ctl)
    }

    /// Subscribes to `filters` (QoS 1).
    pub async fn subscribe(&self, filters: &[String]) -> Result<()> {
        self.subscribe_qos(filters, QoS::AtLeastOnce).await
    }

    /// Subscribes to `filters` at `qos`.
    pub async fn subscribe_qos(&self, filters: &[String], qos: QoS) -> Result<()> {
        for f in filters {
            self.client.subscribe(f.clone(), qos).await?;
        }
        Ok(())
    }

    async fn next_net(&mut self, deadline: Instant) -> Result<Option<Net>> {
        match tokio::time::timeout_at(deadline, self.events.recv()).await {
            Ok(Some(Net::Error(e))) => Err(anyhow!("broker connection lost: {e}")),
            Ok(Some(n)) => Ok(Some(n)),
            Ok(None) => Err(anyhow!("broker connection closed")),
            Err(_) => Ok(None),
        }
    }

    /// The next message before `deadline` (`None` on timeout).
    pub async fn next(&mut self, deadline: Instant) -> Result<Option<Msg>> {
        while let Some(m) = self.backlog.pop_front() {
            if m.topic != self.sync_topic {
                return Ok(Some(m));
            }
        }
        loop {
            match self.next_net(deadline).await? {
                Some(Net::Msg(m)) if m.topic == self.sync_topic => continue,
                Some(Net::Msg(m)) => return Ok(Some(m)),
                Some(_) => continue,
                None => return Ok(None),
            }
        }
    }

    /// Puts messages back to be read again by [`Ctl::next`], in order.
    pub fn requeue(&mut self, msgs: Vec<Msg>) {
        for m in msgs.into_iter().rev() {
            self.backlog.push_front(m);
        }
    }

    /// Publishes at QoS 1 and waits for the PUBACK.
    pub async fn publish(&mut self, topic: &str, payload: Vec<u8>, retain: bool, deadline: Instant) -> Result<()> {
        self.client.publish(topic, QoS::AtLeastOnce, retain, payload).await?;
        let mut pkid = None;
        loop {
            match self.next_net(deadline).await? {
                Some(Net::OutgoingPublish(p)) if pkid.is_none() => pkid = Some(p),
                Some(Net::PubAck(p)) if Some(p) == pkid => return Ok(()),
                // The broker may deliver before it acknowledges: keep all.
                Some(Net::Msg(m)) => self.backlog.push_back(m),
                Some(_) => {}
                None => bail!("no PUBACK for {topic}"),
            }
        }
    }

    /// Returns every message that arrives before the sync nonce (the
    /// retained messages of all earlier subscriptions, plus live ones).
    pub async fn sync(&mut self, deadline: Instant) -> Result<Vec<Msg>> {
        self.nonce += 1;
        let nonce = self.nonce.to_string();
        let topic = self.sync_topic.clone();
        self.publish(&topic, nonce.clone().into_bytes(), false, deadline).await?;
        let mut out = Vec::new();
        for m in std::mem::take(&mut self.backlog) {
            if m.topic != self.sync_topic {
                out.push(m);
            } else if m.payload == nonce.as_bytes() {
                return Ok(out);
            }
        }
        loop {
            match self.next_net(deadline).await? {
                Some(Net::Msg(m)) if m.topic == self.sync_topic => {
                    if m.payload == nonce.as_bytes() {
                        return Ok(out);
                    }
                }
                Some(Net::Msg(m)) => out.push(m),
                Some(_) => {}
                None => bail!("no sync from the broker in time"),
            }
        }
    }

    /// Disconnects politely (bounded).
    pub async fn close(self) {
        let _ = tokio::time::timeout(Duration::from_secs(1), self.client.disconnect()).await;
    }
}
