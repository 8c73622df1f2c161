//! Any bytes as what a client sends during SASL authentication: a request frame before authentication, a PLAIN
//! message, SCRAM's client-first and client-final messages (the input split at its first newline) through the
//! server's exchange, the SCRAM parsers of both sides, and a `sasl.jaas.config` value. Errors only: never a
//! panic, hang or abort.
#![no_main]

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use strata_broker::sasl::authenticator::{Authenticator, SaslServer};
use strata_broker::sasl::credentials::{CredentialStore, StaticUsers};
use strata_broker::sasl::scram::ScramServer;
use strata_broker::sasl::{jaas, plain};
use strata_client::scram::{ClientFinal, ClientFirst, Mechanism, ServerFirst};
use strata_client::SaslMechanism;

fuzz_target!(|data: &[u8]| {
    let store = CredentialStore::new(StaticUsers::default(), Arc::new(|_, _| None));
    let server = Arc::new(SaslServer { mechanisms: SaslMechanism::ALL.to_vec(), store });
    let _ = Authenticator::new(server).on_frame(bytes::Bytes::copy_from_slice(data));
    let _ = plain::parse(data);
    let _ = (ClientFirst::parse(data), ServerFirst::parse(data), ClientFinal::parse(data));
    let (first, last) = match data.iter().position(|b| *b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let mut scram = ScramServer::new(Mechanism::Sha256);
    if scram.step(first, |_| None).is_ok() {
        let _ = scram.step(last, |_| None);
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = jaas::parse(text);
    }
});
