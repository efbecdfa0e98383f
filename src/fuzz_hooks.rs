//! What the fuzz targets call (feature `__fuzz`, not API). Each function panics on a broken
//! invariant, which is what the fuzzer looks for; otherwise it returns whatever the input was.

pub use crate::engine::invariants::{
    Checker, Compare, CompareValue, Delete, End, Key, LeaseRef, Op, Put, Range, Rev, Txn, TxnOp,
};

use crate::engine::{Clock, Engine, Limits};
use crate::fixture::{self, FixtureError, FixtureSource};

/// Loads `bytes` as a fixture file. A mistake must be a [`FixtureError::Invalid`] with a line
/// and column; a fixture that loads must seed a fresh server, and its dump must load back to a
/// state that dumps the same.
pub fn fixture(bytes: &[u8]) {
    let loaded = match fixture::load_text(bytes, "<fuzz>") {
        Ok(loaded) => loaded,
        Err(FixtureError::Invalid { line, column, .. }) => {
            assert!(
                line.is_some() && column.is_some(),
                "a text error without a position"
            );
            return;
        }
        Err(err) => panic!("not a fixture error for text: {err}"),
    };
    let engine = Engine::with_clock(Limits::default(), Clock::manual());
    let source = FixtureSource::Text(String::new());
    if let Err(err) = crate::test_etcd::seed(&engine, loaded.clone(), &source) {
        panic!("a fixture that parsed does not seed a fresh server: {err}");
    }
    // Layered over itself: a history must be refused (it describes the store from revision 1),
    // anything else must apply again (leases renewed, roles and users extended).
    let layered = engine.fork();
    let refused = loaded.history.is_some() && !layered.is_fresh();
    let again = crate::test_etcd::seed(&layered, loaded.clone(), &source);
    assert_eq!(again.is_err(), refused, "layering: {again:?}");
    let dump = crate::dump::dump(&engine);
    let again = FixtureSource::Json(dump.clone());
    let reloaded = match fixture::load(&again) {
        Ok(reloaded) => reloaded,
        Err(err) => panic!("a dump does not load: {err}\n{dump}"),
    };
    let copy = Engine::with_clock(Limits::default(), Clock::manual());
    if let Err(err) = crate::test_etcd::seed(&copy, reloaded, &again) {
        panic!("a dump does not seed a fresh server: {err}\n{dump}");
    }
    assert_eq!(
        crate::dump::dump(&copy),
        dump,
        "dump -> load -> dump differs"
    );
}

/// Applies `ops` to a fresh engine, checking the MVCC invariants after each, then revokes every
/// lease left and checks no key stayed behind.
pub fn engine(ops: &[Op]) {
    let mut checker = Checker::fuzz();
    for op in ops {
        checker.apply(op);
    }
    checker.finish();
}

/// Applies `ops`, snapshots the engine, overwrites snapshot bytes as `edits` say (position
/// modulo the length, new byte), and restores the result: a damaged snapshot must be refused or
/// give a consistent store, which then keeps the invariants under the same `ops` again.
pub fn snapshot(ops: &[Op], edits: &[(u16, u8)]) {
    let mut checker = Checker::fuzz();
    for op in ops {
        checker.apply(op);
    }
    let mut bytes = checker.snapshot();
    for &(at, byte) in edits {
        let at = usize::from(at) % bytes.len().max(1);
        if let Some(slot) = bytes.get_mut(at) {
            *slot = byte;
        }
    }
    if let Some(mut restored) = Checker::restored(&bytes) {
        for op in ops {
            restored.apply(op);
        }
        restored.finish();
    }
}

/// `body` as the JSON body of a gateway call (the method picked by `selector`): decoded as the
/// gateway does, never a panic; what encodes renders back to JSON that encodes the same.
pub fn gateway(selector: u8, body: &[u8]) {
    crate::server::fuzz_gateway_body(selector, body);
}
