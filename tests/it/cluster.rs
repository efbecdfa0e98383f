//! The simulated cluster through etcd-client: members with their own endpoints, MemberList,
//! the etcdctl member workflow (add a learner, start it, promote it, remove it), etcd's
//! reconfiguration errors, and MoveLeader.

use std::net::TcpStream;
use std::time::Duration;

use etcd_client::{Client, GetOptions, MemberAddOptions};
use test_etcd::{Error, TestEtcd};
use tonic::Code;

use crate::status;

async fn connect_to(endpoint: &str) -> Client {
    Client::connect([endpoint], None).await.expect("connect")
}

fn three() -> TestEtcd {
    TestEtcd::builder().members(3).start().unwrap()
}

/// (id, name, client URLs, learner) of every member, as MemberList shows them.
async fn list(client: &mut Client) -> Vec<(u64, String, Vec<String>, bool)> {
    client
        .member_list()
        .await
        .unwrap()
        .members()
        .iter()
        .map(|m| {
            (
                m.id(),
                m.name().to_owned(),
                m.client_urls().to_vec(),
                m.is_learner(),
            )
        })
        .collect()
}

#[tokio::test]
async fn every_member_has_its_own_endpoint_serving_the_same_data() {
    let etcd = three();
    let endpoints = etcd.endpoints();
    assert_eq!(endpoints.len(), 3);
    let mut a = connect_to(&endpoints[0]).await;
    let mut b = connect_to(&endpoints[2]).await;

    let members = list(&mut a).await;
    assert_eq!(members.len(), 3);
    assert!(members.windows(2).all(|w| w[0].0 < w[1].0), "sorted by ID");
    let mut names: Vec<&str> = members.iter().map(|m| m.1.as_str()).collect();
    names.sort();
    assert_eq!(names, ["infra1", "infra2", "infra3"]);
    let urls: Vec<String> = members.iter().map(|m| m.2[0].clone()).collect();
    assert_eq!(
        urls, endpoints,
        "endpoints() lists the members' client URLs in ID order"
    );

    a.put("shared", "yes", None).await.unwrap();
    let got = b.get("shared", None).await.unwrap();
    assert_eq!(got.kvs()[0].value(), b"yes");
    let (ha, hb) = (a.status().await.unwrap(), b.status().await.unwrap());
    let (ha, hb) = (ha.header().unwrap(), hb.header().unwrap());
    assert_ne!(
        ha.member_id(),
        hb.member_id(),
        "each member answers as itself"
    );
    assert_eq!(ha.cluster_id(), hb.cluster_id());
}

#[tokio::test]
async fn member_list_headers_have_revision_zero() {
    let etcd = TestEtcd::start();
    let mut client = connect_to(&etcd.endpoint()).await;
    client.put("k", "v", None).await.unwrap();
    let resp = client.member_list().await.unwrap();
    let header = resp.header().unwrap();
    assert_eq!((header.revision(), header.raft_term()), (0, 2));
    let m = &resp.members()[0];
    assert_eq!((m.id(), m.name()), (0x8e9e_05c5_2164_694d, "default"));
    assert_eq!(m.peer_urls(), ["http://localhost:2380"]);
    assert_eq!(m.client_urls(), [etcd.endpoint()]);
}

fn eventually_refused(endpoint: &str) -> bool {
    let addr = endpoint.trim_start_matches("http://");
    (0..100).any(|_| {
        TcpStream::connect(addr).is_err() || {
            std::thread::sleep(Duration::from_millis(10));
            false
        }
    })
}

#[tokio::test]
async fn a_learner_joins_starts_is_promoted_and_is_removed() {
    let etcd = three();
    let mut client = connect_to(&etcd.endpoint()).await;

    // Add a learner: not started, so no name and no client URL.
    let learner = MemberAddOptions::new().with_is_learner();
    let added = client
        .member_add(["http://10.0.0.4:2380"], Some(learner))
        .await
        .unwrap();
    assert_eq!(added.header().unwrap().revision(), 0);
    let member = added.member().unwrap().clone();
    assert!(member.is_learner() && member.name().is_empty() && member.client_urls().is_empty());
    assert_eq!(added.member_list().len(), 4);
    let id = member.id();
    assert_eq!(
        status(client.member_promote(id).await.unwrap_err()),
        (
            Code::FailedPrecondition,
            "etcdserver: can only promote a learner member which is in sync with leader".to_owned()
        )
    );

    // It starts, like a node joining: its own endpoint, serving the same data.
    let url = etcd.start_member(id, "node-4").unwrap();
    assert_eq!(etcd.endpoints().len(), 4);
    client.put("k", "v", None).await.unwrap();
    let mut on_learner = connect_to(&url).await;
    let s = on_learner.status().await.unwrap();
    assert!(s.is_learner());
    assert_eq!(s.header().unwrap().member_id(), id);
    let serializable = GetOptions::new().with_serializable();
    assert_eq!(
        on_learner
            .get("k", Some(serializable))
            .await
            .unwrap()
            .kvs()
            .len(),
        1
    );
    let not_for_learner = (
        Code::FailedPrecondition,
        "etcdserver: rpc not supported for learner".to_owned(),
    );
    assert_eq!(
        status(on_learner.get("k", None).await.unwrap_err()),
        not_for_learner
    );
    assert_eq!(
        status(on_learner.put("k", "w", None).await.unwrap_err()),
        not_for_learner
    );
    assert_eq!(
        status(on_learner.member_list().await.unwrap_err()),
        not_for_learner
    );
    let listed = list(&mut client).await;
    assert!(listed.contains(&(id, "node-4".to_owned(), vec![url.clone()], true)));

    // Promoted: a voter now, serving everything.
    let promoted = client.member_promote(id).await.unwrap();
    assert!(promoted
        .members()
        .iter()
        .any(|m| m.id() == id && !m.is_learner()));
    on_learner.put("k", "w", None).await.unwrap();

    // Removed: it leaves the list and its endpoint stops serving.
    let removed = client.member_remove(id).await.unwrap();
    assert_eq!(removed.members().len(), 3);
    assert!(
        eventually_refused(&url),
        "the removed member's endpoint still serves"
    );
    assert_eq!(etcd.endpoints().len(), 3);
    assert_eq!(
        status(client.member_remove(id).await.unwrap_err()),
        (Code::NotFound, "etcdserver: member not found".to_owned())
    );
    assert!(matches!(
        etcd.start_member(id, "again"),
        Err(Error::Member { .. })
    ));
}

#[tokio::test]
async fn member_add_and_update_check_urls_and_learners() {
    let etcd = three();
    let mut client = connect_to(&etcd.endpoint()).await;
    let invalid = (
        Code::InvalidArgument,
        "etcdserver: given member URLs are invalid".to_owned(),
    );
    for bad in [
        "http://h:2380/",
        "http://h:2380/path",
        "ftp://h:2380",
        "http://h",
    ] {
        assert_eq!(
            status(client.member_add([bad], None).await.unwrap_err()),
            invalid,
            "{bad}"
        );
    }
    let exists = (
        Code::FailedPrecondition,
        "etcdserver: Peer URLs already exists".to_owned(),
    );
    assert_eq!(
        status(
            client
                .member_add(["http://localhost:2381"], None)
                .await
                .unwrap_err()
        ),
        exists
    );

    let learner = || Some(MemberAddOptions::new().with_is_learner());
    let added = client
        .member_add(["http://10.0.0.9:2380"], learner())
        .await
        .unwrap();
    let id = added.member().unwrap().id();
    assert_eq!(
        status(
            client
                .member_add(["http://10.0.0.10:2380"], learner())
                .await
                .unwrap_err()
        ),
        (
            Code::FailedPrecondition,
            "etcdserver: too many learner members in cluster".to_owned()
        )
    );

    let updated = client
        .member_update(id, vec!["http://10.0.0.11:2380".to_owned()])
        .await
        .unwrap();
    let m = updated.members().iter().find(|m| m.id() == id).unwrap();
    assert_eq!(m.peer_urls(), ["http://10.0.0.11:2380"]);
    assert!(m.is_learner(), "the learner flag is kept");
    assert_eq!(
        status(
            client
                .member_update(id, vec!["http://localhost:2380".to_owned()])
                .await
                .unwrap_err()
        ),
        exists
    );
    assert_eq!(
        status(
            client
                .member_update(id, vec!["foo".to_owned()])
                .await
                .unwrap_err()
        ),
        invalid
    );
    assert_eq!(
        status(
            client
                .member_update(12345, vec!["http://10.0.0.12:2380".to_owned()])
                .await
                .unwrap_err()
        ),
        (Code::NotFound, "etcdserver: member not found".to_owned())
    );
    let voter = list(&mut client).await.iter().find(|m| !m.3).unwrap().0;
    assert_eq!(
        status(client.member_promote(voter).await.unwrap_err()),
        (
            Code::FailedPrecondition,
            "etcdserver: can only promote a learner member".to_owned()
        )
    );
}

#[tokio::test]
async fn strict_reconfiguration_protects_quorum() {
    let etcd = TestEtcd::start();
    let mut client = connect_to(&etcd.endpoint()).await;
    let me = client.status().await.unwrap().header().unwrap().member_id();
    let not_enough = (
        Code::Unknown,
        "etcdserver: re-configuration failed due to not enough started members".to_owned(),
    );
    assert_eq!(
        status(client.member_remove(me).await.unwrap_err()),
        not_enough
    );
    // Growing a single node is allowed once; the new voter has not started yet.
    client
        .member_add(["http://10.0.0.2:2380"], None)
        .await
        .unwrap();
    assert_eq!(
        status(
            client
                .member_add(["http://10.0.0.3:2380"], None)
                .await
                .unwrap_err()
        ),
        not_enough
    );
    let learner = MemberAddOptions::new().with_is_learner();
    assert_eq!(
        status(
            client
                .member_add(["http://10.0.0.3:2380"], Some(learner))
                .await
                .unwrap_err()
        ),
        (
            Code::Unavailable,
            "etcdserver: unhealthy cluster".to_owned()
        )
    );
    assert!(
        client.get("k", None).await.is_ok(),
        "the node keeps serving"
    );
}

#[tokio::test]
async fn move_leader_changes_the_leader_and_the_term() {
    let etcd = three();
    let endpoints = etcd.endpoints();
    let mut clients = Vec::new();
    for e in &endpoints {
        clients.push(connect_to(e).await);
    }
    let leader = clients[0].status().await.unwrap().leader();
    let ids: Vec<u64> = list(&mut clients[0]).await.iter().map(|m| m.0).collect();
    let leader_at = ids.iter().position(|id| *id == leader).unwrap();
    let follower_at = (leader_at + 1) % 3;
    let target = ids[follower_at];

    assert_eq!(
        status(clients[follower_at].move_leader(target).await.unwrap_err()),
        (
            Code::FailedPrecondition,
            "etcdserver: not leader".to_owned()
        )
    );
    let moved = clients[leader_at].move_leader(target).await.unwrap();
    assert!(moved.header().is_none());
    for client in &mut clients {
        let s = client.status().await.unwrap();
        assert_eq!((s.leader(), s.raft_term()), (target, 3));
        assert_eq!(
            client
                .get("k", None)
                .await
                .unwrap()
                .header()
                .unwrap()
                .raft_term(),
            3
        );
    }
    assert_eq!(
        status(clients[leader_at].move_leader(leader).await.unwrap_err()),
        (
            Code::FailedPrecondition,
            "etcdserver: not leader".to_owned()
        )
    );
}

#[tokio::test]
async fn removing_the_leader_elects_another() {
    let etcd = three();
    let mut client = connect_to(&etcd.endpoints()[2]).await;
    let s = client.status().await.unwrap();
    let (me, leader) = (s.header().unwrap().member_id(), s.leader());
    assert_ne!(me, leader, "connected to a follower");
    client.member_remove(leader).await.unwrap();
    let s = client.status().await.unwrap();
    assert_ne!(s.leader(), leader);
    assert_ne!(s.leader(), 0);
    assert_eq!(s.raft_term(), 3);
}
