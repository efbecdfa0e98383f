//! Maintenance: Status, Hash and HashKV, Alarm, Defragment, Snapshot, MoveLeader, Downgrade,
//! and their errors.
//!
//! Normalised (session.rs): Status's backend sizes and raft indices are compared as "set",
//! hashes only within each backend (the same state, the same hash), and a snapshot by its
//! shape, not its bytes (etcd's is a bbolt file).

use crate::pb::etcdserverpb::{
    alarm_request::AlarmAction, downgrade_request::DowngradeAction,
    maintenance_client::MaintenanceClient, AlarmRequest, AlarmType, DefragmentRequest,
    DowngradeRequest, HashKvRequest, HashRequest, MoveLeaderRequest, StatusRequest,
};
use crate::{del, op_del, op_put, put, scenario, txn, Scenario, Session};

/// The single default member's ID, on both backends.
pub const MEMBER: u64 = 0x8e9e_05c5_2164_694d;

pub fn scenarios() -> Vec<Scenario> {
    vec![
        scenario("maintenance_status", status_fields),
        scenario("maintenance_hash_and_hash_kv", hashes),
        scenario("maintenance_alarms", alarms),
        scenario("maintenance_defragment_and_snapshot", defragment),
        scenario("maintenance_move_leader", move_leader),
        scenario("maintenance_downgrade", downgrade),
        scenario("grpc_health", health),
    ]
}

pub fn status(s: &mut Session) {
    rpc!(s, MaintenanceClient<_>, status, StatusRequest {});
}

fn hash(s: &mut Session) {
    rpc!(s, MaintenanceClient<_>, hash, HashRequest {});
}

fn hash_kv(s: &mut Session, revision: i64) {
    rpc!(s, MaintenanceClient<_>, hash_kv, HashKvRequest { revision });
}

pub fn alarm(s: &mut Session, action: AlarmAction, member_id: u64, alarm: AlarmType) {
    rpc!(
        s,
        MaintenanceClient<_>,
        alarm,
        AlarmRequest {
            action: action as i32,
            member_id,
            alarm: alarm as i32,
        }
    );
}

fn status_fields(s: &mut Session) {
    status(s);
    s.put(put("a", "1"));
    s.put(put("b", "1"));
    status(s);
}

fn hashes(s: &mut Session) {
    hash(s);
    hash(s);
    hash_kv(s, 0);
    s.put(put("a", "1"));
    hash_kv(s, 0);
    hash_kv(s, 1);
    s.put(put("b", "1"));
    s.put(put("a", "2"));
    hash(s);
    hash_kv(s, 0);
    hash_kv(s, 2);
    hash_kv(s, 4);
    hash_kv(s, 5);
    // A negative revision is not "current": etcd hashes nothing up to it.
    hash_kv(s, -1);
    hash_kv(s, -5);
    s.compact(3);
    // At the compaction point etcd answers the hash it kept; below it, compacted.
    hash_kv(s, 3);
    hash_kv(s, 2);
    hash_kv(s, 4);
    hash_kv(s, 0);
    s.delete(del("b", ""));
    s.compact(5);
    hash_kv(s, 5);
    hash_kv(s, 0);
    hash_kv(s, 4);
    hash_kv(s, -1);
}

fn alarms(s: &mut Session) {
    use AlarmAction::{Activate, Deactivate, Get};
    alarm(s, Get, 0, AlarmType::None);
    alarm(s, Activate, 12345, AlarmType::Nospace);
    alarm(s, Activate, 12345, AlarmType::Nospace);
    alarm(s, Activate, MEMBER, AlarmType::None);
    alarm(s, Get, 0, AlarmType::None);
    // NOSPACE: writes that put refuse; deletes, reads and compaction go on.
    s.put(put("a", "1"));
    s.txn(txn(vec![], vec![op_del("a", "")], vec![op_put("b", "1")]));
    s.txn(txn(vec![], vec![op_del("a", "")], vec![]));
    s.delete(del("a", ""));
    s.range(crate::get("a"));
    crate::lease::grant_lease(s, 60, 5);
    alarm(s, Get, 0, AlarmType::Nospace);
    status(s);
    // CORRUPT on top: every write is refused, reads still work.
    alarm(s, Activate, MEMBER, AlarmType::Corrupt);
    alarm(s, Get, 0, AlarmType::Corrupt);
    alarm(s, Get, 0, AlarmType::None);
    s.put(put("a", "1"));
    s.delete(del("a", ""));
    s.compact(1);
    s.range(crate::get("a"));
    // Leases: grant and revoke are writes; keepalive and TimeToLive are not.
    crate::lease::grant_lease(s, 60, 6);
    crate::lease::revoke_lease(s, 5);
    s.keep_alive(&[5]);
    crate::lease::time_to_live(s, 5, false);
    status(s);
    alarm(s, Deactivate, 12345, AlarmType::Nospace);
    alarm(s, Deactivate, 12345, AlarmType::Nospace);
    s.put(put("a", "1"));
    alarm(s, Deactivate, MEMBER, AlarmType::Corrupt);
    alarm(s, Get, 0, AlarmType::None);
    s.put(put("a", "1"));
    crate::lease::grant_lease(s, 60, 5);
    crate::lease::revoke_lease(s, 5);
    status(s);
}

fn defragment(s: &mut Session) {
    s.put(put("a", "1"));
    rpc!(s, MaintenanceClient<_>, defragment, DefragmentRequest {});
    s.snapshot();
    s.range(crate::get("a"));
}

fn move_leader(s: &mut Session) {
    for target_id in [12345, 0, MEMBER] {
        rpc!(
            s,
            MaintenanceClient<_>,
            move_leader,
            MoveLeaderRequest { target_id }
        );
    }
    status(s);
}

fn downgrade(s: &mut Session) {
    use DowngradeAction::{Cancel, Enable, Validate};
    let call = |s: &mut Session, action: i32, version: &str| {
        rpc!(
            s,
            MaintenanceClient<_>,
            downgrade,
            DowngradeRequest {
                action,
                version: version.into(),
            }
        );
    };
    for version in ["3.6", "3.6.0", "x", "1.2.3.4", "3.7", "3.5", "3.8"] {
        call(s, Validate as i32, version);
    }
    call(s, Cancel as i32, "");
    call(s, 9, "3.6");
    call(s, Enable as i32, "3.6");
    status(s);
    call(s, Validate as i32, "3.6");
    call(s, Enable as i32, "3.6");
    call(s, Cancel as i32, "");
    status(s);
}

/// gRPC's standard health service, which etcd registers next to its own: the server as a whole
/// (service "") serves, a service it was not told about is unknown, and Watch sends the status
/// at once.
fn health(s: &mut Session) {
    use crate::pb::health::{health_client::HealthClient, HealthCheckRequest, HealthListRequest};
    for service in ["", "etcdserverpb.KV", "nope"] {
        rpc!(
            s,
            HealthClient<_>,
            check,
            HealthCheckRequest {
                service: service.to_owned()
            }
        );
    }
    rpc!(s, HealthClient<_>, list, HealthListRequest {});
    for service in ["", "nope"] {
        s.call(
            "watch (first answer)",
            HealthCheckRequest {
                service: service.to_owned(),
            },
            |channel, request| async move {
                let mut answers = HealthClient::new(channel)
                    .watch(request)
                    .await?
                    .into_inner();
                let first = answers.message().await?.unwrap_or_default();
                Ok(tonic::Response::new(first))
            },
        );
    }
}
