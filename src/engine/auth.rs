//! Users, roles, permissions and simple tokens, as etcd's auth store keeps them, and the
//! permission checks etcd makes on each request.
//!
//! Passwords are kept as a salted SHA-256, never in clear. etcd uses bcrypt; a deliberately slow
//! hash only slows a test suite down, and nothing here guards real secrets.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::pb::authpb::{permission::Type as PermType, Permission};
use crate::pb::etcdserverpb as pb;

use super::error::EtcdError;

/// etcd's default `--auth-token-ttl`.
pub(crate) const DEFAULT_TOKEN_TTL: Duration = Duration::from_secs(300);

/// Who is making a request, once its token is checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Caller {
    /// Auth is disabled: everything is allowed.
    Anyone,
    /// Auth is enabled and the request carried no token.
    Nobody,
    /// An authenticated user.
    User(String),
}

/// What a request does to a key range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    Read,
    Write,
}

#[derive(Debug, Clone)]
struct User {
    /// Salt and SHA-256 of salt + password; `None` for a user added with no password.
    password: Option<([u8; 16], [u8; 32])>,
    roles: BTreeSet<String>,
}

#[derive(Debug, Clone)]
struct Token {
    user: String,
    /// Clock time after which the token is no longer valid; each use pushes it back.
    expires: Duration,
}

/// An auth store's contents, for dumps.
#[derive(Debug, Clone)]
pub(crate) struct AuthExport {
    pub(crate) enabled: bool,
    pub(crate) roles: Vec<(String, Vec<Permission>)>,
    pub(crate) users: Vec<ExportedUser>,
}

/// One user of an [`AuthExport`].
#[derive(Debug, Clone)]
pub(crate) struct ExportedUser {
    pub(crate) name: String,
    /// Salt and SHA-256, `None` for a user without a password.
    pub(crate) password: Option<([u8; 16], [u8; 32])>,
    pub(crate) roles: Vec<String>,
}

/// The auth state of one server.
#[derive(Debug, Clone)]
pub(crate) struct AuthStore {
    enabled: bool,
    /// Bumped by every change to users, roles or permissions, and by disabling auth.
    revision: u64,
    users: BTreeMap<String, User>,
    /// Each role's permissions, sorted by key.
    roles: BTreeMap<String, Vec<Permission>>,
    tokens: HashMap<String, Token>,
    token_ttl: Duration,
    /// The number after the dot in a simple token (etcd's raft index of the login).
    logins: u64,
    /// Feeds salts and tokens.
    random: Random,
}

impl Default for AuthStore {
    fn default() -> Self {
        AuthStore::new(DEFAULT_TOKEN_TTL)
    }
}

fn root_user_missing() -> EtcdError {
    EtcdError::RootUserNotExist
}

impl AuthStore {
    pub(crate) fn new(token_ttl: Duration) -> Self {
        AuthStore {
            enabled: false,
            revision: 1,
            users: BTreeMap::new(),
            roles: BTreeMap::new(),
            tokens: HashMap::new(),
            token_ttl,
            logins: 0,
            random: Random::new(),
        }
    }

    pub(crate) fn is_enabled(&self) -> bool {
        self.enabled
    }

    pub(crate) fn revision(&self) -> u64 {
        self.revision
    }

    /// Resolves a request's token into its caller. A token is ignored while auth is disabled.
    pub(crate) fn caller(
        &mut self,
        token: Option<&str>,
        now: Duration,
    ) -> Result<Caller, EtcdError> {
        if !self.enabled {
            return Ok(Caller::Anyone);
        }
        let Some(token) = token else {
            return Ok(Caller::Nobody);
        };
        let ttl = self.token_ttl;
        match self.tokens.get_mut(token) {
            Some(t) if t.expires > now => {
                // etcd's simple tokens slide: each use keeps the token alive for another TTL.
                t.expires = now + ttl;
                Ok(Caller::User(t.user.clone()))
            }
            Some(_) => {
                self.tokens.remove(token);
                Err(EtcdError::InvalidAuthToken)
            }
            None => Err(EtcdError::InvalidAuthToken),
        }
    }

    /// The caller a verified client certificate names when a request carries no token (etcd's
    /// `--client-cert-auth`): its common name, whether or not such a user exists (a missing one
    /// is then refused as etcd refuses it). An empty common name names nobody.
    pub(crate) fn certificate_caller(&self, common_name: &str) -> Caller {
        if !self.enabled {
            Caller::Anyone
        } else if common_name.is_empty() {
            Caller::Nobody
        } else {
            Caller::User(common_name.to_owned())
        }
    }

    /// Sets how long a token lives without use (etcd's `--auth-token-ttl`). Tokens already
    /// given out keep their deadline until their next use.
    pub(crate) fn set_token_ttl(&mut self, ttl: Duration) {
        self.token_ttl = ttl;
    }

    fn is_root(&self, user: &str) -> bool {
        self.users
            .get(user)
            .is_some_and(|u| u.roles.contains("root"))
    }

    /// Admin-only operations: root role required.
    pub(crate) fn check_admin(&self, caller: &Caller) -> Result<(), EtcdError> {
        match caller {
            Caller::Anyone => Ok(()),
            Caller::Nobody => Err(EtcdError::UserEmpty),
            Caller::User(name) if !self.users.contains_key(name) => Err(EtcdError::UserNotFound),
            Caller::User(name) if self.is_root(name) => Ok(()),
            Caller::User(_) => Err(EtcdError::PermissionDenied),
        }
    }

    /// A token is needed, nothing more (LeaseGrant, Status, MemberList ...).
    pub(crate) fn check_token(&self, caller: &Caller) -> Result<(), EtcdError> {
        match caller {
            Caller::Nobody => Err(EtcdError::UserEmpty),
            _ => Ok(()),
        }
    }

    /// Whether `caller` may `access` every key of `[key, range_end)` (etcd's range encoding).
    pub(crate) fn check_range(
        &self,
        caller: &Caller,
        key: &[u8],
        range_end: &[u8],
        access: Access,
    ) -> Result<(), EtcdError> {
        let name = match caller {
            Caller::Anyone => return Ok(()),
            Caller::Nobody => return Err(EtcdError::UserEmpty),
            Caller::User(name) => name,
        };
        let Some(user) = self.users.get(name) else {
            return Err(EtcdError::PermissionDenied);
        };
        if user.roles.contains("root") {
            return Ok(());
        }
        let granted: Vec<(&[u8], &[u8])> = user
            .roles
            .iter()
            .filter_map(|role| self.roles.get(role))
            .flatten()
            .filter(|p| {
                matches!(
                    (PermType::try_from(p.perm_type), access),
                    (Ok(PermType::Readwrite), _)
                        | (Ok(PermType::Read), Access::Read)
                        | (Ok(PermType::Write), Access::Write)
                )
            })
            .map(|p| (p.key.as_slice(), p.range_end.as_slice()))
            .collect();
        if covered(&granted, key, range_end) {
            Ok(())
        } else {
            Err(EtcdError::PermissionDenied)
        }
    }

    pub(crate) fn enable(&mut self, caller: &Caller) -> Result<(), EtcdError> {
        if self.enabled {
            // Already on: a no-op, but only root may ask.
            return self.check_admin(caller);
        }
        let root = self.users.get("root").ok_or_else(root_user_missing)?;
        if !root.roles.contains("root") {
            return Err(EtcdError::RootRoleNotGranted);
        }
        self.enabled = true;
        Ok(())
    }

    /// Forgets every simple token, as a restarted etcd does (it keeps them in memory only).
    pub(crate) fn drop_tokens(&mut self) {
        self.tokens.clear();
    }

    pub(crate) fn disable(&mut self, caller: &Caller) -> Result<(), EtcdError> {
        if !self.enabled {
            return Ok(());
        }
        self.check_admin(caller)?;
        self.enabled = false;
        self.tokens.clear();
        self.revision += 1;
        Ok(())
    }

    pub(crate) fn authenticate(
        &mut self,
        name: &str,
        password: &str,
        now: Duration,
    ) -> Result<String, EtcdError> {
        if !self.enabled {
            return Err(EtcdError::AuthNotEnabled);
        }
        let user = self.users.get(name).ok_or(EtcdError::AuthFailed)?;
        match &user.password {
            None => return Err(EtcdError::NoPasswordUser),
            Some((salt, hash)) if digest(salt, password) == *hash => {}
            Some(_) => return Err(EtcdError::AuthFailed),
        }
        self.logins += 1;
        let token = format!("{}.{}", self.random.letters(16), self.logins);
        self.tokens.insert(
            token.clone(),
            Token {
                user: name.to_owned(),
                expires: now + self.token_ttl,
            },
        );
        Ok(token)
    }

    pub(crate) fn user_add(&mut self, r: &pb::AuthUserAddRequest) -> Result<(), EtcdError> {
        if r.name.is_empty() {
            return Err(EtcdError::UserEmpty);
        }
        if self.users.contains_key(&r.name) {
            return Err(EtcdError::UserAlreadyExist);
        }
        let no_password = r.options.as_ref().is_some_and(|o| o.no_password);
        // etcd 3.7.2 hashes the password it is sent, the empty one included, in place of any
        // hash the client sent (found by the conformance suite): `hashed_password` is ignored.
        let password = if no_password {
            None
        } else {
            let salt = self.random.salt();
            Some((salt, digest(&salt, &r.password)))
        };
        self.users.insert(
            r.name.clone(),
            User {
                password,
                roles: BTreeSet::new(),
            },
        );
        self.revision += 1;
        Ok(())
    }

    /// Adds a user whose password is already salted and hashed (from a dump). Fails as
    /// UserAdd does for an empty or existing name.
    pub(crate) fn user_add_hashed(
        &mut self,
        name: &str,
        salt: [u8; 16],
        hash: [u8; 32],
    ) -> Result<(), EtcdError> {
        if name.is_empty() {
            return Err(EtcdError::UserEmpty);
        }
        if self.users.contains_key(name) {
            return Err(EtcdError::UserAlreadyExist);
        }
        self.users.insert(
            name.to_owned(),
            User {
                password: Some((salt, hash)),
                roles: BTreeSet::new(),
            },
        );
        self.revision += 1;
        Ok(())
    }

    /// Everything a fixture needs to rebuild this store: whether auth is on, each role's
    /// permissions, and each user's stored password (salt and hash) and roles, by name.
    pub(crate) fn export(&self) -> AuthExport {
        AuthExport {
            enabled: self.enabled,
            roles: self
                .roles
                .iter()
                .map(|(name, perms)| (name.clone(), perms.clone()))
                .collect(),
            users: self
                .users
                .iter()
                .map(|(name, user)| ExportedUser {
                    name: name.clone(),
                    password: user.password,
                    roles: user.roles.iter().cloned().collect(),
                })
                .collect(),
        }
    }

    pub(crate) fn user_get(&self, caller: &Caller, name: &str) -> Result<Vec<String>, EtcdError> {
        if !matches!(caller, Caller::User(me) if me == name) {
            self.check_admin(caller)?;
        }
        let user = self.users.get(name).ok_or(EtcdError::UserNotFound)?;
        Ok(user.roles.iter().cloned().collect())
    }

    pub(crate) fn user_list(&self) -> Vec<String> {
        self.users.keys().cloned().collect()
    }

    pub(crate) fn user_delete(&mut self, name: &str) -> Result<(), EtcdError> {
        if self.enabled && name == "root" {
            return Err(EtcdError::InvalidAuthMgmt);
        }
        self.users.remove(name).ok_or(EtcdError::UserNotFound)?;
        self.tokens.retain(|_, t| t.user != name);
        self.revision += 1;
        Ok(())
    }

    pub(crate) fn user_change_password(
        &mut self,
        r: &pb::AuthUserChangePasswordRequest,
    ) -> Result<(), EtcdError> {
        let salt = self.random.salt();
        let user = self.users.get_mut(&r.name).ok_or(EtcdError::UserNotFound)?;
        // A user without a password stays without one.
        if user.password.is_some() {
            user.password = Some((salt, digest(&salt, &r.password)));
        }
        self.tokens.retain(|_, t| t.user != r.name);
        self.revision += 1;
        Ok(())
    }

    pub(crate) fn user_grant_role(&mut self, user: &str, role: &str) -> Result<(), EtcdError> {
        if !self.users.contains_key(user) {
            return Err(EtcdError::UserNotFound);
        }
        // The root role may be granted before it exists, so that auth can be enabled.
        if role != "root" && !self.roles.contains_key(role) {
            return Err(EtcdError::RoleNotFound);
        }
        let added = self
            .users
            .get_mut(user)
            .is_some_and(|u| u.roles.insert(role.to_owned()));
        if added {
            self.revision += 1;
        }
        Ok(())
    }

    pub(crate) fn user_revoke_role(&mut self, name: &str, role: &str) -> Result<(), EtcdError> {
        if self.enabled && name == "root" && role == "root" {
            return Err(EtcdError::InvalidAuthMgmt);
        }
        let user = self.users.get_mut(name).ok_or(EtcdError::UserNotFound)?;
        if !user.roles.remove(role) {
            return Err(EtcdError::RoleNotGranted);
        }
        self.revision += 1;
        Ok(())
    }

    pub(crate) fn role_add(&mut self, name: &str) -> Result<(), EtcdError> {
        if name.is_empty() {
            return Err(EtcdError::RoleEmpty);
        }
        if self.roles.contains_key(name) {
            return Err(EtcdError::RoleAlreadyExist);
        }
        self.roles.insert(name.to_owned(), Vec::new());
        self.revision += 1;
        Ok(())
    }

    pub(crate) fn role_get(
        &self,
        caller: &Caller,
        role: &str,
    ) -> Result<Vec<Permission>, EtcdError> {
        let holds = matches!(caller, Caller::User(me) if self.users.get(me).is_some_and(|u| u.roles.contains(role)));
        if !holds {
            self.check_admin(caller)?;
        }
        let perms = self.roles.get(role).ok_or(EtcdError::RoleNotFound)?;
        if role == "root" {
            // etcd reports the root role as all keys, read-write, whatever was granted to it.
            return Ok(vec![Permission {
                perm_type: PermType::Readwrite as i32,
                key: Vec::new(),
                range_end: vec![0],
            }]);
        }
        Ok(perms.clone())
    }

    pub(crate) fn role_list(&self) -> Vec<String> {
        self.roles.keys().cloned().collect()
    }

    pub(crate) fn role_delete(&mut self, role: &str) -> Result<(), EtcdError> {
        if self.enabled && role == "root" {
            return Err(EtcdError::InvalidAuthMgmt);
        }
        self.roles.remove(role).ok_or(EtcdError::RoleNotFound)?;
        for user in self.users.values_mut() {
            user.roles.remove(role);
        }
        self.revision += 1;
        Ok(())
    }

    pub(crate) fn role_grant_permission(
        &mut self,
        name: &str,
        perm: Option<&Permission>,
    ) -> Result<(), EtcdError> {
        let perm = perm.ok_or(EtcdError::PermissionNotGiven)?;
        let valid = !perm.key.is_empty()
            && (perm.range_end.is_empty() || perm.range_end == [0] || perm.key < perm.range_end);
        if !valid {
            return Err(EtcdError::InvalidAuthMgmt);
        }
        let perms = self.roles.get_mut(name).ok_or(EtcdError::RoleNotFound)?;
        match perms
            .iter_mut()
            .find(|p| p.key == perm.key && p.range_end == perm.range_end)
        {
            Some(existing) => existing.perm_type = perm.perm_type,
            None => {
                perms.push(perm.clone());
                perms.sort_by(|a, b| a.key.cmp(&b.key));
            }
        }
        self.revision += 1;
        Ok(())
    }

    pub(crate) fn role_revoke_permission(
        &mut self,
        r: &pb::AuthRoleRevokePermissionRequest,
    ) -> Result<(), EtcdError> {
        let perms = self.roles.get_mut(&r.role).ok_or(EtcdError::RoleNotFound)?;
        let before = perms.len();
        perms.retain(|p| !(p.key == r.key && p.range_end == r.range_end));
        if perms.len() == before {
            return Err(EtcdError::PermissionNotGranted);
        }
        self.revision += 1;
        Ok(())
    }
}

fn digest(salt: &[u8; 16], password: &str) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(salt);
    hasher.update(password.as_bytes());
    hasher.finalize().into()
}

/// Whether the `granted` intervals (etcd encoding: empty end = one key, "\0" = open-ended)
/// cover every key of the request's range with no gap.
fn covered(granted: &[(&[u8], &[u8])], key: &[u8], range_end: &[u8]) -> bool {
    if range_end.is_empty() {
        return granted
            .iter()
            .any(|(start, end)| interval(start, end).contains(key));
    }
    let granted: Vec<Interval> = granted
        .iter()
        .map(|(start, end)| interval(start, end))
        .collect();
    let wanted = interval(key, range_end);
    // Walk from the request's start: an interval holding the current point moves it to that
    // interval's end, until the point passes the request's end.
    let mut point = wanted.start;
    loop {
        if wanted.end.as_ref().is_some_and(|end| point >= *end) {
            return true;
        }
        let Some(next) = granted
            .iter()
            .filter(|i| i.contains(&point))
            .map(|i| i.end.clone())
            .max_by(|a, b| match (a, b) {
                (None, None) => std::cmp::Ordering::Equal,
                (None, Some(_)) => std::cmp::Ordering::Greater,
                (Some(_), None) => std::cmp::Ordering::Less,
                (Some(a), Some(b)) => a.cmp(b),
            })
        else {
            return false;
        };
        match next {
            None => return true,
            Some(end) => point = end,
        }
    }
}

/// A half-open key interval; `end: None` is unbounded.
struct Interval {
    start: Vec<u8>,
    end: Option<Vec<u8>>,
}

impl Interval {
    fn contains(&self, key: &[u8]) -> bool {
        key >= self.start.as_slice() && self.end.as_ref().is_none_or(|end| key < end.as_slice())
    }
}

fn interval(key: &[u8], range_end: &[u8]) -> Interval {
    let end = match range_end {
        // One key: the interval up to the key's immediate successor.
        [] => Some([key, &[0]].concat()),
        [0] => None,
        end => Some(end.to_vec()),
    };
    Interval {
        start: key.to_vec(),
        end,
    }
}

/// A small generator for salts and token letters, seeded from the OS-keyed hasher std uses for
/// its hash maps: unpredictable enough for a test server, and no extra dependency.
#[derive(Debug, Clone)]
pub(crate) struct Random(u64);

impl Random {
    /// A generator that repeats for the same seed (property tests replay seeds).
    #[cfg(test)]
    pub(crate) fn seeded(seed: u64) -> Self {
        Random(seed)
    }

    fn new() -> Self {
        use std::hash::{BuildHasher, Hasher};
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u64(0x7465_7374_2d65_7463);
        Random(hasher.finish())
    }

    /// splitmix64
    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn salt(&mut self) -> [u8; 16] {
        let mut salt = [0; 16];
        salt[..8].copy_from_slice(&self.next().to_le_bytes());
        salt[8..].copy_from_slice(&self.next().to_le_bytes());
        salt
    }

    fn letters(&mut self, n: usize) -> String {
        const LETTERS: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
        (0..n)
            .map(|_| LETTERS[(self.next() % LETTERS.len() as u64) as usize] as char)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn perm(kind: PermType, key: &str, end: &str) -> Permission {
        Permission {
            perm_type: kind as i32,
            key: key.into(),
            range_end: end.into(),
        }
    }

    fn store_with(perms: &[Permission]) -> (AuthStore, Caller) {
        let mut auth = AuthStore::default();
        auth.user_add(&pb::AuthUserAddRequest {
            name: "alice".into(),
            password: "pw".into(),
            ..Default::default()
        })
        .unwrap();
        auth.role_add("r").unwrap();
        for p in perms {
            auth.role_grant_permission("r", Some(p)).unwrap();
        }
        auth.user_grant_role("alice", "r").unwrap();
        auth.user_add(&pb::AuthUserAddRequest {
            name: "root".into(),
            password: "pw".into(),
            ..Default::default()
        })
        .unwrap();
        auth.user_grant_role("root", "root").unwrap();
        auth.enable(&Caller::Anyone).unwrap();
        (auth, Caller::User("alice".into()))
    }

    #[test]
    fn a_client_sent_hash_is_ignored_and_the_sent_password_hashed() {
        // As etcd 3.7.2: the empty password logs in, the "hash" does not.
        let (mut auth, _) = store_with(&[]);
        auth.user_add(&pb::AuthUserAddRequest {
            name: "u".into(),
            hashed_password: "not a bcrypt hash".into(),
            ..Default::default()
        })
        .unwrap();
        let now = Duration::ZERO;
        assert_eq!(
            auth.authenticate("u", "not a bcrypt hash", now),
            Err(EtcdError::AuthFailed)
        );
        assert!(auth.authenticate("u", "", now).is_ok());
    }

    #[test]
    fn ranges_need_full_cover_by_the_union_of_permissions() {
        let (auth, alice) = store_with(&[
            perm(PermType::Read, "a", "c"),
            perm(PermType::Read, "c", "e"),
            perm(PermType::Read, "x", "\0"),
        ]);
        assert_eq!(auth.check_range(&alice, b"a", b"e", Access::Read), Ok(()));
        assert_eq!(
            auth.check_range(&alice, b"a", b"f", Access::Read),
            Err(EtcdError::PermissionDenied)
        );
        assert_eq!(auth.check_range(&alice, b"b", b"", Access::Read), Ok(()));
        assert_eq!(auth.check_range(&alice, b"y", b"z", Access::Read), Ok(()));
        assert_eq!(auth.check_range(&alice, b"y", b"\0", Access::Read), Ok(()));
        assert_eq!(
            auth.check_range(&alice, b"a", b"\0", Access::Read),
            Err(EtcdError::PermissionDenied)
        );
        assert_eq!(
            auth.check_range(&alice, b"b", b"", Access::Write),
            Err(EtcdError::PermissionDenied)
        );
    }

    #[test]
    fn a_prefix_permission_does_not_cover_an_open_range() {
        let (auth, alice) = store_with(&[perm(PermType::Readwrite, "r/", "r0")]);
        assert_eq!(
            auth.check_range(&alice, b"r/", b"r0", Access::Write),
            Ok(())
        );
        assert_eq!(
            auth.check_range(&alice, b"r/", b"\0", Access::Read),
            Err(EtcdError::PermissionDenied)
        );
    }

    #[test]
    fn tokens_slide_and_expire_on_the_clock() {
        let (mut auth, _) = store_with(&[]);
        let token = auth.authenticate("alice", "pw", Duration::ZERO).unwrap();
        assert!(token.ends_with(".1") && token.len() == 18, "{token}");
        let at = |s| Duration::from_secs(s);
        assert_eq!(
            auth.caller(Some(&token), at(200)),
            Ok(Caller::User("alice".into()))
        );
        assert_eq!(
            auth.caller(Some(&token), at(450)),
            Ok(Caller::User("alice".into())),
            "use slides the TTL"
        );
        assert_eq!(
            auth.caller(Some(&token), at(751)),
            Err(EtcdError::InvalidAuthToken)
        );
        assert_eq!(
            auth.authenticate("alice", "bad", at(0)),
            Err(EtcdError::AuthFailed)
        );
    }

    #[test]
    fn revision_counts_changes_only() {
        let mut auth = AuthStore::default();
        assert_eq!(auth.revision(), 1);
        auth.role_add("r").unwrap();
        auth.user_add(&pb::AuthUserAddRequest {
            name: "u".into(),
            ..Default::default()
        })
        .unwrap();
        auth.user_grant_role("u", "r").unwrap();
        auth.user_grant_role("u", "r").unwrap();
        assert_eq!(auth.revision(), 4, "a repeated grant changes nothing");
        assert_eq!(auth.role_add("r"), Err(EtcdError::RoleAlreadyExist));
        assert_eq!(auth.revision(), 4);
    }

    #[test]
    fn enabling_needs_a_root_user_with_the_root_role() {
        let mut auth = AuthStore::default();
        assert_eq!(
            auth.enable(&Caller::Anyone),
            Err(EtcdError::RootUserNotExist)
        );
        auth.user_add(&pb::AuthUserAddRequest {
            name: "root".into(),
            password: "x".into(),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(
            auth.enable(&Caller::Anyone),
            Err(EtcdError::RootRoleNotGranted)
        );
        auth.user_grant_role("root", "root").unwrap();
        assert_eq!(auth.enable(&Caller::Anyone), Ok(()));
    }
}
