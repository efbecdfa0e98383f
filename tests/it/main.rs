//! Integration tests: a real etcd client (`etcd-client`) against `TestEtcd` over gRPC.

mod auth;
mod auth_matrix;
mod bad_input;
mod cli;
mod cluster;
mod cookbook;
mod election;
mod faults;
mod fork;
mod gateway;
mod guard;
mod history;
mod http;
mod in_memory;
mod kv;
mod lease;
mod load;
mod lock;
mod maintenance;
mod raw;
mod real;
mod rstest_fixtures;
mod tls;
mod txn;
mod watch;
mod watch_stress;

use etcd_client::Client;
use test_etcd::TestEtcd;

/// Our own generated API code, for requests `etcd-client` cannot send (unknown enums, raw
/// fields, unimplemented services).
#[allow(dead_code, unused_qualifications, clippy::all)]
#[path = "../../src/pb/mod.rs"]
mod pb;

/// A fresh server and a client connected to it.
async fn connect() -> (TestEtcd, Client) {
    let etcd = TestEtcd::start();
    let client = client(&etcd).await;
    (etcd, client)
}

async fn client(etcd: &TestEtcd) -> Client {
    Client::connect(etcd.endpoints(), None)
        .await
        .expect("connect")
}

/// The gRPC status of a failed call.
fn status(err: etcd_client::Error) -> (tonic::Code, String) {
    match err {
        etcd_client::Error::GRpcStatus(s) => (s.code(), s.message().to_owned()),
        other => panic!("expected a gRPC status, got {other:?}"),
    }
}

/// The header revision of a response.
fn rev(header: Option<&etcd_client::ResponseHeader>) -> i64 {
    header.expect("a header").revision()
}
