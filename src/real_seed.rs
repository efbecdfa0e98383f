//! Fixtures on a real etcd. The embedded engine restores a fixture directly; a real etcd is
//! brought to the same state through its own API: leases granted with the fixture's IDs, a
//! history replayed as one txn per revision (then compacted where it was), keys put, and
//! users, roles and permissions added with auth enabled last, so that seeding needs no token.
//! A fixture that no sequence of requests can reproduce is an [`Error::NotReproducible`],
//! found before etcd is spawned.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::SocketAddr;

use tonic::transport::Channel;
use tonic::Status;

use crate::error::Error;
use crate::fixture::{self, Fixture, FixtureAuth, FixtureHistory, FixtureSource, HistoryChange};
use crate::pb::authpb::{permission::Type, Permission, UserAddOptions};
use crate::pb::etcdserverpb::{
    auth_client::AuthClient, kv_client::KvClient, lease_client::LeaseClient, request_op,
    AuthEnableRequest, AuthRoleAddRequest, AuthRoleGrantPermissionRequest, AuthUserAddRequest,
    AuthUserGrantRoleRequest, CompactionRequest, DeleteRangeRequest, LeaseGrantRequest,
    LeaseRevokeRequest, PutRequest, RequestOp, TxnRequest,
};
use crate::real::{call_channel, Credentials};

/// The TTL of a lease a history grants and revokes again: the replay revokes it at the end.
const PAST_LEASE_TTL: i64 = 3600;

/// Fixtures read and checked for a real etcd.
#[derive(Debug)]
pub(crate) struct SeedPlan {
    fixtures: Vec<Fixture>,
    /// Root's, when a fixture enables auth: the guard's own reads need a token then.
    credentials: Option<Credentials>,
}

impl SeedPlan {
    /// Reads `sources` and checks that a real etcd taking at most `max_txn_ops` operations per
    /// txn can be brought to their state.
    pub(crate) fn new(sources: &[FixtureSource], max_txn_ops: usize) -> Result<SeedPlan, Error> {
        let mut fixtures = Vec::new();
        // Lease IDs granted so far, with their TTLs.
        let mut ttls: HashMap<i64, i64> = HashMap::new();
        // Root's password as first defined (a later fixture only adds roles, as embedded).
        let mut root: Option<Option<String>> = None;
        let mut enabled = false;
        for (i, source) in sources.iter().enumerate() {
            let fixture = fixture::load(source)?;
            let refuse = |reason: String| Error::NotReproducible {
                fixture: fixture::source_name(source),
                reason,
            };
            match &fixture.history {
                Some(_) if i > 0 => return Err(fixture::history_not_first(source).into()),
                Some(history) => {
                    check_history(history, max_txn_ops).map_err(refuse)?;
                    ttls.extend(history.leases.iter().copied());
                }
                None => {
                    for lease in fixture.leases.iter().filter(|l| l.id != 0) {
                        match ttls.insert(lease.id, lease.ttl) {
                            Some(old) if old != lease.ttl => {
                                return Err(refuse(format!(
                                    "lease {} is granted again with another TTL ({old} s, then \
                                     {} s): a real etcd cannot change a lease's TTL",
                                    lease.id, lease.ttl
                                )))
                            }
                            _ => {}
                        }
                    }
                }
            }
            if let Some(auth) = &fixture.auth {
                for user in &auth.users {
                    if user.password_hash.is_some() {
                        return Err(refuse(format!(
                            "user {:?} has a `password_hash`, which only the embedded engine \
                             reads (etcd keeps bcrypt hashes of its own)",
                            user.name
                        )));
                    }
                    if user.name == "root" && root.is_none() {
                        root = Some(user.password.clone());
                    }
                }
                enabled |= auth.enabled;
                if enabled && matches!(root, Some(None)) {
                    return Err(refuse(
                        "auth is enabled and root has no password: the guard could not log in \
                         to read"
                            .to_owned(),
                    ));
                }
            }
            fixtures.push(fixture);
        }
        let credentials = match (enabled, root) {
            (true, Some(Some(password))) => Some(("root".to_owned(), password)),
            _ => None,
        };
        Ok(SeedPlan {
            fixtures,
            credentials,
        })
    }
}

/// Whether a replay makes exactly `history`: every revision from 2 on is one write request,
/// so no revision may be skipped or lost to a compaction without its changes, and each put's
/// create revision and version must be what the replay makes.
fn check_history(history: &FixtureHistory, max_txn_ops: usize) -> Result<(), String> {
    if !history.base.is_empty() && history.compacted_log.is_empty() {
        return Err(format!(
            "it starts from keys older than its compaction point {} (etcdctl output or a \
             dump), whose writes are not known",
            history.compact_revision
        ));
    }
    // Each live key's create revision and version.
    let mut live: HashMap<&[u8], (i64, i64)> = HashMap::new();
    let mut next = 2;
    for (revision, changes) in history.compacted_log.iter().chain(&history.log) {
        if *revision != next {
            return Err(format!(
                "revision {next} is skipped (the next change is at {revision}): a real etcd \
                 makes each revision with a write"
            ));
        }
        if changes.len() > max_txn_ops {
            return Err(format!(
                "revision {revision} changes {} keys, more than the {max_txn_ops} operations \
                 of one txn",
                changes.len()
            ));
        }
        let mut seen = HashSet::new();
        for change in changes {
            let key = match change {
                HistoryChange::Put(kv) => kv.key.as_slice(),
                HistoryChange::Delete(key) => key.as_slice(),
            };
            if !seen.insert(key) {
                return Err(format!(
                    "revision {revision} changes key {:?} twice, which no txn does",
                    String::from_utf8_lossy(key)
                ));
            }
            match change {
                HistoryChange::Delete(key) => {
                    live.remove(key.as_slice());
                }
                HistoryChange::Put(kv) => {
                    let (create, version) = live
                        .get(kv.key.as_slice())
                        .map_or((*revision, 1), |&(c, v)| (c, v + 1));
                    if (kv.create_revision, kv.version, kv.mod_revision)
                        != (create, version, *revision)
                    {
                        return Err(format!(
                            "key {:?} at revision {revision} has create_revision {} and \
                             version {}, where a replay makes {create} and {version}",
                            String::from_utf8_lossy(&kv.key),
                            kv.create_revision,
                            kv.version
                        ));
                    }
                    live.insert(&kv.key, (create, version));
                }
            }
        }
        next += 1;
    }
    if history.revision != next - 1 {
        return Err(format!(
            "its revision {} is past its last change at {}: a real etcd makes each revision \
             with a write",
            history.revision,
            next - 1
        ));
    }
    Ok(())
}

/// Seeds the etcd at `addr` with `plan`; returns the credentials its guard reads with.
pub(crate) fn seed(addr: SocketAddr, plan: SeedPlan) -> Result<Option<Credentials>, Error> {
    let SeedPlan {
        fixtures,
        credentials,
    } = plan;
    if fixtures.is_empty() {
        return Ok(None);
    }
    call_channel(addr, move |channel| async move {
        let mut granted = HashSet::new();
        for fixture in &fixtures {
            seed_keys(&channel, fixture, &mut granted).await?;
        }
        // Auth last: once it is on, every request would need a token.
        let mut auth = AuthClient::new(channel);
        for fixture_auth in fixtures.iter().filter_map(|f| f.auth.as_ref()) {
            add_auth(&mut auth, fixture_auth).await?;
        }
        if fixtures
            .iter()
            .any(|f| f.auth.as_ref().is_some_and(|a| a.enabled))
        {
            auth.auth_enable(AuthEnableRequest {}).await?;
        }
        Ok(())
    })
    .map_err(Error::EtcdRequest)?;
    Ok(credentials)
}

/// One fixture's history, leases and keys. `granted` holds the lease IDs granted so far: an ID
/// an earlier fixture granted is the same lease, as in the embedded engine.
async fn seed_keys(
    channel: &Channel,
    fixture: &Fixture,
    granted: &mut HashSet<i64>,
) -> Result<(), Status> {
    let mut kv = KvClient::new(channel.clone());
    let mut lease = LeaseClient::new(channel.clone());
    let ids = match &fixture.history {
        Some(history) => {
            replay(&mut kv, &mut lease, history, granted).await?;
            history.named.clone()
        }
        None => {
            let mut ids = Vec::new();
            for l in &fixture.leases {
                if l.id != 0 && granted.contains(&l.id) {
                    ids.push(l.id);
                    continue;
                }
                let req = LeaseGrantRequest {
                    ttl: l.ttl,
                    id: l.id,
                };
                let id = lease.lease_grant(req).await?.into_inner().id;
                granted.insert(id);
                ids.push(id);
            }
            ids
        }
    };
    for put in &fixture.puts {
        let req = PutRequest {
            key: put.key.clone(),
            value: put.value.clone(),
            lease: put.lease.and_then(|i| ids.get(i).copied()).unwrap_or(0),
            ..Default::default()
        };
        kv.put(req).await?;
    }
    Ok(())
}

/// Replays a checked history: every lease it uses granted first (with its final TTL if it
/// lives to the end), one txn per revision, the compaction, then the leases it revoked.
async fn replay(
    kv: &mut KvClient<Channel>,
    lease: &mut LeaseClient<Channel>,
    history: &FixtureHistory,
    granted: &mut HashSet<i64>,
) -> Result<(), Status> {
    let log = || history.compacted_log.iter().chain(&history.log);
    let living: HashMap<i64, i64> = history.leases.iter().copied().collect();
    let mut ids: BTreeSet<i64> = living.keys().copied().collect();
    for (_, changes) in log() {
        for change in changes {
            if let HistoryChange::Put(put) = change {
                if put.lease != 0 {
                    ids.insert(put.lease);
                }
            }
        }
    }
    for &id in &ids {
        let ttl = living.get(&id).copied().unwrap_or(PAST_LEASE_TTL);
        lease.lease_grant(LeaseGrantRequest { ttl, id }).await?;
        granted.insert(id);
    }
    for (_, changes) in log() {
        let success = changes
            .iter()
            .map(|change| RequestOp {
                request: Some(match change {
                    HistoryChange::Put(put) => request_op::Request::RequestPut(PutRequest {
                        key: put.key.clone(),
                        value: put.value.clone(),
                        lease: put.lease,
                        ..Default::default()
                    }),
                    HistoryChange::Delete(key) => {
                        request_op::Request::RequestDeleteRange(DeleteRangeRequest {
                            key: key.clone(),
                            ..Default::default()
                        })
                    }
                }),
            })
            .collect();
        let txn = TxnRequest {
            success,
            ..Default::default()
        };
        kv.txn(txn).await?;
    }
    if history.compact_revision > 0 {
        let req = CompactionRequest {
            revision: history.compact_revision,
            physical: true,
        };
        kv.compact(req).await?;
    }
    // No key is left on these (the fixture check saw to it): revoking makes no revision.
    for id in ids.iter().filter(|id| !living.contains_key(id)) {
        lease.lease_revoke(LeaseRevokeRequest { id: *id }).await?;
        granted.remove(id);
    }
    Ok(())
}

/// A fixture's roles, then its users. A role or user an earlier fixture added is extended.
async fn add_auth(auth: &mut AuthClient<Channel>, fixture: &FixtureAuth) -> Result<(), Status> {
    for role in &fixture.roles {
        existing_is_fine(
            auth.role_add(AuthRoleAddRequest {
                name: role.name.clone(),
            })
            .await,
        )?;
        for perm in &role.permissions {
            let perm_type = match perm.kind {
                fixture::PermissionKind::Read => Type::Read,
                fixture::PermissionKind::Write => Type::Write,
                fixture::PermissionKind::ReadWrite => Type::Readwrite,
            };
            let req = AuthRoleGrantPermissionRequest {
                name: role.name.clone(),
                perm: Some(Permission {
                    perm_type: perm_type as i32,
                    key: perm.key.clone(),
                    range_end: perm.range_end.clone(),
                }),
            };
            auth.role_grant_permission(req).await?;
        }
    }
    for user in &fixture.users {
        let req = AuthUserAddRequest {
            name: user.name.clone(),
            password: user.password.clone().unwrap_or_default(),
            options: Some(UserAddOptions {
                no_password: user.password.is_none(),
            }),
            hashed_password: String::new(),
        };
        existing_is_fine(auth.user_add(req).await)?;
        for role in &user.roles {
            let req = AuthUserGrantRoleRequest {
                user: user.name.clone(),
                role: role.clone(),
            };
            auth.user_grant_role(req).await?;
        }
    }
    Ok(())
}

/// "Already exists" means an earlier fixture added it: not a failure.
fn existing_is_fine<T>(result: Result<T, Status>) -> Result<(), Status> {
    match result {
        Err(status) if !status.message().ends_with("already exists") => Err(status),
        _ => Ok(()),
    }
}
