//! The Watch service: one task per stream that answers create, cancel and progress requests and
//! feeds every watcher its events from the store's history.
//!
//! A watcher holds no queue, only the next revision it needs. While the client keeps up, each
//! watcher gets one response per revision, as etcd's synced watchers do. When the stream's
//! buffer is full, the watchers that are behind fall back to catching up from history in batches
//! of up to 1000 revisions (etcd's unsynced path), so a slow reader costs no memory and misses
//! nothing; if compaction overtakes it, it is cancelled with the compact revision.

use std::collections::BTreeMap;
use std::time::Duration;

use prost::Message;
use tokio::sync::mpsc::{self, error::TrySendError};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use crate::engine::{Access, KeyRange, RevisionEvents, WatchFilter, WatchRead};
use crate::pb::etcdserverpb::{
    watch_create_request::FilterType, watch_request::RequestUnion, watch_server::Watch,
    WatchCreateRequest, WatchRequest, WatchResponse,
};

use super::{oversize, Context};

/// Responses a stream buffers before its watchers fall back to catching up (etcd's size).
const STREAM_BUFFER: usize = 128;

/// Most revisions in one catch-up response, as etcd batches them.
const CATCH_UP_REVISIONS: usize = 1000;

/// How often watchers that asked for progress notifications get one, by default (etcd's
/// `--watch-progress-notify-interval`).
pub(crate) const DEFAULT_PROGRESS_INTERVAL: Duration = Duration::from_secs(600);

pub(crate) struct WatchService {
    ctx: Context,
}

impl WatchService {
    pub(crate) fn new(ctx: Context) -> Self {
        WatchService { ctx }
    }
}

type Outbound = mpsc::Sender<Result<WatchResponse, Status>>;

#[tonic::async_trait]
impl Watch for WatchService {
    type WatchStream = ReceiverStream<Result<WatchResponse, Status>>;

    async fn watch(
        &self,
        request: Request<Streaming<WatchRequest>>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
        let credentials = super::auth::Credentials::of(&request);
        // Counted with the connections, so that ending them waits until this stream is gone.
        let (stop, open) = self.ctx.hooks.connection();
        let stream = WatchStream {
            stop,
            _open: open,
            stream_id: self.ctx.hooks.new_stream(),
            ctx: self.ctx.clone(),
            credentials,
            tx,
            watchers: BTreeMap::new(),
            next_auto_id: 0,
            progress_requested: false,
        };
        // The task lives on the server's runtime, so stopping the server ends it.
        tokio::spawn(stream.run(request.into_inner()));
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}

/// One watcher on a stream.
#[derive(Debug)]
struct Watcher {
    id: i64,
    filter: WatchFilter,
    /// The next revision this watcher needs.
    next: i64,
    /// The start revision asked for (0: from now).
    start: i64,
    /// Synced watchers get one response per revision; unsynced ones catch up in batches.
    synced: bool,
    progress_notify: bool,
    fragment: bool,
    /// Whether an event went out since the last progress tick.
    sent_since_tick: bool,
}

/// The client has gone; the stream ends.
struct Closed;

struct WatchStream {
    /// Cancelled when the test ends every connection (`TestEtcd::end_streams`, restarts).
    stop: tokio_util::sync::CancellationToken,
    /// Keeps the stream counted as open until it is dropped.
    _open: super::hooks::OpenConnection,
    /// Names this stream's watchers in the server's registry (`TestEtcd::watchers`).
    stream_id: u64,
    ctx: Context,
    /// The token (or client certificate) the stream was opened with; each create is checked
    /// with it.
    credentials: super::auth::Credentials,
    tx: Outbound,
    watchers: BTreeMap<i64, Watcher>,
    next_auto_id: i64,
    progress_requested: bool,
}

impl Drop for WatchStream {
    fn drop(&mut self) {
        // However the stream ended, its watchers are no longer open.
        self.ctx.hooks.stream_closed(self.stream_id);
    }
}

impl WatchStream {
    async fn run(mut self, mut inbound: Streaming<WatchRequest>) {
        let mut revisions = self.ctx.engine.subscribe();
        let mut compact_signal = self.ctx.hooks.compact_signal();
        let interval = self.ctx.progress_interval;
        let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // After the client half-closes its side, etcd keeps sending events; so do we.
        let mut inbound_open = true;
        // The select below waits on the buffer while the handlers borrow the stream mutably.
        let tx = self.tx.clone();
        loop {
            if self.deliver().await.is_err() {
                return;
            }
            let behind = self.any_behind();
            let step = tokio::select! {
                message = inbound.message(), if inbound_open => match message {
                    Ok(Some(request)) => self.handle(request).await,
                    Ok(None) => {
                        inbound_open = false;
                        Ok(())
                    }
                    Err(status) => {
                        // A broken or oversize request ends the stream, as in grpc-go.
                        let _ = self.tx.send(Err(oversize::status(status))).await;
                        Err(Closed)
                    }
                },
                changed = revisions.changed() => changed.map_err(|_| Closed),
                // `TestEtcd::cancel_watches_compacted`.
                Ok(()) = compact_signal.changed() => self.cancel_all_compacted().await,
                // Room again in the buffer for watchers that are behind.
                permit = tx.reserve(), if behind => permit.map(drop).map_err(|_| Closed),
                _ = ticks.tick() => {
                    self.progress_tick();
                    Ok(())
                }
                () = tx.closed() => Err(Closed),
                () = self.stop.cancelled() => Err(Closed),
            };
            if step.is_err() {
                return;
            }
        }
    }

    /// Cancels every watcher as one that compaction overtook, at the current revision.
    async fn cancel_all_compacted(&mut self) -> Result<(), Closed> {
        let compact_revision = self.ctx.engine.revision();
        let ids: Vec<i64> = self.watchers.keys().copied().collect();
        for id in ids {
            self.watchers.remove(&id);
            self.ctx.hooks.watcher_closed(self.stream_id, id);
            // etcd sends a compaction cancel with header revision 0, as `deliver` does.
            let mut header = self.ctx.identity.header(0);
            header.revision = 0;
            self.send(WatchResponse {
                header: Some(header),
                watch_id: id,
                canceled: true,
                compact_revision,
                ..Default::default()
            })
            .await?;
        }
        Ok(())
    }

    fn any_behind(&self) -> bool {
        let current = self.ctx.engine.revision();
        self.watchers.values().any(|w| w.next <= current)
    }

    fn header(&self, revision: i64) -> Option<crate::pb::etcdserverpb::ResponseHeader> {
        Some(self.ctx.identity.header(revision))
    }

    async fn send(&self, response: WatchResponse) -> Result<(), Closed> {
        self.tx.send(Ok(response)).await.map_err(|_| Closed)
    }

    async fn handle(&mut self, request: WatchRequest) -> Result<(), Closed> {
        match request.request_union {
            Some(RequestUnion::CreateRequest(create)) => self.create(create).await,
            Some(RequestUnion::CancelRequest(cancel)) => self.cancel(cancel.watch_id).await,
            Some(RequestUnion::ProgressRequest(_)) => {
                self.progress_request();
                Ok(())
            }
            // etcd ignores a request with nothing in it.
            None => Ok(()),
        }
    }

    async fn create(&mut self, create: WatchCreateRequest) -> Result<(), Closed> {
        let current = self.ctx.engine.revision();
        // An empty key means "\0", the smallest key.
        let key = if create.key.is_empty() {
            vec![0]
        } else {
            create.key
        };
        let unbounded = create.range_end == [0];
        let allowed = self.ctx.identify(&self.credentials).and_then(|caller| {
            let end = if create.range_end.is_empty() {
                &[][..]
            } else {
                &create.range_end
            };
            self.ctx
                .engine
                .auth(|auth| auth.check_range(&caller, &key, end, Access::Read))
        });
        let denied = allowed
            .err()
            .map(|err| crate::rpctypes::go_status_text(&err));
        let refusal = if let Some(denied) = denied.as_deref() {
            Some(denied)
        } else if create.start_revision < 0 {
            Some("etcdserver: mvcc: required revision has been compacted")
        } else if !create.range_end.is_empty() && !unbounded && key >= create.range_end {
            Some("mvcc: watcher range is empty")
        } else if create.watch_id != 0 && self.watchers.contains_key(&create.watch_id) {
            Some("mvcc: duplicate watch ID provided on the WatchStream")
        } else {
            None
        };
        if let Some(reason) = refusal {
            return self
                .send(WatchResponse {
                    header: self.header(current),
                    watch_id: -1,
                    created: true,
                    canceled: true,
                    cancel_reason: reason.to_owned(),
                    ..Default::default()
                })
                .await;
        }
        let id = if create.watch_id == 0 {
            while self.watchers.contains_key(&self.next_auto_id) {
                self.next_auto_id += 1;
            }
            self.next_auto_id += 1;
            self.next_auto_id - 1
        } else {
            create.watch_id
        };
        let next = if create.start_revision == 0 {
            current + 1
        } else {
            create.start_revision
        };
        let filter = WatchFilter {
            range: KeyRange::new(&key, &create.range_end),
            no_put: create.filters.contains(&(FilterType::Noput as i32)),
            no_delete: create.filters.contains(&(FilterType::Nodelete as i32)),
            prev_kv: create.prev_kv,
        };
        self.ctx.hooks.watcher_opened(
            self.stream_id,
            crate::faults::WatcherInfo {
                id,
                key: key.clone(),
                range_end: create.range_end.clone(),
                start_revision: create.start_revision,
            },
        );
        self.watchers.insert(
            id,
            Watcher {
                id,
                filter,
                next,
                start: create.start_revision,
                synced: next > current,
                progress_notify: create.progress_notify,
                fragment: create.fragment,
                sent_since_tick: false,
            },
        );
        // Events for the watcher go out only after this, since delivery runs after handling.
        self.send(WatchResponse {
            header: self.header(current),
            watch_id: id,
            created: true,
            ..Default::default()
        })
        .await
    }

    async fn cancel(&mut self, id: i64) -> Result<(), Closed> {
        // etcd does not answer a cancel for an unknown watcher.
        if self.watchers.remove(&id).is_none() {
            return Ok(());
        }
        self.ctx.hooks.watcher_closed(self.stream_id, id);
        let current = self.ctx.engine.revision();
        self.send(WatchResponse {
            header: self.header(current),
            watch_id: id,
            canceled: true,
            ..Default::default()
        })
        .await
    }

    /// etcd answers a progress request only when every watcher on the stream is synced, and
    /// then after every event up to the current revision; otherwise the request is dropped and
    /// the client asks again.
    fn progress_request(&mut self) {
        let current = self.ctx.engine.revision();
        let all_synced = self
            .watchers
            .values()
            .all(|w| w.synced && w.start <= current);
        if !self.watchers.is_empty() && all_synced {
            self.progress_requested = true;
        }
    }

    /// A progress notification for each watcher that asked for them, is synced, and got no
    /// event since the last tick.
    fn progress_tick(&mut self) {
        let current = self.ctx.engine.revision();
        for w in self.watchers.values_mut() {
            let quiet = !w.sent_since_tick && w.synced && w.next > current && w.start <= current;
            if w.progress_notify && quiet {
                let response = WatchResponse {
                    header: Some(self.ctx.identity.header(current)),
                    watch_id: w.id,
                    ..Default::default()
                };
                // A full buffer means events are flowing, which tells the client as much.
                let _ = self.tx.try_send(Ok(response));
            }
            w.sent_since_tick = false;
        }
    }

    /// Sends what the watchers are owed, oldest revision first, while the buffer has room.
    async fn deliver(&mut self) -> Result<(), Closed> {
        loop {
            let current = self.ctx.engine.revision();
            let next_watcher = self
                .watchers
                .values()
                .filter(|w| w.next <= current)
                .min_by_key(|w| w.next)
                .map(|w| w.id);
            let Some(id) = next_watcher else {
                break;
            };
            let permit = match self.tx.try_reserve() {
                Ok(permit) => permit,
                Err(TrySendError::Full(())) => {
                    // The client reads slowly: whoever is behind catches up from history later.
                    for w in self.watchers.values_mut().filter(|w| w.next <= current) {
                        w.synced = false;
                    }
                    return Ok(());
                }
                Err(TrySendError::Closed(())) => return Err(Closed),
            };
            let Some(watcher) = self.watchers.get_mut(&id) else {
                break;
            };
            let max = if watcher.synced {
                1
            } else {
                CATCH_UP_REVISIONS
            };
            match self
                .ctx
                .engine
                .watch_read(&watcher.filter, watcher.next, max)
            {
                WatchRead::Compacted { compact_revision } => {
                    self.watchers.remove(&id);
                    self.ctx.hooks.watcher_closed(self.stream_id, id);
                    let mut header = self.ctx.identity.header(0);
                    header.revision = 0;
                    permit.send(Ok(WatchResponse {
                        header: Some(header),
                        watch_id: id,
                        canceled: true,
                        compact_revision,
                        ..Default::default()
                    }));
                }
                WatchRead::Events {
                    batches,
                    next,
                    current,
                } => {
                    watcher.next = next;
                    let header_revision = match batches.first() {
                        Some(first) if watcher.synced => first.revision,
                        _ => current,
                    };
                    if next > current {
                        watcher.synced = true;
                    }
                    if batches.is_empty() {
                        continue;
                    }
                    watcher.sent_since_tick = true;
                    let response = WatchResponse {
                        header: Some(self.ctx.identity.header(header_revision)),
                        watch_id: id,
                        events: batches
                            .into_iter()
                            .flat_map(|b: RevisionEvents| b.events)
                            .collect(),
                        ..Default::default()
                    };
                    let limit = self.ctx.max_message_bytes;
                    if watcher.fragment
                        && response.encoded_len() >= limit
                        && response.events.len() > 1
                    {
                        drop(permit);
                        for part in fragments(response, limit) {
                            self.send(part).await?;
                        }
                    } else {
                        permit.send(Ok(response));
                    }
                }
            }
        }
        if self.progress_requested && !self.any_behind() {
            self.progress_requested = false;
            let current = self.ctx.engine.revision();
            self.send(WatchResponse {
                header: self.header(current),
                watch_id: -1,
                ..Default::default()
            })
            .await?;
        }
        Ok(())
    }
}

/// Splits a response for a watcher that asked for fragments: each part as full as it can be
/// while under `limit` (a single oversized event goes alone), `fragment` set on all but the last.
fn fragments(response: WatchResponse, limit: usize) -> Vec<WatchResponse> {
    let empty = WatchResponse {
        events: Vec::new(),
        ..response.clone()
    };
    let base = empty.encoded_len();
    let mut parts = Vec::new();
    let mut part = Vec::new();
    let mut size = base;
    for event in response.events {
        // The event's bytes inside the response: tag, length, body.
        let len = event.encoded_len();
        let event_size = 1 + prost::length_delimiter_len(len) + len;
        if !part.is_empty() && size + event_size >= limit {
            parts.push(WatchResponse {
                events: std::mem::take(&mut part),
                fragment: true,
                ..empty.clone()
            });
            size = base;
        }
        part.push(event);
        size += event_size;
    }
    parts.push(WatchResponse {
        events: part,
        fragment: false,
        ..empty
    });
    parts
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pb::mvccpb::{Event, KeyValue};

    fn event(size: usize) -> Event {
        Event {
            kv: Some(KeyValue {
                key: bytes::Bytes::from_static(b"k"),
                value: vec![0; size].into(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn fragments_fill_greedily_under_the_limit() {
        let response = WatchResponse {
            watch_id: 3,
            events: (0..3).map(|_| event(900 * 1024)).collect(),
            ..Default::default()
        };
        let parts = fragments(response, 2 * 1024 * 1024);
        let shape: Vec<_> = parts
            .iter()
            .map(|p| (p.events.len(), p.fragment, p.watch_id))
            .collect();
        assert_eq!(shape, [(2, true, 3), (1, false, 3)]);
    }

    #[test]
    fn an_oversized_event_goes_alone() {
        let response = WatchResponse {
            events: vec![event(3 * 1024 * 1024), event(10)],
            ..Default::default()
        };
        let parts = fragments(response, 2 * 1024 * 1024);
        assert_eq!(
            parts.iter().map(|p| p.events.len()).collect::<Vec<_>>(),
            [1, 1]
        );
    }
}
