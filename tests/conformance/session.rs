//! A scenario's view of one server: blocking calls that record every answer, normalised, in a
//! transcript. Two transcripts of the same scenario must be equal line for line.

use std::fmt::Debug;
use std::time::Duration;

use tokio::runtime::Runtime;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;
use tonic::Streaming;

use crate::pb::etcdserverpb::{
    kv_client::KvClient, response_op::Response, watch_client::WatchClient, watch_request,
    CompactionRequest, DeleteRangeRequest, PutRequest, RangeRequest, ResponseHeader, ResponseOp,
    TxnRequest, TxnResponse, WatchCancelRequest, WatchCreateRequest, WatchProgressRequest,
    WatchRequest, WatchResponse,
};

/// How long to wait for a watch response that must come.
const WAIT: Duration = Duration::from_secs(5);
/// How long any call may take (blocking ones, Lock and Campaign, are started in the
/// background and waited for with `WAIT`).
const CALL_TIMEOUT: Duration = Duration::from_secs(20);

/// What a watch stream answered, as its forwarding task saw it.
type Answers = mpsc::UnboundedReceiver<Result<WatchResponse, tonic::Status>>;
/// What an Observe stream answered.
type ObserveAnswers =
    mpsc::UnboundedReceiver<Result<crate::pb::v3electionpb::LeaderResponse, tonic::Status>>;

pub struct Session {
    pub(crate) runtime: Runtime,
    kv: KvClient<Channel>,
    pub(crate) channel: Channel,
    watches: Vec<(mpsc::Sender<WatchRequest>, Answers)>,
    observers: Vec<ObserveAnswers>,
    pub transcript: Vec<String>,
    /// The auth token sent with every request, if any.
    pub token: Option<String>,
    /// What legitimately differs between the backends, replaced in every recorded line.
    pub(crate) aliases: Aliases,
    /// Which backend this session talks to: only for known differences, which each backend
    /// checks in its own way and records in the same words.
    pub backend: test_etcd::Backend,
}

/// A watch stream opened by [`Session::watch`].
#[derive(Debug, Clone, Copy)]
pub struct Stream(usize);

impl Session {
    pub fn connect(endpoint: String) -> Session {
        let channel_endpoint = endpoint.clone();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let channel = runtime
            .block_on(
                tonic::transport::Endpoint::from_shared(endpoint)
                    .expect("endpoint")
                    // A call that never answers is recorded as such instead of hanging the run.
                    .timeout(CALL_TIMEOUT)
                    .connect(),
            )
            .expect("connect");
        let mut aliases = Aliases::default();
        // Each backend listens on a port of its own.
        aliases.text(endpoint_of(&channel_endpoint), "<client-url>");
        Session {
            runtime,
            kv: KvClient::new(channel.clone()),
            channel,
            watches: Vec::new(),
            observers: Vec::new(),
            transcript: Vec::new(),
            token: None,
            aliases,
            backend: test_etcd::Backend::Embedded,
        }
    }

    pub fn record(&mut self, line: impl Into<String>) {
        let line = readable(&line.into());
        self.transcript.push(self.aliases.apply(line));
    }

    /// `message` as a request, with the session's token if it has one.
    pub fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        if let Some(token) = &self.token {
            if let Ok(value) = token.parse() {
                request.metadata_mut().insert("token", value);
            }
        }
        request
    }

    /// One unary call, its answer normalised and recorded under `name` and the request.
    pub fn call<Q, T, F, Fut>(&mut self, name: &str, message: Q, f: F) -> Option<T>
    where
        Q: Debug,
        T: Debug + Norm,
        F: FnOnce(Channel, tonic::Request<Q>) -> Fut,
        Fut: std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        let what = format!("{name} {message:?}");
        let request = self.request(message);
        let future = f(self.channel.clone(), request);
        let result = self.runtime.block_on(future).map(|r| {
            let mut r = r.into_inner();
            r.norm(&mut self.aliases);
            r
        });
        self.answer(&what, result)
    }

    fn answer<T: Debug>(&mut self, what: &str, result: Result<T, tonic::Status>) -> Option<T> {
        match result {
            Ok(v) => {
                self.record(format!("{what} -> {v:?}"));
                Some(v)
            }
            Err(s) => {
                self.record(format!("{what} -> Err({:?}, {:?})", s.code(), s.message()));
                None
            }
        }
    }

    pub fn range(&mut self, r: RangeRequest) -> Option<crate::pb::etcdserverpb::RangeResponse> {
        let what = format!("range {r:?}");
        let mut kv = self.kv.clone();
        let result = self.runtime.block_on(kv.range(self.request(r))).map(|r| {
            let mut r = r.into_inner();
            norm(&mut r.header);
            r
        });
        self.answer(&what, result)
    }

    pub fn put(&mut self, r: PutRequest) -> Option<crate::pb::etcdserverpb::PutResponse> {
        let what = format!("put {r:?}");
        let mut kv = self.kv.clone();
        let result = self.runtime.block_on(kv.put(self.request(r))).map(|r| {
            let mut r = r.into_inner();
            norm(&mut r.header);
            r
        });
        self.answer(&what, result)
    }

    pub fn delete(
        &mut self,
        r: DeleteRangeRequest,
    ) -> Option<crate::pb::etcdserverpb::DeleteRangeResponse> {
        let what = format!("delete {r:?}");
        let mut kv = self.kv.clone();
        let result = self
            .runtime
            .block_on(kv.delete_range(self.request(r)))
            .map(|r| {
                let mut r = r.into_inner();
                norm(&mut r.header);
                r
            });
        self.answer(&what, result)
    }

    pub fn txn(&mut self, r: TxnRequest) -> Option<TxnResponse> {
        let what = format!("txn {r:?}");
        let mut kv = self.kv.clone();
        let result = self.runtime.block_on(kv.txn(self.request(r))).map(|r| {
            let mut r = r.into_inner();
            norm_txn(&mut r);
            r
        });
        self.answer(&what, result)
    }

    pub fn compact(&mut self, revision: i64) {
        self.compact_with(revision, true);
    }

    pub fn compact_with(&mut self, revision: i64, physical: bool) {
        let r = CompactionRequest { revision, physical };
        let what = format!("compact {revision} physical={physical}");
        let mut kv = self.kv.clone();
        let result = self.runtime.block_on(kv.compact(self.request(r))).map(|r| {
            let mut r = r.into_inner();
            norm(&mut r.header);
            r
        });
        self.answer(&what, result);
    }

    /// A RangeStream, every message recorded.
    pub fn range_stream(&mut self, r: RangeRequest) {
        let what = format!("range_stream {r:?}");
        let mut kv = self.kv.clone();
        let r = self.request(r);
        let result = self.runtime.block_on(async move {
            let mut stream = kv.range_stream(r).await?.into_inner();
            let mut messages = Vec::new();
            while let Some(mut m) = stream.message().await? {
                if let Some(r) = m.range_response.as_mut() {
                    norm(&mut r.header);
                }
                messages.push(m);
            }
            Ok(messages)
        });
        self.answer(&what, result);
    }

    /// The pairs a RangeStream sends, all chunks together; nothing is recorded.
    pub fn range_stream_pairs(
        &mut self,
        r: RangeRequest,
    ) -> Result<Vec<crate::pb::mvccpb::KeyValue>, String> {
        let mut kv = self.kv.clone();
        let r = self.request(r);
        self.runtime
            .block_on(async move {
                let mut stream = kv.range_stream(r).await?.into_inner();
                let mut pairs = Vec::new();
                while let Some(m) = stream.message().await? {
                    pairs.extend(m.range_response.into_iter().flat_map(|r| r.kvs));
                }
                Ok::<_, tonic::Status>(pairs)
            })
            .map_err(|s| format!("{:?}: {}", s.code(), s.message()))
    }

    /// Waits, silently, until `[key, end)` holds `count` keys (a started Lock or Campaign has
    /// put its key), polling with a generous deadline instead of guessing a delay.
    pub fn wait_for_keys(&mut self, key: &str, end: &str, count: usize) {
        let deadline = std::time::Instant::now() + CALL_TIMEOUT;
        while std::time::Instant::now() < deadline {
            let request = RangeRequest {
                key: key.as_bytes().to_vec(),
                range_end: end.as_bytes().to_vec(),
                ..Default::default()
            };
            if self
                .range_pairs(request)
                .is_ok_and(|pairs| pairs.len() >= count)
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The pairs a Range answers; nothing is recorded.
    pub fn range_pairs(
        &mut self,
        r: RangeRequest,
    ) -> Result<Vec<crate::pb::mvccpb::KeyValue>, String> {
        let mut kv = self.kv.clone();
        let r = self.request(r);
        self.runtime
            .block_on(kv.range(r))
            .map(|r| r.into_inner().kvs)
            .map_err(|s| format!("{:?}: {}", s.code(), s.message()))
    }

    /// Opens a Watch stream.
    pub fn watch(&mut self) -> Stream {
        let (tx, rx) = mpsc::channel(64);
        let (answers, received) = mpsc::unbounded_channel();
        let mut client = WatchClient::new(self.channel.clone());
        let request = self.request(ReceiverStream::new(rx));
        // etcd sends the stream's headers with its first response only, so opening the stream
        // cannot be awaited here: a task opens it and forwards what arrives. It runs whenever
        // the session blocks on its runtime.
        self.runtime
            .spawn(forward(async move { client.watch(request).await }, answers));
        self.watches.push((tx, received));
        Stream(self.watches.len() - 1)
    }

    fn send(&mut self, w: Stream, request: watch_request::RequestUnion) {
        let tx = self.watches[w.0].0.clone();
        self.runtime
            .block_on(tx.send(WatchRequest {
                request_union: Some(request),
            }))
            .expect("send on watch stream");
    }

    pub fn create(&mut self, w: Stream, r: WatchCreateRequest) {
        self.record(format!("watch {} create {r:?}", w.0));
        self.send(w, watch_request::RequestUnion::CreateRequest(r));
    }

    pub fn cancel(&mut self, w: Stream, watch_id: i64) {
        self.record(format!("watch {} cancel {watch_id}", w.0));
        self.send(
            w,
            watch_request::RequestUnion::CancelRequest(WatchCancelRequest { watch_id }),
        );
    }

    /// A WatchRequest with nothing in it.
    pub fn send_nothing(&mut self, w: Stream) {
        self.record(format!("watch {} empty request", w.0));
        let tx = self.watches[w.0].0.clone();
        self.runtime
            .block_on(tx.send(WatchRequest {
                request_union: None,
            }))
            .expect("send on watch stream");
    }

    pub fn progress(&mut self, w: Stream) {
        self.record(format!("watch {} progress request", w.0));
        self.send(
            w,
            watch_request::RequestUnion::ProgressRequest(WatchProgressRequest {}),
        );
    }

    /// The next response on `w`, waiting up to `wait`.
    fn next_within(&mut self, w: Stream, wait: Duration) -> Result<Option<WatchResponse>, String> {
        let stream = &mut self.watches[w.0].1;
        // The timer must be made inside the runtime, hence the async block.
        match self
            .runtime
            .block_on(async { tokio::time::timeout(wait, stream.recv()).await })
        {
            Err(_) => Ok(None),
            Ok(Some(Ok(mut r))) => {
                norm(&mut r.header);
                Ok(Some(r))
            }
            Ok(None) => Err("stream ended".into()),
            Ok(Some(Err(s))) => Err(format!("Err({:?}, {:?})", s.code(), s.message())),
        }
    }

    /// Records the next response on `w` (or that none came within the wait).
    pub fn recv(&mut self, w: Stream) -> Option<WatchResponse> {
        self.recv_within(w, WAIT)
    }

    /// Records whether anything arrives on `w` within a short wait (it should not).
    pub fn quiet(&mut self, w: Stream) {
        let line = match self.next_within(w, Duration::from_millis(300)) {
            Ok(None) => format!("watch {} quiet", w.0),
            Ok(Some(r)) => format!("watch {} <- {r:?}", w.0),
            Err(e) => format!("watch {} <- {e}", w.0),
        };
        self.record(line);
    }

    /// Collects responses on `w` until one carries an event at `revision` or later (or the wait
    /// ends), and records them all.
    pub fn recv_until(&mut self, w: Stream, revision: i64) {
        loop {
            let Some(r) = self.recv(w) else { return };
            let newest = r
                .events
                .iter()
                .filter_map(|e| e.kv.as_ref().map(|kv| kv.mod_revision))
                .max()
                .unwrap_or(0);
            if newest >= revision || r.canceled {
                return;
            }
        }
    }
}

/// Headers need no normalising: the real single node is named and advertised as a default etcd,
/// so its cluster and member IDs and raft term are the embedded engine's, and headers are
/// compared exactly. What does differ is normalised by [`Norm`] and [`Aliases`].
pub fn norm(_header: &mut Option<ResponseHeader>) {}

/// The client URL a session connects to (`http://127.0.0.1:PORT`).
fn endpoint_of(endpoint: &str) -> String {
    endpoint.trim_end_matches('/').to_owned()
}

/// Values that legitimately differ between the backends, each replaced in every recorded line
/// by a name given in order of first appearance (so that the same value is the same name
/// within a transcript, and both transcripts must agree on which is which):
/// - server-chosen lease IDs (etcd builds them from the start time), in decimal and in the
///   lowercase hex that lock and election keys use;
/// - member IDs MemberAdd picks (etcd hashes the URLs with the time; we use SHA-256);
/// - auth tokens (random letters and a raft index);
/// - hashes (Hash covers etcd's whole bbolt file, which we do not have): each backend's hashes
///   are only compared with its own, as "the same hash as before" or a new one;
/// - the client URL (each backend has its own port).
///
/// Some answers are also put in order where etcd's order varies from run to run (alarms, the
/// keys of TimeToLive), or depends on an ID that differs (member lists).
#[derive(Default)]
pub struct Aliases {
    /// Exact substrings and their names.
    texts: Vec<(String, String)>,
    /// Numbers (decimal, and hex when `.2` is set) and their names.
    numbers: Vec<(u64, bool, String)>,
    hashes: Vec<u64>,
    leases: usize,
    members: usize,
    tokens: usize,
}

/// Lease IDs at or above this were chosen by the server (etcd puts the member ID in the top
/// bits); scenarios choose smaller ones, which are compared as they are.
const SERVER_CHOSEN: i64 = 1 << 32;

impl Aliases {
    pub fn text(&mut self, raw: impl Into<String>, name: impl Into<String>) {
        let raw = raw.into();
        if !raw.is_empty() && !self.texts.iter().any(|(r, _)| *r == raw) {
            self.texts.push((raw, name.into()));
        }
    }

    /// A lease ID, if the server chose it.
    pub fn lease(&mut self, id: i64) {
        if id >= SERVER_CHOSEN && !self.numbers.iter().any(|(n, _, _)| *n == id as u64) {
            self.leases += 1;
            self.numbers
                .push((id as u64, true, format!("<lease{}>", self.leases)));
        }
    }

    /// The lease in a lock or election key `name/<lease hex>`.
    pub fn lease_in_key(&mut self, key: &[u8]) {
        let hex = key.rsplit(|&c| c == b'/').next().unwrap_or_default();
        if let Some(id) = std::str::from_utf8(hex)
            .ok()
            .and_then(|h| i64::from_str_radix(h, 16).ok())
        {
            self.lease(id);
        }
    }

    pub fn member(&mut self, id: u64) {
        if !self.numbers.iter().any(|(n, _, _)| *n == id) {
            self.members += 1;
            self.numbers
                .push((id, false, format!("<member{}>", self.members)));
        }
    }

    pub fn token(&mut self, token: &str) {
        self.tokens += 1;
        let name = format!("<token{}>", self.tokens);
        self.text(token, name);
    }

    /// The hash's number among the distinct hashes this backend has answered (1, 2, ...).
    pub fn hash(&mut self, hash: u64) -> u64 {
        match self.hashes.iter().position(|&h| h == hash) {
            Some(i) => i as u64 + 1,
            None => {
                self.hashes.push(hash);
                self.hashes.len() as u64
            }
        }
    }

    fn apply(&self, mut line: String) -> String {
        for (raw, name) in &self.texts {
            if line.contains(raw.as_str()) {
                line = line.replace(raw.as_str(), name);
            }
        }
        for (n, hex, name) in &self.numbers {
            line = replace_number(&line, &n.to_string(), name, |c| c.is_ascii_digit());
            if *hex {
                line = replace_number(&line, &format!("{n:x}"), name, |c| c.is_ascii_hexdigit());
            }
        }
        line
    }
}

/// `line` with every `number` that is not part of a longer run of `digit`s replaced by `name`.
fn replace_number(line: &str, number: &str, name: &str, digit: impl Fn(char) -> bool) -> String {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(at) = rest.find(number) {
        let before = rest[..at].chars().next_back();
        let after = rest[at + number.len()..].chars().next();
        out.push_str(&rest[..at]);
        if before.is_some_and(&digit) || after.is_some_and(&digit) {
            out.push_str(number);
        } else {
            out.push_str(name);
        }
        rest = &rest[at + number.len()..];
    }
    out.push_str(rest);
    out
}

/// Normalises what legitimately differs in one response (see [`Aliases`]).
pub trait Norm {
    fn norm(&mut self, _aliases: &mut Aliases) {}
}

fn norm_txn(r: &mut TxnResponse) {
    norm(&mut r.header);
    for op in &mut r.responses {
        norm_op(op);
    }
}

fn norm_op(op: &mut ResponseOp) {
    match op.response.as_mut() {
        Some(Response::ResponseRange(r)) => norm(&mut r.header),
        Some(Response::ResponsePut(r)) => norm(&mut r.header),
        Some(Response::ResponseDeleteRange(r)) => norm(&mut r.header),
        Some(Response::ResponseTxn(r)) => norm_txn(r),
        None => {}
    }
}

impl Session {
    /// Records the events `w` receives (one line each, however they are batched into
    /// responses) until one at `revision` or a cancel arrives.
    pub fn events_until(&mut self, w: Stream, revision: i64) {
        self.events_until_within(w, revision, WAIT);
    }

    /// As `events_until`, for a watcher that may never see `revision`: a short wait ends it.
    pub fn events_until_quiet(&mut self, w: Stream, revision: i64) {
        self.events_until_within(w, revision, Duration::from_millis(300));
    }

    fn events_until_within(&mut self, w: Stream, revision: i64, wait: Duration) {
        loop {
            match self.next_within(w, wait) {
                Ok(Some(r)) => {
                    if r.canceled || r.compact_revision != 0 {
                        self.record(format!(
                            "canceled compact_revision={} reason={:?}",
                            r.compact_revision, r.cancel_reason
                        ));
                        return;
                    }
                    let mut done = false;
                    for e in &r.events {
                        let rev = e.kv.as_ref().map_or(0, |kv| kv.mod_revision);
                        done |= rev >= revision;
                        self.record(format!("{e:?}"));
                    }
                    if done {
                        return;
                    }
                }
                Ok(None) => return self.record("nothing more within the wait"),
                Err(e) => return self.record(e),
            }
        }
    }
}

/// Debug output with every list of byte values (`[97, 98]`) shown as a byte string (`b"ab"`),
/// long runs of one byte shortened, so that a failing diff can be read.
fn readable(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(open) = rest.find('[') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let Some(close) = after.find(']') else {
            rest = &rest[open..];
            break;
        };
        let inner = &after[..close];
        let bytes: Option<Vec<u8>> = inner.split(", ").map(|n| n.parse::<u8>().ok()).collect();
        match bytes {
            Some(bytes) if !inner.is_empty() => {
                out.push_str(&byte_string(&bytes));
                rest = &after[close + 1..];
            }
            _ => {
                out.push('[');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

fn byte_string(bytes: &[u8]) -> String {
    let mut s = String::from("b\"");
    let mut i = 0;
    while i < bytes.len() {
        let run = bytes[i..].iter().take_while(|&&c| c == bytes[i]).count();
        let shown: String = std::ascii::escape_default(bytes[i])
            .map(char::from)
            .collect();
        if run > 8 {
            s.push_str(&format!("{shown}<x{run}>"));
        } else {
            for _ in 0..run {
                s.push_str(&shown);
            }
        }
        i += run;
    }
    s.push('"');
    s
}

mod norms {
    use super::{Aliases, Norm};
    use crate::pb::etcdserverpb::*;
    use crate::pb::v3electionpb::{
        CampaignResponse, LeaderResponse, ProclaimResponse, ResignResponse,
    };
    use crate::pb::v3lockpb::{LockResponse, UnlockResponse};

    // Responses with nothing of their own to normalise.
    macro_rules! as_is {
        ($($t:ty),* $(,)?) => { $(impl Norm for $t {})* };
    }
    as_is!(
        RangeResponse,
        PutResponse,
        DeleteRangeResponse,
        TxnResponse,
        CompactionResponse,
        LeaseRevokeResponse,
        LeaseLeasesResponse,
        LeaseKeepAliveResponse,
        DefragmentResponse,
        MoveLeaderResponse,
        DowngradeResponse,
        AuthEnableResponse,
        AuthDisableResponse,
        AuthStatusResponse,
        AuthUserAddResponse,
        AuthUserGetResponse,
        AuthUserDeleteResponse,
        AuthUserChangePasswordResponse,
        AuthUserGrantRoleResponse,
        AuthUserRevokeRoleResponse,
        AuthUserListResponse,
        AuthRoleAddResponse,
        AuthRoleGetResponse,
        AuthRoleListResponse,
        AuthRoleDeleteResponse,
        AuthRoleGrantPermissionResponse,
        AuthRoleRevokePermissionResponse,
        UnlockResponse,
        ProclaimResponse,
        ResignResponse,
        crate::pb::health::HealthCheckResponse,
        crate::pb::health::HealthListResponse,
    );

    impl Norm for LeaseGrantResponse {
        fn norm(&mut self, aliases: &mut Aliases) {
            aliases.lease(self.id);
        }
    }

    impl Norm for LeaseTimeToLiveResponse {
        /// The remaining TTL runs on each server's own clock, and etcd truncates: right after a
        /// grant of 60 it reads 59, we may read 60. Any value in the last two seconds below
        /// the granted TTL reads as the granted TTL; the keys come in no particular order.
        fn norm(&mut self, _aliases: &mut Aliases) {
            if self.granted_ttl > 0 && self.ttl > 0 && self.ttl >= self.granted_ttl - 2 {
                self.ttl = self.granted_ttl.min(self.ttl.max(self.granted_ttl));
            }
            self.keys.sort();
        }
    }

    impl Norm for AuthenticateResponse {
        fn norm(&mut self, aliases: &mut Aliases) {
            aliases.token(&self.token);
        }
    }

    impl Norm for StatusResponse {
        /// The backend file's sizes and the raft indices (every auth call and Alarm GET is a
        /// raft entry in etcd) are not modelled byte for byte: compared as "set". etcd lists
        /// alarms in Go map order, which varies from run to run: sorted.
        fn norm(&mut self, _aliases: &mut Aliases) {
            self.db_size = i64::from(self.db_size > 0);
            self.db_size_in_use = i64::from(self.db_size_in_use > 0);
            self.raft_index = u64::from(self.raft_index > 0);
            self.raft_applied_index = u64::from(self.raft_applied_index > 0);
            self.errors.sort();
        }
    }

    impl Norm for AlarmResponse {
        /// etcd lists alarms in Go map order, which varies from run to run: sorted.
        fn norm(&mut self, _aliases: &mut Aliases) {
            self.alarms.sort_by_key(|a| (a.alarm, a.member_id));
        }
    }

    impl Norm for HashResponse {
        fn norm(&mut self, aliases: &mut Aliases) {
            self.hash = aliases.hash(u64::from(self.hash)) as u32;
        }
    }

    impl Norm for HashKvResponse {
        fn norm(&mut self, aliases: &mut Aliases) {
            self.hash = aliases.hash(u64::from(self.hash)) as u32;
        }
    }

    /// The single default member's ID is the same on both; an added member's is not, so
    /// lists are put in an order that does not depend on it: the default member first, then by
    /// peer URLs.
    fn sort_members(members: &mut [Member]) {
        const DEFAULT_MEMBER: u64 = 0x8e9e_05c5_2164_694d;
        members.sort_by(|a, b| {
            (a.id != DEFAULT_MEMBER, &a.peer_ur_ls).cmp(&(b.id != DEFAULT_MEMBER, &b.peer_ur_ls))
        });
    }

    impl Norm for MemberAddResponse {
        fn norm(&mut self, aliases: &mut Aliases) {
            if let Some(m) = &self.member {
                aliases.member(m.id);
            }
            sort_members(&mut self.members);
        }
    }

    macro_rules! member_lists {
        ($($t:ty),*) => { $(impl Norm for $t {
            fn norm(&mut self, _aliases: &mut Aliases) {
                sort_members(&mut self.members);
            }
        })* };
    }
    member_lists!(
        MemberRemoveResponse,
        MemberUpdateResponse,
        MemberListResponse,
        MemberPromoteResponse
    );

    impl Norm for LockResponse {
        fn norm(&mut self, aliases: &mut Aliases) {
            aliases.lease_in_key(&self.key);
        }
    }

    impl Norm for CampaignResponse {
        fn norm(&mut self, aliases: &mut Aliases) {
            if let Some(l) = &self.leader {
                aliases.lease(l.lease);
            }
        }
    }

    impl Norm for LeaderResponse {
        fn norm(&mut self, aliases: &mut Aliases) {
            if let Some(kv) = &self.kv {
                aliases.lease(kv.lease);
            }
        }
    }
}

/// A call left running (a Lock or Campaign that waits), finished by [`Session::finish`].
pub struct Pending<T> {
    what: String,
    handle: tokio::task::JoinHandle<Result<T, tonic::Status>>,
}

/// An Observe stream opened by [`Session::observe`].
#[derive(Debug, Clone, Copy)]
pub struct Observer(usize);

impl Session {
    /// Starts a call that may block, without waiting for its answer.
    pub fn start_call<Q, T, F, Fut>(&mut self, name: &str, message: Q, f: F) -> Pending<T>
    where
        Q: Debug,
        T: Send + 'static,
        F: FnOnce(Channel, tonic::Request<Q>) -> Fut,
        Fut: std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>
            + Send
            + 'static,
    {
        let what = format!("{name} {message:?}");
        self.record(format!("{what} started"));
        let request = self.request(message);
        let future = f(self.channel.clone(), request);
        let handle = self
            .runtime
            .spawn(async move { future.await.map(tonic::Response::into_inner) });
        // Let it reach the server.
        self.runtime
            .block_on(async { tokio::time::sleep(Duration::from_millis(300)).await });
        Pending { what, handle }
    }

    /// Records whether a started call has answered yet (it should not have).
    pub fn still_waiting<T>(&mut self, pending: &Pending<T>) {
        self.runtime
            .block_on(async { tokio::time::sleep(Duration::from_millis(300)).await });
        let line = format!(
            "{} still waiting: {}",
            pending.what,
            !pending.handle.is_finished()
        );
        self.record(line);
    }

    /// Waits for a started call's answer and records it.
    pub fn finish<T: Debug + Norm>(&mut self, pending: Pending<T>) -> Option<T> {
        let result = self.runtime.block_on(async {
            match tokio::time::timeout(WAIT, pending.handle).await {
                Ok(Ok(r)) => r,
                Ok(Err(_)) => Err(tonic::Status::internal("the call's task failed")),
                Err(_) => Err(tonic::Status::deadline_exceeded(
                    "no answer within the wait",
                )),
            }
        });
        let result = result.map(|mut r| {
            r.norm(&mut self.aliases);
            r
        });
        self.answer(&pending.what, result)
    }

    /// Opens an Observe stream on election `name`.
    pub fn observe(&mut self, name: &str) -> Observer {
        use crate::pb::v3electionpb::{election_client::ElectionClient, LeaderRequest};
        self.record(format!("observe {name:?}"));
        let request = self.request(LeaderRequest {
            name: name.as_bytes().to_vec(),
        });
        let (answers, received) = mpsc::unbounded_channel();
        let mut client = ElectionClient::new(self.channel.clone());
        self.runtime.spawn(forward(
            async move { client.observe(request).await },
            answers,
        ));
        self.observers.push(received);
        Observer(self.observers.len() - 1)
    }

    /// Records the next Observe message (waiting up to `WAIT`), or that none came within
    /// `wait`.
    pub fn observed_within(&mut self, o: Observer, wait: Duration) {
        let stream = &mut self.observers[o.0];
        let got = self
            .runtime
            .block_on(async { tokio::time::timeout(wait, stream.recv()).await });
        let line = match got {
            Err(_) => format!("observe {} quiet", o.0),
            Ok(None) => format!("observe {} ended", o.0),
            Ok(Some(Err(s))) => {
                format!("observe {} <- Err({:?}, {:?})", o.0, s.code(), s.message())
            }
            Ok(Some(Ok(mut r))) => {
                r.norm(&mut self.aliases);
                format!("observe {} <- {r:?}", o.0)
            }
        };
        self.record(line);
    }

    pub fn observed(&mut self, o: Observer) {
        self.observed_within(o, WAIT);
    }

    pub fn observe_quiet(&mut self, o: Observer) {
        self.observed_within(o, Duration::from_millis(300));
    }

    /// As `recv`, waiting up to `wait` (for events a lease expiry makes).
    pub fn recv_within(&mut self, w: Stream, wait: Duration) -> Option<WatchResponse> {
        let line = match self.next_within(w, wait) {
            Ok(Some(r)) => {
                let line = format!("watch {} <- {r:?}", w.0);
                self.record(line);
                return Some(r);
            }
            Ok(None) => format!("watch {} <- nothing within {wait:?}", w.0),
            Err(e) => format!("watch {} <- {e}", w.0),
        };
        self.record(line);
        None
    }

    /// A LeaseKeepAlive stream: one request per ID, each answer recorded, then the stream is
    /// closed by the client.
    pub fn keep_alive(&mut self, ids: &[i64]) {
        use crate::pb::etcdserverpb::{lease_client::LeaseClient, LeaseKeepAliveRequest};
        let requests: Vec<LeaseKeepAliveRequest> =
            ids.iter().map(|&id| LeaseKeepAliveRequest { id }).collect();
        let (tx, rx) = mpsc::channel(requests.len().max(1));
        let request = self.request(ReceiverStream::new(rx));
        let mut client = LeaseClient::new(self.channel.clone());
        let result = self.runtime.block_on(async move {
            // etcd sends the stream's headers with its first answer: the requests must be on
            // their way before the stream can be opened. It answers them one by one, in order.
            let count = requests.len();
            for r in requests {
                let _ = tx.send(r).await;
            }
            let mut stream = client.lease_keep_alive(request).await?.into_inner();
            let mut answers = Vec::new();
            for _ in 0..count {
                match tokio::time::timeout(WAIT, stream.message()).await {
                    Ok(Ok(Some(m))) => answers.push(Ok(m)),
                    Ok(Ok(None)) => break,
                    Ok(Err(s)) => {
                        answers.push(Err(s));
                        break;
                    }
                    Err(_) => {
                        answers.push(Err(tonic::Status::deadline_exceeded("no answer")));
                        break;
                    }
                }
            }
            drop(tx);
            Ok::<_, tonic::Status>(answers)
        });
        match result {
            Err(s) => self.record(format!(
                "keep_alive {ids:?} -> Err({:?}, {:?})",
                s.code(),
                s.message()
            )),
            Ok(answers) => {
                for a in answers {
                    let line = match a {
                        Ok(m) => format!("keep_alive <- {m:?}"),
                        Err(s) => format!("keep_alive <- Err({:?}, {:?})", s.code(), s.message()),
                    };
                    self.record(line);
                }
            }
        }
    }

    /// A Snapshot stream, recorded as what both can agree on: no header, the storage version
    /// on every message, `remaining_bytes` counting down to 0, and a last message of 32 bytes
    /// that is the SHA-256 of the data before it. (The data is etcd's bbolt file there, ours
    /// here.)
    pub fn snapshot(&mut self) {
        use crate::pb::etcdserverpb::{maintenance_client::MaintenanceClient, SnapshotRequest};
        use sha2::Digest;
        let request = self.request(SnapshotRequest {});
        let mut client = MaintenanceClient::new(self.channel.clone());
        let result = self.runtime.block_on(async move {
            let mut stream = client.snapshot(request).await?.into_inner();
            let mut messages = Vec::new();
            while let Some(m) = stream.message().await? {
                messages.push(m);
            }
            Ok::<_, tonic::Status>(messages)
        });
        let line = match result {
            Err(s) => format!("snapshot -> Err({:?}, {:?})", s.code(), s.message()),
            Ok(messages) => {
                let Some((trailer, data)) = messages.split_last() else {
                    return self.record("snapshot -> no messages");
                };
                let headers = messages.iter().any(|m| m.header.is_some());
                let versions: std::collections::BTreeSet<&str> =
                    messages.iter().map(|m| m.version.as_str()).collect();
                let mut left: u64 = data.iter().map(|m| m.blob.len() as u64).sum::<u64>();
                let counts_down = data.iter().all(|m| {
                    left -= m.blob.len() as u64;
                    m.remaining_bytes == left
                });
                let mut sha = sha2::Sha256::new();
                for m in data {
                    sha.update(&m.blob);
                }
                let sums = trailer.blob == sha.finalize().as_slice();
                format!(
                    "snapshot -> data messages: {}, headers: {headers}, versions: {versions:?}, \
                     remaining_bytes counts down: {counts_down}, trailer: {} bytes, \
                     remaining {}, SHA-256 of the data: {sums}",
                    !data.is_empty(),
                    trailer.blob.len(),
                    trailer.remaining_bytes
                )
            }
        };
        self.record(line);
    }
}

/// Opens a server stream and forwards what it sends (or the error that opens or ends it) to
/// `answers`, until the stream ends or nobody listens.
async fn forward<T>(
    open: impl std::future::Future<Output = Result<tonic::Response<Streaming<T>>, tonic::Status>>,
    answers: mpsc::UnboundedSender<Result<T, tonic::Status>>,
) {
    let mut stream = match open.await {
        Ok(r) => r.into_inner(),
        Err(status) => {
            let _ = answers.send(Err(status));
            return;
        }
    };
    loop {
        match stream.message().await {
            Ok(Some(r)) => {
                if answers.send(Ok(r)).is_err() {
                    return;
                }
            }
            Ok(None) => return,
            Err(status) => {
                let _ = answers.send(Err(status));
                return;
            }
        }
    }
}
