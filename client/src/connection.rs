//! One connection to one broker: framing (a 4-byte size, a request header, the body), correlation ids,
//! ApiVersions negotiation and a timeout on every exchange. Requests on a connection are sequential
//! (`&mut self`): the CLI and the operator send one at a time, and a broker answers in order anyway.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, ApiVersionsResponse, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, Request, StrBytes};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::error::{ClientError, ErrorCode, Result};

/// Largest response accepted (metadata of every topic of a large cluster fits easily).
const MAX_RESPONSE: usize = 256 << 20;

/// A size-prefixed request frame.
pub fn encode_request<Req: Encodable>(
    api: ApiKey,
    version: i16,
    correlation_id: i32,
    client_id: &str,
    body: &Req,
) -> Result<Bytes, String> {
    let header = RequestHeader::default()
        .with_request_api_key(api as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_string(client_id.to_string())));
    let mut buf = BytesMut::new();
    buf.put_i32(0);
    header.encode(&mut buf, api.request_header_version(version)).map_err(|e| format!("encoding {api:?}: {e}"))?;
    body.encode(&mut buf, version).map_err(|e| format!("encoding {api:?} v{version}: {e}"))?;
    let size = i32::try_from(buf.len() - 4).map_err(|_| format!("{api:?} request too large"))?;
    buf[..4].copy_from_slice(&size.to_be_bytes());
    Ok(buf.freeze())
}

/// Decodes a response frame (without its size prefix), checking the correlation id and that nothing is left over.
pub fn decode_response<Resp: Decodable>(
    api: ApiKey,
    version: i16,
    correlation_id: i32,
    mut frame: Bytes,
) -> Result<Resp, String> {
    let header = ResponseHeader::decode(&mut frame, api.response_header_version(version))
        .map_err(|e| format!("{api:?} response header: {e}"))?;
    if header.correlation_id != correlation_id {
        return Err(format!("correlation id {} in the response to request {correlation_id}", header.correlation_id));
    }
    let resp = Resp::decode(&mut frame, version).map_err(|e| format!("{api:?} v{version} response: {e}"))?;
    if frame.has_remaining() {
        return Err(format!("{} bytes after the {api:?} response", frame.remaining()));
    }
    Ok(resp)
}

/// Highest version in both ranges.
pub fn pick_version(ours: (i16, i16), theirs: (i16, i16)) -> Option<i16> {
    let max = ours.1.min(theirs.1);
    (max >= ours.0.max(theirs.0)).then_some(max)
}

/// Sends one request on a new connection to `addr` without negotiating versions (the caller knows them),
/// connecting and answering within `timeout`. For brokers passing requests to each other.
pub async fn call<Req: Encodable, Resp: Decodable>(
    addr: &str,
    api: ApiKey,
    version: i16,
    client_id: &str,
    request: &Req,
    timeout: Duration,
) -> Result<Resp> {
    let exchange = async {
        let mut conn = Connection::open(addr, client_id, timeout).await?;
        conn.exchange(api, version, request).await
    };
    tokio::time::timeout(timeout, exchange).await.map_err(|_| ClientError::Timeout { addr: addr.to_string(), timeout })?
}

/// A byte stream to a broker: TCP, or whatever a caller layers over it (the broker's TLS to its peers).
pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send + Sync {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + Sync> Stream for T {}

pub type BoxStream = Box<dyn Stream>;

pub struct Connection {
    addr: String,
    stream: BoxStream,
    client_id: String,
    timeout: Duration,
    correlation_id: i32,
    /// API key -> the broker's (min, max) versions; empty when not negotiated.
    versions: BTreeMap<i16, (i16, i16)>,
}

impl Connection {
    /// Connects and negotiates API versions, each step within `timeout`.
    pub async fn connect(addr: &str, client_id: &str, timeout: Duration) -> Result<Self> {
        Self::open(addr, client_id, timeout).await?.negotiated().await
    }

    /// Like [`Connection::connect`], over a stream the caller opened to `addr`.
    pub async fn connect_over(addr: &str, stream: BoxStream, client_id: &str, timeout: Duration) -> Result<Self> {
        Self::over(addr, stream, client_id, timeout).negotiated().await
    }

    async fn negotiated(mut self) -> Result<Self> {
        // v0 is understood by every broker and needs no version knowledge yet.
        let resp: ApiVersionsResponse = self.call(ApiKey::ApiVersions, 0, &ApiVersionsRequest::default()).await?;
        self.check(resp.error_code, "ApiVersions", None)?;
        self.versions = resp.api_keys.iter().map(|k| (k.api_key, (k.min_version, k.max_version))).collect();
        Ok(self)
    }

    async fn open(addr: &str, client_id: &str, timeout: Duration) -> Result<Self> {
        let connect = |source| ClientError::Connect { addr: addr.to_string(), source };
        let stream = tokio::time::timeout(timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| ClientError::Timeout { addr: addr.to_string(), timeout })?
            .map_err(connect)?;
        stream.set_nodelay(true).map_err(connect)?;
        Ok(Self::over(addr, Box::new(stream), client_id, timeout))
    }

    /// A connection over a stream the caller opened to `addr`, without negotiating versions (for callers
    /// that know them, as [`call`]).
    pub fn over(addr: &str, stream: BoxStream, client_id: &str, timeout: Duration) -> Self {
        Self {
            addr: addr.to_string(),
            stream,
            client_id: client_id.to_string(),
            timeout,
            correlation_id: 0,
            versions: BTreeMap::new(),
        }
    }

    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// The stream, for a caller that authenticated here and frames its own requests from now on.
    pub fn into_stream(self) -> BoxStream {
        self.stream
    }

    /// The version of `R` to use: the highest both sides support, at most `cap` (for APIs whose newer
    /// versions change the request's shape, so callers build one shape).
    pub fn version<R: Request>(&self, cap: i16) -> Result<i16> {
        self.version_in::<R>(R::VERSIONS.min, cap)
    }

    /// Like [`Connection::version`], for callers that also need at least version `min`.
    pub fn version_in<R: Request>(&self, min: i16, cap: i16) -> Result<i16> {
        let api = api_key::<R>()?;
        let ours = (R::VERSIONS.min.max(min), R::VERSIONS.max.min(cap));
        let theirs = self.versions.get(&R::KEY).copied();
        theirs.and_then(|t| pick_version(ours, t)).ok_or_else(|| ClientError::Unsupported {
            addr: self.addr.clone(),
            api,
            ours,
            theirs,
        })
    }

    pub fn supports<R: Request>(&self) -> bool {
        self.versions.contains_key(&R::KEY)
    }

    /// Typed exchange at a version from [`Connection::version`].
    pub async fn send<R: Request>(&mut self, version: i16, request: &R) -> Result<R::Response> {
        let api = api_key::<R>()?;
        self.call(api, version, request).await
    }

    /// One request and its response, within the connection's timeout.
    pub async fn call<Req: Encodable, Resp: Decodable>(&mut self, api: ApiKey, version: i16, request: &Req) -> Result<Resp> {
        let timeout = self.timeout;
        match tokio::time::timeout(timeout, self.exchange(api, version, request)).await {
            Ok(r) => r,
            Err(_) => Err(ClientError::Timeout { addr: self.addr.clone(), timeout }),
        }
    }

    async fn exchange<Req: Encodable, Resp: Decodable>(&mut self, api: ApiKey, version: i16, request: &Req) -> Result<Resp> {
        self.correlation_id = self.correlation_id.wrapping_add(1);
        let frame = encode_request(api, version, self.correlation_id, &self.client_id, request).map_err(|r| self.protocol(r))?;
        let io = |source| ClientError::Io { addr: self.addr.clone(), source };
        self.stream.write_all(&frame).await.map_err(io)?;
        self.stream.flush().await.map_err(io)?; // a TLS stream may hold the last record until flushed
        let size = self.stream.read_i32().await.map_err(io)?;
        let size = usize::try_from(size)
            .ok()
            .filter(|s| *s <= MAX_RESPONSE)
            .ok_or_else(|| self.protocol(format!("response size {size}")))?;
        // Read into spare capacity: zeroing a buffer first cost a replica fetcher 5% of its CPU.
        let mut buf = BytesMut::with_capacity(size);
        while buf.len() < size {
            let want = (size - buf.len()) as u64;
            if (&mut self.stream).take(want).read_buf(&mut buf).await.map_err(io)? == 0 {
                return Err(io(std::io::ErrorKind::UnexpectedEof.into()));
            }
        }
        decode_response(api, version, self.correlation_id, buf.freeze()).map_err(|r| self.protocol(r))
    }

    pub(crate) fn protocol(&self, reason: String) -> ClientError {
        ClientError::Protocol { addr: self.addr.clone(), reason }
    }

    /// `Ok` for error code 0, else a [`ClientError::Kafka`] naming this broker and `what` failed.
    pub fn check(&self, code: i16, what: impl Into<String>, message: Option<&StrBytes>) -> Result<()> {
        if code == 0 {
            return Ok(());
        }
        Err(ClientError::Kafka {
            addr: self.addr.clone(),
            what: what.into(),
            code: ErrorCode(code),
            message: message.map(|m| m.to_string()).filter(|m| !m.is_empty()),
        })
    }
}

fn api_key<R: Request>() -> Result<ApiKey> {
    ApiKey::try_from(R::KEY).map_err(|_| ClientError::NotFound(format!("API key {}", R::KEY)))
}

#[cfg(test)]
pub(crate) mod tests {
    use kafka_protocol::messages::api_versions_response::ApiVersion;
    use kafka_protocol::messages::{MetadataRequest, MetadataResponse};
    use tokio::net::TcpListener;

    use super::*;

    /// Reads one request frame on a fake broker's side.
    pub async fn read_request(sock: &mut TcpStream) -> (RequestHeader, Bytes) {
        let len = sock.read_i32().await.unwrap() as usize;
        let mut buf = vec![0; len];
        sock.read_exact(&mut buf).await.unwrap();
        let mut buf = Bytes::from(buf);
        let key = ApiKey::try_from(i16::from_be_bytes([buf[0], buf[1]])).unwrap();
        let version = i16::from_be_bytes([buf[2], buf[3]]);
        let header = RequestHeader::decode(&mut buf, key.request_header_version(version)).unwrap();
        (header, buf)
    }

    pub async fn respond<T: Encodable>(sock: &mut TcpStream, header: &RequestHeader, body: &T) {
        let version = header.request_api_version;
        let api = ApiKey::try_from(header.request_api_key).unwrap();
        let mut buf = BytesMut::new();
        ResponseHeader::default()
            .with_correlation_id(header.correlation_id)
            .encode(&mut buf, api.response_header_version(version))
            .unwrap();
        body.encode(&mut buf, version).unwrap();
        sock.write_i32(buf.len() as i32).await.unwrap();
        sock.write_all(&buf).await.unwrap();
    }

    /// Answers ApiVersions on `sock` with the given (key, min, max).
    pub async fn answer_versions(sock: &mut TcpStream, apis: &[(ApiKey, i16, i16)]) {
        let (h, _) = read_request(sock).await;
        assert_eq!((h.request_api_key, h.request_api_version), (ApiKey::ApiVersions as i16, 0));
        let keys = apis
            .iter()
            .map(|(k, min, max)| ApiVersion::default().with_api_key(*k as i16).with_min_version(*min).with_max_version(*max))
            .collect();
        respond(sock, &h, &ApiVersionsResponse::default().with_api_keys(keys)).await;
    }

    #[test]
    fn frame_is_size_prefixed_and_decodes_as_sent() {
        let req = MetadataRequest::default().with_topics(None).with_allow_auto_topic_creation(false);
        for version in [4, 9, 12] {
            let frame = encode_request(ApiKey::Metadata, version, 42, "me", &req).unwrap();
            let mut buf = frame.clone();
            assert_eq!(buf.get_i32() as usize, frame.len() - 4);
            let header = RequestHeader::decode(&mut buf, ApiKey::Metadata.request_header_version(version)).unwrap();
            assert_eq!((header.request_api_key, header.request_api_version, header.correlation_id), (3, version, 42));
            assert_eq!(header.client_id.unwrap().as_str(), "me");
            assert_eq!(MetadataRequest::decode(&mut buf, version).unwrap(), req);
            assert!(!buf.has_remaining());
        }
    }

    #[test]
    fn version_negotiation() {
        assert_eq!(pick_version((0, 1), (0, 3)), Some(1));
        assert_eq!(pick_version((0, 13), (1, 9)), Some(9));
        assert_eq!(pick_version((2, 3), (0, 1)), None);
    }

    #[tokio::test]
    async fn negotiates_then_refuses_what_the_broker_lacks() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let broker = tokio::spawn(async move {
            let (mut sock, _) = listener.accept().await.unwrap();
            answer_versions(&mut sock, &[(ApiKey::Metadata, 0, 12)]).await;
            let (h, _) = read_request(&mut sock).await;
            assert_eq!((h.request_api_key, h.request_api_version), (3, 12));
            respond(&mut sock, &h, &MetadataResponse::default().with_cluster_id(Some(StrBytes::from_static_str("c1")))).await;
            // Second connection: accept and never answer.
            let (mut silent, _) = listener.accept().await.unwrap();
            let _ = read_request(&mut silent).await;
            tokio::time::sleep(Duration::from_secs(2)).await;
        });
        let mut conn = Connection::connect(&addr, "test", Duration::from_secs(5)).await.unwrap();
        let v = conn.version::<MetadataRequest>(i16::MAX).unwrap();
        let resp = conn.send(v, &MetadataRequest::default()).await.unwrap();
        assert_eq!(resp.cluster_id.unwrap().as_str(), "c1");
        let err = conn.version::<kafka_protocol::messages::DescribeQuorumRequest>(i16::MAX).unwrap_err();
        assert!(matches!(err, ClientError::Unsupported { api: ApiKey::DescribeQuorum, theirs: None, .. }), "{err}");
        let err = Connection::connect(&addr, "test", Duration::from_millis(300)).await.err().unwrap();
        assert!(matches!(err, ClientError::Timeout { .. }), "{err}");
        broker.abort();
    }

    /// Answers one request with `reply(correlation id)`, as raw bytes.
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
    async fn one_shot_call_decodes_answers_and_refuses_garbage() {
        let t = Duration::from_secs(5);
        let addr = one_shot(|c| {
            let mut b = BytesMut::new();
            ResponseHeader::default().with_correlation_id(c).encode(&mut b, 0).unwrap();
            ApiVersionsResponse::default().with_error_code(35).encode(&mut b, 0).unwrap();
            framed(&b)
        })
        .await;
        let r: ApiVersionsResponse =
            call(&addr, ApiKey::ApiVersions, 0, "peer", &ApiVersionsRequest::default(), t).await.unwrap();
        assert_eq!(r.error_code, 35);

        let metadata = |addr: String, timeout| async move {
            call::<_, MetadataResponse>(&addr, ApiKey::Metadata, 1, "peer", &MetadataRequest::default(), timeout).await
        };
        let err = metadata(one_shot(|_| framed(&[0, 0, 0, 9, 1])).await, t).await.unwrap_err();
        assert!(err.to_string().contains("correlation id 9"), "{err}");
        let err = metadata(one_shot(|_| (-5i32).to_be_bytes().to_vec()).await, t).await.unwrap_err();
        assert!(err.to_string().contains("response size -5"), "{err}");
        let err = metadata(one_shot(|_| vec![]).await, Duration::from_millis(200)).await.unwrap_err();
        assert!(matches!(err, ClientError::Timeout { .. }), "{err}");
        let err = metadata("127.0.0.1:1".to_string(), t).await.unwrap_err();
        assert!(err.to_string().starts_with("127.0.0.1:1: cannot connect: "), "{err}");

        // A response cut short by a closed connection.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let size = s.read_i32().await.unwrap();
            s.read_exact(&mut vec![0u8; size as usize]).await.unwrap();
            s.write_all(&framed(&[0; 100])[..50]).await.unwrap();
        });
        let err = metadata(addr, t).await.unwrap_err();
        assert!(matches!(&err, ClientError::Io { source, .. } if source.kind() == std::io::ErrorKind::UnexpectedEof), "{err}");
    }
}
