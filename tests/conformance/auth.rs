//! Auth: users, roles and permissions, enable/disable/status, Authenticate and tokens, what a
//! request needs once auth is on, and every auth error.
//!
//! Tokens are named in the transcript (`<token1>`): etcd's carry random letters and a raft
//! index.

use crate::pb::authpb::{permission::Type, Permission, UserAddOptions};
use crate::pb::etcdserverpb::{
    auth_client::AuthClient, lease_client::LeaseClient, AuthDisableRequest, AuthEnableRequest,
    AuthRoleAddRequest, AuthRoleDeleteRequest, AuthRoleGetRequest, AuthRoleGrantPermissionRequest,
    AuthRoleListRequest, AuthRoleRevokePermissionRequest, AuthStatusRequest, AuthUserAddRequest,
    AuthUserChangePasswordRequest, AuthUserDeleteRequest, AuthUserGetRequest,
    AuthUserGrantRoleRequest, AuthUserListRequest, AuthUserRevokeRoleRequest, AuthenticateRequest,
    LeaseGrantRequest, PutRequest, WatchCreateRequest,
};
use crate::{b, get, op_put, op_range, put, range, scenario, txn, Scenario, Session};

pub fn scenarios() -> Vec<Scenario> {
    vec![
        scenario("auth_users", users),
        scenario("auth_roles_and_permissions", roles),
        scenario("auth_enable_needs_root", enable_needs_root),
        scenario("auth_authenticate_and_tokens", tokens),
        scenario("auth_permissions_on_requests", permissions),
        scenario("auth_admin_rpcs_need_root", admin),
        scenario("auth_leases_need_key_permissions", lease_permissions),
        scenario("auth_maintenance_cluster_and_recipes", services),
        scenario("auth_hashed_passwords_and_no_password_users", hashed),
    ]
}

pub fn user_add(s: &mut Session, name: &str, password: &str) {
    rpc!(
        s,
        AuthClient<_>,
        user_add,
        AuthUserAddRequest {
            name: name.into(),
            password: password.into(),
            ..Default::default()
        }
    );
}

fn user_add_no_password(s: &mut Session, name: &str) {
    rpc!(
        s,
        AuthClient<_>,
        user_add,
        AuthUserAddRequest {
            name: name.into(),
            options: Some(UserAddOptions { no_password: true }),
            ..Default::default()
        }
    );
}

pub fn user_get(s: &mut Session, name: &str) {
    rpc!(
        s,
        AuthClient<_>,
        user_get,
        AuthUserGetRequest { name: name.into() }
    );
}

pub fn user_list(s: &mut Session) {
    rpc!(s, AuthClient<_>, user_list, AuthUserListRequest {});
}

fn user_delete(s: &mut Session, name: &str) {
    rpc!(
        s,
        AuthClient<_>,
        user_delete,
        AuthUserDeleteRequest { name: name.into() }
    );
}

pub fn grant_role(s: &mut Session, user: &str, role: &str) {
    rpc!(
        s,
        AuthClient<_>,
        user_grant_role,
        AuthUserGrantRoleRequest {
            user: user.into(),
            role: role.into(),
        }
    );
}

fn revoke_role(s: &mut Session, name: &str, role: &str) {
    rpc!(
        s,
        AuthClient<_>,
        user_revoke_role,
        AuthUserRevokeRoleRequest {
            name: name.into(),
            role: role.into(),
        }
    );
}

pub fn role_add(s: &mut Session, name: &str) {
    rpc!(
        s,
        AuthClient<_>,
        role_add,
        AuthRoleAddRequest { name: name.into() }
    );
}

pub fn role_get(s: &mut Session, role: &str) {
    rpc!(
        s,
        AuthClient<_>,
        role_get,
        AuthRoleGetRequest { role: role.into() }
    );
}

fn role_list(s: &mut Session) {
    rpc!(s, AuthClient<_>, role_list, AuthRoleListRequest {});
}

fn role_delete(s: &mut Session, role: &str) {
    rpc!(
        s,
        AuthClient<_>,
        role_delete,
        AuthRoleDeleteRequest { role: role.into() }
    );
}

pub fn permit(s: &mut Session, role: &str, kind: Type, key: &str, end: &str) {
    rpc!(
        s,
        AuthClient<_>,
        role_grant_permission,
        AuthRoleGrantPermissionRequest {
            name: role.into(),
            perm: Some(Permission {
                perm_type: kind as i32,
                key: b(key),
                range_end: b(end),
            }),
        }
    );
}

fn unpermit(s: &mut Session, role: &str, key: &str, end: &str) {
    rpc!(
        s,
        AuthClient<_>,
        role_revoke_permission,
        AuthRoleRevokePermissionRequest {
            role: role.into(),
            key: b(key),
            range_end: b(end),
        }
    );
}

pub fn enable(s: &mut Session) {
    rpc!(s, AuthClient<_>, auth_enable, AuthEnableRequest {});
}

fn disable(s: &mut Session) {
    rpc!(s, AuthClient<_>, auth_disable, AuthDisableRequest {});
}

fn status(s: &mut Session) {
    rpc!(s, AuthClient<_>, auth_status, AuthStatusRequest {});
}

/// Authenticates and, on success, sends the token with every later request.
pub fn login(s: &mut Session, name: &str, password: &str) {
    let token = rpc!(
        s,
        AuthClient<_>,
        authenticate,
        AuthenticateRequest {
            name: name.into(),
            password: password.into(),
        }
    )
    .map(|r| r.token);
    if token.is_some() {
        s.token = token;
    }
}

/// A root user with the root role, and auth on.
pub fn root_and_enable(s: &mut Session) {
    user_add(s, "root", "rootpw");
    grant_role(s, "root", "root");
    enable(s);
}

fn users(s: &mut Session) {
    status(s);
    user_add(s, "alice", "a");
    user_add(s, "alice", "b");
    user_add(s, "", "a");
    // An empty password is allowed; so is a user without one.
    user_add(s, "Zed", "");
    user_add_no_password(s, "svc");
    user_get(s, "alice");
    user_get(s, "nobody");
    user_list(s);
    rpc!(
        s,
        AuthClient<_>,
        user_change_password,
        AuthUserChangePasswordRequest {
            name: "alice".into(),
            password: "c".into(),
            ..Default::default()
        }
    );
    rpc!(
        s,
        AuthClient<_>,
        user_change_password,
        AuthUserChangePasswordRequest {
            name: "nobody".into(),
            password: "c".into(),
            ..Default::default()
        }
    );
    user_delete(s, "Zed");
    user_delete(s, "Zed");
    // root may be deleted while auth is off.
    user_add(s, "root", "r");
    user_delete(s, "root");
    user_list(s);
    status(s);
}

fn roles(s: &mut Session) {
    role_add(s, "app");
    role_add(s, "app");
    role_add(s, "");
    role_add(s, "ops");
    role_get(s, "app");
    role_get(s, "nothing");
    role_list(s);
    // Prefix, one key, open-ended; the same range again updates the type.
    permit(s, "app", Type::Readwrite, "/app/", "/app0");
    permit(s, "app", Type::Read, "/shared", "");
    permit(s, "app", Type::Write, "/z", "\0");
    permit(s, "app", Type::Read, "/app/", "/app0");
    role_get(s, "app");
    // Invalid ranges and a missing permission or role.
    permit(s, "app", Type::Read, "z", "a");
    permit(s, "app", Type::Read, "z", "z");
    permit(s, "app", Type::Read, "", "a");
    permit(s, "nothing", Type::Read, "a", "");
    rpc!(
        s,
        AuthClient<_>,
        role_grant_permission,
        AuthRoleGrantPermissionRequest {
            name: "app".into(),
            perm: None,
        }
    );
    unpermit(s, "app", "/shared", "");
    unpermit(s, "app", "/shared", "");
    unpermit(s, "app", "/app/", "");
    unpermit(s, "nothing", "/app/", "");
    role_get(s, "app");
    // Users and roles.
    user_add(s, "alice", "a");
    grant_role(s, "alice", "app");
    grant_role(s, "alice", "app");
    grant_role(s, "alice", "ops");
    grant_role(s, "alice", "missing");
    grant_role(s, "nobody", "app");
    // root needs no role definition.
    grant_role(s, "alice", "root");
    user_get(s, "alice");
    revoke_role(s, "alice", "ops");
    revoke_role(s, "alice", "ops");
    revoke_role(s, "nobody", "app");
    // Deleting a role takes it from every user.
    role_delete(s, "app");
    role_delete(s, "app");
    user_get(s, "alice");
    role_list(s);
    // The root role, once it exists, shows one permission on every key whatever it was given.
    role_add(s, "root");
    permit(s, "root", Type::Read, "a", "");
    role_get(s, "root");
    status(s);
}

fn enable_needs_root(s: &mut Session) {
    enable(s);
    user_add(s, "root", "rootpw");
    enable(s);
    grant_role(s, "root", "root");
    status(s);
    enable(s);
    status(s);
    // Enabled: no token is "user name is empty"; root can't go while auth is on.
    enable(s);
    user_add(s, "bob", "b");
    s.range(get("a"));
    disable(s);
    login(s, "root", "rootpw");
    enable(s);
    user_delete(s, "root");
    revoke_role(s, "root", "root");
    role_add(s, "root");
    role_delete(s, "root");
    disable(s);
    disable(s);
    status(s);
    // The token went with the disable: after enabling again it is invalid.
    enable(s);
    s.range(get("a"));
    s.token = None;
    login(s, "root", "rootpw");
    s.range(get("a"));
    disable(s);
}

fn tokens(s: &mut Session) {
    login(s, "root", "rootpw");
    user_add(s, "alice", "a");
    user_add_no_password(s, "svc");
    root_and_enable(s);
    login(s, "root", "wrong");
    login(s, "nobody", "x");
    login(s, "svc", "");
    login(s, "alice", "a");
    // A bogus token is ignored by Authenticate, refused by everything else.
    s.token = Some("bogus".into());
    login(s, "alice", "a");
    s.token = Some("bogus".into());
    s.range(get("a"));
    s.token = Some(String::new());
    s.range(get("a"));
    s.token = Some("no.such.token".into());
    status(s);
    user_get(s, "alice");
    // Status needs no token at all in 3.7.
    s.token = None;
    status(s);
    login(s, "alice", "a");
    user_get(s, "alice");
    user_get(s, "root");
    // A password change drops the user's tokens.
    let alice = s.token.clone();
    login(s, "root", "rootpw");
    rpc!(
        s,
        AuthClient<_>,
        user_change_password,
        AuthUserChangePasswordRequest {
            name: "alice".into(),
            password: "a2".into(),
            ..Default::default()
        }
    );
    s.token = alice;
    user_get(s, "alice");
    s.token = None;
    login(s, "alice", "a");
    login(s, "alice", "a2");
    user_get(s, "alice");
}

fn permissions(s: &mut Session) {
    s.put(put("/app/x", "1"));
    s.put(put("/other", "1"));
    role_add(s, "app");
    permit(s, "app", Type::Readwrite, "/app/", "/app0");
    permit(s, "app", Type::Read, "/r/a", "/r/c");
    permit(s, "app", Type::Read, "/r/c", "/r/e");
    user_add(s, "alice", "a");
    grant_role(s, "alice", "app");
    root_and_enable(s);
    s.put(put("/app/y", "no token"));
    login(s, "alice", "a");
    s.put(put("/app/y", "2"));
    s.range(get("/app/y"));
    s.put(put("/other", "2"));
    s.range(get("/other"));
    s.range(range("/app/", "/app0"));
    // Two permissions that meet cover the range; a gap does not.
    s.range(range("/r/a", "/r/e"));
    s.range(range("/r/a", "/r/f"));
    // READ only: prev_kv on a write needs it too, and writing needs WRITE.
    s.put(put("/r/b", "x"));
    s.delete(crate::del("/app/y", ""));
    s.put(PutRequest {
        prev_kv: true,
        ..put("/app/x", "3")
    });
    // A txn needs every op of both branches, the untaken one included.
    s.txn(txn(
        vec![],
        vec![op_put("/app/x", "4")],
        vec![op_put("/other", "4")],
    ));
    s.txn(txn(vec![], vec![op_range(get("/app/x"))], vec![]));
    s.compact(2);
    // Watch: the stream stays; the create is refused with the full status text.
    let w = s.watch();
    s.create(w, crate::watch_key("/other"));
    s.recv(w);
    s.create(w, crate::watch_key("/app/x"));
    s.recv(w);
    // Leases need only a token.
    rpc!(
        s,
        LeaseClient<_>,
        lease_grant,
        LeaseGrantRequest { ttl: 60, id: 77 }
    );
    s.put(PutRequest {
        lease: 77,
        ..put("/app/l", "leased")
    });
    s.token = None;
    s.create(
        w,
        WatchCreateRequest {
            key: b("/app/x"),
            ..Default::default()
        },
    );
    let w2 = s.watch();
    s.create(w2, crate::watch_key("/app/x"));
    s.recv(w2);
    s.recv(w);
}

fn admin(s: &mut Session) {
    role_add(s, "app");
    user_add(s, "alice", "a");
    grant_role(s, "alice", "app");
    root_and_enable(s);
    // No token: every admin RPC says "user name is empty".
    user_list(s);
    role_list(s);
    role_get(s, "app");
    login(s, "alice", "a");
    // Not root: denied, except a user's own record and its own roles.
    user_add(s, "bob", "b");
    user_list(s);
    role_list(s);
    user_get(s, "alice");
    user_get(s, "root");
    role_get(s, "app");
    role_get(s, "root");
    enable(s);
    disable(s);
    rpc!(
        s,
        AuthClient<_>,
        user_change_password,
        AuthUserChangePasswordRequest {
            name: "alice".into(),
            password: "x".into(),
            ..Default::default()
        }
    );
    login(s, "root", "rootpw");
    user_list(s);
    role_list(s);
    role_get(s, "root");
    user_delete(s, "alice");
    // Deleting alice dropped her tokens.
    status(s);
    disable(s);
}

fn lease_permissions(s: &mut Session) {
    use crate::lease::{grant_lease, list_leases, put_on, revoke_lease, time_to_live};
    grant_lease(s, 60, 1);
    grant_lease(s, 60, 2);
    grant_lease(s, 60, 3);
    s.put(put_on("/app/a", "1", 1));
    s.put(put_on("/other", "1", 2));
    s.put(put_on("/r/x", "1", 3));
    role_add(s, "app");
    permit(s, "app", Type::Readwrite, "/app/", "/app0");
    permit(s, "app", Type::Read, "/r/", "/r0");
    user_add(s, "alice", "a");
    grant_role(s, "alice", "app");
    root_and_enable(s);
    // No token: every lease RPC needs one.
    grant_lease(s, 60, 4);
    time_to_live(s, 1, false);
    list_leases(s);
    s.keep_alive(&[1]);
    login(s, "alice", "a");
    grant_lease(s, 60, 4);
    // TimeToLive: the token is enough, unless the keys are asked for.
    time_to_live(s, 2, false);
    time_to_live(s, 2, true);
    time_to_live(s, 3, true);
    // Leases: READ on every key of every lease.
    list_leases(s);
    // KeepAlive and Revoke: WRITE on every attached key.
    s.keep_alive(&[1, 4, 99]);
    s.keep_alive(&[3]);
    revoke_lease(s, 3);
    revoke_lease(s, 2);
    // Attaching a key to a lease needs WRITE on the keys it already has.
    s.put(put_on("/app/b", "1", 2));
    s.put(put_on("/app/b", "1", 1));
    revoke_lease(s, 1);
    revoke_lease(s, 99);
    login(s, "root", "rootpw");
    list_leases(s);
    revoke_lease(s, 2);
    s.range(range("\0", "\0"));
}

fn services(s: &mut Session) {
    use crate::maintenance::{alarm, status, MEMBER};
    use crate::pb::etcdserverpb::{
        alarm_request::AlarmAction, cluster_client::ClusterClient,
        maintenance_client::MaintenanceClient, AlarmType, DefragmentRequest, HashKvRequest,
        HashRequest, MemberAddRequest, MemberListRequest, MoveLeaderRequest,
    };
    use crate::pb::v3lockpb::{lock_client::LockClient, LockRequest};
    role_add(s, "app");
    permit(s, "app", Type::Readwrite, "/app/", "/app0");
    user_add(s, "alice", "a");
    grant_role(s, "alice", "app");
    root_and_enable(s);
    let everything = |s: &mut Session| {
        status(s);
        alarm(s, AlarmAction::Get, 0, AlarmType::None);
        alarm(s, AlarmAction::Activate, MEMBER, AlarmType::Nospace);
        alarm(s, AlarmAction::Deactivate, MEMBER, AlarmType::Nospace);
        rpc!(s, MaintenanceClient<_>, hash, HashRequest {});
        rpc!(
            s,
            MaintenanceClient<_>,
            hash_kv,
            HashKvRequest { revision: 0 }
        );
        rpc!(s, MaintenanceClient<_>, defragment, DefragmentRequest {});
        rpc!(
            s,
            MaintenanceClient<_>,
            move_leader,
            MoveLeaderRequest { target_id: MEMBER }
        );
        s.snapshot();
        rpc!(
            s,
            ClusterClient<_>,
            member_list,
            MemberListRequest {
                linearizable: false
            }
        );
        rpc!(
            s,
            ClusterClient<_>,
            member_add,
            MemberAddRequest {
                peer_ur_ls: vec!["foo".into()],
                is_learner: true,
            }
        );
        crate::lease::grant_lease(s, 60, 0x70);
        for name in ["/app/lock", "/other/lock"] {
            rpc!(
                s,
                LockClient<_>,
                lock,
                LockRequest {
                    name: b(name),
                    lease: 0x70,
                }
            );
        }
    };
    // Without a token, as a user, as root.
    everything(s);
    login(s, "alice", "a");
    everything(s);
    login(s, "root", "rootpw");
    everything(s);
}

fn hashed(s: &mut Session) {
    // A client-sent hash is stored unchecked; the password wins when both are sent.
    rpc!(
        s,
        AuthClient<_>,
        user_add,
        AuthUserAddRequest {
            name: "garbage".into(),
            hashed_password: "not a bcrypt hash".into(),
            ..Default::default()
        }
    );
    rpc!(
        s,
        AuthClient<_>,
        user_add,
        AuthUserAddRequest {
            name: "both".into(),
            password: "pw".into(),
            hashed_password: "not a bcrypt hash".into(),
            ..Default::default()
        }
    );
    user_add_no_password(s, "svc");
    // A no-password user stays one after a password change.
    rpc!(
        s,
        AuthClient<_>,
        user_change_password,
        AuthUserChangePasswordRequest {
            name: "svc".into(),
            password: "new".into(),
            ..Default::default()
        }
    );
    user_get(s, "svc");
    root_and_enable(s);
    login(s, "garbage", "");
    login(s, "garbage", "not a bcrypt hash");
    login(s, "both", "pw");
    login(s, "svc", "new");
    login(s, "svc", "");
}
