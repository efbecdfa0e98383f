//! The one table from etcd errors to gRPC statuses: etcd's codes, etcd's exact messages.

use tonic::{Code, Status};

use crate::engine::EtcdError;

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
            | EtcdError::RequestTooLarge => Code::InvalidArgument,
            EtcdError::LeaseNotFound => Code::NotFound,
            EtcdError::Compacted | EtcdError::FutureRevision => Code::OutOfRange,
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
