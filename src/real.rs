//! The real-etcd backend: a real etcd process per guard, in a temp dir of its own, on free
//! loopback ports. The guard talks to it only through the gRPC API, like any client.

use std::fs;
use std::io::Read;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use crate::error::Error;
use crate::pb::etcdserverpb::{kv_client::KvClient, PutRequest, RangeRequest};

/// How long a spawned etcd may take to answer its first request.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How many times a start is retried when another process took one of our ports first.
const PORT_ATTEMPTS: usize = 5;

/// What the builder asks of a real etcd.
#[derive(Debug, Clone)]
pub(crate) struct RealConfig {
    pub(crate) binary: PathBuf,
    pub(crate) listen: Option<SocketAddr>,
    pub(crate) max_request_bytes: usize,
    pub(crate) max_txn_ops: usize,
    pub(crate) progress_interval: Duration,
    /// How many members: 1 for a single node.
    pub(crate) members: usize,
}

/// Running etcd processes: one, or the members of a local cluster. Dropping it kills and reaps
/// every process and removes their directories.
#[derive(Debug)]
pub(crate) struct RealEtcd {
    members: Vec<Member>,
    /// Root's name and password once a fixture turned auth on: the guard's own reads log in.
    credentials: Option<Credentials>,
}

/// A user name and password.
pub(crate) type Credentials = (String, String);

/// One etcd process, in a directory of its own.
#[derive(Debug)]
struct Member {
    child: Child,
    dir: PathBuf,
    addr: SocketAddr,
    log: PathBuf,
}

impl Member {
    fn end(self) {
        end(self.child);
        remove_dir(&self.dir);
    }
}

impl RealEtcd {
    /// Spawns etcd (`config.members` of them) and waits until each answers a linearizable read
    /// (so the cluster has a leader).
    pub(crate) fn start(config: &RealConfig) -> Result<RealEtcd, Error> {
        // The watchdog shell would start even without etcd: look before spawning, so that a
        // wrong path is reported as such.
        fs::metadata(&config.binary).map_err(|source| Error::EtcdSpawn {
            binary: config.binary.clone(),
            source,
        })?;
        let mut last_error = None;
        for _ in 0..PORT_ATTEMPTS {
            match spawn_cluster(config) {
                Ok(members) => {
                    return Ok(RealEtcd {
                        members,
                        credentials: None,
                    })
                }
                Err(Attempt::PortTaken(err)) if config.listen.is_none() => last_error = Some(err),
                Err(Attempt::PortTaken(err) | Attempt::Failed(err)) => return Err(err),
            }
        }
        Err(last_error.unwrap_or_else(|| Error::EtcdStart {
            reason: "no free ports".into(),
            log: String::new(),
        }))
    }

    /// The client address of the first member.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.members
            .first()
            .map_or(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), |m| m.addr)
    }

    /// The client address of every member, in member order.
    pub(crate) fn addrs(&self) -> Vec<SocketAddr> {
        self.members.iter().map(|m| m.addr).collect()
    }

    /// Kills and reaps every process, then removes their directories.
    pub(crate) fn stop(&mut self) {
        for member in self.members.drain(..) {
            member.end();
        }
    }

    /// Replays checked fixtures (see `real_seed`); the guard's reads then log in as root if
    /// they turned auth on.
    pub(crate) fn seed(&mut self, plan: crate::real_seed::SeedPlan) -> Result<(), Error> {
        self.credentials = crate::real_seed::seed(self.addr(), plan)?;
        Ok(())
    }

    /// The current value of `key`, read with a Range.
    pub(crate) fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, String> {
        let key = key.to_vec();
        call_as(
            self.addr(),
            self.credentials.as_ref(),
            |channel, token| async move {
                let mut kv = KvClient::new(channel);
                let req = RangeRequest {
                    key,
                    ..Default::default()
                };
                let resp = kv.range(with_token(req, &token)).await?.into_inner();
                Ok(resp.kvs.into_iter().next().map(|kv| kv.value.into()))
            },
        )
    }

    /// The current revision, from the header of a Range.
    pub(crate) fn revision(&self) -> Result<i64, String> {
        call_as(
            self.addr(),
            self.credentials.as_ref(),
            |channel, token| async move {
                let mut kv = KvClient::new(channel);
                let req = RangeRequest {
                    key: vec![0],
                    count_only: true,
                    ..Default::default()
                };
                let resp = kv.range(with_token(req, &token)).await?.into_inner();
                Ok(resp.header.map_or(0, |h| h.revision))
            },
        )
    }
}

/// `message` as a request carrying `token`, if there is one.
pub(crate) fn with_token<T>(message: T, token: &Option<String>) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    if let Some(value) = token.as_ref().and_then(|t| t.parse().ok()) {
        request.metadata_mut().insert("token", value);
    }
    request
}

/// As [`call`], on a channel, logged in first with `credentials` if given (`f` gets the token).
pub(crate) fn call_as<T, F, Fut>(
    addr: SocketAddr,
    credentials: Option<&Credentials>,
    f: F,
) -> Result<T, String>
where
    T: Send,
    F: FnOnce(tonic::transport::Channel, Option<String>) -> Fut + Send,
    Fut: std::future::Future<Output = Result<T, tonic::Status>>,
{
    let credentials = credentials.cloned();
    call_channel(addr, move |channel| async move {
        let token = match credentials {
            None => None,
            Some((name, password)) => {
                let mut auth =
                    crate::pb::etcdserverpb::auth_client::AuthClient::new(channel.clone());
                let req = crate::pb::etcdserverpb::AuthenticateRequest { name, password };
                Some(auth.authenticate(req).await?.into_inner().token)
            }
        };
        f(channel, token).await
    })
}

/// Puts each pair on the etcd at `addr`, one request (so one revision) each.
pub(crate) fn put_all(addr: SocketAddr, puts: Vec<(Vec<u8>, Vec<u8>)>) -> Result<(), Error> {
    if puts.is_empty() {
        return Ok(());
    }
    call(addr, |mut kv| async move {
        for (key, value) in puts {
            let req = PutRequest {
                key,
                value,
                ..Default::default()
            };
            kv.put(req).await?;
        }
        Ok(())
    })
    .map_err(Error::EtcdRequest)
}

/// The current value of `key` on the etcd at `addr`.
pub(crate) fn get(addr: SocketAddr, key: Vec<u8>) -> Result<Option<Vec<u8>>, String> {
    call(addr, |mut kv| async move {
        let req = RangeRequest {
            key,
            ..Default::default()
        };
        let resp = kv.range(req).await?.into_inner();
        Ok(resp.kvs.into_iter().next().map(|kv| kv.value.into()))
    })
}

/// The current revision of the etcd at `addr`, from the header of a count-only Range.
pub(crate) fn revision(addr: SocketAddr) -> Result<i64, String> {
    call(addr, |mut kv| async move {
        let req = RangeRequest {
            key: vec![0],
            count_only: true,
            ..Default::default()
        };
        let resp = kv.range(req).await?.into_inner();
        Ok(resp.header.map_or(0, |h| h.revision))
    })
}

impl Drop for RealEtcd {
    fn drop(&mut self) {
        self.stop();
    }
}

enum Attempt {
    /// etcd could not bind a port we had just seen free: another process was faster.
    PortTaken(Error),
    Failed(Error),
}

/// Starts every member and waits for all of them; on any failure ends those started.
fn spawn_cluster(config: &RealConfig) -> Result<Vec<Member>, Attempt> {
    // etcd binds its ports itself, so the best we can do is to pick ports that were free a
    // moment ago, and to try again with others if it loses the race.
    let count = config.members.max(1);
    let mut ports = Vec::with_capacity(count);
    for i in 0..count {
        let client = match config.listen {
            // A fixed address is checked like the embedded backend checks it: taken is a Bind
            // error, before anything is spawned.
            Some(addr) if i == 0 && addr.port() != 0 => free_port(addr).map_err(Attempt::Failed)?,
            Some(addr) if i == 0 => free_port(addr).map_err(Attempt::Failed)?,
            _ => free_port(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).map_err(Attempt::Failed)?,
        };
        let peer = free_port(SocketAddr::from((client.ip(), 0))).map_err(Attempt::Failed)?;
        // A single node is named and advertised as a default etcd is (`default`,
        // http://localhost:2380), so that its cluster and member IDs, which etcd derives from
        // them, are a default node's, as the embedded engine's are. It never dials a peer, so
        // the advertised URL need not be the one it listens on.
        let (name, advertised) = if count == 1 {
            ("default".to_owned(), "http://localhost:2380".to_owned())
        } else {
            (format!("m{i}"), format!("http://{peer}"))
        };
        ports.push((name, client, peer, advertised));
    }
    let cluster = ports
        .iter()
        .map(|(name, _, _, advertised)| format!("{name}={advertised}"))
        .collect::<Vec<_>>()
        .join(",");
    let mut members = Vec::with_capacity(count);
    for (name, client, peer, advertised) in &ports {
        let urls = Urls {
            client: *client,
            peer: *peer,
            advertised_peer: advertised,
        };
        match spawn_member(config, name, &urls, &cluster) {
            Ok(member) => members.push(member),
            Err(err) => {
                members.into_iter().for_each(Member::end);
                return Err(Attempt::Failed(err));
            }
        }
    }
    let mut failure = None;
    for member in &mut members {
        if let Err(reason) = wait_ready(&mut member.child, member.addr) {
            // Read before ending: the watchdog removes the directory with the log.
            let log = read_log(&member.log);
            let taken = log.contains("address already in use");
            let err = Error::EtcdStart { reason, log };
            failure = Some(if taken {
                Attempt::PortTaken(err)
            } else {
                Attempt::Failed(err)
            });
            break;
        }
    }
    match failure {
        None => Ok(members),
        Some(failure) => {
            members.into_iter().for_each(Member::end);
            Err(failure)
        }
    }
}

/// Where one member listens, and the peer URL it advertises.
struct Urls<'a> {
    client: SocketAddr,
    peer: SocketAddr,
    advertised_peer: &'a str,
}

fn spawn_member(
    config: &RealConfig,
    name: &str,
    urls: &Urls<'_>,
    cluster: &str,
) -> Result<Member, Error> {
    let client = urls.client;
    let dir = temp_dir().map_err(Error::Start)?;
    let data = dir.join("data");
    let log_path = dir.join("etcd.log");
    let files = fs::File::create(&log_path).and_then(|log| Ok((log.try_clone()?, log)));
    let (log, log_err) = match files {
        Ok(files) => files,
        Err(e) => {
            remove_dir(&dir);
            return Err(Error::Start(e));
        }
    };
    let client_url = format!("http://{client}");
    let peer_url = format!("http://{}", urls.peer);
    let spawned = etcd_command(&config.binary, &dir)
        .arg(format!("--name={name}"))
        .arg(format!("--data-dir={}", data.display()))
        .arg(format!("--listen-client-urls={client_url}"))
        .arg(format!("--advertise-client-urls={client_url}"))
        .arg(format!("--listen-peer-urls={peer_url}"))
        .arg(format!(
            "--initial-advertise-peer-urls={}",
            urls.advertised_peer
        ))
        .arg(format!("--initial-cluster={cluster}"))
        .arg(format!("--max-request-bytes={}", config.max_request_bytes))
        .arg(format!("--max-txn-ops={}", config.max_txn_ops))
        .arg(format!(
            "--watch-progress-notify-interval={}ms",
            config.progress_interval.as_millis()
        ))
        // A test's data need not survive a power cut; fsync would dominate every write.
        .arg("--unsafe-no-fsync")
        .arg("--log-level=error")
        .current_dir(&dir)
        .stdout(Stdio::from(log))
        .stderr(Stdio::from(log_err))
        .spawn();
    match spawned {
        Ok(child) => Ok(Member {
            child,
            dir,
            addr: client,
            log: log_path,
        }),
        Err(source) => {
            remove_dir(&dir);
            Err(Error::EtcdSpawn {
                binary: config.binary.clone(),
                source,
            })
        }
    }
}

/// How etcd is started. On Unix a shell stands between us and etcd, holding the read end of a
/// pipe whose write end only this process has: if this process dies without dropping its
/// guards (a signal, `process::exit`), the pipe closes and the shell kills etcd and removes its
/// directory, so nothing outlives the test run. Dropping the guard closes the pipe the same way.
#[cfg(unix)]
fn etcd_command(binary: &Path, dir: &Path) -> Command {
    const WATCHDOG: &str = r#"exec 3<&0
dir=$0
"$@" </dev/null &
pid=$!
{ read -r _ <&3; kill -9 "$pid" 2>/dev/null; rm -rf "$dir"; } &
wait "$pid""#;
    let mut command = Command::new("/bin/sh");
    command
        .arg("-c")
        .arg(WATCHDOG)
        .arg(dir)
        .arg(binary)
        .stdin(Stdio::piped());
    command
}

#[cfg(not(unix))]
fn etcd_command(binary: &Path, _dir: &Path) -> Command {
    let mut command = Command::new(binary);
    command.stdin(Stdio::null());
    command
}

/// Stops etcd and reaps it: closing the watchdog's pipe makes it kill etcd and exit once etcd
/// is gone; a direct kill is the fallback.
fn end(mut child: Child) {
    let Some(pipe) = child.stdin.take() else {
        let _ = child.kill();
        let _ = child.wait();
        return;
    };
    drop(pipe);
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        match child.try_wait() {
            Ok(Some(_)) | Err(_) => return,
            Ok(None) => thread::sleep(Duration::from_millis(2)),
        }
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Polls until etcd answers a Range, or it exits, or the time runs out.
fn wait_ready(child: &mut Child, addr: SocketAddr) -> Result<(), String> {
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("etcd exited with {status}"));
        }
        if Instant::now() > deadline {
            return Err(format!("etcd did not answer within {READY_TIMEOUT:?}"));
        }
        // A cheap TCP probe first: a gRPC connect to a closed port is much slower to fail.
        if TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok() {
            let answered = call(addr, |mut kv| async move {
                let req = RangeRequest {
                    key: vec![0],
                    count_only: true,
                    ..Default::default()
                };
                kv.range(req).await?;
                Ok(())
            });
            if answered.is_ok() {
                return Ok(());
            }
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// Runs one client exchange with etcd on a thread and runtime of its own: the caller may be on
/// a tokio runtime (where blocking on another would panic) or on none.
pub(crate) fn call<T, F, Fut>(addr: SocketAddr, f: F) -> Result<T, String>
where
    T: Send,
    F: FnOnce(KvClient<tonic::transport::Channel>) -> Fut + Send,
    Fut: std::future::Future<Output = Result<T, tonic::Status>>,
{
    call_channel(addr, move |channel| f(KvClient::new(channel)))
}

/// As [`call`], with the channel, for any service.
pub(crate) fn call_channel<T, F, Fut>(addr: SocketAddr, f: F) -> Result<T, String>
where
    T: Send,
    F: FnOnce(tonic::transport::Channel) -> Fut + Send,
    Fut: std::future::Future<Output = Result<T, tonic::Status>>,
{
    thread::scope(|scope| {
        let worker = scope.spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            runtime.block_on(async move {
                let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
                    .map_err(|e| e.to_string())?
                    .connect_timeout(Duration::from_secs(5))
                    .timeout(Duration::from_secs(10));
                let channel = endpoint.connect().await.map_err(|e| e.to_string())?;
                f(channel)
                    .await
                    .map_err(|s| format!("{:?}: {}", s.code(), s.message()))
            })
        });
        worker
            .join()
            .unwrap_or_else(|_| Err("the client thread panicked".into()))
    })
}

/// A port that was free on `addr`'s address a moment ago.
fn free_port(addr: SocketAddr) -> Result<SocketAddr, Error> {
    let listener = TcpListener::bind(addr).map_err(|source| Error::Bind { addr, source })?;
    listener.local_addr().map_err(Error::Start)
}

/// Removes `dir`, which the watchdog may be removing at the same time.
fn remove_dir(dir: &Path) {
    for _ in 0..100 {
        let _ = fs::remove_dir_all(dir);
        if !dir.exists() {
            return;
        }
        thread::sleep(Duration::from_millis(5));
    }
}

/// A new, empty directory under the system temp dir, owned by one guard.
fn temp_dir() -> std::io::Result<PathBuf> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    loop {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("test-etcd-{}-{n}", std::process::id()));
        match fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            // Left over from an earlier process with the same id: take the next name.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
}

/// The end of etcd's log, for an error message.
fn read_log(path: &Path) -> String {
    let mut text = String::new();
    if let Ok(mut file) = fs::File::open(path) {
        let _ = file.read_to_string(&mut text);
    }
    let start = text.len().saturating_sub(2000);
    let start = (start..text.len())
        .find(|&i| text.is_char_boundary(i))
        .unwrap_or(text.len());
    text[start..].to_owned()
}
