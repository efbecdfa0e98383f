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

/// What a watch stream answered, as its forwarding task saw it.
type Answers = mpsc::UnboundedReceiver<Result<WatchResponse, tonic::Status>>;

pub struct Session {
    runtime: Runtime,
    kv: KvClient<Channel>,
    channel: Channel,
    watches: Vec<(mpsc::Sender<WatchRequest>, Answers)>,
    pub transcript: Vec<String>,
}

/// A watch stream opened by [`Session::watch`].
#[derive(Debug, Clone, Copy)]
pub struct Stream(usize);

impl Session {
    pub fn connect(endpoint: String) -> Session {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let channel = runtime
            .block_on(
                tonic::transport::Endpoint::from_shared(endpoint)
                    .expect("endpoint")
                    .connect(),
            )
            .expect("connect");
        Session {
            runtime,
            kv: KvClient::new(channel.clone()),
            channel,
            watches: Vec::new(),
            transcript: Vec::new(),
        }
    }

    pub fn record(&mut self, line: impl Into<String>) {
        self.transcript.push(readable(&line.into()));
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
        let result = self.runtime.block_on(kv.range(r)).map(|r| {
            let mut r = r.into_inner();
            norm(&mut r.header);
            r
        });
        self.answer(&what, result)
    }

    pub fn put(&mut self, r: PutRequest) -> Option<crate::pb::etcdserverpb::PutResponse> {
        let what = format!("put {r:?}");
        let mut kv = self.kv.clone();
        let result = self.runtime.block_on(kv.put(r)).map(|r| {
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
        let result = self.runtime.block_on(kv.delete_range(r)).map(|r| {
            let mut r = r.into_inner();
            norm(&mut r.header);
            r
        });
        self.answer(&what, result)
    }

    pub fn txn(&mut self, r: TxnRequest) -> Option<TxnResponse> {
        let what = format!("txn {r:?}");
        let mut kv = self.kv.clone();
        let result = self.runtime.block_on(kv.txn(r)).map(|r| {
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
        let result = self.runtime.block_on(kv.compact(r)).map(|r| {
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

    /// Opens a Watch stream.
    pub fn watch(&mut self) -> Stream {
        let (tx, rx) = mpsc::channel(64);
        let (answers, received) = mpsc::unbounded_channel();
        let mut client = WatchClient::new(self.channel.clone());
        // etcd sends the stream's headers with its first response only, so opening the stream
        // cannot be awaited here: a task opens it and forwards what arrives. It runs whenever
        // the session blocks on its runtime.
        self.runtime.spawn(async move {
            let mut stream: Streaming<WatchResponse> =
                match client.watch(ReceiverStream::new(rx)).await {
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
        });
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
        let line = match self.next_within(w, WAIT) {
            Ok(Some(r)) => {
                let line = format!("watch {} <- {r:?}", w.0);
                self.record(line);
                return Some(r);
            }
            Ok(None) => format!("watch {} <- nothing within {WAIT:?}", w.0),
            Err(e) => format!("watch {} <- {e}", w.0),
        };
        self.record(line);
        None
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

/// What legitimately differs between two servers would be normalised here. Nothing does yet:
/// the real single node is named and advertised as a default etcd, so its cluster and member
/// IDs and raft term are the embedded engine's, and headers are compared exactly. (Server-chosen
/// lease IDs and tokens will need normalising when those services are compared.)
pub fn norm(_header: &mut Option<ResponseHeader>) {}

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
