//! The simulated cluster: members, the leader and raft term headers report, the version the
//! cluster runs and a downgrade in progress. There is no raft: a member is "started" once it
//! serves (it has a name, as in etcd, which learns a member's name when it starts), and the
//! reconfiguration checks etcd makes with `--strict-reconfig-check` (the default) count started
//! members the way etcd counts connected peers.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};

use crate::pb::etcdserverpb::{
    downgrade_request::DowngradeAction, DowngradeInfo, Member as PbMember,
};

use super::error::EtcdError;
use super::Engine;

/// A release number, `major.minor.patch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Version {
    pub(crate) major: u64,
    pub(crate) minor: u64,
    pub(crate) patch: u64,
}

impl Version {
    /// The release this server answers as unless told otherwise.
    pub(crate) const DEFAULT: Version = Version {
        major: 3,
        minor: 7,
        patch: 2,
    };

    /// Parses `X.Y.Z` (or `X.Y` when `allow_short`), numbers only.
    pub(crate) fn parse(text: &str, allow_short: bool) -> Option<Version> {
        let parts: Vec<&str> = text.split('.').collect();
        let number = |s: &&str| -> Option<u64> {
            (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
                .then(|| s.parse().ok())
                .flatten()
        };
        let numbers: Option<Vec<u64>> = parts.iter().map(number).collect();
        match numbers?.as_slice() {
            [major, minor, patch] => Some(Version {
                major: *major,
                minor: *minor,
                patch: *patch,
            }),
            [major, minor] if allow_short => Some(Version {
                major: *major,
                minor: *minor,
                patch: 0,
            }),
            _ => None,
        }
    }

    /// The cluster (and storage) version etcd derives from a server version: `X.Y.0`.
    pub(crate) fn cluster(&self) -> String {
        format!("{}.{}.0", self.major, self.minor)
    }

    /// `X.Y`, as the Downgrade response reports the cluster version.
    pub(crate) fn major_minor(&self) -> String {
        format!("{}.{}", self.major, self.minor)
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// One member, as MemberList shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Member {
    id: u64,
    /// Empty until the member starts, as in etcd.
    name: String,
    peer_urls: Vec<String>,
    client_urls: Vec<String>,
    is_learner: bool,
}

impl Member {
    fn started(&self) -> bool {
        !self.name.is_empty()
    }

    fn to_pb(&self) -> PbMember {
        PbMember {
            id: self.id,
            name: self.name.clone(),
            peer_ur_ls: self.peer_urls.clone(),
            client_ur_ls: self.client_urls.clone(),
            is_learner: self.is_learner,
        }
    }
}

/// Why a member could not be made to start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StartRefusal {
    /// No such member (never added, or removed).
    Unknown,
    /// It serves already.
    AlreadyStarted,
}

/// etcd's `--max-learners` default.
const MAX_LEARNERS: usize = 1;
/// Raft entries a fresh single node has applied (spec: Status raftIndex 4 at revision 1).
const FRESH_RAFT_ENTRIES: u64 = 3;

/// The cluster state.
#[derive(Debug, Clone)]
pub(crate) struct Cluster {
    cluster_id: u64,
    members: BTreeMap<u64, Member>,
    removed: BTreeSet<u64>,
    leader: u64,
    raft_term: u64,
    /// Raft entries other than kv writes (alarms, compactions, conf changes, ...).
    other_entries: u64,
    version: Version,
    /// The target of the downgrade in progress, if one is.
    downgrade: Option<Version>,
}

impl Default for Cluster {
    /// A single etcd started with default flags: name `default`, peer URL
    /// `http://localhost:2380`, token `etcd-cluster`, with the IDs etcd derives from them, and
    /// the raft term such a node has after bootstrapping.
    fn default() -> Self {
        let id = 0x8e9e_05c5_2164_694d;
        let member = Member {
            id,
            name: "default".to_owned(),
            peer_urls: vec!["http://localhost:2380".to_owned()],
            client_urls: Vec::new(),
            is_learner: false,
        };
        Cluster {
            cluster_id: 0xcdf8_1819_4e3a_8c32,
            members: BTreeMap::from([(id, member)]),
            removed: BTreeSet::new(),
            leader: id,
            raft_term: 2,
            other_entries: 0,
            version: Version::DEFAULT,
            downgrade: None,
        }
    }
}

/// The first 8 bytes of a SHA-256, big-endian: how IDs are derived here. etcd uses SHA-1 the
/// same way; the IDs differ from etcd's but are as stable and as unique.
fn id_of(parts: &[&[u8]]) -> u64 {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part);
    }
    let digest = hasher.finalize();
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(bytes)
}

/// etcd's check of a member URL: http, https, unix or unixs, `host:port`, no path.
fn valid_url(url: &str) -> bool {
    let Some((scheme, rest)) = url.split_once("://") else {
        return false;
    };
    if !matches!(scheme, "http" | "https" | "unix" | "unixs") {
        return false;
    }
    if rest.contains(['/', '?', '#']) {
        return false;
    }
    matches!(rest.rsplit_once(':'), Some((_, port)) if !port.is_empty())
}

/// MemberAdd's URLs, checked and sorted. etcd checks them before anything else, auth
/// included (found by the conformance suite against 3.7.2).
pub(crate) fn checked_urls(urls: &[String]) -> Result<Vec<String>, EtcdError> {
    if urls.is_empty() || !urls.iter().all(|u| valid_url(u)) {
        return Err(EtcdError::InvalidMemberUrls);
    }
    let mut urls = urls.to_vec();
    urls.sort();
    Ok(urls)
}

impl Cluster {
    /// `n` members serving at `client_urls` (one each). One member is etcd's default node;
    /// more are `infra1`, `infra2`, ... with peer URLs `http://localhost:2380`, `:2381`, ...
    pub(crate) fn bootstrap(client_urls: Vec<String>, version: Version) -> Cluster {
        let mut cluster = Cluster {
            version,
            ..Cluster::default()
        };
        if client_urls.len() == 1 {
            for member in cluster.members.values_mut() {
                member.client_urls = client_urls.clone();
            }
            return cluster;
        }
        cluster.members.clear();
        for (i, client_url) in client_urls.into_iter().enumerate() {
            let peer_url = format!("http://localhost:{}", 2380 + i);
            let id = id_of(&[peer_url.as_bytes(), b"etcd-cluster"]);
            cluster.members.insert(
                id,
                Member {
                    id,
                    name: format!("infra{}", i + 1),
                    peer_urls: vec![peer_url],
                    client_urls: vec![client_url],
                    is_learner: false,
                },
            );
        }
        let ids: Vec<u8> = cluster
            .members
            .keys()
            .flat_map(|id| id.to_be_bytes())
            .collect();
        cluster.cluster_id = id_of(&[&ids]);
        cluster.leader = cluster.members.keys().next().copied().unwrap_or_default();
        cluster
    }

    fn voters(&self) -> impl Iterator<Item = &Member> {
        self.members.values().filter(|m| !m.is_learner)
    }

    fn list(&self) -> Vec<PbMember> {
        self.members.values().map(Member::to_pb).collect()
    }

    /// Quorum after adding a voter, etcd's `IsReadyToAddVotingMember`.
    fn ready_to_add_voter(&self) -> bool {
        let members = self.voters().count() + 1;
        let started = self.voters().filter(|m| m.started()).count();
        // Growing a one-member cluster is allowed though it loses quorum until the new member
        // starts: that is how a cluster is grown from a restored node.
        (started == 1 && members == 2) || started > members / 2
    }

    /// etcd refuses a reconfiguration while it is not connected to every voter; here, while a
    /// voter has not started.
    fn healthy(&self) -> bool {
        self.voters().all(Member::started)
    }

    fn member_add(
        &mut self,
        peer_urls: &[String],
        is_learner: bool,
    ) -> Result<(PbMember, Vec<PbMember>), EtcdError> {
        let peer_urls = checked_urls(peer_urls)?;
        if !is_learner && !self.ready_to_add_voter() {
            return Err(EtcdError::NotEnoughStartedMembers);
        }
        if !self.healthy() {
            return Err(EtcdError::Unhealthy);
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let id = id_of(&[peer_urls.concat().as_bytes(), now.to_string().as_bytes()]);
        if self.removed.contains(&id) {
            return Err(EtcdError::MemberNotFound);
        }
        if self.members.contains_key(&id) {
            return Err(EtcdError::MemberIdExists);
        }
        self.check_urls_free(&peer_urls, None)?;
        if is_learner && self.members.values().filter(|m| m.is_learner).count() >= MAX_LEARNERS {
            return Err(EtcdError::TooManyLearners);
        }
        let member = Member {
            id,
            name: String::new(),
            peer_urls,
            client_urls: Vec::new(),
            is_learner,
        };
        let added = member.to_pb();
        self.members.insert(id, member);
        self.other_entries += 1;
        Ok((added, self.list()))
    }

    fn check_urls_free(&self, urls: &[String], except: Option<u64>) -> Result<(), EtcdError> {
        let taken = self
            .members
            .values()
            .filter(|m| Some(m.id) != except)
            .flat_map(|m| &m.peer_urls)
            .any(|u| urls.contains(u));
        if taken {
            return Err(EtcdError::PeerUrlExists);
        }
        Ok(())
    }

    fn member_remove(&mut self, serving: u64, id: u64) -> Result<Vec<PbMember>, EtcdError> {
        let target = self.members.get(&id);
        // Removing a learner cannot cost quorum, so etcd skips the checks for it.
        if !target.is_some_and(|m| m.is_learner) {
            let others: Vec<&Member> = self.voters().filter(|m| m.id != id).collect();
            let started = others.iter().filter(|m| m.started()).count();
            if started <= others.len() / 2 {
                return Err(EtcdError::NotEnoughStartedMembers);
            }
            // A member that is down (or unknown) is not part of the active quorum.
            let target_active = target.is_some_and(Member::started);
            if id == serving || target_active {
                let voters = self.voters().count();
                let active = self.voters().filter(|m| m.started()).count();
                if active.saturating_sub(1) < 1 + voters.saturating_sub(1) / 2 {
                    return Err(EtcdError::Unhealthy);
                }
            }
        }
        if self.members.remove(&id).is_none() {
            return Err(EtcdError::MemberNotFound);
        }
        self.removed.insert(id);
        self.other_entries += 1;
        if self.leader == id {
            // A new election among the started voters; the lowest ID wins here.
            let next = self.voters().find(|m| m.started()).map_or(0, |m| m.id);
            self.leader = next;
            self.raft_term += 1;
        }
        Ok(self.list())
    }

    fn member_update(&mut self, id: u64, peer_urls: &[String]) -> Result<Vec<PbMember>, EtcdError> {
        // etcd 3.7.2 accepts any URL here and then crashes applying it; we refuse it up front
        // with MemberAdd's answer.
        let peer_urls = checked_urls(peer_urls)?;
        if !self.members.contains_key(&id) {
            return Err(EtcdError::MemberNotFound);
        }
        self.check_urls_free(&peer_urls, Some(id))?;
        if let Some(member) = self.members.get_mut(&id) {
            member.peer_urls = peer_urls;
        }
        self.other_entries += 1;
        Ok(self.list())
    }

    fn member_promote(&mut self, id: u64) -> Result<Vec<PbMember>, EtcdError> {
        let Some(member) = self.members.get(&id) else {
            return Err(EtcdError::MemberNotFound);
        };
        if !member.is_learner {
            return Err(EtcdError::NotLearner);
        }
        // In sync with the leader: here, serving the same engine, which a started member does.
        if !member.started() {
            return Err(EtcdError::LearnerNotReady);
        }
        let members = self.voters().count() + 1;
        let started = self.voters().filter(|m| m.started()).count() + 1;
        if started <= members / 2 {
            return Err(EtcdError::NotEnoughStartedMembers);
        }
        if let Some(member) = self.members.get_mut(&id) {
            member.is_learner = false;
        }
        self.other_entries += 1;
        Ok(self.list())
    }

    /// A new election with the same leader, as after every member restarted.
    pub(crate) fn new_term(&mut self) {
        self.raft_term += 1;
    }

    fn move_leader(&mut self, serving: u64, target: u64) -> Result<(), EtcdError> {
        if serving != self.leader {
            return Err(EtcdError::NotLeader);
        }
        let Some(member) = self.members.get(&target) else {
            return Err(EtcdError::BadLeaderTransferee);
        };
        if member.is_learner {
            return Err(EtcdError::BadLeaderTransferee);
        }
        if target == self.leader {
            return Ok(());
        }
        // A member that is not running never takes over: etcd waits, then gives up.
        if !member.started() {
            return Err(EtcdError::LeaderTransferTimeout);
        }
        self.leader = target;
        self.raft_term += 1;
        Ok(())
    }

    fn downgrade(&mut self, action: i32, target: &str) -> Result<String, EtcdError> {
        let action = DowngradeAction::try_from(action).map_err(|_| EtcdError::UnknownMethod)?;
        if action == DowngradeAction::Cancel {
            if self.downgrade.take().is_some() {
                self.other_entries += 1;
            }
            return Ok(self.version.major_minor());
        }
        let target = Version::parse(target, true).ok_or(EtcdError::WrongDowngradeVersionFormat)?;
        // Only to the previous minor release of the same major, patch ignored.
        let allowed = self.version.minor.checked_sub(1).map(|minor| Version {
            major: self.version.major,
            minor,
            patch: 0,
        });
        let target = Version { patch: 0, ..target };
        if Some(target) != allowed {
            return Err(EtcdError::InvalidDowngradeTarget);
        }
        if self.downgrade.is_some() {
            return Err(EtcdError::DowngradeInProgress);
        }
        if action == DowngradeAction::Enable {
            self.downgrade = Some(target);
            self.other_entries += 1;
        }
        Ok(self.version.major_minor())
    }

    fn start_member(
        &mut self,
        id: u64,
        name: &str,
        client_url: String,
    ) -> Result<(), StartRefusal> {
        let member = self.members.get_mut(&id).ok_or(StartRefusal::Unknown)?;
        if member.started() {
            return Err(StartRefusal::AlreadyStarted);
        }
        member.name = if name.is_empty() {
            format!("{id:x}")
        } else {
            name.to_owned()
        };
        member.client_urls = vec![client_url];
        Ok(())
    }
}

/// What Status and the headers need to know about the cluster, read at once.
#[derive(Debug, Clone)]
pub(crate) struct ClusterView {
    pub(crate) raft_term: u64,
    pub(crate) leader: u64,
    pub(crate) version: Version,
    pub(crate) downgrade: DowngradeInfo,
    /// Raft entries besides the kv writes.
    pub(crate) other_entries: u64,
}

impl ClusterView {
    /// The raft index at kv `revision`: every write is one entry, as are the other proposals.
    pub(crate) fn raft_index(&self, revision: i64) -> u64 {
        FRESH_RAFT_ENTRIES + revision.max(0) as u64 + self.other_entries
    }
}

impl Engine {
    pub(super) fn cluster(&self) -> std::sync::MutexGuard<'_, Cluster> {
        // Every cluster operation checks before it changes anything, so a poisoned lock holds
        // a consistent state.
        self.shared
            .cluster
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Sets up the members, one per client URL.
    pub(crate) fn bootstrap_cluster(&self, client_urls: Vec<String>, version: Version) {
        *self.cluster() = Cluster::bootstrap(client_urls, version);
    }

    /// The cluster facts headers and Status report.
    pub(crate) fn cluster_view(&self) -> ClusterView {
        let c = self.cluster();
        ClusterView {
            raft_term: c.raft_term,
            leader: c.leader,
            version: c.version,
            downgrade: DowngradeInfo {
                enabled: c.downgrade.is_some(),
                target_version: c.downgrade.map(|v| v.to_string()).unwrap_or_default(),
            },
            other_entries: c.other_entries,
        }
    }

    /// Cluster ID and raft term, for response headers.
    pub(crate) fn header_ids(&self) -> (u64, u64) {
        let c = self.cluster();
        (c.cluster_id, c.raft_term)
    }

    /// Counts a raft entry that is not a kv write.
    pub(crate) fn note_entry(&self) {
        self.cluster().other_entries += 1;
    }

    /// Every member, sorted by ID.
    pub(crate) fn members(&self) -> Vec<PbMember> {
        self.cluster().list()
    }

    /// Whether member `id` is a learner.
    pub(crate) fn is_learner(&self, id: u64) -> bool {
        self.cluster()
            .members
            .get(&id)
            .is_some_and(|m| m.is_learner)
    }

    pub(crate) fn member_add(
        &self,
        peer_urls: &[String],
        is_learner: bool,
    ) -> Result<(PbMember, Vec<PbMember>), EtcdError> {
        self.cluster().member_add(peer_urls, is_learner)
    }

    /// Removes member `id`, asked through member `serving`.
    pub(crate) fn member_remove(&self, serving: u64, id: u64) -> Result<Vec<PbMember>, EtcdError> {
        self.cluster().member_remove(serving, id)
    }

    pub(crate) fn member_update(
        &self,
        id: u64,
        peer_urls: &[String],
    ) -> Result<Vec<PbMember>, EtcdError> {
        self.cluster().member_update(id, peer_urls)
    }

    pub(crate) fn member_promote(&self, id: u64) -> Result<Vec<PbMember>, EtcdError> {
        self.cluster().member_promote(id)
    }

    /// Makes `target` the leader, asked through member `serving`.
    pub(crate) fn move_leader(&self, serving: u64, target: u64) -> Result<(), EtcdError> {
        self.cluster().move_leader(serving, target)
    }

    /// Runs a Downgrade action; returns the cluster version as `X.Y`.
    pub(crate) fn downgrade(&self, action: i32, target: &str) -> Result<String, EtcdError> {
        self.cluster().downgrade(action, target)
    }

    /// Marks an added member as started: it has a name and serves at `client_url`.
    pub(crate) fn start_member(
        &self,
        id: u64,
        name: &str,
        client_url: String,
    ) -> Result<(), StartRefusal> {
        self.cluster().start_member(id, name, client_url)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn urls(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn member_urls_follow_etcds_rules() {
        for ok in [
            "http://10.0.0.1:2380",
            "https://h:1",
            "unix://foo:1",
            "http://[::1]:2380",
        ] {
            assert!(valid_url(ok), "{ok}");
        }
        for bad in [
            "foo",
            "http://h:2380/",
            "http://h:2380/path",
            "ftp://h:1",
            "http://h",
            "",
        ] {
            assert!(!valid_url(bad), "{bad}");
        }
        assert_eq!(checked_urls(&[]), Err(EtcdError::InvalidMemberUrls));
    }

    #[test]
    fn a_second_voter_before_the_first_starts_needs_more_started_members() {
        let mut c = Cluster::bootstrap(urls(&["http://127.0.0.1:1"]), Version::DEFAULT);
        c.member_add(&urls(&["http://n2:2380"]), false).unwrap();
        assert_eq!(
            c.member_add(&urls(&["http://n3:2380"]), false),
            Err(EtcdError::NotEnoughStartedMembers)
        );
        assert_eq!(
            c.member_add(&urls(&["http://n3:2380"]), true),
            Err(EtcdError::Unhealthy)
        );
    }

    #[test]
    fn the_only_member_cannot_be_removed() {
        let mut c = Cluster::default();
        let id = c.leader;
        assert_eq!(
            c.member_remove(id, id),
            Err(EtcdError::NotEnoughStartedMembers)
        );
        assert_eq!(c.member_remove(id, 12345), Err(EtcdError::MemberNotFound));
    }

    #[test]
    fn downgrade_targets_only_the_previous_minor() {
        let mut c = Cluster::default();
        assert_eq!(c.downgrade(0, "3.6"), Ok("3.7".to_owned()));
        assert_eq!(c.downgrade(0, "3.6.0"), Ok("3.7".to_owned()));
        for bad in ["3.7", "3.5", "3.8", "3.0"] {
            assert_eq!(c.downgrade(0, bad), Err(EtcdError::InvalidDowngradeTarget));
        }
        for bad in ["x", "1.2.3.4", ""] {
            assert_eq!(
                c.downgrade(0, bad),
                Err(EtcdError::WrongDowngradeVersionFormat)
            );
        }
        assert_eq!(c.downgrade(1, "3.6"), Ok("3.7".to_owned()));
        assert_eq!(c.downgrade(0, "3.6"), Err(EtcdError::DowngradeInProgress));
        assert_eq!(c.downgrade(2, ""), Ok("3.7".to_owned()));
        assert_eq!(c.downgrade(2, ""), Ok("3.7".to_owned()));
        assert_eq!(c.downgrade(9, ""), Err(EtcdError::UnknownMethod));
    }
}
