//! strata-client: one small Kafka client over tokio and the `kafka-protocol` crate, shared by Strata's
//! tools (the `strata` CLI, the operator) instead of hand-written framing in each.
//!
//! - [`Connection`]: one broker: framing, ApiVersions negotiation, typed requests with a timeout;
//!   [`call`] sends one request on a fresh connection at a version the caller chooses (for brokers
//!   forwarding requests to each other).
//! - [`Client`]: a cluster: bootstrap over several addresses, routing to a broker id, the controller, a
//!   group's coordinator or partition leaders.
//! - [`admin`]: the admin operations, returning plain types.
//! - [`Security`]: dialing a listener: TLS ([`dial`]) and SASL PLAIN / SCRAM ([`scram`]) authentication.
//! - [`ErrorCode`]: Kafka error codes in words.

pub mod admin;
mod client;
mod connection;
mod error;
mod sasl;
pub mod scram;

pub use client::{Client, ClientConfig};
pub use connection::{call, decode_response, encode_request, pick_version, BoxStream, Connection, Stream};
pub use error::{ClientError, ErrorCode, Result};
/// The protocol crate this client speaks, so users name the same message types.
pub use kafka_protocol;
pub use sasl::{dial, plain_token, tls_trusting, SaslCredentials, SaslMechanism, Security};
