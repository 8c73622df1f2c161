//! Any bytes as a request frame (after the size prefix): header and body decoding, of client requests and of
//! the nodes' internal messages (Raft and controller requests), must return an error, never panic, hang or
//! abort (the broker closes the connection on errors).
#![no_main]

use libfuzzer_sys::fuzz_target;
use strata_broker::protocol::{decode_header, decode_request};

fuzz_target!(|data: &[u8]| {
    let frame = bytes::Bytes::copy_from_slice(data);
    if strata_broker::controller::rpc::internal_body(&frame).is_some() {
        return;
    }
    if let Ok((header, body_start)) = decode_header(&frame) {
        let _ = decode_request(&header, frame, body_start);
    }
});
