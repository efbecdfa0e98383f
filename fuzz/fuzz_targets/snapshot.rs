//! Snapshots of request sequences with bytes overwritten, restored: refused, or a store that
//! keeps every invariant.
#![no_main]

use libfuzzer_sys::fuzz_target;
use test_etcd::__fuzz::Op;

/// Each op runs twice (before the snapshot and after the restore), each step re-reading every
/// retained revision: short sequences keep the search fast.
const MAX_OPS: usize = 32;

fuzz_target!(|input: (Vec<(u16, u8)>, Vec<Op>)| {
    let (edits, ops) = input;
    test_etcd::__fuzz::snapshot(&ops[..ops.len().min(MAX_OPS)], &edits);
});
