//! Auth and RBAC through etcd-client: management, tokens, and enforcement on KV and Watch.

use etcd_client::{Client, ConnectOptions, GetOptions, Permission, Txn, TxnOp, WatchOptions};
use test_etcd::TestEtcd;
use tonic::Code;

use crate::pb::etcdserverpb::{
    auth_client::AuthClient, kv_client::KvClient, AuthStatusRequest, RangeRequest,
};
use crate::{client, status};

async fn as_user(etcd: &TestEtcd, name: &str, password: &str) -> Client {
    let options = ConnectOptions::new().with_user(name, password);
    Client::connect(etcd.endpoints(), Some(options))
        .await
        .expect("login")
}

/// A server with auth on: `root` (root role) and `alice` (role `app`: read-write on `app/`,
/// read on `shared`).
async fn secured() -> (TestEtcd, Client) {
    let etcd = TestEtcd::start();
    let mut admin = client(&etcd).await;
    admin.user_add("root", "rootpw", None).await.unwrap();
    admin.user_grant_role("root", "root").await.unwrap();
    admin.user_add("alice", "alicepw", None).await.unwrap();
    admin.role_add("app").await.unwrap();
    admin
        .role_grant_permission("app", Permission::read_write("app/").with_prefix())
        .await
        .unwrap();
    admin
        .role_grant_permission("app", Permission::read("shared"))
        .await
        .unwrap();
    admin.user_grant_role("alice", "app").await.unwrap();
    admin.auth_enable().await.unwrap();
    let root = as_user(&etcd, "root", "rootpw").await;
    (etcd, root)
}

async fn auth_status(etcd: &TestEtcd) -> (bool, u64) {
    let channel = tonic::transport::Endpoint::from_shared(etcd.endpoint())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let resp = AuthClient::new(channel)
        .auth_status(AuthStatusRequest {})
        .await
        .unwrap()
        .into_inner();
    (resp.enabled, resp.auth_revision)
}

#[tokio::test]
async fn enabling_auth_needs_a_root_user_holding_the_root_role() {
    let etcd = TestEtcd::start();
    let mut c = client(&etcd).await;
    let err = c.auth_enable().await.unwrap_err();
    assert_eq!(
        status(err),
        (
            Code::FailedPrecondition,
            "etcdserver: root user does not exist".into()
        )
    );
    c.user_add("root", "pw", None).await.unwrap();
    let err = c.auth_enable().await.unwrap_err();
    assert_eq!(
        status(err),
        (
            Code::FailedPrecondition,
            "etcdserver: root user does not have root role".into()
        )
    );
    c.user_grant_role("root", "root").await.unwrap();
    assert_eq!(auth_status(&etcd).await, (false, 3));
    c.auth_enable().await.unwrap();
    assert_eq!(
        auth_status(&etcd).await,
        (true, 3),
        "enabling does not bump the auth revision"
    );
}

#[tokio::test]
async fn requests_without_a_token_or_with_a_bad_one_are_refused() {
    let (etcd, _root) = secured().await;
    let mut anonymous = client(&etcd).await;
    let err = anonymous.get("app/x", None).await.unwrap_err();
    assert_eq!(
        status(err),
        (
            Code::InvalidArgument,
            "etcdserver: user name is empty".into()
        )
    );
    let channel = tonic::transport::Endpoint::from_shared(etcd.endpoint())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut request = tonic::Request::new(RangeRequest {
        key: b"app/x".to_vec(),
        ..Default::default()
    });
    request
        .metadata_mut()
        .insert("token", "bogus.1".parse().unwrap());
    let err = KvClient::new(channel.clone())
        .range(request)
        .await
        .unwrap_err();
    assert_eq!(
        (err.code(), err.message()),
        (Code::Unauthenticated, "etcdserver: invalid auth token")
    );
    // AuthStatus needs no token, but refuses a bad one, as etcd 3.7.2 does.
    let mut request = tonic::Request::new(AuthStatusRequest {});
    request
        .metadata_mut()
        .insert("token", "bogus.1".parse().unwrap());
    let err = AuthClient::new(channel.clone())
        .auth_status(request)
        .await
        .unwrap_err();
    assert_eq!(
        (err.code(), err.message()),
        (Code::Unauthenticated, "etcdserver: invalid auth token")
    );
    assert!(auth_status(&etcd).await.0);
    let wrong = ConnectOptions::new().with_user("alice", "wrong");
    let Err(err) = Client::connect(etcd.endpoints(), Some(wrong)).await else {
        panic!("a wrong password logs in")
    };
    assert_eq!(
        status(err),
        (
            Code::InvalidArgument,
            "etcdserver: authentication failed, invalid user ID or password".into()
        )
    );
}

#[tokio::test]
async fn permissions_cover_keys_ranges_and_prefixes() {
    let (etcd, mut root) = secured().await;
    root.put("shared", "s", None).await.unwrap();
    let mut alice = as_user(&etcd, "alice", "alicepw").await;
    alice.put("app/a", "1", None).await.unwrap();
    assert_eq!(
        alice
            .get("app/", Some(GetOptions::new().with_prefix()))
            .await
            .unwrap()
            .count(),
        1
    );
    assert_eq!(
        alice.get("shared", None).await.unwrap().kvs()[0].value(),
        b"s"
    );
    let denied = (
        Code::PermissionDenied,
        "etcdserver: permission denied".to_owned(),
    );
    assert_eq!(
        status(alice.put("shared", "x", None).await.unwrap_err()),
        denied,
        "read-only key"
    );
    assert_eq!(status(alice.get("other", None).await.unwrap_err()), denied);
    let all = alice
        .get("", Some(GetOptions::new().with_all_keys()))
        .await
        .unwrap_err();
    assert_eq!(status(all), denied, "a range must be covered whole");
    assert_eq!(
        status(alice.compact(1, None).await.unwrap_err()),
        denied,
        "compaction is for root"
    );
}

#[tokio::test]
async fn txns_are_checked_on_both_branches() {
    let (etcd, _root) = secured().await;
    let mut alice = as_user(&etcd, "alice", "alicepw").await;
    let untaken_write = Txn::new()
        .and_then([TxnOp::put("app/k", "v", None)])
        .or_else([TxnOp::put("other", "v", None)]);
    let err = alice.txn(untaken_write).await.unwrap_err();
    assert_eq!(
        status(err),
        (
            Code::PermissionDenied,
            "etcdserver: permission denied".into()
        )
    );
    assert_eq!(etcd.get("app/k"), None);
    let fine = Txn::new().and_then([TxnOp::put("app/k", "v", None)]);
    assert!(alice.txn(fine).await.is_ok());
}

#[tokio::test]
async fn a_refused_watch_is_created_and_canceled_with_the_status_text() {
    let (etcd, _root) = secured().await;
    let mut alice = as_user(&etcd, "alice", "alicepw").await;
    let mut stream = alice
        .watch("other", Some(WatchOptions::new()))
        .await
        .unwrap();
    let resp = stream.message().await.unwrap().unwrap();
    assert!(resp.created() && resp.canceled());
    assert_eq!(resp.watch_id(), -1);
    assert_eq!(
        resp.cancel_reason(),
        "rpc error: code = PermissionDenied desc = etcdserver: permission denied"
    );
    stream
        .watch("app/", Some(WatchOptions::new().with_prefix()))
        .await
        .unwrap();
    let ok = stream.message().await.unwrap().unwrap();
    assert!(
        ok.created() && !ok.canceled(),
        "the stream stays open for allowed watches"
    );
}

#[tokio::test]
async fn user_and_role_management_answers_like_etcd() {
    let (_etcd, mut root) = secured().await;
    let cases = [
        (
            root.user_add("alice", "x", None).await.map(drop),
            Code::FailedPrecondition,
            "etcdserver: user name already exists",
        ),
        (
            root.user_add("", "x", None).await.map(drop),
            Code::InvalidArgument,
            "etcdserver: user name is empty",
        ),
        (
            root.user_get("nobody").await.map(drop),
            Code::FailedPrecondition,
            "etcdserver: user name not found",
        ),
        (
            root.user_grant_role("alice", "nope").await.map(drop),
            Code::FailedPrecondition,
            "etcdserver: role name not found",
        ),
        (
            root.user_revoke_role("alice", "root").await.map(drop),
            Code::FailedPrecondition,
            "etcdserver: role is not granted to the user",
        ),
        (
            root.user_delete("root").await.map(drop),
            Code::InvalidArgument,
            "etcdserver: invalid auth management",
        ),
        (
            root.role_add("app").await.map(drop),
            Code::FailedPrecondition,
            "etcdserver: role name already exists",
        ),
        (
            root.role_add("").await.map(drop),
            Code::InvalidArgument,
            "etcdserver: role name is empty",
        ),
        (
            root.role_revoke_permission("app", "zzz", None)
                .await
                .map(drop),
            Code::FailedPrecondition,
            "etcdserver: permission is not granted to the role",
        ),
        (
            root.role_grant_permission("app", Permission::read("z").with_range_end("a"))
                .await
                .map(drop),
            Code::InvalidArgument,
            "etcdserver: invalid auth management",
        ),
    ];
    for (result, code, message) in cases {
        assert_eq!(status(result.unwrap_err()), (code, message.to_owned()));
    }
    assert_eq!(root.user_list().await.unwrap().users(), ["alice", "root"]);
    assert_eq!(root.user_get("alice").await.unwrap().roles(), ["app"]);
    let perms = root.role_get("app").await.unwrap().permissions();
    assert_eq!(perms.len(), 2);
    assert_eq!(root.role_list().await.unwrap().roles(), ["app"]);
}

#[tokio::test]
async fn disabling_auth_drops_every_token() {
    let (etcd, mut root) = secured().await;
    let mut alice = as_user(&etcd, "alice", "alicepw").await;
    root.auth_disable().await.unwrap();
    assert!(!auth_status(&etcd).await.0);
    let mut anyone = client(&etcd).await;
    anyone.put("other", "v", None).await.unwrap();
    anyone.auth_enable().await.unwrap();
    let err = alice.get("app/a", None).await.unwrap_err();
    assert_eq!(status(err).1, "etcdserver: invalid auth token");
}

#[tokio::test]
async fn tokens_expire_on_the_server_clock_and_use_keeps_them_alive() {
    let etcd = TestEtcd::builder().manual_clock().start().unwrap();
    let mut admin = client(&etcd).await;
    admin.user_add("root", "pw", None).await.unwrap();
    admin.user_grant_role("root", "root").await.unwrap();
    admin.auth_enable().await.unwrap();
    let mut root = as_user(&etcd, "root", "pw").await;
    etcd.advance(std::time::Duration::from_secs(200));
    root.put("k", "v", None).await.unwrap();
    etcd.advance(std::time::Duration::from_secs(200));
    root.put("k", "v", None)
        .await
        .expect("each use gives the token another 300 s");
    etcd.advance(std::time::Duration::from_secs(301));
    let err = root.put("k", "v", None).await.unwrap_err();
    assert_eq!(
        status(err),
        (
            Code::Unauthenticated,
            "etcdserver: invalid auth token".into()
        )
    );
}

#[tokio::test]
async fn leases_maintenance_cluster_and_lock_are_guarded_too() {
    let (etcd, mut root) = secured().await;
    let mut anonymous = client(&etcd).await;
    let empty = (
        Code::InvalidArgument,
        "etcdserver: user name is empty".to_owned(),
    );
    assert_eq!(
        status(anonymous.lease_grant(10, None).await.unwrap_err()),
        empty
    );
    assert_eq!(status(anonymous.status().await.unwrap_err()), empty);
    assert_eq!(status(anonymous.member_list().await.unwrap_err()), empty);
    let mut alice = as_user(&etcd, "alice", "alicepw").await;
    let denied = (
        Code::PermissionDenied,
        "etcdserver: permission denied".to_owned(),
    );
    assert!(alice.status().await.is_ok(), "Status needs a token only");
    assert!(
        alice.lease_grant(10, None).await.is_ok(),
        "LeaseGrant needs a token only"
    );
    assert_eq!(status(alice.defragment().await.unwrap_err()), denied);
    assert_eq!(status(alice.hash_kv(0).await.unwrap_err()), denied);
    let lease = root.lease_grant(10, None).await.unwrap().id();
    root.put(
        "other",
        "v",
        Some(etcd_client::PutOptions::new().with_lease(lease)),
    )
    .await
    .unwrap();
    assert_eq!(
        status(alice.lease_revoke(lease).await.unwrap_err()),
        denied,
        "keys alice may not write"
    );
    // Lock answers through etcd's Go client, which drops the code (spec §5).
    assert_eq!(
        status(alice.lock("locks/x", None).await.unwrap_err()),
        (Code::Unknown, "etcdserver: permission denied".into())
    );
    assert!(alice.lock("app/lock", None).await.is_ok());
    assert!(root.defragment().await.is_ok());
}

#[tokio::test]
async fn users_roles_and_auth_survive_dump_and_load_without_clear_passwords() {
    let (etcd, mut root) = secured().await;
    root.put("app/x", "1", None).await.unwrap();
    let dump = etcd.dump();
    let text = dump.to_string();
    assert!(
        !text.contains("alicepw") && !text.contains("rootpw"),
        "no password in clear: {text}"
    );
    let copy = TestEtcd::builder()
        .fixture_json(dump.clone())
        .start()
        .unwrap();
    assert_eq!(copy.dump(), dump, "dump -> load -> dump is identical");
    // The stored hashes still check the same passwords, and the permissions hold.
    let mut alice = as_user(&copy, "alice", "alicepw").await;
    assert_eq!(
        alice.get("app/x", None).await.unwrap().kvs()[0].value(),
        b"1"
    );
    let denied = alice.put("other", "v", None).await.unwrap_err();
    assert_eq!(status(denied).0, Code::PermissionDenied);
    assert!(Client::connect(
        copy.endpoints(),
        Some(ConnectOptions::new().with_user("alice", "nope"))
    )
    .await
    .is_err());
}

#[tokio::test]
async fn member_add_checks_its_urls_before_the_caller() {
    // As etcd 3.7.2: bad URLs are refused as such even without a token.
    let (etcd, _root) = secured().await;
    let mut anonymous = client(&etcd).await;
    assert_eq!(
        status(anonymous.member_add(["foo"], None).await.unwrap_err()),
        (
            Code::InvalidArgument,
            "etcdserver: given member URLs are invalid".into()
        )
    );
    assert_eq!(
        status(
            anonymous
                .member_add(["http://10.0.0.9:2380"], None)
                .await
                .unwrap_err()
        ),
        (
            Code::InvalidArgument,
            "etcdserver: user name is empty".into()
        )
    );
}
