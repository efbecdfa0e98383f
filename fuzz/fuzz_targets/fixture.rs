//! Any bytes as a fixture file: the loader answers Ok or a fixture error with a line and column,
//! never panics; what loads seeds a server whose dump loads back to the same dump.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| test_etcd::__fuzz::fixture(data));
