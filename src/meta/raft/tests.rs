//! The group in process: members on disk in temporary directories, talking through a
//! [`MemRouter`] that cuts members off, drops, delays and duplicates messages. Every test
//! waits on conditions with deadlines and checks that the members that are up hold the same
//! state once they have caught up.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::group::Member;
use super::log_store::LogStore;
use super::mem_transport::MemRouter;
use super::network::{Request, Response};
use super::{MetaNode, Timings};
use crate::meta::store::{MetaStore, RedbStore, StoreOp};

static NEXT_INCARNATION: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

const TIMINGS: Timings = Timings {
    heartbeat_ms: 30,
    election_min_ms: 150,
    snapshot_every: 20,
};

struct Cluster {
    router: Arc<MemRouter>,
    root: tempfile::TempDir,
    members: BTreeMap<u64, Arc<Member>>,
    incarnations: BTreeMap<u64, String>,
}

fn address(id: u64) -> String {
    format!("127.0.0.1:{}", 40000 + id)
}

impl Cluster {
    fn new(seed: u64) -> Cluster {
        Cluster {
            router: MemRouter::new(seed),
            root: tempfile::tempdir().unwrap(),
            members: BTreeMap::new(),
            incarnations: BTreeMap::new(),
        }
    }

    fn dir(&self, id: u64) -> PathBuf {
        self.root.path().join(format!("m{id}"))
    }

    /// Opens member `id` on its directory (a start or a restart).
    async fn open(&mut self, id: u64) -> Arc<Member> {
        let incarnation = self
            .incarnations
            .entry(id)
            .or_insert_with(|| {
                let n = NEXT_INCARNATION.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                format!("inc-{id}-{n}")
            })
            .clone();
        let node = MetaNode {
            address: address(id),
            incarnation,
        };
        let dir = self.dir(id);
        let member = Member::open(
            id,
            node,
            open_log(&dir).await,
            RedbStore::open(&dir).unwrap(),
            self.router.transport(&address(id)),
            TIMINGS,
        )
        .await
        .unwrap();
        self.router.register(&address(id), member.clone());
        self.members.insert(id, member.clone());
        member
    }

    async fn stop(&mut self, id: u64) {
        self.router.unregister(&address(id));
        let member = self.members.remove(&id).unwrap();
        member.shutdown().await;
    }

    /// Stops member `id` and empties its directory, as a new disk would be.
    async fn wipe(&mut self, id: u64) {
        self.stop(id).await;
        std::fs::remove_dir_all(self.dir(id)).unwrap();
        self.incarnations.remove(&id);
    }

    fn leader(&self) -> Option<Arc<Member>> {
        self.members.values().find(|m| m.is_leader()).cloned()
    }

    async fn await_leader(&self) -> Arc<Member> {
        wait_for("a leader", || self.leader().is_some()).await;
        self.leader().unwrap()
    }

    /// Writes `next_app_id = n` through the leader, retrying across elections.
    async fn write(&self, n: u32) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let leader = self.await_leader().await;
            if leader.write(vec![StoreOp::PutNextAppId(n)]).await.is_ok() {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "write {n} never committed"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until every member that is up has applied the same state as the leader.
    async fn await_converged(&self) {
        wait_for("the members to converge", || {
            let Some(leader) = self.leader() else {
                return false;
            };
            let want = leader.view().read().unwrap().state.clone();
            self.members
                .values()
                .all(|m| m.view().read().unwrap().state == want)
        })
        .await;
    }
}

async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while !done() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Starts member 1 as a group of one and joins members 2..=n through it.
async fn group_of(n: u64, seed: u64) -> Cluster {
    let mut c = Cluster::new(seed);
    c.open(1).await.initialize().await.unwrap();
    for id in 2..=n {
        let m = c.open(id).await;
        m.join(&[address(1)], false).await.unwrap();
    }
    c
}

fn next_app_id(m: &Member) -> u32 {
    m.view().read().unwrap().state.next_app_id
}

async fn admin(to: &Member, request: Request) -> Response {
    to.handle(request, false).await
}

/// Opens a log store, waiting for the previous holder's tasks to let go of the file.
async fn open_log(dir: &std::path::Path) -> LogStore {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        match LogStore::open(dir) {
            Ok(log) => return log,
            Err(e) if tokio::time::Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("cannot reopen {}: {e}", dir.display()),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_of_three_survives_its_leader_dying_and_loses_no_commit() {
    let mut c = group_of(3, 1).await;
    c.write(10).await;
    c.await_converged().await;
    let old = c.await_leader().await.id();
    c.stop(old).await;
    c.write(11).await;
    let new = c.await_leader().await;
    assert_ne!(new.id(), old);
    assert_eq!(next_app_id(&new), 11);
    c.open(old).await;
    c.await_converged().await;
    assert!(c.members.values().all(|m| next_app_id(m) == 11));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_delayed_and_duplicated_messages_lose_no_commit() {
    let c = group_of(3, 7).await;
    c.router.set_faults(15, 15, 15);
    for n in 20..40 {
        c.write(n).await;
    }
    c.router.set_faults(0, 0, 0);
    c.await_converged().await;
    assert!(c.members.values().all(|m| next_app_id(m) == 39));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_with_join_does_not_join_again_and_a_dead_first_address_is_skipped() {
    let mut c = Cluster::new(2);
    c.open(1).await.initialize().await.unwrap();
    {
        let two = c.open(2).await;
        two.join(&["127.0.0.1:1".into(), address(1)], false)
            .await
            .unwrap();
    }
    c.stop(2).await;
    let two = c.open(2).await;
    assert!(two.is_member(false), "the committed membership holds it");
    // Even with only dead addresses the restart succeeds: it does not join at all.
    two.join(&["127.0.0.1:1".into()], false).await.unwrap();
    let leader = c.await_leader().await;
    assert_eq!(leader.members().voters.len(), 2);
    // A node never joins through its own address.
    let three = c.open(3).await;
    let err = three.join(&[address(3)], false).await.unwrap_err();
    assert!(err.contains("own"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_voter_and_an_even_count_are_refused_and_a_leaving_leader_hands_over_first() {
    let mut c = group_of(1, 3).await;
    let one = c.await_leader().await;
    let r = admin(&one, Request::Leave { id: 1, force: true }).await;
    assert!(
        matches!(&r, Response::Refused(w) if w.contains("last voter")),
        "{r:?}"
    );
    for id in 2..=4 {
        c.open(id).await.join(&[address(1)], false).await.unwrap();
    }
    let leader = c.await_leader().await;
    // Four voters: the leader leaving leaves three, an odd count; it hands over first.
    let old = leader.id();
    let r = admin(
        &leader,
        Request::Leave {
            id: old,
            force: false,
        },
    )
    .await;
    assert!(matches!(r, Response::Done(_)), "{r:?}");
    let new = c.await_leader().await;
    assert_ne!(new.id(), old);
    wait_for("the leader to leave the membership", || {
        !new.members().voters.contains(&old)
    })
    .await;
    assert_eq!(new.members().voters.len(), 3);
    assert!(new.view().read().unwrap().retired.contains(&old));
    // Three voters: one more leaving would leave an even count.
    let other = *new
        .members()
        .voters
        .iter()
        .find(|v| **v != new.id())
        .unwrap();
    let r = admin(
        &new,
        Request::Leave {
            id: other,
            force: false,
        },
    )
    .await;
    assert!(
        matches!(&r, Response::Refused(w) if w.contains("even")),
        "{r:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wiped_member_rejoining_under_its_old_id_and_a_retired_id_are_refused() {
    let mut c = group_of(3, 4).await;
    c.wipe(3).await;
    let three = c.open(3).await;
    let err = three.join(&[address(1)], false).await.unwrap_err();
    assert!(err.contains("another data directory"), "{err}");
    let leader = c.await_leader().await;
    let r = admin(&leader, Request::Leave { id: 3, force: true }).await;
    assert!(matches!(r, Response::Done(_)), "{r:?}");
    let err = three.join(&[address(1)], false).await.unwrap_err();
    assert!(err.contains("never reused"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_down_learner_is_not_promoted_and_transfers_to_learners_or_down_members_are_refused() {
    let mut c = group_of(3, 5).await;
    let four = c.open(4).await;
    c.router.cut(&address(4));
    let leader = c.await_leader().await;
    let join = Request::Join {
        id: 4,
        node: MetaNode {
            address: address(4),
            incarnation: c.incarnations[&4].clone(),
        },
        observer: false,
    };
    let r = admin(&leader, join).await;
    assert!(
        matches!(&r, Response::Failed(w) if w.contains("stays a learner")),
        "{r:?}"
    );
    let members = leader.members();
    assert_eq!(
        members.voters.len(),
        3,
        "a member that cannot keep up never votes"
    );
    assert!(members.learners.contains(&4));
    let r = admin(&leader, Request::Transfer { to: Some(4) }).await;
    assert!(
        matches!(&r, Response::Refused(w) if w.contains("not a voter")),
        "{r:?}"
    );
    // Once it is up, joining again promotes it.
    c.router.heal();
    four.join(&[address(1)], false).await.unwrap();
    assert_eq!(c.await_leader().await.members().voters.len(), 4);
    // A voter that is down cannot take over.
    let leader = c.await_leader().await;
    let down = *leader
        .members()
        .voters
        .iter()
        .find(|v| **v != leader.id())
        .unwrap();
    c.stop(down).await;
    tokio::time::sleep(Duration::from_millis(TIMINGS.election_min_ms * 5)).await;
    let leader = c.await_leader().await;
    let r = admin(&leader, Request::Transfer { to: Some(down) }).await;
    assert!(
        matches!(&r, Response::Refused(w) if w.contains("down")),
        "{r:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_behind_the_purged_log_catches_up_from_a_snapshot() {
    let mut c = group_of(3, 6).await;
    let leader = c.await_leader().await;
    let lagging = *leader
        .members()
        .voters
        .iter()
        .find(|v| **v != leader.id())
        .unwrap();
    c.stop(lagging).await;
    for n in 100..100 + 3 * TIMINGS.snapshot_every as u32 {
        c.write(n).await;
    }
    c.open(lagging).await;
    c.await_converged().await;
    let want = 100 + 3 * TIMINGS.snapshot_every as u32 - 1;
    assert_eq!(next_app_id(&c.members[&lagging]), want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_joins_at_once_both_finish_as_voters() {
    let mut c = group_of(3, 8).await;
    let four = c.open(4).await;
    let five = c.open(5).await;
    let (via2, via3) = ([address(2)], [address(3)]);
    let (a, b) = tokio::join!(four.join(&via2, false), five.join(&via3, false));
    a.unwrap();
    b.unwrap();
    let leader = c.await_leader().await;
    wait_for("five voters", || leader.members().voters.len() == 5).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_servers_state_is_migrated_and_reaches_members_that_join_later() {
    let mut c = Cluster::new(9);
    {
        let mut store = RedbStore::open(&c.dir(1)).unwrap();
        store
            .apply(&[
                StoreOp::PutNextAppId(42),
                StoreOp::PutNode("127.0.0.1:34801".into(), "n1".into()),
            ])
            .unwrap();
    }
    c.open(1).await.initialize().await.unwrap();
    c.stop(1).await;
    // A restart with the same flags: already initialized, nothing migrated twice.
    c.open(1).await.initialize().await.unwrap();
    c.open(2).await.join(&[address(1)], false).await.unwrap();
    c.await_converged().await;
    let two = c.members[&2].clone();
    assert_eq!(next_app_id(&two), 42);
    assert!(
        two.view()
            .read()
            .unwrap()
            .state
            .nodes
            .contains_key("127.0.0.1:34801")
    );
    assert!(!two.view().read().unwrap().migration_pending);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_observer_replicates_but_never_votes() {
    let mut c = group_of(3, 10).await;
    let obs = c.open(4).await;
    obs.join(&[address(1)], true).await.unwrap();
    c.write(77).await;
    c.await_converged().await;
    let leader = c.await_leader().await;
    assert!(leader.members().learners.contains(&4));
    assert!(!leader.members().voters.contains(&4));
    assert_eq!(obs.status().role, "learner");
    let r = admin(
        &leader,
        Request::Leave {
            id: 4,
            force: false,
        },
    )
    .await;
    assert!(matches!(r, Response::Done(_)), "{r:?}");
    wait_for("the observer gone", || {
        !leader.members().nodes.contains_key(&4)
    })
    .await;
}

struct SuiteBuilder;

impl
    openraft::testing::log::StoreBuilder<
        super::TypeConfig,
        LogStore,
        super::state_machine::StateMachine,
        tempfile::TempDir,
    > for SuiteBuilder
{
    async fn build(
        &self,
    ) -> Result<
        (
            tempfile::TempDir,
            LogStore,
            super::state_machine::StateMachine,
        ),
        openraft::StorageError<super::TypeConfig>,
    > {
        let dir = tempfile::tempdir().unwrap();
        let log = LogStore::open(dir.path()).unwrap();
        let sm =
            super::state_machine::StateMachine::open(RedbStore::open(dir.path()).unwrap()).unwrap();
        Ok((dir, log, sm))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_and_the_state_machine_pass_openraft_storage_suite() {
    openraft::testing::log::Suite::test_all(SuiteBuilder)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leadership_moves_to_a_voter_once_it_has_caught_up() {
    let c = group_of(3, 11).await;
    let leader = c.await_leader().await;
    let target = *leader
        .members()
        .voters
        .iter()
        .find(|v| **v != leader.id())
        .unwrap();
    c.router.cut(&address(target));
    for n in 300..330 {
        c.write(n).await;
    }
    c.router.heal();
    c.await_converged().await;
    let r = admin(&leader, Request::Transfer { to: Some(target) }).await;
    assert!(matches!(r, Response::Done(_)), "{r:?}");
    wait_for("the new leader", || {
        c.leader().is_some_and(|l| l.id() == target)
    })
    .await;
}
