//! Reading the change log from outside the engine, for anything that follows changes after a
//! revision (the election's Observe).

use super::error::EtcdError;
use super::mvcc::RevisionChanges;
use super::Engine;

impl Engine {
    /// The changes made at revisions `>= from`, in revision order; `Compacted` if compaction has
    /// already freed some of them.
    pub(crate) fn changes_from(&self, from: i64) -> Result<Vec<RevisionChanges>, EtcdError> {
        let state = self.state();
        if from < state.store.compact_revision() {
            return Err(EtcdError::Compacted);
        }
        Ok(state.store.changes_since(from).cloned().collect())
    }
}
