//! KV: Range (every option), Put (every option), DeleteRange, Compact, RangeStream, and their
//! errors.

use crate::pb::etcdserverpb::{
    range_request::{SortOrder, SortTarget},
    PutRequest, RangeRequest,
};
use crate::{all, b, del, get, put, range, scenario, Scenario, Session};

pub fn scenarios() -> Vec<Scenario> {
    vec![
        scenario("kv_empty_store", empty_store),
        scenario(
            "grpc_unknown_service_and_method",
            unknown_service_and_method,
        ),
        scenario("kv_put_get_versions", put_get_versions),
        scenario("kv_put_prev_kv", put_prev_kv),
        scenario("kv_put_ignore_value_and_lease", put_ignore),
        scenario("kv_put_errors", put_errors),
        scenario("kv_range_keys_and_ranges", range_keys),
        scenario("kv_range_limit_count_more", range_limit),
        scenario("kv_range_sort", range_sort),
        scenario("kv_range_sort_none_quirk", range_sort_none_quirk),
        scenario("kv_range_keys_and_count_only", range_keys_count_only),
        scenario("kv_range_revision_filters", range_filters),
        scenario("kv_range_history", range_history),
        scenario("kv_range_errors", range_errors),
        scenario("kv_delete_range", delete_range),
        scenario("kv_delete_errors", delete_errors),
        scenario("kv_compact", compact),
        scenario("kv_compact_errors", compact_errors),
        scenario("kv_binary_keys", binary_keys),
        scenario("kv_compact_not_physical", compact_not_physical),
        scenario("kv_range_stream_chunks", range_stream_chunks),
        scenario("kv_range_stream_limit_and_options", range_stream_options),
        scenario("kv_range_stream_errors", range_stream_errors),
        scenario(
            "kv_range_stream_sort_none_known_difference",
            range_stream_sort_none_known_difference,
        ),
        crate::Scenario {
            name: "kv_range_stream_adaptive_chunks",
            configure: |b| b.max_request_bytes(64 * 1024),
            run: range_stream_adaptive,
        },
        crate::Scenario {
            name: "kv_grpc_message_too_large",
            configure: |b| b.max_request_bytes(1024),
            run: message_too_large,
        },
        crate::Scenario {
            name: "kv_request_too_large",
            configure: |b| b.max_request_bytes(1024),
            run: request_too_large,
        },
    ]
}

/// Keys k00..k{n-1}, written in reverse order so that key order and revision order differ.
fn keys_reversed(s: &mut Session, n: usize) {
    for i in (0..n).rev() {
        s.put(put(&format!("k{i:02}"), &format!("v{}", i % 3)));
    }
}

fn empty_store(s: &mut Session) {
    s.range(get("a"));
    s.range(all());
    s.delete(del("a", ""));
    s.range(get("a"));
}

/// A call to a path no service of etcd serves: a service it does not have, a method its KV
/// service does not have, and a path with no service part.
fn unknown_service_and_method(s: &mut Session) {
    for path in [
        "/etcdserverpb.Nope/Range",
        "/etcdserverpb.KV/Nope",
        "/etcdserverpb.KV/",
        "/Range",
    ] {
        s.call(path, get("a"), |channel, request| async move {
            let mut grpc = tonic::client::Grpc::new(channel);
            grpc.ready()
                .await
                .map_err(|e| tonic::Status::unknown(e.to_string()))?;
            grpc.unary::<_, crate::pb::etcdserverpb::RangeResponse, _>(
                request,
                http::uri::PathAndQuery::from_static(path),
                tonic_prost::ProstCodec::default(),
            )
            .await
        });
    }
    // The connection still serves.
    s.range(get("a"));
}

fn put_get_versions(s: &mut Session) {
    s.put(put("a", "1"));
    s.put(put("a", "2"));
    s.put(put("a", ""));
    s.range(get("a"));
    s.delete(del("a", ""));
    s.put(put("a", "3"));
    s.range(get("a"));
}

fn put_prev_kv(s: &mut Session) {
    let with_prev = |k: &str, v: &str| PutRequest {
        prev_kv: true,
        ..put(k, v)
    };
    s.put(with_prev("a", "1"));
    s.put(with_prev("a", "2"));
    s.delete(del("a", ""));
    s.put(with_prev("a", "3"));
}

fn put_ignore(s: &mut Session) {
    s.put(put("a", "1"));
    s.put(PutRequest {
        ignore_value: true,
        prev_kv: true,
        ..put("a", "")
    });
    s.put(PutRequest {
        ignore_lease: true,
        ..put("a", "2")
    });
    s.put(PutRequest {
        ignore_value: true,
        ignore_lease: true,
        ..put("a", "")
    });
    s.range(get("a"));
    // Nothing to keep: "key not found", and no revision consumed.
    s.put(PutRequest {
        ignore_value: true,
        ..put("missing", "")
    });
    s.put(PutRequest {
        ignore_lease: true,
        ..put("missing", "x")
    });
    s.range(all());
}

fn put_errors(s: &mut Session) {
    s.put(put("", "v"));
    s.put(PutRequest {
        ignore_value: true,
        ..put("a", "v")
    });
    s.put(PutRequest {
        ignore_lease: true,
        lease: 5,
        ..put("a", "v")
    });
    // Validation order: empty key first, then value, then lease.
    s.put(PutRequest {
        ignore_value: true,
        ignore_lease: true,
        lease: 5,
        ..put("", "v")
    });
    s.put(PutRequest {
        ignore_value: true,
        ignore_lease: true,
        lease: 5,
        ..put("a", "v")
    });
    s.put(PutRequest {
        lease: 12345,
        ..put("a", "v")
    });
    s.range(all());
}

fn range_keys(s: &mut Session) {
    for k in ["a", "ab", "abc", "b", "c", "\u{7f}", "z"] {
        s.put(put(k, k));
    }
    s.range(get("ab"));
    s.range(range("a", "b"));
    s.range(range("ab", "c"));
    s.range(range("b", "a"));
    s.range(range("b", "b"));
    s.range(range("b", "\0"));
    s.range(all());
    s.range(range("a", "\u{0}\u{0}"));
    s.range(get("\0"));
}

fn range_limit(s: &mut Session) {
    keys_reversed(s, 6);
    for limit in [0, 1, 3, 5, 6, 7, -1] {
        s.range(RangeRequest {
            limit,
            ..range("k", "l")
        });
    }
}

fn range_sort(s: &mut Session) {
    keys_reversed(s, 6);
    s.put(put("k03", "v9"));
    for order in [SortOrder::None, SortOrder::Ascend, SortOrder::Descend] {
        for target in [
            SortTarget::Key,
            SortTarget::Version,
            SortTarget::Create,
            SortTarget::Mod,
            SortTarget::Value,
        ] {
            s.range(RangeRequest {
                sort_order: order as i32,
                sort_target: target as i32,
                ..range("k", "l")
            });
            s.range(RangeRequest {
                sort_order: order as i32,
                sort_target: target as i32,
                limit: 2,
                ..range("k", "l")
            });
        }
    }
}

fn range_sort_none_quirk(s: &mut Session) {
    keys_reversed(s, 30);
    s.range(RangeRequest {
        sort_order: SortOrder::None as i32,
        sort_target: SortTarget::Mod as i32,
        limit: 5,
        ..range("k", "l")
    });
    s.range(RangeRequest {
        sort_order: SortOrder::Ascend as i32,
        sort_target: SortTarget::Mod as i32,
        limit: 5,
        ..range("k", "l")
    });
}

fn range_keys_count_only(s: &mut Session) {
    keys_reversed(s, 4);
    s.range(RangeRequest {
        keys_only: true,
        ..range("k", "l")
    });
    s.range(RangeRequest {
        count_only: true,
        ..range("k", "l")
    });
    s.range(RangeRequest {
        count_only: true,
        limit: 1,
        ..range("k", "l")
    });
    s.range(RangeRequest {
        keys_only: true,
        count_only: true,
        ..range("k", "l")
    });
    s.range(RangeRequest {
        keys_only: true,
        sort_order: SortOrder::Descend as i32,
        sort_target: SortTarget::Value as i32,
        ..range("k", "l")
    });
    s.range(RangeRequest {
        serializable: true,
        ..range("k", "l")
    });
}

fn range_filters(s: &mut Session) {
    keys_reversed(s, 6);
    s.put(put("k01", "again"));
    s.put(put("k04", "again"));
    let base = || RangeRequest {
        limit: 2,
        ..range("k", "l")
    };
    s.range(RangeRequest {
        min_mod_revision: 4,
        ..base()
    });
    s.range(RangeRequest {
        max_mod_revision: 4,
        ..base()
    });
    s.range(RangeRequest {
        min_create_revision: 3,
        max_create_revision: 5,
        ..base()
    });
    s.range(RangeRequest {
        min_mod_revision: 8,
        max_create_revision: 6,
        ..range("k", "l")
    });
    s.range(RangeRequest {
        min_mod_revision: 100,
        ..range("k", "l")
    });
}

fn range_history(s: &mut Session) {
    s.put(put("a", "1"));
    s.put(put("b", "1"));
    s.put(put("a", "2"));
    s.delete(del("b", ""));
    for revision in [-100, -1, 0, 1, 2, 3, 4, 5, 6] {
        s.range(RangeRequest { revision, ..all() });
    }
    s.compact(3);
    for revision in [2, 3, 5] {
        s.range(RangeRequest { revision, ..all() });
    }
}

fn range_errors(s: &mut Session) {
    s.range(get(""));
    s.range(RangeRequest {
        sort_order: 7,
        ..get("a")
    });
    s.range(RangeRequest {
        sort_target: 9,
        ..get("a")
    });
    s.range(RangeRequest {
        sort_target: 9,
        ..get("")
    });
    s.range(RangeRequest {
        revision: 2,
        ..get("a")
    });
}

fn delete_range(s: &mut Session) {
    keys_reversed(s, 5);
    s.delete(del("k01", ""));
    s.delete(del("k01", ""));
    s.delete(crate::pb::etcdserverpb::DeleteRangeRequest {
        prev_kv: true,
        ..del("k02", "k04")
    });
    s.delete(del("z", "a"));
    s.delete(del("k", "\0"));
    s.range(all());
    s.put(put("k02", "back"));
    s.range(get("k02"));
}

fn delete_errors(s: &mut Session) {
    s.delete(del("", ""));
    s.delete(del("", "z"));
}

fn compact(s: &mut Session) {
    s.put(put("a", "1"));
    s.put(put("a", "2"));
    s.put(put("b", "1"));
    s.delete(del("b", ""));
    s.put(put("a", "3"));
    s.compact(4);
    s.range(RangeRequest {
        revision: 4,
        ..all()
    });
    s.range(RangeRequest {
        revision: 5,
        ..all()
    });
    s.compact(6);
    s.range(all());
    s.range(RangeRequest {
        revision: 6,
        ..all()
    });
}

fn compact_errors(s: &mut Session) {
    s.put(put("a", "1"));
    s.compact(0);
    s.compact(0);
    s.compact(-1);
    s.compact(3);
    s.compact(2);
    s.compact(2);
    s.compact(1);
}

fn binary_keys(s: &mut Session) {
    for k in [
        vec![0u8],
        vec![0, 1],
        vec![0xff],
        vec![0xff, 0xff],
        vec![1, 0xff],
    ] {
        s.put(PutRequest {
            key: k.clone(),
            value: k,
            ..Default::default()
        });
    }
    s.range(all());
    s.range(RangeRequest {
        key: vec![0xff],
        range_end: vec![0],
        ..Default::default()
    });
    s.range(RangeRequest {
        key: vec![1],
        range_end: vec![2],
        ..Default::default()
    });
    s.range(RangeRequest {
        key: vec![0],
        range_end: vec![0, 1],
        ..Default::default()
    });
}

fn range_stream_chunks(s: &mut Session) {
    s.range_stream(get("nothing"));
    keys_reversed(s, 45);
    s.range_stream(range("k", "l"));
    s.range_stream(get("k07"));
    s.range_stream(RangeRequest {
        count_only: true,
        ..range("k", "l")
    });
}

fn range_stream_options(s: &mut Session) {
    keys_reversed(s, 35);
    s.range_stream(RangeRequest {
        limit: 11,
        ..range("k", "l")
    });
    s.range_stream(RangeRequest {
        limit: 31,
        keys_only: true,
        ..range("k", "l")
    });
    s.range_stream(RangeRequest {
        revision: 20,
        serializable: true,
        ..range("k", "l")
    });
    s.range_stream(RangeRequest {
        sort_order: SortOrder::Ascend as i32,
        sort_target: SortTarget::Key as i32,
        limit: 12,
        ..range("k", "l")
    });
}

fn range_stream_errors(s: &mut Session) {
    s.put(put("a", "1"));
    s.range_stream(get(""));
    s.range_stream(RangeRequest {
        sort_order: 9,
        ..get("a")
    });
    s.range_stream(RangeRequest {
        revision: 50,
        ..get("a")
    });
    s.range_stream(RangeRequest {
        sort_order: SortOrder::Descend as i32,
        ..get("a")
    });
    s.range_stream(RangeRequest {
        sort_order: SortOrder::Ascend as i32,
        sort_target: SortTarget::Mod as i32,
        ..get("a")
    });
    s.range_stream(RangeRequest {
        min_mod_revision: 1,
        ..get("a")
    });
    s.range_stream(RangeRequest {
        max_create_revision: 1,
        ..get("a")
    });
    s.compact(2);
    s.range_stream(RangeRequest {
        revision: 1,
        ..get("a")
    });
}

fn request_too_large(s: &mut Session) {
    let big = "x".repeat(1000);
    s.put(put("a", &big));
    s.put(put("a", &"x".repeat(990)));
    s.put(put("b", &"x".repeat(1100)));
    // Reads are never too large.
    s.range(get(&big));
    s.delete(del(&big, ""));
    s.range(all());
    s.record(format!("{}", b("done").len()));
}

fn range_stream_adaptive(s: &mut Session) {
    // Chunks grow while they stay under half the request limit and shrink when over twice it.
    for i in 0..150 {
        s.put(put(&format!("s{i:03}"), &"v".repeat(1024)));
    }
    for i in 0..30 {
        s.put(put(&format!("t{i:03}"), &"w".repeat(20 * 1024)));
    }
    s.range_stream(range("s", "t"));
    s.range_stream(range("t", "u"));
    s.range_stream(RangeRequest {
        keys_only: true,
        ..range("s", "u")
    });
}

fn message_too_large(s: &mut Session) {
    // The gRPC receive limit is the request limit plus 512 KiB; past it gRPC itself refuses.
    let limit = 1024 + 512 * 1024;
    s.put(put("a", &"x".repeat(limit)));
    s.range(get(&"k".repeat(limit + 10)));
    s.range(get(&"k".repeat(limit - 100)));
    s.range(all());
}

fn compact_not_physical(s: &mut Session) {
    s.put(put("a", "1"));
    s.put(put("a", "2"));
    s.compact_with(3, false);
    s.range(RangeRequest {
        revision: 2,
        ..get("a")
    });
    s.range(RangeRequest {
        revision: 3,
        ..get("a")
    });
    s.compact_with(3, false);
}

/// A known difference, recorded in the same words on both sides while it holds: RangeStream
/// with order NONE and target CREATE or MOD (a sort etcd's Range does, ascending) must send
/// every pair once, in that order. We do; etcd 3.7.2 sorts each chunk on its own but cuts the
/// chunks by key, so pairs repeat and go missing across chunks (README, differences). If etcd
/// ever answers right, or we stop doing so, the lines differ and the suite says so.
fn range_stream_sort_none_known_difference(s: &mut Session) {
    keys_reversed(s, 45);
    for target in [SortTarget::Create, SortTarget::Mod] {
        let request = RangeRequest {
            sort_order: SortOrder::None as i32,
            sort_target: target as i32,
            ..range("k", "l")
        };
        let streamed = s.range_stream_pairs(request.clone());
        let reference = s.range_pairs(request);
        let line = match (streamed, reference) {
            (Ok(streamed), Ok(reference)) => {
                let right = streamed == reference;
                match (s.backend, right) {
                    (test_etcd::Backend::Embedded, true) | (test_etcd::Backend::Real, false) => {
                        format!(
                            "range_stream order NONE target {target:?}: known difference \
                             (ours: every pair once, sorted; etcd 3.7.2: pairs repeated and \
                             missing across chunks)"
                        )
                    }
                    (backend, _) => format!(
                        "range_stream order NONE target {target:?}: {backend:?} answered \
                         {} pairs where Range answers {}, {} (the known difference changed)",
                        streamed.len(),
                        reference.len(),
                        if right { "the same" } else { "different ones" }
                    ),
                }
            }
            (streamed, reference) => {
                format!("range_stream order NONE target {target:?}: {streamed:?} / {reference:?}")
            }
        };
        s.record(line);
    }
}
