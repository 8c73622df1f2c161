//! The messages between nodes: Raft's (append entries, vote, install snapshot, sent by openraft) and requests
//! to the active controller (registration, heartbeats, topic changes), carried in Kafka's framing (size,
//! request header v1, body) under an API key Kafka does not use, so they share the listeners' server code,
//! limits and request-size checks. Bodies are JSON and decoded strictly: a malformed message is an error
//! answer or a closed connection, never a panic.

use std::io;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use openraft::error::{InstallSnapshotError, RaftError};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse, VoteRequest, VoteResponse,
};
use serde::{Deserialize, Serialize};
use strata_client::BoxStream;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::tls::Dialer;

use super::quorum::{NodeId, TypeConfig};
use super::service::{ControllerRequest, ControllerResponse};

/// The API key of node-to-node messages: outside Kafka's range, so no Kafka client sends it.
pub const INTERNAL_API_KEY: i16 = 16_000;
const CLIENT_ID: &[u8] = b"strata-controller";
/// Largest answer accepted (snapshot chunks are 3 MiB by default).
const MAX_RESPONSE: usize = 128 << 20;

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub enum RpcRequest {
    AppendEntries(AppendEntriesRequest<TypeConfig>),
    Vote(VoteRequest<NodeId>),
    InstallSnapshot(InstallSnapshotRequest<TypeConfig>),
    Controller(ControllerRequest),
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub enum RpcResponse {
    AppendEntries(Result<AppendEntriesResponse<NodeId>, RaftError<NodeId>>),
    Vote(Result<VoteResponse<NodeId>, RaftError<NodeId>>),
    InstallSnapshot(Result<InstallSnapshotResponse<NodeId>, RaftError<NodeId, InstallSnapshotError>>),
    Controller(ControllerResponse),
    /// The request could not be decoded or is not served by this node.
    Refused(String),
}

/// The body of an internal request frame (after its header), if `frame` is one.
pub fn internal_body(frame: &Bytes) -> Option<Result<(i32, RpcRequest), String>> {
    let (key, _version, correlation_id) = crate::protocol::peek_ids(frame)?;
    if key != INTERNAL_API_KEY {
        return None;
    }
    let mut b = &frame[8..];
    if b.remaining() < 2 {
        return Some(Err("truncated header".into()));
    }
    let len = b.get_i16();
    if len > 0 {
        if b.remaining() < len as usize {
            return Some(Err("truncated header".into()));
        }
        b.advance(len as usize);
    }
    Some(serde_json::from_slice(b).map(|r| (correlation_id, r)).map_err(|e| format!("malformed internal request: {e}")))
}

/// A whole response frame for `correlation_id`.
pub fn response_frame(correlation_id: i32, resp: &RpcResponse) -> Bytes {
    let body = serde_json::to_vec(resp).unwrap_or_else(|e| {
        serde_json::to_vec(&RpcResponse::Refused(format!("encoding the answer: {e}"))).expect("encoding a string")
    });
    let mut buf = BytesMut::with_capacity(8 + body.len());
    buf.put_i32(4 + body.len() as i32);
    buf.put_i32(correlation_id);
    buf.put_slice(&body);
    buf.freeze()
}

/// One connection to another node; requests on it are sequential.
pub struct Connection {
    addr: String,
    stream: BoxStream,
    next_correlation: i32,
}

impl Connection {
    /// Connects with `dialer` (plain TCP or TLS, as the target listener needs).
    pub async fn open(dialer: &Dialer, addr: &str, timeout: Duration) -> io::Result<Connection> {
        let stream = dialer.dial(addr, timeout).await?;
        Ok(Connection { addr: addr.to_string(), stream, next_correlation: 0 })
    }

    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Sends `req` and reads the answer, within `timeout`.
    pub async fn call(&mut self, req: &RpcRequest, timeout: Duration) -> io::Result<RpcResponse> {
        tokio::time::timeout(timeout, self.exchange(req))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, format!("{} did not answer within {timeout:?}", self.addr)))?
    }

    async fn exchange(&mut self, req: &RpcRequest) -> io::Result<RpcResponse> {
        self.next_correlation = self.next_correlation.wrapping_add(1);
        let correlation = self.next_correlation;
        let body = serde_json::to_vec(req).map_err(io::Error::other)?;
        let mut buf = BytesMut::with_capacity(14 + CLIENT_ID.len() + body.len());
        buf.put_i32((10 + CLIENT_ID.len() + body.len()) as i32);
        buf.put_i16(INTERNAL_API_KEY);
        buf.put_i16(0);
        buf.put_i32(correlation);
        buf.put_i16(CLIENT_ID.len() as i16);
        buf.put_slice(CLIENT_ID);
        buf.put_slice(&body);
        self.stream.write_all(&buf).await?;
        self.stream.flush().await?;
        let size = self.stream.read_i32().await?;
        let size = usize::try_from(size)
            .ok()
            .filter(|s| (4..=MAX_RESPONSE).contains(s))
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, format!("{}: answer of {size} bytes", self.addr)))?;
        let mut frame = vec![0; size];
        self.stream.read_exact(&mut frame).await?;
        let got = i32::from_be_bytes(frame[..4].try_into().expect("4 bytes"));
        if got != correlation {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: answer to request {got}, not {correlation}", self.addr),
            ));
        }
        serde_json::from_slice(&frame[4..]).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fuzzing_seeds_are_valid_internal_frames() {
        let seeds = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/seeds/decode_request");
        for name in ["internal-vote", "internal-heartbeat"] {
            let frame = Bytes::from(std::fs::read(seeds.join(name)).unwrap());
            assert!(internal_body(&frame).unwrap().is_ok(), "{name}");
        }
    }

    #[test]
    fn frames_that_are_not_internal_or_are_malformed() {
        let kafka = Bytes::from_static(&[0, 3, 0, 9, 0, 0, 0, 1, 255, 255]);
        assert!(internal_body(&kafka).is_none());
        let mut f = BytesMut::new();
        f.put_i16(INTERNAL_API_KEY);
        f.put_i16(0);
        f.put_i32(7);
        f.put_i16(-1);
        f.put_slice(b"{\"Nope\":1}");
        assert!(internal_body(&f.clone().freeze()).unwrap().unwrap_err().contains("malformed"));
        let truncated = Bytes::copy_from_slice(&f[..9]);
        assert!(internal_body(&truncated).unwrap().is_err());
        let mut long = BytesMut::from(&f[..8]);
        long.put_i16(500);
        assert!(internal_body(&long.freeze()).unwrap().is_err());
    }
}
