//! The one table from etcd errors to gRPC statuses: etcd's codes, etcd's exact messages.

use tonic::{Code, Status};

use crate::engine::EtcdError;
use crate::recipes::RecipeError;

impl From<EtcdError> for Status {
    fn from(err: EtcdError) -> Self {
        let code = match err {
            EtcdError::EmptyKey
            | EtcdError::ValueProvided
            | EtcdError::LeaseProvided
            | EtcdError::KeyNotFound
            | EtcdError::TooManyOps
            | EtcdError::DuplicateKey
            | EtcdError::InvalidSortOption
            | EtcdError::RequestTooLarge
            | EtcdError::UserEmpty
            | EtcdError::RoleEmpty
            | EtcdError::AuthFailed
            | EtcdError::PermissionNotGiven
            | EtcdError::InvalidAuthMgmt => Code::InvalidArgument,
            EtcdError::RootUserNotExist
            | EtcdError::RootRoleNotGranted
            | EtcdError::UserAlreadyExist
            | EtcdError::UserNotFound
            | EtcdError::RoleAlreadyExist
            | EtcdError::RoleNotFound
            | EtcdError::RoleNotGranted
            | EtcdError::PermissionNotGranted
            | EtcdError::AuthNotEnabled => Code::FailedPrecondition,
            EtcdError::PermissionDenied => Code::PermissionDenied,
            EtcdError::InvalidAuthToken => Code::Unauthenticated,
            EtcdError::NoPasswordUser => Code::Unknown,
            EtcdError::LeaseNotFound => Code::NotFound,
            EtcdError::Compacted | EtcdError::FutureRevision | EtcdError::LeaseTtlTooLarge => {
                Code::OutOfRange
            }
            EtcdError::LeaseExists => Code::FailedPrecondition,
            EtcdError::NoSpace => Code::ResourceExhausted,
            EtcdError::Corrupt => Code::DataLoss,
            EtcdError::NotLeader
            | EtcdError::BadLeaderTransferee
            | EtcdError::DowngradeInProgress
            | EtcdError::PeerUrlExists
            | EtcdError::TooManyLearners
            | EtcdError::MemberIdExists
            | EtcdError::NotLearner
            | EtcdError::LearnerNotReady
            | EtcdError::LearnerNotSupported => Code::FailedPrecondition,
            EtcdError::WrongDowngradeVersionFormat
            | EtcdError::InvalidDowngradeTarget
            | EtcdError::InvalidMemberUrls => Code::InvalidArgument,
            EtcdError::MemberNotFound => Code::NotFound,
            EtcdError::Unhealthy => Code::Unavailable,
            // etcd 3.7.2 leaves these out of its table, so they reach the client as Unknown.
            EtcdError::LeaderTransferTimeout
            | EtcdError::UnknownMethod
            | EtcdError::NotEnoughStartedMembers => Code::Unknown,
        };
        Status::new(code, err.to_string())
    }
}

/// How grpc-go prints a status (`rpc error: code = PermissionDenied desc = ...`): etcd puts
/// this text in a watch's cancel_reason when auth refuses the watch.
pub(crate) fn go_status_text(err: &EtcdError) -> String {
    let status = Status::from(err.clone());
    let code = match status.code() {
        Code::Ok => "OK",
        Code::Cancelled => "Canceled",
        Code::Unknown => "Unknown",
        Code::InvalidArgument => "InvalidArgument",
        Code::DeadlineExceeded => "DeadlineExceeded",
        Code::NotFound => "NotFound",
        Code::AlreadyExists => "AlreadyExists",
        Code::PermissionDenied => "PermissionDenied",
        Code::ResourceExhausted => "ResourceExhausted",
        Code::FailedPrecondition => "FailedPrecondition",
        Code::Aborted => "Aborted",
        Code::OutOfRange => "OutOfRange",
        Code::Unimplemented => "Unimplemented",
        Code::Internal => "Internal",
        Code::Unavailable => "Unavailable",
        Code::DataLoss => "DataLoss",
        Code::Unauthenticated => "Unauthenticated",
    };
    format!("rpc error: code = {code} desc = {}", status.message())
}

/// Lock and election errors: etcd's recipes return plain Go errors, which its gRPC layer does not
/// map, so every one (an etcd error such as an unknown lease included) is `Unknown` with its text.
impl From<RecipeError> for Status {
    fn from(err: RecipeError) -> Self {
        Status::unknown(err.to_string())
    }
}
