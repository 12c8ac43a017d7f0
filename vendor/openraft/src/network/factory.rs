use openraft_macros::add_async_trait;

use crate::network::RaftNetwork;
use crate::OptionalSend;
use crate::OptionalSync;
use crate::RaftTypeConfig;

/// A trait defining the interface for a Raft network factory to create connections between cluster
/// members.
///
/// See the [network chapter of the guide](crate::docs::getting_started#4-implement-raftnetwork)
/// for details and discussion on this trait and how to implement it.
///
/// Typically, the network implementation as such will be hidden behind a `Box<T>` or `Arc<T>` and
/// this interface implemented on the `Box<T>` or `Arc<T>`.
#[add_async_trait]
pub trait RaftNetworkFactory<C>: OptionalSend + OptionalSync + 'static
where C: RaftTypeConfig
{
    /// Actual type of the network handling a single connection.
    type Network: RaftNetwork<C>;

    /// Create a new network instance sending RPCs to the target node.
    ///
    /// This function should **not** create a connection but rather a client that will connect when
    /// required. Therefore there is chance it will build a client that is unable to send out
    /// anything, e.g., in case the Node network address is configured incorrectly. But this method
    /// does not return an error because openraft can only ignore it.
    ///
    /// The method is intentionally async to give the implementation a chance to use asynchronous
    /// sync primitives to serialize access to the common internal object, if needed.
    async fn new_client(&mut self, target: C::NodeId, node: &C::Node) -> Self::Network;

    /// Tell `target`, without waiting for an answer, that the leader of `vote` has committed
    /// `committed` (HALYARD-PATCH: commit notices). Called by the leader's core as soon as the
    /// commit index moves, for every target it replicates to.
    ///
    /// Returns whether the notice was handed to the network. When it was, that target's
    /// replication sends no AppendEntries of its own to carry the new commit index: the
    /// one-request-in-flight replication stays free for entries. The default sends nothing and
    /// returns `false` (upstream behaviour: an empty AppendEntries carries the commit index).
    ///
    /// The target may apply a notice as an empty AppendEntries whose previous entry is
    /// `committed` and whose commit index is `committed`: the usual consistency check then
    /// decides. A notice the target cannot match (it has not got that entry yet) commits
    /// nothing; the next request or notice carries the commit index again (Halyard's target
    /// also applies it again once the entry arrives).
    fn notify_committed(
        &mut self,
        target: &C::NodeId,
        vote: &crate::Vote<C::NodeId>,
        committed: &crate::LogId<C::NodeId>,
    ) -> bool {
        let _ = (target, vote, committed);
        false
    }

    /// Tell `target`, without waiting for an answer, that the leader of `vote` holds its log up
    /// to `flushed` durably while its commit index is still `committed` (HALYARD-PATCH: flush
    /// hints). Called by the leader's core when its own flush is reported ahead of the commit
    /// index, in a membership of three voters (no joint configuration), for every target that
    /// has not yet been seen to match `flushed`.
    ///
    /// With three voters the leader and the target are a quorum: once the target holds an entry
    /// of the leader's term up to `flushed` durably itself, that entry is committed, and the
    /// target may learn it without waiting for the leader to count its answer and send the
    /// commit index back. The default sends nothing and returns `false`.
    fn notify_flushed(
        &mut self,
        target: &C::NodeId,
        vote: &crate::Vote<C::NodeId>,
        flushed: &crate::LogId<C::NodeId>,
        committed: Option<&crate::LogId<C::NodeId>>,
    ) -> bool {
        let _ = (target, vote, flushed, committed);
        false
    }
}
