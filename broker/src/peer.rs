//! Kafka requests to other brokers (the group coordinator asks partition leaders for high watermarks), one
//! short connection per call.

use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub const PEER_CLIENT_ID: &str = "strata-peer";

/// Requests to peers give up after this long.
pub const PEER_TIMEOUT: Duration = Duration::from_secs(10);

/// Largest response accepted (metadata of every topic of a large cluster fits easily).
const MAX_RESPONSE: usize = 256 << 20;

#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    #[error("{addr}: {source}")]
    Io { addr: String, source: std::io::Error },
    #[error("{addr}: no answer within {timeout:?}")]
    Timeout { addr: String, timeout: Duration },
    #[error("{addr}: {reason}")]
    Protocol { addr: String, reason: String },
}

/// Sends one request to `addr` and decodes the answer, all within `timeout`.
pub async fn call<Req: Encodable, Resp: Decodable>(
    addr: &str,
    api: ApiKey,
    version: i16,
    client_id: &'static str,
    request: &Req,
    timeout: Duration,
) -> Result<Resp, PeerError> {
    match tokio::time::timeout(timeout, exchange(addr, api, version, client_id, request)).await {
        Ok(r) => r,
        Err(_) => Err(PeerError::Timeout { addr: addr.to_string(), timeout }),
    }
}

async fn exchange<Req: Encodable, Resp: Decodable>(
    addr: &str,
    api: ApiKey,
    version: i16,
    client_id: &'static str,
    request: &Req,
) -> Result<Resp, PeerError> {
    let protocol = |reason: String| PeerError::Protocol { addr: addr.to_string(), reason };
    let io = |source| PeerError::Io { addr: addr.to_string(), source };
    const CORRELATION_ID: i32 = 1;
    let header = RequestHeader::default()
        .with_request_api_key(api as i16)
        .with_request_api_version(version)
        .with_correlation_id(CORRELATION_ID)
        .with_client_id(Some(StrBytes::from_static_str(client_id)));
    let mut frame = BytesMut::new();
    frame.put_i32(0);
    header.encode(&mut frame, api.request_header_version(version)).map_err(|e| protocol(format!("encoding {api:?}: {e}")))?;
    request.encode(&mut frame, version).map_err(|e| protocol(format!("encoding {api:?}: {e}")))?;
    let size = i32::try_from(frame.len() - 4).map_err(|_| protocol(format!("{api:?} request too large")))?;
    frame[..4].copy_from_slice(&size.to_be_bytes());

    let mut stream = TcpStream::connect(addr).await.map_err(io)?;
    stream.set_nodelay(true).map_err(io)?;
    stream.write_all(&frame).await.map_err(io)?;
    let size = stream.read_i32().await.map_err(io)?;
    let size =
        usize::try_from(size).ok().filter(|s| *s <= MAX_RESPONSE).ok_or_else(|| protocol(format!("response size {size}")))?;
    let mut buf = vec![0u8; size];
    stream.read_exact(&mut buf).await.map_err(io)?;
    let mut buf = Bytes::from(buf);
    let header = ResponseHeader::decode(&mut buf, api.response_header_version(version))
        .map_err(|e| protocol(format!("{api:?} response header: {e}")))?;
    if header.correlation_id != CORRELATION_ID {
        return Err(protocol(format!("correlation id {} in the response", header.correlation_id)));
    }
    let resp = Resp::decode(&mut buf, version).map_err(|e| protocol(format!("{api:?} v{version} response: {e}")))?;
    if buf.has_remaining() {
        return Err(protocol(format!("{} bytes after the {api:?} response", buf.remaining())));
    }
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::{ApiVersionsRequest, ApiVersionsResponse, MetadataRequest, MetadataResponse};
    use tokio::net::TcpListener;

    /// Answers one request with `reply(correlation id)`.
    async fn one_shot(reply: impl FnOnce(i32) -> Vec<u8> + Send + 'static) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let size = s.read_i32().await.unwrap();
            let mut req = vec![0u8; size as usize];
            s.read_exact(&mut req).await.unwrap();
            let correlation = i32::from_be_bytes(req[4..8].try_into().unwrap());
            s.write_all(&reply(correlation)).await.unwrap();
            let _ = s.read(&mut [0u8; 1]).await;
        });
        addr
    }

    fn framed(body: &[u8]) -> Vec<u8> {
        [&(body.len() as i32).to_be_bytes()[..], body].concat()
    }

    #[tokio::test]
    async fn decodes_answers_and_refuses_garbage() {
        let addr = one_shot(|c| {
            let mut b = BytesMut::new();
            ResponseHeader::default().with_correlation_id(c).encode(&mut b, 0).unwrap();
            ApiVersionsResponse::default().with_error_code(35).encode(&mut b, 0).unwrap();
            framed(&b)
        })
        .await;
        let t = Duration::from_secs(5);
        let r: ApiVersionsResponse =
            call(&addr, ApiKey::ApiVersions, 0, PEER_CLIENT_ID, &ApiVersionsRequest::default(), t).await.unwrap();
        assert_eq!(r.error_code, 35);

        let addr = one_shot(|_| framed(&[0, 0, 0, 9, 1])).await;
        let err = call::<_, MetadataResponse>(&addr, ApiKey::Metadata, 1, PEER_CLIENT_ID, &MetadataRequest::default(), t)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("correlation id 9"), "{err}");

        let addr = one_shot(|_| (-5i32).to_be_bytes().to_vec()).await;
        let err = call::<_, MetadataResponse>(&addr, ApiKey::Metadata, 1, PEER_CLIENT_ID, &MetadataRequest::default(), t)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("response size -5"), "{err}");

        // Accepts but never answers.
        let addr = one_shot(|_| vec![]).await;
        let short = Duration::from_millis(200);
        let err = call::<_, MetadataResponse>(&addr, ApiKey::Metadata, 1, PEER_CLIENT_ID, &MetadataRequest::default(), short)
            .await
            .unwrap_err();
        assert!(matches!(err, PeerError::Timeout { .. }), "{err}");
    }
}
