//! The simulated meta server's side of the network: beacons, configuration requests and
//! DDL from the simulated nodes and clients, and its periodic failure detection and
//! scheduling rounds.

use super::*;

impl Sim {
    pub(super) fn meta_receive(&mut self, from: &str, body: Body) {
        if !self.meta.up {
            return;
        }
        let now = self.meta.at(self.now);
        match body {
            Body::Beacon(req, sent) => {
                let reports = req
                    .replicas
                    .iter()
                    .map(|r| (Gpid::new(r.app_id, r.pidx), report_from_pb(r)))
                    .collect();
                let outcome = self
                    .meta
                    .state
                    .beacon(&req.address, &req.incarnation, reports, now);
                let Ok(outcome) = outcome else {
                    return;
                };
                let reply = beacon_reply_to_pb(outcome, self.meta.state.config());
                self.send("meta", from, Body::BeaconReply(reply, sent));
            }
            Body::Ask(gpid, ballot, request) => {
                let wire = config_request_to_pb(gpid, ballot, from, &request);
                let answer = primary_request_from_pb(wire.kind, wire.node).and_then(|change| {
                    self.meta
                        .state
                        .update_partition(gpid, ballot, from, change, now)
                });
                let answer = answer.map(|(applied, c)| {
                    let view = ConfigView {
                        ballot: c.ballot,
                        primary: c.primary,
                        secondaries: c.secondaries,
                    };
                    (applied, view)
                });
                self.send("meta", from, Body::Answer(gpid, answer));
            }
            _ => {}
        }
    }

    pub(super) fn meta_tick(&mut self, n: u64) {
        let next = self.now + 100;
        self.schedule(next, Event::MetaTick(n + 1));
        if !self.meta.up {
            return;
        }
        let now = self.meta.at(self.now);
        for dead in self.meta.state.check_nodes(now).unwrap_or_default() {
            self.trace(format!("meta: {dead} is UNALIVE"));
        }
        if n.is_multiple_of(2)
            && let Ok(report) = self.meta.state.round(now)
        {
            for action in report.started {
                self.trace(format!("meta: {action}"));
            }
        }
    }
}
