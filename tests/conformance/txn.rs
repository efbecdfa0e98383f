//! Txn: every compare target and result, missing keys, range compares, nesting, the duplicate
//! rule, op limits, revision checks inside a txn, and every txn error.

use crate::pb::etcdserverpb::{
    compare::{CompareResult as R, CompareTarget as T, TargetUnion as U},
    Compare, PutRequest, RangeRequest, RequestOp, TxnRequest,
};
use crate::{
    all, cmp, get, op_del, op_put, op_range, op_txn, put, range, scenario, txn, Scenario, Session,
};

pub fn scenarios() -> Vec<Scenario> {
    vec![
        scenario("txn_empty", empty),
        scenario("txn_compare_targets_and_results", compare_targets),
        scenario("txn_compare_missing_key", compare_missing),
        scenario("txn_compare_ranges", compare_ranges),
        scenario(
            "txn_compare_operand_mismatch_and_unknown_enums",
            compare_odd,
        ),
        scenario("txn_read_your_writes", read_your_writes),
        scenario("txn_nested", nested),
        scenario("txn_duplicate_rule", duplicates),
        scenario("txn_ops_limit", ops_limit),
        crate::Scenario {
            name: "txn_ops_limit_configured",
            configure: |b| b.max_txn_ops(3),
            run: ops_limit_small,
        },
        scenario("txn_range_revision_checks", range_revisions),
        scenario("txn_errors", errors),
        scenario("txn_no_change_no_revision", no_change),
        scenario("txn_apply_check_order", check_order),
        scenario("txn_range_options", range_options),
    ]
}

fn seed(s: &mut Session) {
    s.put(put("a", "1"));
    s.put(put("b", "2"));
    s.put(put("a", "3"));
}

fn empty(s: &mut Session) {
    s.txn(TxnRequest::default());
    seed(s);
    s.txn(TxnRequest::default());
}

fn compare_targets(s: &mut Session) {
    seed(s);
    let results = [R::Equal, R::Greater, R::Less, R::NotEqual];
    let operands: [(T, Vec<U>); 5] = [
        (
            T::Version,
            vec![U::Version(1), U::Version(2), U::Version(3)],
        ),
        (
            T::Create,
            vec![
                U::CreateRevision(1),
                U::CreateRevision(2),
                U::CreateRevision(3),
            ],
        ),
        (
            T::Mod,
            vec![U::ModRevision(3), U::ModRevision(4), U::ModRevision(5)],
        ),
        (
            T::Value,
            vec![
                U::Value(b"2".to_vec()),
                U::Value(b"3".to_vec()),
                U::Value(b"33".to_vec()),
            ],
        ),
        (T::Lease, vec![U::Lease(0), U::Lease(1), U::Lease(-1)]),
    ];
    for (target, values) in operands {
        for value in values {
            for result in results {
                s.txn(txn(
                    vec![cmp("a", target, result, value.clone())],
                    vec![op_range(get("a"))],
                    vec![op_range(get("b"))],
                ));
            }
        }
    }
    // All compares must hold.
    s.txn(txn(
        vec![
            cmp("a", T::Version, R::Equal, U::Version(2)),
            cmp("b", T::Version, R::Equal, U::Version(2)),
        ],
        vec![],
        vec![],
    ));
}

fn compare_missing(s: &mut Session) {
    seed(s);
    for (target, value) in [
        (T::Version, U::Version(0)),
        (T::Create, U::CreateRevision(0)),
        (T::Mod, U::ModRevision(0)),
        (T::Lease, U::Lease(0)),
        (T::Value, U::Value(Vec::new())),
        (T::Value, U::Value(b"x".to_vec())),
    ] {
        for result in [R::Equal, R::NotEqual, R::Less, R::Greater] {
            s.txn(txn(
                vec![cmp("missing", target, result, value.clone())],
                vec![],
                vec![],
            ));
        }
    }
}

fn compare_ranges(s: &mut Session) {
    seed(s);
    s.put(put("c", "9"));
    let over = |key: &str, end: &str, target, result, value| Compare {
        range_end: end.as_bytes().to_vec(),
        ..cmp(key, target, result, value)
    };
    for (key, end) in [("a", "c"), ("a", "d"), ("a", "\0"), ("x", "z"), ("c", "a")] {
        s.txn(txn(
            vec![over(key, end, T::Version, R::Greater, U::Version(0))],
            vec![],
            vec![],
        ));
        s.txn(txn(
            vec![over(key, end, T::Create, R::Equal, U::CreateRevision(0))],
            vec![],
            vec![],
        ));
        s.txn(txn(
            vec![over(key, end, T::Mod, R::Less, U::ModRevision(5))],
            vec![],
            vec![],
        ));
        s.txn(txn(
            vec![over(
                key,
                end,
                T::Value,
                R::NotEqual,
                U::Value(b"2".to_vec()),
            )],
            vec![],
            vec![],
        ));
    }
}

fn compare_odd(s: &mut Session) {
    seed(s);
    // An operand of another target counts as zero.
    s.txn(txn(
        vec![cmp("a", T::Version, R::Equal, U::ModRevision(2))],
        vec![],
        vec![],
    ));
    s.txn(txn(
        vec![cmp("a", T::Version, R::Greater, U::ModRevision(99))],
        vec![],
        vec![],
    ));
    // No operand at all.
    s.txn(txn(
        vec![Compare {
            target_union: None,
            ..cmp("a", T::Version, R::Greater, U::Version(0))
        }],
        vec![],
        vec![],
    ));
    // Unknown enums are not validated.
    for (target, result) in [(9, 0), (0, 9), (3, 9), (9, 3)] {
        s.txn(txn(
            vec![Compare {
                target,
                result,
                ..cmp("a", T::Version, R::Equal, U::Version(7))
            }],
            vec![],
            vec![],
        ));
    }
}

fn read_your_writes(s: &mut Session) {
    seed(s);
    s.txn(txn(
        vec![],
        vec![
            op_range(all()),
            op_put("c", "new"),
            op_range(all()),
            op_del("a", ""),
            op_range(all()),
            op_put("b", "again"),
            op_range(get("b")),
        ],
        vec![],
    ));
    // The ranged-delete loophole: the delete wipes the key put before it.
    s.txn(txn(
        vec![],
        vec![op_put("d", "1"), op_del("c", "\0"), op_range(all())],
        vec![],
    ));
    s.range(all());
}

fn nested(s: &mut Session) {
    seed(s);
    let inner_ok = txn(
        vec![cmp("a", T::Value, R::Equal, U::Value(b"3".to_vec()))],
        vec![op_put("x", "then"), op_range(get("x"))],
        vec![op_put("x", "else")],
    );
    let inner_ko = txn(
        vec![cmp("a", T::Value, R::Equal, U::Value(b"nope".to_vec()))],
        vec![op_put("y", "then")],
        vec![
            op_put("y", "else"),
            op_txn(txn(vec![], vec![op_range(get("y"))], vec![])),
        ],
    );
    s.txn(txn(
        vec![],
        vec![op_txn(inner_ok), op_txn(inner_ko), op_range(all())],
        vec![],
    ));
    // A nested txn that changes nothing, and a read-only nested txn.
    s.txn(txn(
        vec![],
        vec![op_txn(txn(vec![], vec![op_del("zz", "")], vec![]))],
        vec![],
    ));
    s.txn(txn(vec![], vec![op_txn(TxnRequest::default())], vec![]));
    s.range(all());
}

fn duplicates(s: &mut Session) {
    seed(s);
    let nest =
        |success: Vec<RequestOp>, failure: Vec<RequestOp>| op_txn(txn(vec![], success, failure));
    let cases: Vec<Vec<RequestOp>> = vec![
        vec![op_put("a", "1"), op_put("a", "2")],
        vec![op_put("a", "1"), op_del("a", "")],
        vec![op_del("a", ""), op_put("a", "1")],
        vec![op_del("a", "c"), op_put("b", "1")],
        vec![op_del("a", ""), op_del("a", "")],
        vec![op_put("b", "1"), op_del("a", "\0")],
        vec![op_put("a", "1"), op_range(get("a")), op_put("b", "1")],
        vec![nest(vec![op_put("x", "1")], vec![op_put("x", "2")])],
        vec![
            nest(vec![op_put("x", "1")], vec![]),
            nest(vec![op_del("x", "")], vec![]),
        ],
        vec![
            nest(vec![op_del("x", "")], vec![]),
            nest(vec![op_put("x", "1")], vec![]),
        ],
        vec![op_put("a", "1"), nest(vec![op_del("a", "")], vec![])],
        vec![op_del("a", "b"), nest(vec![op_put("a", "1")], vec![])],
        vec![
            nest(vec![op_put("x", "1")], vec![]),
            nest(vec![op_put("x", "2")], vec![]),
        ],
        vec![nest(vec![op_put("x", "1")], vec![]), op_put("x", "2")],
    ];
    for ops in cases {
        s.txn(txn(vec![], ops.clone(), vec![]));
        // The failure branch is checked on its own.
        s.txn(txn(vec![], vec![op_put("a", "s")], ops));
    }
    s.range(all());
}

fn many(n: usize) -> Vec<RequestOp> {
    (0..n).map(|i| op_put(&format!("k{i:03}"), "v")).collect()
}

fn ops_limit(s: &mut Session) {
    s.txn(txn(vec![], many(128), vec![]));
    s.txn(txn(vec![], many(129), vec![]));
    s.txn(txn(vec![], vec![], many(129)));
    let compares = |n: usize| {
        (0..n)
            .map(|_| cmp("a", T::Version, R::Equal, U::Version(0)))
            .collect::<Vec<_>>()
    };
    s.txn(txn(compares(128), many(128), vec![]));
    s.txn(txn(compares(129), vec![], vec![]));
    s.txn(txn(
        vec![],
        vec![op_txn(txn(vec![], many(127), vec![]))],
        vec![],
    ));
    s.txn(txn(
        vec![],
        vec![op_txn(txn(vec![], many(128), vec![]))],
        vec![],
    ));
    // The limit is checked before the ops: too many wins over an empty key.
    let mut bad = many(129);
    bad.push(op_put("", "x"));
    s.txn(txn(vec![], bad, vec![]));
    s.range(RangeRequest {
        count_only: true,
        ..range("k", "l")
    });
}

fn ops_limit_small(s: &mut Session) {
    s.txn(txn(vec![], many(3), vec![]));
    s.txn(txn(vec![], many(4), vec![]));
    s.txn(txn(
        vec![],
        vec![op_txn(txn(vec![], many(2), vec![]))],
        vec![],
    ));
    s.txn(txn(
        vec![],
        vec![op_txn(txn(vec![], many(3), vec![]))],
        vec![],
    ));
    s.txn(txn(
        vec![],
        many(2),
        vec![op_txn(txn(vec![], many(1), vec![]))],
    ));
    s.txn(txn(
        vec![],
        many(2),
        vec![op_txn(txn(vec![], many(2), vec![]))],
    ));
}

fn range_revisions(s: &mut Session) {
    seed(s);
    let at = |revision| op_range(RangeRequest { revision, ..all() });
    for revision in [-2, -1, 0, 2, 4, 5] {
        s.txn(txn(vec![], vec![at(revision)], vec![]));
    }
    // current + 1 after a put in the same txn: still a future revision.
    s.txn(txn(vec![], vec![op_put("c", "1"), at(5)], vec![]));
    // Only the branch that runs is checked.
    s.txn(txn(vec![], vec![op_range(get("a"))], vec![at(99)]));
    s.compact(2);
    for revision in [-1, 1, 2, 3] {
        s.txn(txn(vec![], vec![at(revision)], vec![]));
    }
}

fn errors(s: &mut Session) {
    seed(s);
    s.txn(txn(
        vec![cmp("", T::Version, R::Equal, U::Version(0))],
        vec![],
        vec![],
    ));
    s.txn(txn(vec![], vec![op_put("", "x")], vec![]));
    s.txn(txn(vec![], vec![], vec![op_range(get(""))]));
    s.txn(txn(vec![], vec![op_del("", "")], vec![]));
    s.txn(txn(
        vec![],
        vec![op_txn(txn(vec![], vec![op_put("", "x")], vec![]))],
        vec![],
    ));
    s.txn(txn(vec![], vec![RequestOp { request: None }], vec![]));
    s.txn(txn(
        vec![],
        vec![op_range(RangeRequest {
            sort_order: 5,
            ..get("a")
        })],
        vec![],
    ));
    let ignore_value = |key: &str| RequestOp {
        request: Some(crate::pb::etcdserverpb::request_op::Request::RequestPut(
            PutRequest {
                ignore_value: true,
                ..put(key, "")
            },
        )),
    };
    let with_lease = |key: &str, lease| RequestOp {
        request: Some(crate::pb::etcdserverpb::request_op::Request::RequestPut(
            PutRequest {
                lease,
                ..put(key, "v")
            },
        )),
    };
    let value_given = RequestOp {
        request: Some(crate::pb::etcdserverpb::request_op::Request::RequestPut(
            PutRequest {
                ignore_value: true,
                ..put("a", "v")
            },
        )),
    };
    s.txn(txn(vec![], vec![value_given.clone()], vec![]));
    s.txn(txn(
        vec![],
        vec![op_put("c", "1"), ignore_value("missing")],
        vec![],
    ));
    s.txn(txn(vec![], vec![ignore_value("a")], vec![]));
    s.txn(txn(
        vec![],
        vec![op_put("c", "1"), with_lease("d", 77)],
        vec![],
    ));
    // A bad lease in the branch not taken is fine.
    s.txn(txn(
        vec![],
        vec![op_put("c", "2")],
        vec![with_lease("d", 77)],
    ));
    // Validation covers both branches.
    s.txn(txn(vec![], vec![op_put("c", "3")], vec![value_given]));
    // Errors are all or nothing.
    s.range(all());
}

fn no_change(s: &mut Session) {
    seed(s);
    s.txn(txn(
        vec![cmp("a", T::Version, R::Equal, U::Version(9))],
        vec![op_put("z", "1")],
        vec![],
    ));
    s.txn(txn(vec![], vec![op_del("nothing", "")], vec![]));
    s.txn(txn(
        vec![],
        vec![op_range(all()), op_del("nothing", "")],
        vec![],
    ));
    s.txn(txn(vec![], vec![op_del("a", ""), op_range(all())], vec![]));
    s.range(all());
}

/// Which apply-time error wins when several ops of the path would fail.
fn check_order(s: &mut Session) {
    seed(s);
    let future = || {
        op_range(RangeRequest {
            revision: 9,
            ..get("a")
        })
    };
    let compacted = || {
        op_range(RangeRequest {
            revision: 1,
            ..get("a")
        })
    };
    let put_with = |p: PutRequest| RequestOp {
        request: Some(crate::pb::etcdserverpb::request_op::Request::RequestPut(p)),
    };
    let missing_value = || {
        put_with(PutRequest {
            ignore_value: true,
            ..put("missing", "")
        })
    };
    let missing_lease = || {
        put_with(PutRequest {
            lease: 77,
            ..put("c", "v")
        })
    };
    s.txn(txn(vec![], vec![missing_value(), future()], vec![]));
    s.txn(txn(vec![], vec![future(), missing_value()], vec![]));
    s.txn(txn(vec![], vec![missing_lease(), future()], vec![]));
    s.txn(txn(vec![], vec![future(), missing_lease()], vec![]));
    s.txn(txn(vec![], vec![missing_lease(), missing_value()], vec![]));
    s.txn(txn(vec![], vec![missing_value(), missing_lease()], vec![]));
    // One put that fails both ways: the lease is checked first.
    let both = || {
        put_with(PutRequest {
            ignore_value: true,
            lease: 77,
            ..put("missing", "")
        })
    };
    s.txn(txn(vec![], vec![both()], vec![]));
    s.put(PutRequest {
        ignore_value: true,
        lease: 77,
        ..put("missing", "")
    });
    s.put(PutRequest {
        ignore_lease: true,
        ..put("missing", "v")
    });
    // Nested: the outer range against a nested put.
    s.txn(txn(
        vec![],
        vec![op_txn(txn(vec![], vec![missing_value()], vec![])), future()],
        vec![],
    ));
    s.txn(txn(
        vec![],
        vec![future(), op_txn(txn(vec![], vec![missing_value()], vec![]))],
        vec![],
    ));
    s.compact(2);
    s.txn(txn(vec![], vec![missing_value(), compacted()], vec![]));
    s.txn(txn(vec![], vec![compacted(), missing_lease()], vec![]));
    s.range(all());
}

fn range_options(s: &mut Session) {
    use crate::pb::etcdserverpb::range_request::{SortOrder, SortTarget};
    seed(s);
    s.put(put("c", "0"));
    let ranges = vec![
        op_range(RangeRequest { limit: 1, ..all() }),
        op_range(RangeRequest {
            keys_only: true,
            ..all()
        }),
        op_range(RangeRequest {
            count_only: true,
            ..all()
        }),
        op_range(RangeRequest {
            sort_order: SortOrder::Descend as i32,
            sort_target: SortTarget::Value as i32,
            ..all()
        }),
        op_range(RangeRequest {
            min_mod_revision: 4,
            ..all()
        }),
        op_range(RangeRequest {
            revision: 3,
            ..all()
        }),
    ];
    s.txn(txn(vec![], ranges.clone(), vec![]));
    let mut with_write = vec![op_del("b", "")];
    with_write.extend(ranges);
    s.txn(txn(vec![], with_write, vec![]));
}
