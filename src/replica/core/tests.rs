//! The core's rules one at a time, with a small harness: cores of one partition, a disk
//! that persists when told, and messages delivered by hand. (The randomized runs with
//! faults are the simulation's, in `crate::sim`.)

use std::collections::{BTreeMap, VecDeque};

use super::*;
use crate::pb;

const G: Gpid = Gpid { app_id: 1, pidx: 0 };

/// One node: its core, what its disk holds, and what it answered.
struct Node {
    core: Core,
    /// Records persisted (durable) and pending (not yet synced).
    durable: Vec<LogRecord>,
    pending: Vec<(u64, Vec<LogRecord>)>,
    applied: Vec<u64>,
    /// Applies done but not yet reported (`Harness::hold_applies`).
    held: Vec<Input>,
    replies: Vec<(ReplyId, Reply)>,
    asks: Vec<(i64, ConfigRequest)>,
    other: Vec<Effect>,
}

/// A message in flight.
#[derive(Debug)]
enum Msg {
    Prepare(String, Prepare, ReplyId),
    Reply(String, String, Option<PrepareReply>),
}

struct Harness {
    nodes: BTreeMap<String, Node>,
    inbox: VecDeque<Msg>,
    now: u64,
    next_reply: ReplyId,
    /// reply id → (the node that sent the prepare, the node that must answer).
    routes: BTreeMap<ReplyId, (String, String)>,
    /// Persist automatically when a core asks.
    auto_sync: bool,
    /// Hold every node's applies back (the store is slow): their entries are recorded in
    /// `applied` but `Applied` is not fed back until `finish_applies`.
    hold_applies: bool,
}

fn node(name: &str, recovered: Recovered) -> Node {
    Node {
        core: Core::new(G, name, CoreConfig::default(), recovered, 0),
        durable: Vec::new(),
        pending: Vec::new(),
        applied: Vec::new(),
        held: Vec::new(),
        replies: Vec::new(),
        asks: Vec::new(),
        other: Vec::new(),
    }
}

fn valid() -> Recovered {
    Recovered {
        data: Some(DataState::Valid),
        ..Recovered::default()
    }
}

fn assign(role: AssignedRole, ballot: i64, primary: &str, secondaries: &[&str]) -> Input {
    Input::Assign(Assignment {
        ballot,
        role,
        primary: Some(primary.to_string()),
        secondaries: secondaries.iter().map(|s| s.to_string()).collect(),
        max_replicas: 3,
        proposal: None,
        create_empty: false,
    })
}

fn write(key: &str) -> Input {
    Input::Write(
        Write {
            mutations: vec![pb::Mutation {
                hash_key: key.as_bytes().to_vec(),
                value: b"v".to_vec(),
                ..Default::default()
            }],
            request: None,
        },
        0,
    )
}

impl Harness {
    fn new(names: &[&str]) -> Harness {
        Harness {
            nodes: names
                .iter()
                .map(|n| (n.to_string(), node(n, valid())))
                .collect(),
            inbox: VecDeque::new(),
            now: 1,
            next_reply: 1000,
            routes: BTreeMap::new(),
            auto_sync: true,
            hold_applies: false,
        }
    }

    /// Steps `name` with `input` and carries out its effects.
    fn step(&mut self, name: &str, input: Input) {
        let n = self.nodes.get_mut(name).unwrap();
        n.core.step(self.now, input);
        self.drain(name);
    }

    fn drain(&mut self, name: &str) {
        loop {
            let n = self.nodes.get_mut(name).unwrap();
            let effects = n.core.take_effects();
            if effects.is_empty() {
                return;
            }
            let mut feedback = Vec::new();
            for e in effects {
                match e {
                    Effect::Persist { id, records } => {
                        n.pending.push((id, records));
                        if self.auto_sync {
                            feedback.push(sync_input(n));
                        }
                    }
                    Effect::Apply { entries, durable } => {
                        let upto = entries.last().map_or(n.core.applied, |e| e.decree);
                        n.applied.extend(entries.iter().map(|e| e.decree));
                        if self.hold_applies {
                            n.held.push(Input::Applied { upto, durable });
                        } else {
                            feedback.push(Some(Input::Applied { upto, durable }));
                        }
                    }
                    Effect::Send(to, p) => {
                        self.next_reply += 1;
                        self.routes
                            .insert(self.next_reply, (name.to_string(), to.clone()));
                        self.inbox.push_back(Msg::Prepare(to, p, self.next_reply));
                    }
                    Effect::Reply(id, Reply::Prepare(r)) if self.routes.contains_key(&id) => {
                        let (primary, from) = self.routes.remove(&id).unwrap();
                        self.inbox.push_back(Msg::Reply(primary, from, Some(r)));
                    }
                    Effect::Reply(id, r) => n.replies.push((id, r)),
                    Effect::AskMeta(b, r) => n.asks.push((b, r)),
                    other => n.other.push(other),
                }
            }
            for input in feedback.into_iter().flatten() {
                n.core.step(self.now, input);
            }
        }
    }

    /// Delivers messages until none is left.
    fn deliver_all(&mut self) {
        while let Some(m) = self.inbox.pop_front() {
            match m {
                Msg::Prepare(to, p, id) => self.step(&to, Input::Prepare(p, id)),
                Msg::Reply(to, from, r) => self.step(&to, Input::PrepareReply(from, r)),
            }
        }
    }

    /// Lets `n`'s commit point reach its peers: time passes until a commit point no
    /// prepare carried goes out alone, `n` ticks, and every message is delivered.
    fn notify_commit(&mut self, n: &str) {
        self.now += CoreConfig::default().commit_notify_ms;
        self.step(n, Input::Tick);
        self.deliver_all();
    }

    /// Delivers messages until none is left, losing every one to or from `silent`.
    fn deliver_all_but(&mut self, silent: &str) {
        while let Some(m) = self.inbox.pop_front() {
            match m {
                Msg::Prepare(to, ..) | Msg::Reply(_, to, _) if to == silent => {}
                Msg::Prepare(to, p, id) => self.step(&to, Input::Prepare(p, id)),
                Msg::Reply(to, from, r) => self.step(&to, Input::PrepareReply(from, r)),
            }
        }
    }

    /// Reports every held apply of `name`.
    fn finish_applies(&mut self, name: &str) {
        let held = std::mem::take(&mut self.nodes.get_mut(name).unwrap().held);
        for input in held {
            self.step(name, input);
        }
    }

    fn core(&self, name: &str) -> &Core {
        &self.nodes[name].core
    }

    fn writes_answered(&self, name: &str) -> Vec<Result<u64, Error>> {
        self.nodes[name]
            .replies
            .iter()
            .filter_map(|(_, r)| match r {
                Reply::Write(w) => Some(w.clone()),
                _ => None,
            })
            .collect()
    }

    /// A group of three serving under `a` at ballot 1, with one write committed.
    fn serving_group() -> Harness {
        let mut h = Harness::new(&["a", "b", "c"]);
        h.step("b", assign(AssignedRole::Secondary, 1, "a", &["b", "c"]));
        h.step("c", assign(AssignedRole::Secondary, 1, "a", &["b", "c"]));
        h.step("a", assign(AssignedRole::Primary, 1, "a", &["b", "c"]));
        h.deliver_all();
        assert!(h.core("a").serving(), "{:?}", h.core("a").role());
        h.step("a", write("k1"));
        h.step("a", Input::Flush);
        h.deliver_all();
        h
    }
}

/// Syncs everything `n` has pending.
fn sync_input(n: &mut Node) -> Option<Input> {
    let (id, _) = n.pending.last()?;
    let id = *id;
    for (_, records) in n.pending.drain(..) {
        n.durable.extend(records);
    }
    Some(Input::Persisted(id))
}

#[test]
fn a_write_commits_once_every_secondary_logged_it_and_is_applied_everywhere() {
    let mut h = Harness::serving_group();
    assert_eq!(h.writes_answered("a"), vec![Ok(1)]);
    // The commit point rides on the next prepare, or goes alone a little later.
    h.notify_commit("a");
    assert_eq!(h.nodes["a"].applied, vec![1]);
    for n in ["b", "c"] {
        assert_eq!(h.core(n).status().committed, 1, "{n}");
        // A secondary applies in batches; one entry waits for its tick.
        assert!(h.nodes[n].applied.is_empty(), "{n}");
        h.step(n, Input::Tick);
        assert_eq!(h.nodes[n].applied, vec![1], "{n}");
    }
    // The promise (ballot 1, primary a) was persisted before anything else on every node.
    for n in ["a", "b", "c"] {
        assert!(
            matches!(&h.nodes[n].durable[0], LogRecord::Hard(hs) if hs.ballot == 1 && hs.primary.as_deref() == Some("a")),
            "{n}: {:?}",
            h.nodes[n].durable
        );
    }
}

#[test]
fn a_secondary_acknowledges_only_what_is_durable() {
    let mut h = Harness::serving_group();
    h.nodes.get_mut("b").unwrap().core.take_effects();
    h.auto_sync = false;
    h.step("a", write("k2"));
    h.step("a", Input::Flush);
    // Deliver the prepare to b and c; nothing is synced, so nothing is acknowledged.
    h.deliver_all();
    assert_eq!(h.writes_answered("a"), vec![Ok(1)], "not committed yet");
    for n in ["a", "b", "c"] {
        let input = sync_input(h.nodes.get_mut(n).unwrap()).unwrap();
        h.step(n, input);
    }
    h.deliver_all();
    assert_eq!(h.writes_answered("a"), vec![Ok(1), Ok(2)]);
}

#[test]
fn a_prepare_at_the_current_ballot_from_another_node_is_refused_and_changes_nothing() {
    let mut h = Harness::serving_group();
    let rogue = Prepare {
        ballot: 1,
        from: "c".into(),
        prev_decree: 1,
        prev_ballot: 1,
        entries: vec![std::sync::Arc::new(pb::LogEntry {
            ballot: 1,
            decree: 2,
            ..Default::default()
        })],
        committed: 1,
        last_prepared: 2,
    };
    h.step("b", Input::Prepare(rogue.clone(), 7));
    assert_eq!(
        h.nodes["b"].replies.last().unwrap().1,
        Reply::Prepare(PrepareReply::Refused(Refusal::WrongPrimary))
    );
    assert_eq!(h.core("b").log().last(), 1);
    // The primary itself refuses it too, and keeps serving.
    h.step("a", Input::Prepare(rogue.clone(), 8));
    assert!(h.core("a").serving());
    let stale = Prepare { ballot: 0, ..rogue };
    h.step("b", Input::Prepare(stale, 9));
    assert_eq!(
        h.nodes["b"].replies.last().unwrap().1,
        Reply::Prepare(PrepareReply::Refused(Refusal::StaleBallot(1)))
    );
}

#[test]
fn a_restarted_primary_asks_for_a_new_ballot_instead_of_reusing_its_own() {
    let recovered = Recovered {
        data: Some(DataState::Valid),
        hard: HardState {
            ballot: 4,
            primary: Some("a".into()),
        },
        ..Recovered::default()
    };
    let mut h = Harness::new(&["b"]);
    h.nodes.insert("a".into(), node("a", recovered));
    h.step("a", assign(AssignedRole::Primary, 4, "a", &["b"]));
    assert_eq!(h.nodes["a"].asks, vec![(4, ConfigRequest::Renew)]);
    assert!(h.inbox.is_empty(), "nothing sent under ballot 4");
    assert!(!h.core("a").serving());
    // The meta server renews: ballot 5, and the primary takes over under it.
    let view = ConfigView {
        ballot: 5,
        primary: Some("a".into()),
        secondaries: vec!["b".into()],
    };
    h.step("a", Input::MetaAnswer(Ok((true, view))));
    h.step("b", assign(AssignedRole::Secondary, 5, "a", &["b"]));
    h.deliver_all();
    assert!(h.core("a").serving());
    assert_eq!(h.core("b").status().ballot, 5);
}

/// The prepares in flight: (to, first decree, how many entries, commit point).
fn prepares_in_flight(h: &Harness) -> Vec<(String, u64, usize, u64)> {
    h.inbox
        .iter()
        .filter_map(|m| match m {
            Msg::Prepare(to, p, _) => {
                Some((to.clone(), p.prev_decree + 1, p.entries.len(), p.committed))
            }
            Msg::Reply(..) => None,
        })
        .collect()
}

#[test]
fn a_commit_point_rides_on_the_next_prepare_and_goes_alone_only_when_none_follows() {
    let mut h = Harness::serving_group();
    let notify = CoreConfig::default().commit_notify_ms;
    // Decree 1 is committed; nothing goes out for it alone at once, nor at a tick
    // before the delay.
    assert_eq!(prepares_in_flight(&h), []);
    h.now += notify - 1;
    h.step("a", Input::Tick);
    assert_eq!(prepares_in_flight(&h), []);
    // The next write's prepare carries it.
    h.step("a", write("k2"));
    h.step("a", Input::Flush);
    let sent = prepares_in_flight(&h);
    assert_eq!(sent.len(), 2, "{sent:?}");
    assert!(
        sent.iter()
            .all(|(_, from, n, c)| (*from, *n, *c) == (2, 1, 1)),
        "{sent:?}"
    );
    h.deliver_all();
    assert_eq!(h.core("b").status().committed, 1);
    // Decree 2 is committed and no write follows: its commit point goes alone once the
    // delay has passed since the last prepare.
    assert_eq!(h.core("a").committed, 2);
    h.step("a", Input::Tick);
    assert_eq!(prepares_in_flight(&h), []);
    h.now += notify;
    h.step("a", Input::Tick);
    let sent = prepares_in_flight(&h);
    assert!(
        sent.iter().all(|(_, _, n, c)| (*n, *c) == (0, 2)),
        "{sent:?}"
    );
    assert_eq!(sent.len(), 2, "{sent:?}");
    h.deliver_all();
    for n in ["b", "c"] {
        assert_eq!(h.core(n).status().committed, 2, "{n}");
    }
}

#[test]
fn a_secondary_refuses_a_primary_that_holds_less_than_it_committed() {
    let mut h = Harness::serving_group();
    h.notify_commit("a");
    assert_eq!(h.core("b").status().committed, 1);
    // An empty replica on c's address made primary at a higher ballot.
    h.nodes.insert("c".into(), node("c", valid()));
    h.step("c", assign(AssignedRole::Primary, 2, "c", &["b"]));
    h.deliver_all();
    assert!(!h.core("c").serving(), "{:?}", h.core("c").role());
    assert!(
        matches!(h.core("c").status().data, DataState::Broken(_)),
        "{:?}",
        h.core("c").status()
    );
    assert_eq!(h.core("b").status().committed, 1);
    assert_eq!(h.core("b").log().last(), 1, "nothing of c's logged");
}

#[test]
fn a_new_primary_prepares_what_it_has_not_seen_committed_and_stale_entries_are_replaced() {
    let mut h = Harness::serving_group();
    // a prepares decree 2 to b only (c's copy is lost), then a is gone.
    h.step("a", write("k2"));
    h.step("a", Input::Flush);
    let mut kept = VecDeque::new();
    while let Some(m) = h.inbox.pop_front() {
        if let Msg::Prepare(to, _, _) = &m
            && to == "c"
        {
            continue;
        }
        kept.push_back(m);
    }
    h.inbox = kept;
    h.deliver_all();
    assert_eq!(h.core("b").log().last(), 2);
    assert_eq!(h.core("c").log().last(), 1);
    // b is promoted at ballot 2 with c: it prepares decree 2 again (under its ballot,
    // the entry keeps its own) and commits it with c.
    h.step("c", assign(AssignedRole::Secondary, 2, "b", &["c"]));
    h.step("b", assign(AssignedRole::Primary, 2, "b", &["c"]));
    h.deliver_all();
    assert!(h.core("b").serving());
    assert_eq!(
        h.core("c").log().get(2).unwrap().ballot,
        1,
        "the entry as written"
    );
    assert_eq!(h.core("b").status().committed, 2);
    // A stale entry at a decree (an old primary's, never committed) is replaced.
    let stale = Prepare {
        ballot: 3,
        from: "c".into(),
        prev_decree: 1,
        prev_ballot: 1,
        entries: vec![std::sync::Arc::new(pb::LogEntry {
            ballot: 3,
            decree: 2,
            ..Default::default()
        })],
        committed: 1,
        last_prepared: 2,
    };
    let mut fresh = Harness::new(&["x"]);
    fresh.step("x", assign(AssignedRole::Secondary, 1, "a", &["x"]));
    let old = Prepare {
        ballot: 1,
        from: "a".into(),
        prev_decree: 0,
        prev_ballot: 0,
        entries: (1..=3)
            .map(|d| {
                std::sync::Arc::new(pb::LogEntry {
                    ballot: 1,
                    decree: d,
                    ..Default::default()
                })
            })
            .collect(),
        committed: 1,
        last_prepared: 3,
    };
    fresh.step("x", Input::Prepare(old, 1));
    fresh.step("x", Input::Prepare(stale, 2));
    let log = fresh.core("x").log();
    assert_eq!(
        (log.last(), log.get(2).unwrap().ballot),
        (2, 3),
        "decree 3 went with it"
    );
}

#[test]
fn a_learner_loads_a_snapshot_then_is_upgraded_while_the_primary_does_not_serve() {
    let mut h = Harness::serving_group();
    h.nodes.insert("d".into(), node("d", Recovered::default()));
    h.step("d", assign(AssignedRole::Learner, 1, "a", &["b", "c"]));
    let Some(Effect::Learn(to, req)) = h.nodes.get_mut("d").unwrap().other.pop() else {
        panic!("the learner asks: {:?}", h.nodes["d"].other);
    };
    assert_eq!((to.as_str(), req.committed), ("a", None));
    h.step("a", Input::Learn(req, 77));
    let Some(Effect::StreamSnapshot(77, decree)) = h.nodes.get_mut("a").unwrap().other.pop() else {
        panic!("the primary streams a snapshot: {:?}", h.nodes["a"].other);
    };
    assert_eq!(decree, 1);
    h.step("d", Input::LearnAnswer(1, Ok(LearnPlan::Snapshot(decree))));
    h.step(
        "d",
        Input::SnapshotChunk(1, Chunk::Records(vec![(b"k".to_vec(), b"v".to_vec())])),
    );
    // A chunk of an older attempt is ignored.
    h.step(
        "d",
        Input::SnapshotChunk(0, Chunk::Records(vec![(b"old".to_vec(), b"v".to_vec())])),
    );
    h.step("d", Input::SnapshotEnd(1, sessions::Sessions::default()));
    let other = std::mem::take(&mut h.nodes.get_mut("d").unwrap().other);
    assert!(matches!(other[0], Effect::ResetData));
    assert!(matches!(other[1], Effect::LoadChunk(_)));
    assert!(matches!(other[2], Effect::Seal(1, _)));
    assert_eq!(h.core("d").status().data, DataState::Learning);
    h.step("d", Input::Sealed(1));
    assert_eq!(h.core("d").status().data, DataState::Valid);
    h.now += 400;
    h.step("a", Input::Tick);
    h.deliver_all();
    assert_eq!(
        h.nodes["a"].asks.last(),
        Some(&(1, ConfigRequest::UpgradeLearner("d".into())))
    );
    assert!(
        !h.core("a").serving(),
        "no reads while the change may move the primary"
    );
    let view = ConfigView {
        ballot: 2,
        primary: Some("a".into()),
        secondaries: vec!["b".into(), "c".into(), "d".into()],
    };
    h.step("a", Input::MetaAnswer(Ok((true, view))));
    assert!(h.core("a").serving());
    h.step("a", write("k3"));
    h.step("a", Input::Flush);
    h.deliver_all();
    assert_eq!(h.writes_answered("a"), vec![Ok(1), Ok(2)]);
    assert_eq!(h.core("d").log().last(), 2, "the new secondary counts");
}

/// A write under a request id (client 9, seq 1), to be sent more than once.
fn retried_write() -> Write {
    Write {
        mutations: vec![pb::Mutation::default()],
        request: Some(pb::RequestId {
            client: 9,
            seq: 1,
            acked_below: 1,
        }),
    }
}

#[test]
fn a_write_retried_with_its_request_id_is_applied_once() {
    let mut h = Harness::serving_group();
    let w = retried_write();
    h.step("a", Input::Write(w.clone(), 1));
    h.step("a", Input::Flush);
    h.deliver_all();
    h.step("a", Input::Write(w, 2));
    h.step("a", Input::Flush);
    h.deliver_all();
    assert_eq!(h.writes_answered("a"), vec![Ok(1), Ok(2), Ok(2)]);
    assert_eq!(h.core("a").log().last(), 2, "no third entry");
}

#[test]
fn a_write_is_answered_once_committed_without_waiting_for_its_apply() {
    let mut h = Harness::serving_group();
    h.hold_applies = true;
    let w = retried_write();
    h.step("a", Input::Write(w.clone(), 1));
    h.step("a", Input::Flush);
    h.deliver_all();
    assert_eq!(h.core("a").status().committed, 2);
    assert_eq!(
        h.core("a").status().applied,
        0,
        "committed entries wait for a batch, the tick or a read"
    );
    assert_eq!(h.writes_answered("a"), vec![Ok(1), Ok(2)]);
    // The same request again, committed but not applied yet: answered at once.
    h.step("a", Input::Write(w, 2));
    assert_eq!(h.writes_answered("a"), vec![Ok(1), Ok(2), Ok(2)]);
    h.step("a", Input::ApplyNow);
    h.finish_applies("a");
    assert_eq!(h.core("a").status().applied, 2);
    assert_eq!(h.writes_answered("a").len(), 3, "nobody is answered twice");
    assert_eq!(h.core("a").log().last(), 2, "no third entry");
}

/// Writers no longer wait for applies, so a store slower than the log must hold new
/// entries back — or the gap (which every read waits out) would grow without bound.
#[test]
fn a_primary_cuts_no_entry_more_than_the_apply_lag_beyond_its_store() {
    let mut h = Harness::serving_group();
    h.hold_applies = true;
    let lag = CoreConfig::default().max_apply_lag;
    for i in 0..lag + 20 {
        h.step("a", write(&format!("k{i}")));
        h.step("a", Input::Flush);
        h.deliver_all();
    }
    let store = h.core("a").status().applied;
    assert_eq!(
        h.core("a").log().last(),
        store + lag,
        "entries beyond the lag were cut"
    );
    assert_eq!(h.writes_answered("a").len() as u64, store + lag);
    h.finish_applies("a");
    h.step("a", Input::Flush);
    h.deliver_all();
    assert_eq!(
        h.core("a").log().last(),
        store + lag + 1,
        "the writes held back follow the applies, in one entry"
    );
    assert_eq!(h.writes_answered("a").len() as u64, 1 + lag + 20);
}

#[test]
fn a_write_not_applied_in_time_has_an_unknown_outcome() {
    let mut h = Harness::serving_group();
    h.step("a", write("k2"));
    h.step("a", Input::Flush);
    h.inbox.clear();
    h.now += CoreConfig::default().commit_timeout_ms + 1;
    h.step("a", Input::Tick);
    let answers = h.writes_answered("a");
    assert!(
        matches!(answers.last(), Some(Err(Error::OutcomeUnknown(_)))),
        "{answers:?}"
    );
}

#[test]
fn a_disk_failure_makes_the_replica_step_down_and_never_acknowledge() {
    let mut h = Harness::serving_group();
    h.auto_sync = false;
    h.step("a", write("k2"));
    h.step("a", Input::Flush);
    h.step("a", Input::PersistFailed("EIO".into()));
    assert!(!h.core("a").serving());
    assert!(matches!(h.core("a").status().data, DataState::Broken(_)));
    let answers = h.writes_answered("a");
    assert!(
        matches!(answers.last(), Some(Err(Error::OutcomeUnknown(_)))),
        "{answers:?}"
    );
    h.deliver_all();
    // A secondary whose disk failed refuses prepares.
    h.step("b", Input::PersistFailed("ENOSPC".into()));
    let p = Prepare {
        ballot: 1,
        from: "a".into(),
        prev_decree: 1,
        prev_ballot: 1,
        entries: vec![],
        committed: 1,
        last_prepared: 2,
    };
    h.step("b", Input::Prepare(p, 5));
    assert!(matches!(
        h.nodes["b"].replies.last().unwrap().1,
        Reply::Prepare(PrepareReply::Refused(Refusal::Failed(_)))
    ));
}

#[test]
fn a_killed_replica_is_not_recreated_by_an_assignment_it_already_had() {
    let mut h = Harness::serving_group();
    h.step("b", Input::Kill);
    assert_eq!(h.core("b").status().data, DataState::Lost(1));
    assert!(matches!(
        h.nodes["b"].other.last(),
        Some(Effect::Destroy(1))
    ));
    // A beacon reply computed before the meta server saw the loss still says the
    // partition is fresh at ballot 1: the replica stays lost, and refuses prepares.
    let Input::Assign(mut a) = assign(AssignedRole::Secondary, 1, "a", &["b", "c"]) else {
        unreachable!()
    };
    a.create_empty = true;
    h.step("b", Input::Assign(a.clone()));
    assert_eq!(h.core("b").status().data, DataState::Lost(1));
    // An operator's decision (a new ballot) may create it empty.
    a.ballot = 5;
    a.role = AssignedRole::Primary;
    a.primary = Some("b".into());
    a.secondaries = vec![];
    h.step("b", Input::Assign(a));
    assert_eq!(h.core("b").status().data, DataState::Valid);
    assert!(h.nodes["b"].other.contains(&Effect::CreateEmpty));
}

#[test]
fn a_primary_asking_for_a_change_that_may_move_it_does_not_serve() {
    let mut h = Harness::serving_group();
    let Input::Assign(mut a) = assign(AssignedRole::Primary, 1, "a", &["b", "c"]) else {
        unreachable!()
    };
    a.proposal = Some(Proposal::MovePrimary("b".into()));
    h.step("a", Input::Assign(a));
    h.deliver_all();
    assert_eq!(
        h.nodes["a"].asks.last(),
        Some(&(1, ConfigRequest::MovePrimary("b".into())))
    );
    assert!(
        !h.core("a").serving(),
        "no reads while the move may be made"
    );
    // The answer is lost: it asks again, still not serving.
    h.step(
        "a",
        Input::MetaAnswer(Err(Error::Unavailable("no answer".into()))),
    );
    assert!(!h.core("a").serving());
    // Refused (the action ended): it serves again.
    h.now += 2000;
    h.step("a", Input::Tick);
    h.step(
        "a",
        Input::MetaAnswer(Err(Error::Refused("not in flight".into()))),
    );
    assert!(h.core("a").serving());
}

#[test]
fn a_new_ballot_is_durable_before_anything_is_acknowledged_under_it() {
    let mut h = Harness::serving_group();
    h.auto_sync = false;
    // c becomes primary at ballot 2 and confirms with an empty prepare: b answers only
    // once its promise (ballot 2, primary c) is on disk.
    let confirm = Prepare {
        ballot: 2,
        from: "c".into(),
        prev_decree: 1,
        prev_ballot: 1,
        entries: vec![],
        committed: 1,
        last_prepared: 1,
    };
    h.step("b", Input::Prepare(confirm, 9));
    assert!(
        !h.nodes["b"].replies.iter().any(|(id, _)| *id == 9),
        "answered before the promise was durable"
    );
    let pending = &h.nodes["b"].pending;
    assert!(
        pending.iter().any(|(_, r)| r
            .iter()
            .any(|r| matches!(r, LogRecord::Hard(hs) if hs.ballot == 2))),
        "{pending:?}"
    );
    let input = sync_input(h.nodes.get_mut("b").unwrap()).unwrap();
    h.step("b", input);
    assert_eq!(
        h.nodes["b"].replies.last(),
        Some(&(
            9,
            Reply::Prepare(PrepareReply::Ack {
                ballot: 2,
                prepared: 1,
                ready: true
            })
        ))
    );
    assert_eq!(h.core("b").status().ballot, 2);
}
#[test]
fn inputs_meant_for_a_primary_leave_a_follower_as_it_is() {
    let mut h = Harness::serving_group();
    for input in [
        Input::Flush,
        Input::PrepareReply("a".into(), None),
        Input::MetaAnswer(Err(Error::Refused("no".into()))),
        Input::Tick,
    ] {
        h.step("b", input);
        assert!(
            matches!(h.core("b").role(), Role::Secondary(p) if p == "a"),
            "{:?}",
            h.core("b").role()
        );
    }
    let mut c = Core::new(G, "d", CoreConfig::default(), Recovered::default(), 0);
    c.step(10, assign(AssignedRole::Learner, 1, "a", &["b", "c"]));
    c.step(20, Input::Flush);
    c.step(30, Input::LearnAnswer(1, Ok(LearnPlan::Snapshot(0))));
    assert!(
        c.take_effects().contains(&Effect::ResetData),
        "{:?}",
        c.role()
    );
}

#[test]
fn a_dropped_secondary_that_comes_back_catches_up_from_the_log_within_the_bound() {
    // (catch_up_bytes, whether c catches up from the log)
    for (bound, from_log) in [(64 << 20, true), (0, false)] {
        let mut h = compacting_group(bound);
        let held = h.core("c").committed;
        assert!(held >= 15, "c followed: {held}");
        // c goes silent; the primary drops it through the meta server.
        h.step("a", write("lost-c"));
        h.step("a", Input::Flush);
        h.deliver_all_but("c");
        h.now += 2_000;
        h.step("a", Input::Tick);
        h.deliver_all_but("c");
        assert_eq!(
            h.nodes["a"].asks.last(),
            Some(&(1, ConfigRequest::Remove("c".into())))
        );
        let view = ConfigView {
            ballot: 2,
            primary: Some("a".into()),
            secondaries: vec!["b".into()],
        };
        h.step("a", Input::MetaAnswer(Ok((true, view))));
        // Writes go on without it; the log is trimmed as far as the bound lets it.
        for k in 0..50 {
            h.step("a", write(&format!("later{k}")));
            h.step("a", Input::Flush);
            h.deliver_all_but("c");
        }
        let (base, last) = (h.core("a").log().base(), h.core("a").log().last());
        assert_eq!(h.core("a").committed, last, "writes commit with a and b");
        assert_eq!(
            base <= held,
            from_log,
            "log base {base}, c held {held}, bound {bound}"
        );
        // c is back, re-added as a learner at the new ballot.
        h.step("c", assign(AssignedRole::Learner, 2, "a", &["b"]));
        let Some(Effect::Learn(_, req)) = h.nodes.get_mut("c").unwrap().other.pop() else {
            panic!("c asks to learn: {:?}", h.nodes["c"].other);
        };
        assert_eq!(req.committed, Some(held));
        h.step("a", Input::Learn(req, 77));
        let answer = h.nodes["a"].replies.iter().find(|(id, _)| *id == 77);
        if from_log {
            assert!(
                matches!(answer, Some((_, Reply::Learn(Ok(LearnPlan::Incremental))))),
                "{answer:?}"
            );
            h.step(
                "c",
                Input::LearnAnswer(req_attempt(&h, "c"), Ok(LearnPlan::Incremental)),
            );
            h.step("a", Input::Tick);
            h.deliver_all();
            assert_eq!(h.core("c").log().last(), last, "c caught up from the log");
            assert_eq!(h.core("c").status().data, DataState::Valid);
        } else {
            assert!(answer.is_none(), "{answer:?}");
            assert!(
                matches!(
                    h.nodes["a"].other.last(),
                    Some(Effect::StreamSnapshot(77, _))
                ),
                "past the bound it copies a snapshot: {:?}",
                h.nodes["a"].other
            );
        }
    }
}

/// A group of three under `a` whose logs are compacted at every chance (and stores made
/// durable at every decree), with 20 writes committed; a primary keeps at most
/// `catch_up_bytes` of log for a dropped member.
fn compacting_group(catch_up_bytes: usize) -> Harness {
    let mut h = Harness::new(&["a", "b", "c"]);
    for n in h.nodes.values_mut() {
        n.core.cfg.compact_bytes = 1;
        n.core.cfg.durable_every = 1;
        n.core.cfg.catch_up_bytes = catch_up_bytes;
    }
    h.step("b", assign(AssignedRole::Secondary, 1, "a", &["b", "c"]));
    h.step("c", assign(AssignedRole::Secondary, 1, "a", &["b", "c"]));
    h.step("a", assign(AssignedRole::Primary, 1, "a", &["b", "c"]));
    h.deliver_all();
    for k in 0..20 {
        h.step("a", write(&format!("k{k}")));
        h.step("a", Input::Flush);
        h.deliver_all();
    }
    h.notify_commit("a");
    h
}

fn req_attempt(h: &Harness, name: &str) -> u64 {
    h.core(name).learn_attempt
}

#[test]
fn a_primary_that_died_and_comes_back_catches_up_from_the_new_primarys_log() {
    let mut h = compacting_group(CoreConfig::default().catch_up_bytes);
    h.step("a", Input::Tick);
    h.deliver_all();
    let held = h.core("a").committed;
    // a dies; b is made primary with c.
    h.step("c", assign(AssignedRole::Secondary, 2, "b", &["c"]));
    h.step("b", assign(AssignedRole::Primary, 2, "b", &["c"]));
    h.deliver_all_but("a");
    assert!(h.core("b").serving(), "{:?}", h.core("b").role());
    for k in 0..50 {
        h.step("b", write(&format!("later{k}")));
        h.step("b", Input::Flush);
        h.deliver_all_but("a");
    }
    let (base, last) = (h.core("b").log().base(), h.core("b").log().last());
    assert!(
        last > held + 40 && base <= held,
        "base {base}, a held {held}, last {last}"
    );
    h.step("a", assign(AssignedRole::Learner, 2, "b", &["c"]));
    let Some(Effect::Learn(_, req)) = h.nodes.get_mut("a").unwrap().other.pop() else {
        panic!("a asks to learn: {:?}", h.nodes["a"].other);
    };
    // A restarted replica's commit point is its store's durable point, which may trail
    // the log this primary kept; its last log entry, held here too, is where it matches.
    let restarted = LearnRequest {
        committed: Some(1),
        ..req.clone()
    };
    assert_eq!(req.last, Some((held, 1)));
    h.step("b", Input::Learn(restarted.clone(), 78));
    let answer = h.nodes["b"].replies.iter().find(|(id, _)| *id == 78);
    assert!(
        matches!(answer, Some((_, Reply::Learn(Ok(LearnPlan::Incremental))))),
        "{answer:?}"
    );
    // An entry of another ballot at that decree does not match: a snapshot.
    let diverged = LearnRequest {
        last: Some((held, 7)),
        ..restarted
    };
    h.step("b", Input::Learn(diverged, 79));
    assert!(
        matches!(
            h.nodes["b"].other.last(),
            Some(Effect::StreamSnapshot(79, _))
        ),
        "{:?}",
        h.nodes["b"].other
    );
}

#[test]
fn a_secondary_applies_in_batches_and_its_tick_applies_the_rest() {
    let mut h = Harness::serving_group();
    let every = CoreConfig::default().apply_every;
    // Each write rides its own entry; the commit point reaches b on the next prepare.
    let mut batches = 0;
    let writes = every + every / 2;
    for k in 0..writes {
        h.step("a", write(&format!("k{k}")));
        h.step("a", Input::Flush);
        h.deliver_all();
        let applied = h.nodes["b"].applied.clone();
        let committed = h.core("b").status().committed;
        let upto = applied.len() as u64;
        assert_eq!(
            applied,
            (1..=upto).collect::<Vec<_>>(),
            "in order, each once"
        );
        assert!(
            committed - upto < every,
            "committed {committed}, applied {upto}"
        );
        batches += u64::from(upto > 0 && upto == committed);
    }
    assert!(batches >= 1, "b applied a batch without a tick");
    let upto = h.nodes["b"].applied.len() as u64;
    assert!(
        upto < h.core("b").status().committed,
        "the rest waits for the tick"
    );
    h.notify_commit("a");
    h.step("b", Input::Tick);
    assert_eq!(
        h.nodes["b"].applied.len() as u64,
        h.core("b").status().committed
    );
}

#[test]
fn a_secondary_made_primary_applies_what_it_committed_before_it_serves_reads() {
    let mut h = Harness::serving_group();
    h.step("a", write("k2"));
    h.step("a", Input::Flush);
    h.deliver_all();
    h.notify_commit("a");
    assert_eq!(h.core("b").status().committed, 2);
    assert!(
        h.nodes["b"].applied.is_empty(),
        "{:?}",
        h.nodes["b"].applied
    );
    // a dies; b takes over and applies at once, before any new write or tick.
    h.step("c", assign(AssignedRole::Secondary, 2, "b", &["c"]));
    h.step("b", assign(AssignedRole::Primary, 2, "b", &["c"]));
    assert_eq!(h.nodes["b"].applied, vec![1, 2]);
}

#[test]
fn a_serving_primary_applies_in_batches_and_a_waiting_read_applies_the_rest() {
    let mut h = Harness::serving_group();
    h.hold_applies = true;
    let writes = CoreConfig::default().apply_every / 2;
    for k in 0..writes {
        h.step("a", write(&format!("k{k}")));
        h.step("a", Input::Flush);
        h.deliver_all();
    }
    assert_eq!(h.core("a").status().committed, writes + 1);
    // A serving primary's commits wait for a batch (or the tick, or a read).
    assert!(h.nodes["a"].applied.is_empty());
    h.finish_applies("a");
    h.step("a", Input::ApplyNow);
    assert_eq!(h.nodes["a"].applied, (1..=writes + 1).collect::<Vec<_>>());
}

/// Ticks every node of `h` every 100 ms for `ms`, delivering what they send.
fn tick_for(h: &mut Harness, ms: u64) {
    let names: Vec<String> = h.nodes.keys().cloned().collect();
    for _ in 0..ms / 100 {
        h.now += 100;
        for n in &names {
            h.step(n, Input::Tick);
        }
        h.deliver_all();
    }
}

fn compactions(h: &Harness, name: &str) -> Vec<u64> {
    h.nodes[name]
        .other
        .iter()
        .filter_map(|e| match e {
            Effect::Compact(d) => Some(*d),
            _ => None,
        })
        .collect()
}

#[test]
fn a_quiet_replica_makes_its_store_durable_and_compacts_its_log_once_per_quiet_spell() {
    let mut h = Harness::serving_group();
    let settle = CoreConfig::default().settle_ms;
    let write_some = |h: &mut Harness, from: usize| {
        for k in from..from + 10 {
            h.step("a", write(&format!("k{k}")));
            h.step("a", Input::Flush);
            h.deliver_all();
        }
    };
    write_some(&mut h, 0);
    // Writing every half settle period: never quiet long enough.
    for round in 1..4 {
        tick_for(&mut h, settle / 2);
        write_some(&mut h, round * 10);
    }
    for n in ["a", "b", "c"] {
        assert!(compactions(&h, n).is_empty(), "{n}: {:?}", h.nodes[n].other);
        assert!(h.core(n).log().bytes() > 0, "{n} keeps its log while busy");
    }
    tick_for(&mut h, settle * 2);
    let last = h.core("a").log().last();
    assert!(last >= 40, "{last}");
    for n in ["a", "b", "c"] {
        let c = h.core(n);
        assert_eq!(c.store_durable, last, "{n}: the store made durable");
        assert_eq!(compactions(&h, n), [last + 1], "{n}: compacted once");
        assert_eq!(c.log().bytes(), 0, "{n}: no log its store holds");
    }
    // A write ends the spell; the next one compacts again.
    write_some(&mut h, 40);
    tick_for(&mut h, settle * 2);
    for n in ["a", "b", "c"] {
        assert_eq!(compactions(&h, n), [last + 1, last + 11], "{n}");
        assert_eq!(h.core(n).store_durable, last + 10, "{n}");
    }
}
