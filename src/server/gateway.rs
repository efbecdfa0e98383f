//! etcd's JSON gateway (grpc-gateway) on the client port (spec §6.3): `POST /v3/...` with a
//! JSON request message, answered with the JSON of the response message, or for streaming
//! RPCs with newline-delimited `{"result":...}` objects.
//!
//! As in etcd, the gateway is a gRPC client of the same member: it encodes the JSON into a
//! gRPC request, calls the member's own gRPC services in-process (no socket, no HTTP/2
//! framing) and renders the gRPC answer as JSON. So every check, error and stream behaves as
//! over gRPC, and the gateway needs no knowledge of the services beyond the path table below.

mod json;

use std::convert::Infallible;
use std::future::poll_fn;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};

use bytes::{Buf, Bytes, BytesMut};
use http::{header, HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body::{Body as HttpBody, Frame};
use tokio::sync::mpsc;
use tonic::body::Body;
use tonic::Code;

use json::{json_string, Schema};

use super::MemberService;

/// HTTP path → gRPC path, as etcd's protos annotate them (`/v3beta/` is rewritten first).
const ROUTES: &[(&str, &str)] = &[
    ("/v3/kv/range", "/etcdserverpb.KV/Range"),
    ("/v3/kv/put", "/etcdserverpb.KV/Put"),
    ("/v3/kv/deleterange", "/etcdserverpb.KV/DeleteRange"),
    ("/v3/kv/txn", "/etcdserverpb.KV/Txn"),
    ("/v3/kv/compaction", "/etcdserverpb.KV/Compact"),
    ("/v3/watch", "/etcdserverpb.Watch/Watch"),
    ("/v3/lease/grant", "/etcdserverpb.Lease/LeaseGrant"),
    ("/v3/lease/revoke", "/etcdserverpb.Lease/LeaseRevoke"),
    ("/v3/kv/lease/revoke", "/etcdserverpb.Lease/LeaseRevoke"),
    ("/v3/lease/keepalive", "/etcdserverpb.Lease/LeaseKeepAlive"),
    (
        "/v3/lease/timetolive",
        "/etcdserverpb.Lease/LeaseTimeToLive",
    ),
    (
        "/v3/kv/lease/timetolive",
        "/etcdserverpb.Lease/LeaseTimeToLive",
    ),
    ("/v3/lease/leases", "/etcdserverpb.Lease/LeaseLeases"),
    ("/v3/kv/lease/leases", "/etcdserverpb.Lease/LeaseLeases"),
    ("/v3/cluster/member/add", "/etcdserverpb.Cluster/MemberAdd"),
    (
        "/v3/cluster/member/remove",
        "/etcdserverpb.Cluster/MemberRemove",
    ),
    (
        "/v3/cluster/member/update",
        "/etcdserverpb.Cluster/MemberUpdate",
    ),
    (
        "/v3/cluster/member/list",
        "/etcdserverpb.Cluster/MemberList",
    ),
    (
        "/v3/cluster/member/promote",
        "/etcdserverpb.Cluster/MemberPromote",
    ),
    ("/v3/maintenance/alarm", "/etcdserverpb.Maintenance/Alarm"),
    ("/v3/maintenance/status", "/etcdserverpb.Maintenance/Status"),
    (
        "/v3/maintenance/defragment",
        "/etcdserverpb.Maintenance/Defragment",
    ),
    ("/v3/maintenance/hash", "/etcdserverpb.Maintenance/Hash"),
    ("/v3/maintenance/hashkv", "/etcdserverpb.Maintenance/HashKV"),
    (
        "/v3/maintenance/snapshot",
        "/etcdserverpb.Maintenance/Snapshot",
    ),
    (
        "/v3/maintenance/transfer-leadership",
        "/etcdserverpb.Maintenance/MoveLeader",
    ),
    (
        "/v3/maintenance/downgrade",
        "/etcdserverpb.Maintenance/Downgrade",
    ),
    ("/v3/auth/enable", "/etcdserverpb.Auth/AuthEnable"),
    ("/v3/auth/disable", "/etcdserverpb.Auth/AuthDisable"),
    ("/v3/auth/status", "/etcdserverpb.Auth/AuthStatus"),
    ("/v3/auth/authenticate", "/etcdserverpb.Auth/Authenticate"),
    ("/v3/auth/user/add", "/etcdserverpb.Auth/UserAdd"),
    ("/v3/auth/user/get", "/etcdserverpb.Auth/UserGet"),
    ("/v3/auth/user/list", "/etcdserverpb.Auth/UserList"),
    ("/v3/auth/user/delete", "/etcdserverpb.Auth/UserDelete"),
    (
        "/v3/auth/user/changepw",
        "/etcdserverpb.Auth/UserChangePassword",
    ),
    ("/v3/auth/user/grant", "/etcdserverpb.Auth/UserGrantRole"),
    ("/v3/auth/user/revoke", "/etcdserverpb.Auth/UserRevokeRole"),
    ("/v3/auth/role/add", "/etcdserverpb.Auth/RoleAdd"),
    ("/v3/auth/role/get", "/etcdserverpb.Auth/RoleGet"),
    ("/v3/auth/role/list", "/etcdserverpb.Auth/RoleList"),
    ("/v3/auth/role/delete", "/etcdserverpb.Auth/RoleDelete"),
    (
        "/v3/auth/role/grant",
        "/etcdserverpb.Auth/RoleGrantPermission",
    ),
    (
        "/v3/auth/role/revoke",
        "/etcdserverpb.Auth/RoleRevokePermission",
    ),
    ("/v3/lock/lock", "/v3lockpb.Lock/Lock"),
    ("/v3/lock/unlock", "/v3lockpb.Lock/Unlock"),
    ("/v3/election/campaign", "/v3electionpb.Election/Campaign"),
    ("/v3/election/proclaim", "/v3electionpb.Election/Proclaim"),
    ("/v3/election/leader", "/v3electionpb.Election/Leader"),
    ("/v3/election/observe", "/v3electionpb.Election/Observe"),
    ("/v3/election/resign", "/v3electionpb.Election/Resign"),
];

/// Whether the gateway answers `path`: all of `/v3/` (unknown paths get its JSON 404), and
/// `/v3beta/`, which etcd rewrites to `/v3/`.
pub(crate) fn serves(path: &str) -> bool {
    path.starts_with("/v3/") || path.starts_with("/v3beta/")
}

/// Answers one gateway request by calling the gRPC services of `member`.
pub(crate) async fn respond<B>(member: MemberService, request: Request<B>) -> Response<Body>
where
    B: HttpBody<Data = Bytes> + Send + 'static,
{
    let raw_path = request.uri().path();
    let path = match raw_path.strip_prefix("/v3beta/") {
        Some(rest) => format!("/v3/{rest}"),
        None => raw_path.to_owned(),
    };
    let Some(&(_, grpc_path)) = ROUTES.iter().find(|(p, _)| *p == path) else {
        return error(Code::NotFound, "Not Found");
    };
    if request.method() != Method::POST {
        return error(Code::Unimplemented, "Method Not Allowed");
    }
    let Some(method) = Schema::get().method(grpc_path) else {
        return error(Code::NotFound, "Not Found");
    };
    let (parts, body) = request.into_parts();
    let body = if method.client_streaming {
        forward_stream(body, method.input.clone())
    } else {
        let Ok((body, _)) = collect(body).await else {
            return error(Code::InvalidArgument, "unexpected EOF");
        };
        match grpc_frames(&body, method) {
            Ok(frames) => Chunks::once(frames),
            Err(message) => return error(Code::InvalidArgument, &message),
        }
    };
    let mut call = Request::new(Body::new(body));
    *call.method_mut() = Method::POST;
    *call.version_mut() = http::Version::HTTP_2;
    *call.uri_mut() = match grpc_path.parse() {
        Ok(uri) => uri,
        Err(_) => return error(Code::Internal, "bad gRPC path"),
    };
    let headers = call.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    headers.insert(header::TE, HeaderValue::from_static("trailers"));
    forward_metadata(&parts.headers, headers);

    let Ok(response) = member.grpc_call(call).await;
    let (head, body) = response.into_parts();
    let output = method.output.clone();
    // A trailers-only answer: the call failed before any message.
    if let Some(status) = tonic::Status::from_header_map(&head.headers) {
        if status.code() != Code::Ok {
            if method.server_streaming {
                let line = stream_error(status.code(), status.message());
                return json_response(http_status(status.code()), line);
            }
            return error(status.code(), status.message());
        }
    }
    if method.server_streaming {
        return stream(body, output).await;
    }
    let Ok((data, trailers)) = collect(body).await else {
        return error(Code::Unavailable, "error reading from server: EOF");
    };
    if let Some(status) = trailers.as_ref().and_then(tonic::Status::from_header_map) {
        if status.code() != Code::Ok {
            return error(status.code(), status.message());
        }
    }
    let mut data = BytesMut::from(&data[..]);
    match next_frame(&mut data) {
        Some(message) => match Schema::get().render(&output, &message) {
            Ok(json) => json_response(StatusCode::OK, json),
            Err(message) => error(Code::Internal, &message),
        },
        None => error(
            Code::Internal,
            "server closed the stream without sending a message",
        ),
    }
}

/// The request stream of a client-streaming call (watch, keepalive): each JSON object of the
/// body becomes a gRPC message as soon as it has arrived, so a client can keep writing
/// requests on an open body. As in grpc-gateway, the first object that does not decode ends
/// the request stream, without an error: the answers go on.
fn forward_stream<B>(body: B, input: String) -> Chunks
where
    B: HttpBody<Data = Bytes> + Send + 'static,
{
    let (tx, rx) = mpsc::channel(16);
    tokio::spawn(async move {
        let mut body = Box::pin(body);
        let mut pending: Vec<u8> = Vec::new();
        loop {
            let (frames, consumed, broken) = decode_objects(&pending, &input);
            pending.drain(..consumed);
            for frame in frames {
                if tx.send(frame).await.is_err() {
                    return;
                }
            }
            if broken {
                return;
            }
            match poll_fn(|cx| body.as_mut().poll_frame(cx)).await {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        pending.extend_from_slice(&data);
                    }
                }
                // The end of the body (or a broken one) ends the request stream.
                _ => return,
            }
        }
    });
    Chunks(rx)
}

/// The gRPC frames of the whole JSON objects at the start of `pending`, how many bytes they
/// took, and whether what follows them can never decode.
fn decode_objects(pending: &[u8], input: &str) -> (Vec<Bytes>, usize, bool) {
    let mut frames = Vec::new();
    let mut consumed = 0;
    let mut values = serde_json::Deserializer::from_slice(pending).into_iter::<serde_json::Value>();
    loop {
        match values.next() {
            Some(Ok(value)) if value.is_object() => {
                consumed = values.byte_offset();
                match Schema::get().encode(input, &value) {
                    Ok(message) => frames.push(frame(&message)),
                    Err(_) => return (frames, consumed, true),
                }
            }
            // An object not complete yet: wait for more of the body.
            Some(Err(e)) if e.is_eof() => return (frames, consumed, false),
            Some(_) => return (frames, consumed, true),
            None => return (frames, pending.len(), false),
        }
    }
}

/// One gRPC frame: uncompressed, length-prefixed.
fn frame(message: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(5 + message.len());
    out.extend_from_slice(&[0]);
    out.extend_from_slice(
        &u32::try_from(message.len())
            .unwrap_or(u32::MAX)
            .to_be_bytes(),
    );
    out.extend_from_slice(message);
    out.freeze()
}

/// The request body of a unary or server-streaming call as a gRPC frame: its first JSON value
/// (an empty body is the empty message; what follows is not read, as Go's JSON decoder
/// leaves it).
fn grpc_frames(body: &[u8], method: &json::Method) -> Result<Bytes, String> {
    let mut values = serde_json::Deserializer::from_slice(body).into_iter::<serde_json::Value>();
    let first = match values.next() {
        // Only an object is a message (an empty body is the empty message).
        Some(Ok(value @ serde_json::Value::Object(_))) => value,
        Some(Ok(serde_json::Value::Array(_))) => return Err(unexpected_token("[")),
        Some(Ok(value)) => return Err(unexpected_token(&value.to_string())),
        Some(Err(e)) => return Err(go_json_error(&e, body)),
        None => serde_json::Value::Null,
    };
    Ok(frame(&Schema::get().encode(&method.input, &first)?))
}

/// protojson's error for a request that is JSON but not an object; Go's decoder has trimmed
/// the space before it, so it is always at 1:1.
fn unexpected_token(token: &str) -> String {
    format!("proto: syntax error (line 1:1): unexpected token {token}")
}

/// The message Go's `encoding/json` gives for the same syntax error, which etcd's gateway
/// passes on: serde_json tells where, a scan of the text before it tells what was expected.
fn go_json_error(e: &serde_json::Error, body: &[u8]) -> String {
    if e.is_eof() {
        return "unexpected EOF".to_owned();
    }
    // serde_json reports 1-based line and column; find the byte it stopped at.
    let offset = body
        .split(|&b| b == b'\n')
        .take(e.line().saturating_sub(1))
        .map(|line| line.len() + 1)
        .sum::<usize>()
        + e.column().saturating_sub(1);
    match (
        body.get(offset),
        expected(body.get(..offset).unwrap_or_default()),
    ) {
        (Some(&c), Some(context)) if c.is_ascii_graphic() || c == b' ' => {
            let c = match c {
                b'\'' => "\\'".to_owned(),
                c => (c as char).to_string(),
            };
            format!("invalid character '{c}' {context}")
        }
        _ => e.to_string(),
    }
}

/// What Go's JSON scanner expects after `prefix`, in the words of its errors; `None` inside a
/// string or literal, where its messages differ.
fn expected(prefix: &[u8]) -> Option<String> {
    #[derive(Clone, Copy, PartialEq)]
    enum After {
        Open,
        Key,
        Colon,
        Comma,
        Value,
    }
    let mut stack = Vec::new();
    let mut after = After::Comma;
    let mut i = 0;
    while let Some(&c) = prefix.get(i) {
        match c {
            b' ' | b'\t' | b'\n' | b'\r' => {}
            b'{' | b'[' => {
                stack.push(c);
                after = After::Open;
            }
            b'}' | b']' => {
                stack.pop();
                after = After::Value;
            }
            b':' => after = After::Colon,
            b',' => after = After::Comma,
            b'"' => {
                i += 1;
                loop {
                    match prefix.get(i)? {
                        b'\\' => i += 1,
                        b'"' => break,
                        _ => {}
                    }
                    i += 1;
                }
                let key =
                    stack.last() == Some(&b'{') && matches!(after, After::Open | After::Comma);
                after = if key { After::Key } else { After::Value };
            }
            _ => {
                // A number or literal; serde_json stops inside a literal it cannot finish.
                let start = i;
                while prefix
                    .get(i + 1)
                    .is_some_and(|c| !b" \t\n\r,:]}".contains(c))
                {
                    i += 1;
                }
                let run = prefix.get(start..=i).unwrap_or_default();
                let literal = [&b"true"[..], b"false", b"null"]
                    .into_iter()
                    .find(|l| l.first() == run.first());
                if let Some(literal) = literal.filter(|l| l.len() > run.len()) {
                    let next = literal.get(run.len()).copied().unwrap_or_default() as char;
                    let name = String::from_utf8_lossy(literal);
                    return Some(format!("in literal {name} (expecting '{next}')"));
                }
                after = After::Value;
            }
        }
        i += 1;
    }
    let in_object = stack.last() == Some(&b'{');
    Some(String::from(match after {
        After::Open | After::Comma if in_object => "looking for beginning of object key string",
        After::Open | After::Comma | After::Colon => "looking for beginning of value",
        After::Key => "after object key",
        After::Value if in_object => "after object key:value pair",
        After::Value if stack.is_empty() => "after top-level value",
        After::Value => "after array element",
    }))
}

/// The request's headers as gRPC metadata, as grpc-gateway passes them: `Authorization`
/// as is, `Grpc-Metadata-X` as `x`, `Accept` as `grpcgateway-accept`.
fn forward_metadata(from: &HeaderMap, to: &mut HeaderMap) {
    for (name, value) in from {
        let name = name.as_str();
        let target = if name == "authorization" {
            Some(name.to_owned())
        } else if name == "accept" {
            Some("grpcgateway-accept".to_owned())
        } else {
            name.strip_prefix("grpc-metadata-").map(str::to_owned)
        };
        if let Some(Ok(target)) = target.map(|t| header::HeaderName::from_bytes(t.as_bytes())) {
            to.append(target, value.clone());
        }
    }
}

/// One line of a streaming answer.
enum Line {
    Result(String),
    Error(Code, String),
}

/// Reads a gRPC answer stream as the lines of a streaming JSON answer.
struct Lines {
    body: Pin<Box<Body>>,
    buffer: BytesMut,
    output: String,
    done: bool,
}

impl Lines {
    /// The next line: `{"result":...}` for a message, `{"error":...}` for a failure at the
    /// end; `None` once the stream is over.
    async fn next(&mut self) -> Option<Line> {
        loop {
            if let Some(message) = next_frame(&mut self.buffer) {
                return Some(match Schema::get().render(&self.output, &message) {
                    Ok(json) => Line::Result(format!("{{\"result\":{json}}}\n")),
                    Err(message) => Line::Error(Code::Internal, message),
                });
            }
            if self.done {
                return None;
            }
            match poll_fn(|cx| self.body.as_mut().poll_frame(cx)).await {
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => self.buffer.extend_from_slice(&data),
                    Err(frame) => {
                        self.done = true;
                        let status = frame
                            .trailers_ref()
                            .and_then(tonic::Status::from_header_map)
                            .filter(|s| s.code() != Code::Ok)?;
                        return Some(Line::Error(status.code(), status.message().to_owned()));
                    }
                },
                Some(Err(status)) => {
                    self.done = true;
                    return Some(Line::Error(status.code(), status.message().to_owned()));
                }
                None => self.done = true,
            }
        }
    }
}

/// A streaming answer: each gRPC message as `{"result":...}` on its own line, and a failure
/// as `{"error":{...}}`. As grpc-gateway does, the HTTP status waits for the first line: a
/// stream that fails before its first message answers the failure's status.
async fn stream(body: Body, output: String) -> Response<Body> {
    let mut lines = Lines {
        body: Box::pin(body),
        buffer: BytesMut::new(),
        output,
        done: false,
    };
    let first = match lines.next().await {
        None => String::new(),
        Some(Line::Error(code, message)) => {
            return json_response(http_status(code), stream_error(code, &message));
        }
        Some(Line::Result(line)) => line,
    };
    let (tx, rx) = mpsc::channel(16);
    tokio::spawn(async move {
        let mut line = Some(first).filter(|l| !l.is_empty());
        // Ends when the gRPC stream ends or the HTTP client goes (its receiver dropped).
        while let Some(text) = line {
            if tx.send(Bytes::from(text)).await.is_err() {
                return;
            }
            line = match lines.next().await {
                Some(Line::Result(text)) => Some(text),
                Some(Line::Error(code, message)) => Some(stream_error(code, &message)),
                None => None,
            };
        }
    });
    let mut response = Response::new(Body::new(Chunks(rx)));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

fn stream_error(code: Code, message: &str) -> String {
    format!(
        "{{\"error\":{{\"code\":{},\"message\":{}}}}}\n",
        code as i32,
        json_string(message)
    )
}

/// The next whole gRPC message in `buffer`, taken out of it.
fn next_frame(buffer: &mut BytesMut) -> Option<Bytes> {
    let header: [u8; 5] = buffer.get(..5)?.try_into().ok()?;
    let len = usize::try_from(u32::from_be_bytes([
        header[1], header[2], header[3], header[4],
    ]))
    .ok()?;
    if buffer.len() < 5 + len {
        return None;
    }
    buffer.advance(5);
    Some(buffer.split_to(len).freeze())
}

/// A whole body and its trailers.
async fn collect<B>(body: B) -> Result<(Bytes, Option<HeaderMap>), B::Error>
where
    B: HttpBody<Data = Bytes>,
{
    let mut body = Box::pin(body);
    let mut data = BytesMut::new();
    let mut trailers = None;
    while let Some(frame) = poll_fn(|cx| body.as_mut().poll_frame(cx)).await {
        match frame?.into_data() {
            Ok(chunk) => data.extend_from_slice(&chunk),
            Err(frame) => {
                if let Ok(t) = frame.into_trailers() {
                    trailers = Some(t);
                }
            }
        }
    }
    Ok((data.freeze(), trailers))
}

/// A gateway error: `{"code":N,"message":"..."}` with grpc-gateway's HTTP status for the code.
fn error(code: Code, message: &str) -> Response<Body> {
    let body = format!(
        "{{\"code\":{},\"message\":{}}}",
        code as i32,
        json_string(message)
    );
    json_response(http_status(code), body)
}

/// grpc-gateway's HTTP status for a gRPC code.
fn http_status(code: Code) -> StatusCode {
    match code {
        Code::Ok => StatusCode::OK,
        Code::Cancelled => StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_REQUEST),
        Code::InvalidArgument | Code::FailedPrecondition | Code::OutOfRange => {
            StatusCode::BAD_REQUEST
        }
        Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::AlreadyExists | Code::Aborted => StatusCode::CONFLICT,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Code::Unknown | Code::Internal | Code::DataLoss => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

fn json_response(status: StatusCode, body: String) -> Response<Body> {
    let mut response = Response::new(Body::new(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// A body of chunks from a channel: the gRPC request (one chunk) and streamed JSON answers.
struct Chunks(mpsc::Receiver<Bytes>);

impl Chunks {
    fn once(bytes: Bytes) -> Self {
        let (tx, rx) = mpsc::channel(1);
        // A fresh channel of one slot always takes its first chunk.
        let _ = tx.try_send(bytes);
        Chunks(rx)
    }
}

impl HttpBody for Chunks {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0
            .poll_recv(cx)
            .map(|chunk| chunk.map(|c| Ok(Frame::data(c))))
    }
}

/// For the fuzzer (feature `__fuzz`): `body` as the JSON body of the method `selector` picks,
/// through the gateway's decoding; what encodes must render, and rendering it again after a
/// round trip through JSON must give the same text. `body` as response bytes must render or
/// fail, never panic.
#[cfg(feature = "__fuzz")]
pub(crate) fn fuzz_body(selector: u8, body: &[u8]) {
    let schema = Schema::get();
    let paths = schema.method_paths();
    let Some(method) = paths
        .get(usize::from(selector) % paths.len().max(1))
        .and_then(|path| schema.method(path))
    else {
        return;
    };
    let _ = decode_objects(body, &method.input);
    if let Ok(frame) = grpc_frames(body, method) {
        let message = frame.get(5..).unwrap_or_default();
        let text = match schema.render(&method.input, message) {
            Ok(text) => text,
            Err(err) => panic!("what the gateway encoded does not render: {err}"),
        };
        let value: serde_json::Value = match serde_json::from_str(&text) {
            Ok(value) => value,
            Err(err) => panic!("rendered text is not JSON: {err}: {text}"),
        };
        let again = schema
            .encode(&method.input, &value)
            .map(|bytes| schema.render(&method.input, &bytes));
        assert_eq!(again, Ok(Ok(text)), "JSON -> wire -> JSON is not stable");
    }
    let _ = schema.render(&method.output, body);
}
