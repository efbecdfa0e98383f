//! Watch: create and cancel, IDs, key/range/prefix/all-keys watchers, filters, prev_kv,
//! start_revision replay, compaction cancels, progress requests and notifications, and the
//! failed-create answers.

use crate::pb::etcdserverpb::{watch_create_request::FilterType, WatchCreateRequest};
use crate::{
    del, op_del, op_put, pause, put, scenario, txn, watch_key, watch_range, Scenario, Session,
};

pub fn scenarios() -> Vec<Scenario> {
    vec![
        scenario("watch_key_events", key_events),
        scenario("watch_range_and_prefix", ranges),
        scenario("watch_ids_auto_and_explicit", ids),
        scenario("watch_cancel", cancel),
        scenario("watch_filters", filters),
        scenario("watch_prev_kv", prev_kv),
        scenario("watch_start_revision_replay", replay),
        scenario("watch_start_revision_future", future_start),
        scenario("watch_compacted_start_cancels", compacted),
        scenario("watch_failed_creates", failed_creates),
        scenario("watch_txn_events_in_op_order", txn_order),
        scenario("watch_progress_request", progress_request),
        scenario(
            "watch_progress_request_without_watchers",
            progress_no_watchers,
        ),
        crate::Scenario {
            name: "watch_progress_notify",
            configure: |b| b.watch_progress_notify_interval(std::time::Duration::from_millis(400)),
            run: progress_notify,
        },
        scenario("watch_empty_key", empty_key),
        scenario("watch_prev_kv_after_compaction", prev_kv_compacted),
        scenario("watch_cancel_leaves_other_watchers", cancel_one_of_two),
        scenario("watch_open_ended_ranges", open_ended),
        crate::Scenario {
            name: "watch_fragment",
            configure: |b| b.max_request_bytes(64 * 1024),
            run: fragment,
        },
    ]
}

fn key_events(s: &mut Session) {
    let w = s.watch();
    s.create(w, watch_key("a"));
    s.recv(w);
    s.put(put("a", "1"));
    s.recv(w);
    s.put(put("b", "1"));
    s.put(put("a", "2"));
    s.recv(w);
    s.delete(del("a", ""));
    s.recv(w);
    s.quiet(w);
}

fn ranges(s: &mut Session) {
    let w = s.watch();
    s.create(w, watch_range("a", "c"));
    s.recv(w);
    for k in ["a", "b", "bz", "c", "0"] {
        s.put(put(k, "1"));
    }
    s.recv(w);
    s.recv(w);
    s.recv(w);
    s.quiet(w);
    let all = s.watch();
    s.create(all, watch_range("\0", "\0"));
    s.recv(all);
    s.delete(del("a", "\0"));
    s.recv(all);
    s.recv(w);
}

fn ids(s: &mut Session) {
    let w = s.watch();
    for id in [0, 7, 0, 0, -5, 2, 0] {
        s.create(
            w,
            WatchCreateRequest {
                watch_id: id,
                ..watch_key("a")
            },
        );
        s.recv(w);
    }
    // A second stream counts its own IDs.
    let other = s.watch();
    s.create(other, watch_key("a"));
    s.recv(other);
}

fn cancel(s: &mut Session) {
    let w = s.watch();
    s.create(w, watch_key("a"));
    s.recv(w);
    s.create(w, watch_key("a"));
    s.recv(w);
    s.put(put("a", "1"));
    s.recv_until_both(w);
    s.cancel(w, 0);
    s.recv(w);
    s.cancel(w, 0);
    s.cancel(w, 42);
    s.quiet(w);
    s.put(put("a", "2"));
    s.recv(w);
    s.quiet(w);
}

impl Session {
    /// Two watchers of the same key each get one response; their order is free, so both are
    /// recorded sorted.
    fn recv_until_both(&mut self, w: crate::session::Stream) {
        let before = self.transcript.len();
        self.recv(w);
        self.recv(w);
        self.transcript[before..].sort();
    }
}

fn filters(s: &mut Session) {
    let w = s.watch();
    s.create(
        w,
        WatchCreateRequest {
            filters: vec![FilterType::Noput as i32],
            ..watch_key("a")
        },
    );
    s.recv(w);
    s.put(put("a", "1"));
    s.quiet(w);
    s.delete(del("a", ""));
    s.recv(w);
    let v = s.watch();
    s.create(
        v,
        WatchCreateRequest {
            filters: vec![FilterType::Nodelete as i32],
            ..watch_key("a")
        },
    );
    s.recv(v);
    s.put(put("a", "2"));
    s.recv(v);
    s.delete(del("a", ""));
    s.quiet(v);
    // A txn whose events are all filtered out sends nothing.
    s.put(put("a", "3"));
    s.recv(v);
    s.txn(txn(vec![], vec![op_del("a", "")], vec![]));
    s.quiet(v);
}

fn prev_kv(s: &mut Session) {
    let w = s.watch();
    s.create(
        w,
        WatchCreateRequest {
            prev_kv: true,
            ..watch_range("a", "z")
        },
    );
    s.recv(w);
    s.put(put("a", "1"));
    s.recv(w);
    s.put(put("a", "2"));
    s.recv(w);
    s.delete(del("a", ""));
    s.recv(w);
    s.put(put("a", "3"));
    s.recv(w);
}

fn replay(s: &mut Session) {
    s.put(put("a", "1"));
    s.put(put("b", "1"));
    s.put(put("a", "2"));
    s.delete(del("a", ""));
    s.txn(txn(
        vec![],
        vec![op_put("a", "3"), op_put("b", "2")],
        vec![],
    ));
    for start in [1, 3, 6, 7] {
        let w = s.watch();
        s.create(
            w,
            WatchCreateRequest {
                start_revision: start,
                prev_kv: true,
                ..watch_range("a", "c")
            },
        );
        s.recv(w);
        // Catch-up may come in one or several responses; what matters is the events.
        s.recv_until(w, 6);
    }
    s.put(put("a", "live"));
    let w = s.watch();
    s.create(
        w,
        WatchCreateRequest {
            start_revision: 2,
            ..watch_key("a")
        },
    );
    s.recv(w);
    s.recv_until(w, 7);
}

fn future_start(s: &mut Session) {
    s.put(put("a", "1"));
    let w = s.watch();
    s.create(
        w,
        WatchCreateRequest {
            start_revision: 4,
            ..watch_key("a")
        },
    );
    s.recv(w);
    s.put(put("a", "2"));
    s.quiet(w);
    s.put(put("a", "3"));
    s.recv(w);
}

fn compacted(s: &mut Session) {
    for v in ["1", "2", "3", "4"] {
        s.put(put("a", v));
    }
    s.compact(4);
    for start in [2, 4] {
        let w = s.watch();
        s.create(
            w,
            WatchCreateRequest {
                start_revision: start,
                ..watch_key("a")
            },
        );
        s.recv(w);
        s.recv(w);
    }
}

fn failed_creates(s: &mut Session) {
    s.put(put("a", "1"));
    let w = s.watch();
    s.create(w, watch_range("b", "a"));
    s.recv(w);
    s.create(w, watch_range("b", "b"));
    s.recv(w);
    s.create(
        w,
        WatchCreateRequest {
            start_revision: -1,
            ..watch_key("a")
        },
    );
    s.recv(w);
    s.create(
        w,
        WatchCreateRequest {
            watch_id: 3,
            ..watch_key("a")
        },
    );
    s.recv(w);
    s.create(
        w,
        WatchCreateRequest {
            watch_id: 3,
            ..watch_key("b")
        },
    );
    s.recv(w);
    s.quiet(w);
}

fn txn_order(s: &mut Session) {
    s.put(put("a", "0"));
    s.put(put("c", "0"));
    let w = s.watch();
    s.create(w, watch_range("\0", "\0"));
    s.recv(w);
    s.txn(txn(
        vec![],
        vec![op_put("c", "1"), op_put("b", "1"), op_del("a", "")],
        vec![],
    ));
    s.recv(w);
    s.delete(del("a", "z"));
    s.recv(w);
}

fn progress_request(s: &mut Session) {
    let w = s.watch();
    s.create(w, watch_key("a"));
    s.recv(w);
    s.put(put("b", "1"));
    s.progress(w);
    s.recv(w);
    s.put(put("a", "1"));
    s.recv(w);
    s.progress(w);
    s.recv(w);
}

fn progress_no_watchers(s: &mut Session) {
    let w = s.watch();
    s.send_nothing(w);
    s.quiet(w);
    s.progress(w);
    s.quiet(w);
    s.create(w, watch_key("a"));
    s.recv(w);
    s.cancel(w, 0);
    s.recv(w);
    s.progress(w);
    s.quiet(w);
}

fn progress_notify(s: &mut Session) {
    let w = s.watch();
    s.create(
        w,
        WatchCreateRequest {
            progress_notify: true,
            ..watch_key("a")
        },
    );
    s.recv(w);
    s.put(put("b", "1"));
    pause(100);
    s.recv(w);
}

fn empty_key(s: &mut Session) {
    let w = s.watch();
    s.create(w, WatchCreateRequest::default());
    s.recv(w);
    s.create(w, watch_range("", "\0"));
    s.recv(w);
    s.put(put("\0", "1"));
    s.recv_until_both(w);
    s.put(put("a", "1"));
    s.recv(w);
}

fn fragment(s: &mut Session) {
    // Twelve 60 KiB values: a catch-up of them all is over the 576 KiB response limit.
    for i in 0..12 {
        s.put(put(&format!("f{i:02}"), &"z".repeat(60 * 1024)));
    }
    s.put(put("f99", "small"));
    for fragment in [true, false] {
        let w = s.watch();
        s.create(
            w,
            WatchCreateRequest {
                start_revision: 2,
                fragment,
                ..watch_range("f", "g")
            },
        );
        s.recv(w);
        s.recv_until(w, 14);
    }
}

fn prev_kv_compacted(s: &mut Session) {
    s.put(put("a", "1"));
    s.put(put("a", "2"));
    s.put(put("b", "1"));
    s.delete(del("b", ""));
    s.put(put("a", "3"));
    s.compact(4);
    for start in [4, 5, 6] {
        let w = s.watch();
        s.create(
            w,
            WatchCreateRequest {
                start_revision: start,
                prev_kv: true,
                ..watch_range("a", "c")
            },
        );
        s.recv(w);
        s.recv_until(w, 6);
    }
}

fn cancel_one_of_two(s: &mut Session) {
    let w = s.watch();
    s.create(w, watch_key("a"));
    s.recv(w);
    s.create(w, watch_key("b"));
    s.recv(w);
    s.cancel(w, 0);
    s.recv(w);
    s.put(put("a", "1"));
    s.put(put("b", "1"));
    s.recv(w);
    s.quiet(w);
}

fn open_ended(s: &mut Session) {
    let w = s.watch();
    s.create(w, watch_range("b", "\0"));
    s.recv(w);
    for k in ["a", "b", "zz", "\u{7f}"] {
        s.put(put(k, "1"));
    }
    s.recv(w);
    s.recv(w);
    s.recv(w);
    s.quiet(w);
}
