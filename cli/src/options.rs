//! Options every command shares: where the cluster is, client settings, output format.

use std::time::Duration;

use anyhow::{bail, Context};
use strata_client::{tls, Client, ClientConfig, SaslCredentials, Security};

#[derive(clap::Args)]
pub struct GlobalOptions {
    /// Bootstrap brokers, comma-separated host:port.
    #[arg(long, global = true, env = "STRATA_BROKERS", default_value = "localhost:9092", value_name = "HOST:PORT,...")]
    brokers: String,
    /// A client setting (repeatable). Produce and consume pass all of them to librdkafka; the other commands
    /// use client.id, request.timeout.ms and the security ones: security.protocol (PLAINTEXT, SSL,
    /// SASL_PLAINTEXT, SASL_SSL), ssl.ca.location, sasl.mechanism (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512),
    /// sasl.username, sasl.password.
    #[arg(short = 'X', global = true, value_name = "KEY=VALUE")]
    settings: Vec<String>,
    /// Output for people (aligned tables) or for scripts.
    #[arg(long, global = true, value_enum, default_value_t = Format::Text)]
    format: Format,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
}

/// The global options, checked.
pub struct Options {
    pub brokers: Vec<String>,
    pub settings: Vec<(String, String)>,
    pub format: Format,
}

impl GlobalOptions {
    pub fn resolve(self) -> anyhow::Result<Options> {
        let brokers: Vec<String> = self.brokers.split(',').map(str::trim).filter(|b| !b.is_empty()).map(String::from).collect();
        if brokers.is_empty() {
            bail!("--brokers: no address given");
        }
        let settings =
            self.settings.iter().map(|kv| parse_key_value(kv).with_context(|| format!("-X {kv}"))).collect::<Result<_, _>>()?;
        Ok(Options { brokers, settings, format: self.format })
    }
}

/// `key=value` (the value may contain `=`).
pub fn parse_key_value(kv: &str) -> anyhow::Result<(String, String)> {
    match kv.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
        _ => bail!("expected KEY=VALUE"),
    }
}

impl Options {
    fn setting(&self, key: &str) -> Option<&str> {
        self.settings.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    pub fn client_config(&self) -> anyhow::Result<ClientConfig> {
        let timeout_ms: u64 = match self.setting("request.timeout.ms") {
            Some(v) => v.parse().context("-X request.timeout.ms: not a number of milliseconds")?,
            None => 10_000,
        };
        Ok(ClientConfig {
            bootstrap: self.brokers.clone(),
            client_id: self.setting("client.id").unwrap_or("strata-cli").to_string(),
            timeout: Duration::from_millis(timeout_ms),
            security: self.security()?,
        })
    }

    /// TLS and SASL from librdkafka's settings, so one set of -X works for every command.
    pub fn security(&self) -> anyhow::Result<Security> {
        let protocol = self.setting("security.protocol").unwrap_or("PLAINTEXT").to_ascii_uppercase();
        let (tls, sasl) = match protocol.as_str() {
            "PLAINTEXT" => (false, false),
            "SSL" => (true, false),
            "SASL_PLAINTEXT" => (false, true),
            "SASL_SSL" => (true, true),
            other => bail!("-X security.protocol={other}: expected PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL"),
        };
        let read = |key: &str| -> anyhow::Result<Option<String>> {
            let Some(path) = self.setting(key) else { return Ok(None) };
            Ok(Some(std::fs::read_to_string(path).with_context(|| format!("-X {key}={path}"))?))
        };
        let tls = if tls {
            let verify = match self.setting("ssl.endpoint.identification.algorithm").unwrap_or("https") {
                "https" => true,
                "none" | "" => false,
                other => bail!("-X ssl.endpoint.identification.algorithm={other}: expected https or none"),
            };
            if self.setting("ssl.certificate.location").is_some() != self.setting("ssl.key.location").is_some() {
                bail!("-X ssl.certificate.location and -X ssl.key.location go together");
            }
            let ca = read("ssl.ca.location")?.context("-X ssl.ca.location: the CA file is needed for SSL")?;
            // A client certificate for listeners with ssl.client.auth, as librdkafka's settings name it.
            let (cert, key) = (read("ssl.certificate.location")?, read("ssl.key.location")?);
            let identity = cert.as_deref().zip(key.as_deref());
            Some(tls::client_config_from_pem(&ca, identity, verify).context("-X ssl.*")?)
        } else {
            None
        };
        let sasl = if sasl {
            let get = |key: &str| self.setting(key).with_context(|| format!("-X {key} is needed for {protocol}"));
            let mechanism = get("sasl.mechanism")?;
            Some(SaslCredentials {
                mechanism: mechanism.parse().map_err(anyhow::Error::msg).context("-X sasl.mechanism")?,
                username: get("sasl.username")?.to_string(),
                password: get("sasl.password")?.to_string(),
            })
        } else {
            None
        };
        Ok(Security { tls, sasl })
    }

    pub async fn client(&self) -> anyhow::Result<Client> {
        Ok(Client::connect(self.client_config()?).await?)
    }

    /// Checks that the topic exists, for produce and consume: the same errors as the other commands
    /// (unknown topic, unreachable brokers) instead of librdkafka retrying until a timeout.
    pub fn check_topic(&self, runtime: &tokio::runtime::Runtime, topic: &str) -> anyhow::Result<()> {
        runtime.block_on(async { anyhow::Ok(self.client().await?.topic(topic).await?) })?;
        Ok(())
    }

    /// librdkafka settings: the bootstrap list, then `defaults`, then every -X (strongest).
    pub fn rdkafka_config(&self, defaults: &[(&str, &str)]) -> rdkafka::ClientConfig {
        let mut config = rdkafka::ClientConfig::new();
        config.set("bootstrap.servers", self.brokers.join(",")).set("client.id", "strata-cli");
        for (k, v) in defaults {
            config.set(*k, *v);
        }
        for (k, v) in &self.settings {
            config.set(k, v);
        }
        config
    }

    pub fn json(&self) -> bool {
        self.format == Format::Json
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_values() {
        assert_eq!(parse_key_value("a=b=c").unwrap(), ("a".into(), "b=c".into()));
        assert_eq!(parse_key_value("linger.ms=").unwrap(), ("linger.ms".into(), "".into()));
        assert!(parse_key_value("novalue").is_err());
        assert!(parse_key_value("=x").is_err());
    }

    #[test]
    fn brokers_and_settings_resolve() {
        let opts = GlobalOptions { brokers: " a:1, b:2 ,".into(), settings: vec!["client.id=me".into()], format: Format::Json }
            .resolve()
            .unwrap();
        assert_eq!(opts.brokers, ["a:1", "b:2"]);
        let config = opts.client_config().unwrap();
        assert_eq!((config.client_id.as_str(), config.timeout), ("me", Duration::from_secs(10)));
        assert!(GlobalOptions { brokers: ",".into(), settings: vec![], format: Format::Text }.resolve().is_err());
    }

    #[test]
    fn security_settings() {
        let opts = |settings: &[&str]| {
            GlobalOptions {
                brokers: "a:1".into(),
                settings: settings.iter().map(|s| s.to_string()).collect(),
                format: Format::Text,
            }
            .resolve()
            .unwrap()
        };
        let none = opts(&[]).security().unwrap();
        assert!(none.tls.is_none() && none.sasl.is_none());
        let sasl =
            opts(&["security.protocol=sasl_plaintext", "sasl.mechanism=SCRAM-SHA-512", "sasl.username=u", "sasl.password=p"])
                .security()
                .unwrap();
        let creds = sasl.sasl.unwrap();
        assert_eq!((creds.mechanism.name(), creds.username.as_str(), creds.password.as_str()), ("SCRAM-SHA-512", "u", "p"));
        for (settings, want) in [
            (vec!["security.protocol=TLS"], "expected PLAINTEXT"),
            (vec!["security.protocol=SSL"], "ssl.ca.location"),
            (vec!["security.protocol=SSL", "ssl.ca.location=/nonexistent/ca.pem"], "/nonexistent/ca.pem"),
            (
                vec!["security.protocol=SSL", concat!("ssl.ca.location=", env!("CARGO_MANIFEST_DIR"), "/Cargo.toml")],
                "CA certificate",
            ),
            (vec!["security.protocol=SSL", "ssl.certificate.location=c.pem"], "go together"),
            (vec!["security.protocol=SSL", "ssl.endpoint.identification.algorithm=ldap"], "expected https or none"),
            (vec!["security.protocol=SASL_PLAINTEXT", "sasl.username=u", "sasl.password=p"], "sasl.mechanism"),
            (vec!["security.protocol=SASL_PLAINTEXT", "sasl.mechanism=GSSAPI", "sasl.username=u", "sasl.password=p"], "GSSAPI"),
            (vec!["security.protocol=SASL_PLAINTEXT", "sasl.mechanism=PLAIN", "sasl.username=u"], "sasl.password"),
        ] {
            let err = format!("{:#}", opts(&settings).security().err().unwrap());
            assert!(err.contains(want), "{settings:?}: {err}");
        }
    }
}
