//! The state of a server as a fixture document.

use std::path::Path;

use crate::error::Error;
use crate::test_etcd::TestEtcd;

impl TestEtcd {
    /// The whole state as a fixture document (format version 2) that loads back into the same
    /// state: every lease (ID and granted TTL), and a `history` replaying the keys compaction
    /// kept, the compaction point and every retained revision, with their exact revisions,
    /// versions and leases. Loading a dump and dumping again gives the same document. A lease
    /// loaded from a dump starts its full TTL again, as after a snapshot restore. Users and roles
    /// come with it; a password is written as the salted hash the server keeps
    /// (`password_hash`), never in clear.
    ///
    /// Embedded backend only: on a real etcd it is JSON `null`, which is no fixture.
    ///
    /// ```
    /// let etcd = test_etcd::TestEtcd::builder()
    ///     .fixture_str(r#"{"history": [{"put": "/a", "value": "1"},
    ///                                  {"put": "/a", "value": "2"},
    ///                                  {"compact": 2}]}"#)
    ///     .start()?;
    ///
    /// let dump = etcd.dump();
    /// let copy = test_etcd::TestEtcd::builder().fixture_json(dump.clone()).start()?;
    ///
    /// assert_eq!(copy.dump(), dump);
    /// assert_eq!((copy.revision(), copy.get("/a").as_deref()), (3, Some("2")));
    /// # Ok::<(), test_etcd::Error>(())
    /// ```
    pub fn dump(&self) -> serde_json::Value {
        match self.engine() {
            Some(engine) => dump(engine),
            None => serde_json::Value::Null,
        }
    }

    /// Writes [`TestEtcd::dump`] to `path` as pretty-printed JSON, for use as a fixture. A
    /// relative path resolves as fixture paths do (against `CARGO_MANIFEST_DIR`). Fails with
    /// [`Error::Write`] if the file cannot be written, and with [`Error::NeedsEmbedded`] off
    /// the embedded backend.
    ///
    /// ```
    /// let etcd = test_etcd::TestEtcd::builder().fixture_str(r#"{"/a": "1"}"#).start()?;
    /// let path = std::env::temp_dir().join(format!("test-etcd-doc-{}.json", std::process::id()));
    ///
    /// etcd.write_fixture(&path)?;
    ///
    /// let copy = test_etcd::TestEtcd::builder().fixture(&path).start()?;
    /// assert_eq!(copy.get("/a").as_deref(), Some("1"));
    /// # std::fs::remove_file(&path).ok();
    /// # Ok::<(), test_etcd::Error>(())
    /// ```
    pub fn write_fixture(&self, path: impl AsRef<Path>) -> Result<(), Error> {
        if self.engine().is_none() {
            return Err(Error::NeedsEmbedded {
                option: "write_fixture",
            });
        }
        let path = crate::fixture::resolve_path(path.as_ref());
        let mut text = serde_json::to_string_pretty(&self.dump()).unwrap_or_default();
        text.push('\n');
        std::fs::write(&path, text).map_err(|source| Error::Write { path, source })
    }
}

/// An engine's state as a fixture document, as [`TestEtcd::dump`] describes.
pub(crate) fn dump(engine: &crate::engine::Engine) -> serde_json::Value {
    let image = engine.history_image();
    let auth = auth_section(&engine.auth(|auth| auth.export()));
    crate::fixture::render_dump(&image, auth)
}

/// The `auth` member of a dump, or `None` when there are no users, roles or enabled auth (so
/// that a dump without auth stays as it was).
fn auth_section(export: &crate::engine::AuthExport) -> Option<serde_json::Value> {
    use crate::pb::authpb::permission::Type;
    use serde_json::json;
    if !export.enabled && export.users.is_empty() && export.roles.is_empty() {
        return None;
    }
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    let roles: Vec<serde_json::Value> = export
        .roles
        .iter()
        .map(|(name, perms)| {
            let permissions: Vec<serde_json::Value> = perms
                .iter()
                .map(|p| {
                    let kind = match Type::try_from(p.perm_type) {
                        Ok(Type::Read) => "READ",
                        Ok(Type::Write) => "WRITE",
                        _ => "READWRITE",
                    };
                    let mut perm = json!({"key": text(&p.key), "type": kind});
                    if !p.range_end.is_empty() {
                        perm["range_end"] = json!(text(&p.range_end));
                    }
                    perm
                })
                .collect();
            json!({"name": name, "permissions": permissions})
        })
        .collect();
    let users: Vec<serde_json::Value> = export
        .users
        .iter()
        .map(|user| {
            let mut entry = json!({"name": user.name, "roles": user.roles});
            match user.password {
                Some((salt, hash)) => {
                    let hex: String = salt
                        .iter()
                        .chain(hash.iter())
                        .map(|b| format!("{b:02x}"))
                        .collect();
                    entry["password_hash"] = json!(hex);
                }
                None => entry["no_password"] = json!(true),
            }
            entry
        })
        .collect();
    Some(json!({"enabled": export.enabled, "roles": roles, "users": users}))
}
