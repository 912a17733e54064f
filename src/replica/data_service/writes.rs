//! Writes through the data service: the kind of a write for the request counters
//! (Pegasus's names), the stamp an atomic write gets at the primary, and the kept outcome
//! an atomic write answers with once applied.

use crate::error::{Error, Result};
use crate::model::Gpid;
use crate::pb;
use crate::timeutil::now_ms;

use super::DataService;

/// The kind of write, for the request counters (Pegasus's names).
pub(super) fn write_kind(mutations: &[pb::Mutation]) -> &'static str {
    use pb::atomic::Op;
    match mutations {
        [m] => match m.atomic.as_ref().and_then(|a| a.op.as_ref()) {
            Some(Op::Incr(_)) => "incr",
            Some(Op::CheckAndSet(_)) => "check_and_set",
            None if m.delete => "remove",
            None => "put",
        },
        ms if ms.iter().all(|m| m.delete) => "multi_remove",
        _ => "multi_put",
    }
}

/// An atomic write holds only its atomic mutation and has a request id; the primary
/// stamps its clock and the id on it. Returns the id if the write is atomic.
pub(super) fn stamp_atomic(
    mutations: &mut [pb::Mutation],
    request: Option<pb::RequestId>,
) -> Result<Option<pb::RequestId>> {
    if !mutations.iter().any(|m| m.atomic.is_some()) {
        return Ok(None);
    }
    let (Some(id), [m]) = (request, &mut *mutations) else {
        return Err(Error::InvalidInput(
            "an atomic write holds one mutation and needs a request id".into(),
        ));
    };
    let atomic = m.atomic.as_mut().expect("checked above");
    if atomic.op.is_none() {
        return Err(Error::InvalidInput(
            "the atomic write names no operation".into(),
        ));
    }
    atomic.now_ms = now_ms();
    atomic.request = Some(id);
    Ok(Some(id))
}

impl DataService {
    /// The kept outcome of the atomic write `id`, applied at `decree`.
    pub(super) async fn atomic_result(
        &self,
        gpid: Gpid,
        id: pb::RequestId,
        decree: u64,
    ) -> Result<pb::AtomicResult> {
        let handle = self.replica.handle(gpid)?;
        // The write was answered once committed; its outcome is kept when it is applied.
        handle.shared().wait_applied().await?;
        let kept = match handle.shared().store() {
            Some(store) => tokio::task::spawn_blocking(move || store.atomic_result(&id))
                .await
                .map_err(|e| Error::Internal(format!("read task failed: {e}")))??,
            None => None,
        };
        kept.ok_or_else(|| {
            Error::OutcomeUnknown(format!(
                "{gpid}: the atomic write was applied at decree {decree}, but its outcome is no longer kept; read the record"
            ))
        })
    }
}
