//! The health reports' transport: an MQTT broker (Mosquitto in the drill; any MQTT 3.1.1
//! broker in a fleet). Each machine publishes its report as one **retained** QoS 1 message
//! on `failsafe/<fleet>/state/<machine-id>`, so the broker always holds the newest report
//! of every machine, including machines that are offline now; the controller subscribes
//! to `failsafe/<fleet>/state/+` and receives them all at once. Why MQTT and how to secure
//! it (per-machine credentials, an ACL pattern that lets a client write only its own
//! topic, TLS): docs/decisions/0015-fleet.md. The report format knows nothing of this.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS, TlsConfiguration, Transport};

use crate::error::{Error, Result};
use crate::report::Report;

/// Largest report accepted (a report is a few KiB; this bounds a hostile one).
pub const MAX_REPORT: usize = 256 * 1024;

/// Where the broker is and how to talk to it.
#[derive(Debug, Clone)]
pub struct Broker {
    /// Host name or address.
    pub host: String,
    /// Port (1883 plain, 8883 TLS).
    pub port: u16,
    /// TLS (`mqtts://`).
    pub tls: bool,
    /// User name and password from the URL (`mqtt://user:pass@host`).
    pub credentials: Option<(String, String)>,
    /// CA certificate (PEM) for TLS; without it the platform's roots.
    pub ca: Option<PathBuf>,
    /// Client certificate and key (PEM) for TLS client authentication.
    pub client_cert: Option<(PathBuf, PathBuf)>,
    /// Topic prefix: `failsafe/<fleet>/`.
    pub fleet: String,
    /// Connect / acknowledge timeout.
    pub timeout: Duration,
}

impl Broker {
    /// Parses `mqtt://[user:pass@]host[:port]` or `mqtts://...`.
    pub fn parse(url: &str, fleet: &str) -> Result<Broker> {
        let bad = |why: String| {
            Error::refused(
                "url-invalid",
                format!(
                    "broker URL `{url}`: {why} (expected mqtt://host:1883 or mqtts://host:8883)"
                ),
            )
        };
        let u = url::Url::parse(url).map_err(|e| bad(e.to_string()))?;
        let tls = match u.scheme() {
            "mqtt" => false,
            "mqtts" => true,
            s => return Err(bad(format!("scheme `{s}`"))),
        };
        let host = u
            .host_str()
            .ok_or_else(|| bad("no host".into()))?
            .to_owned();
        crate::plan::check_id(fleet).map_err(|e| {
            Error::refused("fleet-invalid", e.msg.replace("machine id", "fleet name"))
        })?;
        let credentials = (!u.username().is_empty()).then(|| {
            (
                u.username().to_owned(),
                u.password().unwrap_or("").to_owned(),
            )
        });
        Ok(Broker {
            host,
            port: u.port().unwrap_or(if tls { 8883 } else { 1883 }),
            tls,
            credentials,
            ca: None,
            client_cert: None,
            fleet: fleet.to_owned(),
            timeout: Duration::from_secs(5),
        })
    }

    /// The broker's address as messages show it (no credentials).
    pub fn describe(&self) -> String {
        format!(
            "{}://{}:{}",
            if self.tls { "mqtts" } else { "mqtt" },
            self.host,
            self.port
        )
    }

    /// A machine's state topic.
    pub fn topic(&self, machine: &str) -> String {
        format!("failsafe/{}/state/{machine}", self.fleet)
    }

    fn options(&self, client_id: &str) -> Result<MqttOptions> {
        let mut o = MqttOptions::new(client_id, &self.host, self.port);
        o.set_keep_alive(Duration::from_secs(10));
        o.set_clean_session(true);
        o.set_max_packet_size(MAX_REPORT, MAX_REPORT);
        if let Some((u, p)) = &self.credentials {
            o.set_credentials(u, p);
        }
        if self.tls {
            let read = |p: &PathBuf| {
                std::fs::read(p).map_err(|e| crate::error::io_at("broker", "read", p, &e))
            };
            let transport = match (&self.ca, &self.client_cert) {
                (None, None) => Transport::tls_with_default_config(),
                (ca, cert) => {
                    let ca = ca.as_ref().map(read).transpose()?.unwrap_or_default();
                    let client_auth = match cert {
                        Some((c, k)) => Some((read(c)?, read(k)?)),
                        None => None,
                    };
                    Transport::tls_with_config(TlsConfiguration::Simple {
                        ca,
                        alpn: None,
                        client_auth,
                    })
                }
            };
            o.set_transport(transport);
        }
        Ok(o)
    }

    fn down(&self, e: impl std::fmt::Display) -> Error {
        Error::io(
            "broker-unreachable",
            format!("broker {}: {e}", self.describe()),
        )
    }

    /// Publishes a machine's report, retained, and waits for the broker's acknowledgement.
    pub fn publish(&self, machine: &str, payload: Vec<u8>) -> Result<()> {
        let opts = self.options(&format!("failsafe-agent-{machine}"))?;
        let topic = self.topic(machine);
        crate::repo::block_on(async {
            let (client, mut ev) = AsyncClient::new(opts, 4);
            client
                .publish(topic, QoS::AtLeastOnce, true, payload)
                .await
                .map_err(|e| self.down(e))?;
            let deadline = tokio::time::Instant::now() + self.timeout;
            loop {
                match tokio::time::timeout_at(deadline, ev.poll()).await {
                    Err(_) => return Err(self.down("no acknowledgement in time")),
                    Ok(Err(e)) => return Err(self.down(e)),
                    Ok(Ok(Event::Incoming(Packet::PubAck(_)))) => break,
                    Ok(Ok(_)) => {}
                }
            }
            let _ = client.disconnect().await;
            // Let the DISCONNECT go out (bounded).
            let _ = tokio::time::timeout(Duration::from_millis(200), ev.poll()).await;
            Ok(())
        })?
    }

    /// Every machine's newest report: subscribes, then reads retained messages until none
    /// came for `quiet`. A report that does not parse is kept as its error (status shows
    /// it; the controller counts the machine as not reporting).
    pub fn collect(
        &self,
        client_id: &str,
        quiet: Duration,
    ) -> Result<BTreeMap<String, Result<Report>>> {
        let opts = self.options(client_id)?;
        let filter = format!("failsafe/{}/state/+", self.fleet);
        let prefix = format!("failsafe/{}/state/", self.fleet);
        crate::repo::block_on(async {
            let (client, mut ev) = AsyncClient::new(opts, 64);
            client
                .subscribe(filter, QoS::AtLeastOnce)
                .await
                .map_err(|e| self.down(e))?;
            let mut out = BTreeMap::new();
            let mut subscribed = false;
            let start = tokio::time::Instant::now();
            loop {
                let wait = if subscribed { quiet } else { self.timeout };
                match tokio::time::timeout(wait, ev.poll()).await {
                    Err(_) if subscribed => break,
                    Err(_) => return Err(self.down("no subscription acknowledgement in time")),
                    Ok(Err(e)) => return Err(self.down(e)),
                    Ok(Ok(Event::Incoming(Packet::SubAck(_)))) => subscribed = true,
                    Ok(Ok(Event::Incoming(Packet::Publish(p)))) => {
                        if let Some(id) = p.topic.strip_prefix(&prefix) {
                            if p.payload.is_empty() {
                                // A cleared retained message: the machine was removed.
                                out.remove(id);
                            } else {
                                out.insert(id.to_owned(), Report::parse(id, &p.payload));
                            }
                        }
                    }
                    Ok(Ok(_)) => {}
                }
                // A broker that never goes quiet is read for at most a minute.
                if start.elapsed() > Duration::from_secs(60) {
                    break;
                }
            }
            let _ = client.disconnect().await;
            let _ = tokio::time::timeout(Duration::from_millis(200), ev.poll()).await;
            Ok(out)
        })?
    }

    /// Removes a machine's retained report (a decommissioned machine).
    pub fn forget(&self, machine: &str) -> Result<()> {
        self.publish(machine, Vec::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_urls_parse_and_bad_ones_say_why() {
        let b = Broker::parse("mqtt://agent:pw@127.0.0.1:18830", "prod").unwrap();
        assert_eq!(
            (b.host.as_str(), b.port, b.tls),
            ("127.0.0.1", 18830, false)
        );
        assert_eq!(b.credentials, Some(("agent".into(), "pw".into())));
        assert_eq!(b.topic("m01"), "failsafe/prod/state/m01");
        assert_eq!(b.describe(), "mqtt://127.0.0.1:18830");
        assert_eq!(
            Broker::parse("mqtts://broker.example", "f").unwrap().port,
            8883
        );
        let e = Broker::parse("http://x", "f").unwrap_err();
        assert!(e.msg.contains("scheme `http`"), "{e}");
        let e = Broker::parse("mqtt://x", "a/b").unwrap_err();
        assert_eq!(e.code, "fleet-invalid");
    }
}
