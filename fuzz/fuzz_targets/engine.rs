//! Any sequence of requests (malformed ones included) through the engine, with the MVCC, watch
//! and lease invariants checked after every step.
#![no_main]

use libfuzzer_sys::fuzz_target;
use test_etcd::__fuzz::Op;

/// Every step re-reads each retained revision, so a step costs more the longer the sequence:
/// longer inputs find little that shorter ones do not, and slow the search down.
const MAX_OPS: usize = 64;

fuzz_target!(|ops: Vec<Op>| {
    test_etcd::__fuzz::engine(&ops[..ops.len().min(MAX_OPS)]);
});
