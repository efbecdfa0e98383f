//! The permission matrix: every service × {permitted, denied, no token, expired token}, with
//! etcd's exact codes and messages, on a server whose auth comes from a fixture and whose
//! tokens expire on the manual clock.

use std::time::Duration;

use etcd_client::{Client, Compare, CompareOp, ConnectOptions, LeaseTimeToLiveOptions, Txn, TxnOp};
use test_etcd::TestEtcd;

use crate::client;

/// Token TTL of the matrix server.
const TTL: Duration = Duration::from_secs(10);

/// root; alice reads and writes `app/`; bob reads `zzz` only. Lease 100 (for revoke) and lease
/// 200 (for the other lease calls) each hold a key under `app/`.
fn server() -> TestEtcd {
    TestEtcd::builder()
        .manual_clock()
        .auth_token_ttl(TTL)
        .fixture_str(
            r#"{
            "leases": [{"name": "revoked", "ttl": 600, "id": 100},
                       {"name": "kept", "ttl": 600, "id": 200}],
            "kvs": [{"key": "app/k", "value": "v"},
                    {"key": "app/revoked", "value": "x", "lease": "revoked"},
                    {"key": "app/kept", "value": "x", "lease": "kept"}],
            "auth": {
                "enabled": true,
                "roles": [{"name": "app", "permissions": [{"prefix": "app/", "type": "READWRITE"}]},
                          {"name": "other", "permissions": [{"key": "zzz", "type": "READ"}]}],
                "users": [{"name": "root", "password": "rootpw", "roles": ["root"]},
                          {"name": "alice", "password": "alicepw", "roles": ["app"]},
                          {"name": "bob", "password": "bobpw", "roles": ["other"]}]
            }}"#,
        )
        .start()
        .expect("start")
}

/// A logged-in client that does not log in again by itself, so an expired token shows.
async fn login(etcd: &TestEtcd, user: &str, password: &str) -> Client {
    let options = ConnectOptions::new()
        .with_user(user, password)
        .with_auto_token_refresh(false);
    Client::connect(etcd.endpoints(), Some(options))
        .await
        .expect("login")
}

/// Every call of the matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Call {
    Range,
    Put,
    Delete,
    Txn,
    Compact,
    Watch,
    LeaseGrant,
    LeaseRevoke,
    LeaseKeepAlive,
    LeaseTimeToLive,
    LeaseLeases,
    Status,
    AlarmList,
    Defragment,
    Hash,
    Snapshot,
    MemberList,
    MemberAdd,
    UserList,
    RoleAdd,
    UserGetSelf,
    Lock,
    Campaign,
}

/// Who may make a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Needs {
    /// READ or WRITE on keys under `app/`: alice may, bob may not.
    Keys,
    /// Any valid token: alice may; nobody is denied.
    Token,
    /// The root role: root may, alice may not.
    Root,
}

impl Call {
    const ALL: [Call; 23] = [
        Call::Range,
        Call::Put,
        Call::Delete,
        Call::Txn,
        Call::Compact,
        Call::Watch,
        Call::LeaseGrant,
        Call::LeaseRevoke,
        Call::LeaseKeepAlive,
        Call::LeaseTimeToLive,
        Call::LeaseLeases,
        Call::Status,
        Call::AlarmList,
        Call::Defragment,
        Call::Hash,
        Call::Snapshot,
        Call::MemberList,
        Call::MemberAdd,
        Call::UserList,
        Call::RoleAdd,
        Call::UserGetSelf,
        Call::Lock,
        Call::Campaign,
    ];

    fn needs(self) -> Needs {
        match self {
            Call::Range
            | Call::Put
            | Call::Delete
            | Call::Txn
            | Call::Watch
            | Call::LeaseRevoke
            | Call::LeaseKeepAlive
            | Call::LeaseTimeToLive
            | Call::LeaseLeases
            | Call::Lock
            | Call::Campaign
            | Call::UserGetSelf => Needs::Keys,
            Call::LeaseGrant | Call::Status | Call::AlarmList | Call::MemberList => Needs::Token,
            Call::Compact
            | Call::Defragment
            | Call::Hash
            | Call::Snapshot
            | Call::MemberAdd
            | Call::UserList
            | Call::RoleAdd => Needs::Root,
        }
    }

    /// Whether etcd answers through its Go client (Lock, Election): codes are lost, every error
    /// is `Unknown` with its message.
    fn via_recipe(self) -> bool {
        matches!(self, Call::Lock | Call::Campaign)
    }

    /// Makes the call; an error as etcd's Go client prints it,
    /// `rpc error: code = ... desc = ...` (for Watch, the cancel reason).
    async fn run(self, c: &mut Client, user: &str) -> Result<(), String> {
        let result = match self {
            Call::Range => c.get("app/k", None).await.map(drop),
            Call::Put => c.put("app/new", "1", None).await.map(drop),
            Call::Delete => c.delete("app/new", None).await.map(drop),
            Call::Txn => {
                let txn = Txn::new()
                    .when([Compare::value("app/k", CompareOp::Equal, "v")])
                    .and_then([TxnOp::put("app/t", "1", None)])
                    .or_else([TxnOp::get("app/k", None)]);
                c.txn(txn).await.map(drop)
            }
            Call::Compact => c.compact(2, None).await.map(drop),
            Call::Watch => {
                let mut stream = c.watch("app/k", None).await.map_err(render)?;
                let created = stream.message().await.map_err(render)?;
                return match created {
                    Some(resp) if resp.canceled() => Err(resp.cancel_reason().to_owned()),
                    Some(_) => Ok(()),
                    None => Err("watch stream ended".into()),
                };
            }
            Call::LeaseGrant => c.lease_grant(60, None).await.map(drop),
            Call::LeaseRevoke => c.lease_revoke(100).await.map(drop),
            Call::LeaseKeepAlive => {
                let (mut keeper, mut stream) = c.lease_keep_alive(200).await.map_err(render)?;
                keeper.keep_alive().await.map_err(render)?;
                return match stream.message().await {
                    Ok(Some(_)) => Ok(()),
                    Ok(None) => Err("keepalive stream ended".into()),
                    Err(err) => Err(render(err)),
                };
            }
            Call::LeaseTimeToLive => {
                let keys = LeaseTimeToLiveOptions::new().with_keys();
                c.lease_time_to_live(200, Some(keys)).await.map(drop)
            }
            Call::LeaseLeases => c.leases().await.map(drop),
            Call::Status => c.status().await.map(drop),
            Call::AlarmList => c
                .alarm(
                    etcd_client::AlarmAction::Get,
                    etcd_client::AlarmType::None,
                    None,
                )
                .await
                .map(drop),
            Call::Defragment => c.defragment().await.map(drop),
            Call::Hash => c.hash().await.map(drop),
            Call::Snapshot => {
                let mut stream = c.snapshot().await.map_err(render)?;
                while let Some(_chunk) = stream.message().await.map_err(render)? {}
                Ok(())
            }
            Call::MemberList => c.member_list().await.map(drop),
            Call::MemberAdd => c.member_add(["http://10.9.9.9:2380"], None).await.map(drop),
            Call::UserList => c.user_list().await.map(drop),
            Call::RoleAdd => c.role_add(format!("made-by-{user}")).await.map(drop),
            Call::UserGetSelf => c.user_get(user).await.map(drop),
            Call::Lock => c.lock("app/lock", None).await.map(drop),
            Call::Campaign => c.campaign("app/election", "me", 0).await.map(drop),
        };
        result.map_err(render)
    }

    /// The error etcd gives for `message` (with its usual `code`) on this call.
    fn refusal(self, code: &str, message: &str) -> String {
        let code = if self.via_recipe() { "Unknown" } else { code };
        format!("rpc error: code = {code} desc = {message}")
    }
}

fn render(err: etcd_client::Error) -> String {
    match err {
        etcd_client::Error::GRpcStatus(s) => {
            format!("rpc error: code = {:?} desc = {}", s.code(), s.message())
        }
        other => format!("not a gRPC status: {other:?}"),
    }
}

#[tokio::test]
async fn every_call_is_permitted_denied_and_refused_as_etcd_does() {
    let etcd = server();
    let mut root = login(&etcd, "root", "rootpw").await;
    let mut alice = login(&etcd, "alice", "alicepw").await;
    let mut bob = login(&etcd, "bob", "bobpw").await;
    let mut anonymous = client(&etcd).await;
    let mut failures = Vec::new();
    let mut check =
        |call: Call, column: &str, got: Result<(), String>, want: Result<(), String>| {
            if got != want {
                failures.push(format!("{call:?} / {column}: got {got:?}, want {want:?}"));
            }
        };

    // Denied and no token first: they change nothing that the permitted calls need.
    for call in Call::ALL {
        let denied = match call.needs() {
            Needs::Keys => Some(("bob", &mut bob)),
            Needs::Root => Some(("alice", &mut alice)),
            Needs::Token => None,
        };
        if let Some((user, c)) = denied {
            // UserGet of oneself is always allowed: bob asks about alice instead.
            let got = if call == Call::UserGetSelf {
                c.user_get("alice").await.map(drop).map_err(render)
            } else {
                call.run(c, user).await
            };
            let want = Err(call.refusal("PermissionDenied", "etcdserver: permission denied"));
            check(call, "denied", got, want);
        }
        let got = call.run(&mut anonymous, "anonymous").await;
        let want = Err(call.refusal("InvalidArgument", "etcdserver: user name is empty"));
        check(call, "no token", got, want);
    }
    for call in Call::ALL {
        let (user, c) = match call.needs() {
            Needs::Keys | Needs::Token => ("alice", &mut alice),
            Needs::Root => ("root", &mut root),
        };
        check(call, "permitted", call.run(c, user).await, Ok(()));
    }

    // Act: the tokens' TTL passes with no use.
    etcd.advance(TTL);

    for call in Call::ALL {
        let (user, c) = match call.needs() {
            Needs::Keys | Needs::Token => ("alice", &mut alice),
            Needs::Root => ("root", &mut root),
        };
        let want = Err(call.refusal("Unauthenticated", "etcdserver: invalid auth token"));
        check(call, "expired", call.run(c, user).await, want);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test]
async fn a_token_lives_its_ttl_from_its_last_use() {
    let etcd = server();
    let mut alice = login(&etcd, "alice", "alicepw").await;
    etcd.advance(TTL - Duration::from_millis(1));
    alice.get("app/k", None).await.unwrap();
    etcd.advance(TTL - Duration::from_millis(1));
    alice.get("app/k", None).await.unwrap();
    etcd.advance(TTL);
    let err = alice.get("app/k", None).await.unwrap_err();
    assert_eq!(
        render(err),
        "rpc error: code = Unauthenticated desc = etcdserver: invalid auth token"
    );
}

#[tokio::test]
async fn etcd_client_logs_in_again_when_its_token_expired() {
    let etcd = server();
    let options = ConnectOptions::new()
        .with_user("alice", "alicepw")
        .with_auto_token_refresh(true);
    let mut alice = Client::connect(etcd.endpoints(), Some(options))
        .await
        .unwrap();
    etcd.advance(TTL * 3);
    alice.put("app/after", "1", None).await.unwrap();
    assert_eq!(etcd.get("app/after").as_deref(), Some("1"));
}

#[tokio::test]
async fn a_fixture_starts_the_server_with_auth_on() {
    let etcd = server();
    let mut anonymous = client(&etcd).await;
    let err = anonymous.get("app/k", None).await.unwrap_err();
    assert_eq!(
        render(err),
        "rpc error: code = InvalidArgument desc = etcdserver: user name is empty"
    );
    let mut root = login(&etcd, "root", "rootpw").await;
    let mut users = root.user_list().await.unwrap().users().to_vec();
    users.sort();
    assert_eq!(users, ["alice", "bob", "root"]);
    let perms = root.role_get("app").await.unwrap();
    let perm = &perms.permissions()[0];
    assert_eq!((perm.key(), perm.range_end()), (&b"app/"[..], &b"app0"[..]));
}

#[tokio::test]
async fn a_no_password_user_from_a_fixture_cannot_log_in() {
    let etcd = TestEtcd::builder()
        .fixture_str(r#"{"auth": {"users": [{"name": "svc", "no_password": true}]}}"#)
        .start()
        .unwrap();
    let mut c = client(&etcd).await;
    c.user_add("root", "pw", None).await.unwrap();
    c.user_grant_role("root", "root").await.unwrap();
    c.auth_enable().await.unwrap();
    let options = ConnectOptions::new().with_user("svc", "");
    let Err(err) = Client::connect(etcd.endpoints(), Some(options)).await else {
        panic!("a no-password user logged in");
    };
    assert_eq!(
        render(err),
        "rpc error: code = Unknown desc = auth: authentication failed, password was given for no password user"
    );
}
