//! Any bytes as the JSON body of any gateway route: decoded as the gateway does (never a
//! panic), and what encodes renders back to JSON that encodes the same.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some((&selector, body)) = data.split_first() {
        test_etcd::__fuzz::gateway(selector, body);
    }
});
