//! Cluster: MemberList on a single node, MemberAdd/Update/Remove/Promote of a learner, and their
//! errors.
//!
//! Normalised (session.rs): the ID of an added member (etcd hashes its URLs with the time), and
//! the order of member lists, which etcd sorts by those IDs; the client URL (each backend has
//! its own port).

use crate::maintenance::MEMBER;
use crate::pb::etcdserverpb::{
    cluster_client::ClusterClient, MemberAddRequest, MemberListRequest, MemberPromoteRequest,
    MemberRemoveRequest, MemberUpdateRequest,
};
use crate::{put, scenario, Scenario, Session};

pub fn scenarios() -> Vec<Scenario> {
    vec![
        scenario("cluster_member_list", list_members),
        scenario("cluster_member_errors", errors),
        scenario("cluster_learner_lifecycle", learner),
    ]
}

fn list(s: &mut Session, linearizable: bool) {
    rpc!(
        s,
        ClusterClient<_>,
        member_list,
        MemberListRequest { linearizable }
    );
}

fn add(s: &mut Session, urls: &[&str], is_learner: bool) -> Option<u64> {
    rpc!(
        s,
        ClusterClient<_>,
        member_add,
        MemberAddRequest {
            peer_ur_ls: urls.iter().map(|u| (*u).to_owned()).collect(),
            is_learner,
        }
    )
    .and_then(|r| r.member.map(|m| m.id))
}

fn remove(s: &mut Session, id: u64) {
    rpc!(
        s,
        ClusterClient<_>,
        member_remove,
        MemberRemoveRequest { id }
    );
}

fn update(s: &mut Session, id: u64, urls: &[&str]) {
    rpc!(
        s,
        ClusterClient<_>,
        member_update,
        MemberUpdateRequest {
            id,
            peer_ur_ls: urls.iter().map(|u| (*u).to_owned()).collect(),
        }
    );
}

fn promote(s: &mut Session, id: u64) {
    rpc!(
        s,
        ClusterClient<_>,
        member_promote,
        MemberPromoteRequest { id }
    );
}

fn list_members(s: &mut Session) {
    list(s, false);
    list(s, true);
    s.put(put("a", "1"));
    // Member RPCs answer revision 0.
    list(s, false);
}

fn errors(s: &mut Session) {
    remove(s, 12345);
    update(s, 12345, &["http://127.0.0.1:9"]);
    promote(s, 12345);
    promote(s, MEMBER);
    // The only member cannot go.
    remove(s, MEMBER);
    for urls in [
        &["foo"][..],
        &[][..],
        &["http://127.0.0.1:9/path"][..],
        &["http://127.0.0.1:9/"][..],
        &["ftp://127.0.0.1:9"][..],
        &["http://127.0.0.1"][..],
    ] {
        add(s, urls, true);
    }
    // The default member's own peer URL is taken.
    add(s, &["http://localhost:2380"], true);
    list(s, false);
}

fn learner(s: &mut Session) {
    // A learner that never starts: it costs the single node no quorum.
    let id = add(s, &["http://127.0.0.1:9", "http://127.0.0.1:8"], true).unwrap_or(0);
    list(s, false);
    // One learner at most, by default.
    add(s, &["http://127.0.0.1:7"], true);
    // Never started, so never in sync.
    promote(s, id);
    update(s, id, &["http://127.0.0.1:6"]);
    update(s, id, &["http://localhost:2380"]);
    list(s, false);
    remove(s, id);
    remove(s, id);
    list(s, false);
    s.put(put("still", "serving"));
}
