//! The Auth service, and how every service learns who is calling.

use std::sync::{Arc, LazyLock};

use tonic::metadata::AsciiMetadataKey;
use tonic::{Request, Response, Status};

use crate::engine::{Caller, EtcdError};
use crate::pb::etcdserverpb::{self as pb, auth_server::Auth};

use super::Context;

// Metadata names parsed once, not at every request.
static TOKEN: LazyLock<AsciiMetadataKey> = LazyLock::new(|| AsciiMetadataKey::from_static("token"));
static AUTHORIZATION: LazyLock<AsciiMetadataKey> =
    LazyLock::new(|| AsciiMetadataKey::from_static("authorization"));
static VIA_GATEWAY: LazyLock<AsciiMetadataKey> =
    LazyLock::new(|| AsciiMetadataKey::from_static("grpcgateway-accept"));

/// The token a request carries: metadata `token`, else `authorization` (where gateways put it),
/// either with an optional `Bearer ` prefix. When both are present `token` wins, as in etcd.
pub(crate) fn token<T>(request: &Request<T>) -> Option<String> {
    let metadata = request.metadata();
    let raw = metadata
        .get(&*TOKEN)
        .or_else(|| metadata.get(&*AUTHORIZATION))?;
    let raw = raw.to_str().ok()?;
    Some(raw.strip_prefix("Bearer ").unwrap_or(raw).to_owned())
}

/// The common name of the verified client certificate of a request's connection, put in the
/// request's extensions by the TLS accept loop when client-certificate auth is on.
#[derive(Debug, Clone)]
pub(crate) struct PeerCommonName(pub(crate) Arc<str>);

/// What a request says about who sends it: its token, and the common name of its connection's
/// client certificate. Streams keep these from their opening request.
#[derive(Debug, Clone, Default)]
pub(crate) struct Credentials {
    token: Option<String>,
    common_name: Option<Arc<str>>,
}

impl Credentials {
    pub(crate) fn of<T>(request: &Request<T>) -> Self {
        // etcd ignores the certificate of requests its gRPC gateway forwards.
        let via_gateway = request.metadata().contains_key(&*VIA_GATEWAY);
        let common_name = request
            .extensions()
            .get::<PeerCommonName>()
            .filter(|_| !via_gateway)
            .map(|cn| Arc::clone(&cn.0));
        Credentials {
            token: token(request),
            common_name,
        }
    }
}

impl Context {
    /// Who sends `request`, checked against the auth store.
    pub(crate) fn caller<T>(&self, request: &Request<T>) -> Result<Caller, EtcdError> {
        // With auth off everyone is `Anyone` whatever they send: skip reading the metadata.
        if !self.engine.auth(|auth| auth.is_enabled()) {
            return Ok(Caller::Anyone);
        }
        self.identify(&Credentials::of(request))
    }

    /// Who the `credentials` name: the token's user; else, as etcd's `--client-cert-auth`, the
    /// common name of the client certificate.
    pub(crate) fn identify(&self, credentials: &Credentials) -> Result<Caller, EtcdError> {
        match (&credentials.token, &credentials.common_name) {
            (None, Some(cn)) => Ok(self.engine.auth(|auth| auth.certificate_caller(cn))),
            (token, _) => self.engine.caller(token.as_deref()),
        }
    }

    /// The caller of an admin-only request, or the reason it is refused.
    pub(crate) fn admin<T>(&self, request: &Request<T>) -> Result<Caller, EtcdError> {
        let caller = self.caller(request)?;
        self.engine.auth(|auth| auth.check_admin(&caller))?;
        Ok(caller)
    }

    /// Lock and Election run their reads and writes as the caller, as etcd's do with the
    /// caller's token: the caller needs `access` to the keys under `name/` (or to `key`).
    /// etcd's recipes get the refusal through its Go client, which keeps the message and drops
    /// the code: it reaches the wire as `Unknown` (etcd-client refreshes a token on that too).
    pub(crate) fn authorize_recipe<T>(
        &self,
        request: &Request<T>,
        name_or_key: &[u8],
        under_name: bool,
        access: &[crate::engine::Access],
    ) -> Result<(), Status> {
        self.check_recipe(request, name_or_key, under_name, access)
            .map_err(|err| Status::unknown(Status::from(err).message().to_owned()))
    }

    fn check_recipe<T>(
        &self,
        request: &Request<T>,
        name_or_key: &[u8],
        under_name: bool,
        access: &[crate::engine::Access],
    ) -> Result<(), EtcdError> {
        let caller = self.caller(request)?;
        let (key, end) = if under_name {
            let mut prefix = name_or_key.to_vec();
            prefix.push(b'/');
            let end = crate::engine::prefix_end(&prefix);
            (prefix, end)
        } else {
            (name_or_key.to_vec(), Vec::new())
        };
        self.engine.auth(|auth| {
            access
                .iter()
                .try_for_each(|a| auth.check_range(&caller, &key, &end, *a))
        })
    }

    fn header(&self) -> Option<pb::ResponseHeader> {
        Some(self.identity.header(self.engine.revision()))
    }
}

pub(crate) struct AuthService {
    ctx: Context,
}

impl AuthService {
    pub(crate) fn new(ctx: Context) -> Self {
        AuthService { ctx }
    }

    /// Runs an admin-only change on the auth store.
    fn admin<T, R>(
        &self,
        request: &Request<T>,
        f: impl FnOnce(&mut crate::engine::AuthStore) -> Result<R, EtcdError>,
    ) -> Result<R, Status> {
        self.ctx.admin(request)?;
        Ok(self.ctx.engine.auth(f)?)
    }
}

type Answer<T> = Result<Response<T>, Status>;

#[tonic::async_trait]
impl Auth for AuthService {
    async fn auth_enable(
        &self,
        request: Request<pb::AuthEnableRequest>,
    ) -> Answer<pb::AuthEnableResponse> {
        let caller = self.ctx.caller(&request)?;
        self.ctx.engine.auth(|auth| auth.enable(&caller))?;
        Ok(Response::new(pb::AuthEnableResponse {
            header: self.ctx.header(),
        }))
    }

    async fn auth_disable(
        &self,
        request: Request<pb::AuthDisableRequest>,
    ) -> Answer<pb::AuthDisableResponse> {
        let caller = self.ctx.caller(&request)?;
        self.ctx.engine.auth(|auth| auth.disable(&caller))?;
        Ok(Response::new(pb::AuthDisableResponse {
            header: self.ctx.header(),
        }))
    }

    /// etcd 3.7 answers this one without a token, even while auth is enabled; a token it
    /// cannot use is still refused (found by the conformance suite against 3.7.2).
    async fn auth_status(
        &self,
        request: Request<pb::AuthStatusRequest>,
    ) -> Answer<pb::AuthStatusResponse> {
        self.ctx.caller(&request)?;
        let (enabled, auth_revision) = self
            .ctx
            .engine
            .auth(|auth| (auth.is_enabled(), auth.revision()));
        Ok(Response::new(pb::AuthStatusResponse {
            header: self.ctx.header(),
            enabled,
            auth_revision,
        }))
    }

    async fn authenticate(
        &self,
        request: Request<pb::AuthenticateRequest>,
    ) -> Answer<pb::AuthenticateResponse> {
        let r = request.get_ref();
        let now = self.ctx.engine.now();
        let token = self
            .ctx
            .engine
            .auth(|auth| auth.authenticate(&r.name, &r.password, now))?;
        Ok(Response::new(pb::AuthenticateResponse {
            header: self.ctx.header(),
            token,
        }))
    }

    async fn user_add(
        &self,
        request: Request<pb::AuthUserAddRequest>,
    ) -> Answer<pb::AuthUserAddResponse> {
        self.admin(&request, |auth| auth.user_add(request.get_ref()))?;
        Ok(Response::new(pb::AuthUserAddResponse {
            header: self.ctx.header(),
        }))
    }

    async fn user_get(
        &self,
        request: Request<pb::AuthUserGetRequest>,
    ) -> Answer<pb::AuthUserGetResponse> {
        let caller = self.ctx.caller(&request)?;
        let roles = self
            .ctx
            .engine
            .auth(|auth| auth.user_get(&caller, &request.get_ref().name))?;
        Ok(Response::new(pb::AuthUserGetResponse {
            header: self.ctx.header(),
            roles,
        }))
    }

    async fn user_list(
        &self,
        request: Request<pb::AuthUserListRequest>,
    ) -> Answer<pb::AuthUserListResponse> {
        let users = self.admin(&request, |auth| Ok(auth.user_list()))?;
        Ok(Response::new(pb::AuthUserListResponse {
            header: self.ctx.header(),
            users,
        }))
    }

    async fn user_delete(
        &self,
        request: Request<pb::AuthUserDeleteRequest>,
    ) -> Answer<pb::AuthUserDeleteResponse> {
        self.admin(&request, |auth| auth.user_delete(&request.get_ref().name))?;
        Ok(Response::new(pb::AuthUserDeleteResponse {
            header: self.ctx.header(),
        }))
    }

    async fn user_change_password(
        &self,
        request: Request<pb::AuthUserChangePasswordRequest>,
    ) -> Answer<pb::AuthUserChangePasswordResponse> {
        self.admin(&request, |auth| {
            auth.user_change_password(request.get_ref())
        })?;
        Ok(Response::new(pb::AuthUserChangePasswordResponse {
            header: self.ctx.header(),
        }))
    }

    async fn user_grant_role(
        &self,
        request: Request<pb::AuthUserGrantRoleRequest>,
    ) -> Answer<pb::AuthUserGrantRoleResponse> {
        let r = request.get_ref();
        self.admin(&request, |auth| auth.user_grant_role(&r.user, &r.role))?;
        Ok(Response::new(pb::AuthUserGrantRoleResponse {
            header: self.ctx.header(),
        }))
    }

    async fn user_revoke_role(
        &self,
        request: Request<pb::AuthUserRevokeRoleRequest>,
    ) -> Answer<pb::AuthUserRevokeRoleResponse> {
        let r = request.get_ref();
        self.admin(&request, |auth| auth.user_revoke_role(&r.name, &r.role))?;
        Ok(Response::new(pb::AuthUserRevokeRoleResponse {
            header: self.ctx.header(),
        }))
    }

    async fn role_add(
        &self,
        request: Request<pb::AuthRoleAddRequest>,
    ) -> Answer<pb::AuthRoleAddResponse> {
        self.admin(&request, |auth| auth.role_add(&request.get_ref().name))?;
        Ok(Response::new(pb::AuthRoleAddResponse {
            header: self.ctx.header(),
        }))
    }

    async fn role_get(
        &self,
        request: Request<pb::AuthRoleGetRequest>,
    ) -> Answer<pb::AuthRoleGetResponse> {
        let caller = self.ctx.caller(&request)?;
        let perm = self
            .ctx
            .engine
            .auth(|auth| auth.role_get(&caller, &request.get_ref().role))?;
        Ok(Response::new(pb::AuthRoleGetResponse {
            header: self.ctx.header(),
            perm,
        }))
    }

    async fn role_list(
        &self,
        request: Request<pb::AuthRoleListRequest>,
    ) -> Answer<pb::AuthRoleListResponse> {
        let roles = self.admin(&request, |auth| Ok(auth.role_list()))?;
        Ok(Response::new(pb::AuthRoleListResponse {
            header: self.ctx.header(),
            roles,
        }))
    }

    async fn role_delete(
        &self,
        request: Request<pb::AuthRoleDeleteRequest>,
    ) -> Answer<pb::AuthRoleDeleteResponse> {
        self.admin(&request, |auth| auth.role_delete(&request.get_ref().role))?;
        Ok(Response::new(pb::AuthRoleDeleteResponse {
            header: self.ctx.header(),
        }))
    }

    async fn role_grant_permission(
        &self,
        request: Request<pb::AuthRoleGrantPermissionRequest>,
    ) -> Answer<pb::AuthRoleGrantPermissionResponse> {
        let r = request.get_ref();
        self.admin(&request, |auth| {
            auth.role_grant_permission(&r.name, r.perm.as_ref())
        })?;
        Ok(Response::new(pb::AuthRoleGrantPermissionResponse {
            header: self.ctx.header(),
        }))
    }

    async fn role_revoke_permission(
        &self,
        request: Request<pb::AuthRoleRevokePermissionRequest>,
    ) -> Answer<pb::AuthRoleRevokePermissionResponse> {
        self.admin(&request, |auth| {
            auth.role_revoke_permission(request.get_ref())
        })?;
        Ok(Response::new(pb::AuthRoleRevokePermissionResponse {
            header: self.ctx.header(),
        }))
    }
}
