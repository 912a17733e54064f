//! The meta server's gRPC API against malformed requests: every one gets an error
//! status and the server keeps answering. Also the in-process view of node death.

use std::time::Duration;

use ballast::pb;
use tonic::Code;

use crate::util::{TestCluster, wait_node_status};

#[test]
fn malformed_requests_get_errors_and_never_crash_the_server() {
    let c = TestCluster::start(3, true);
    let meta = c.meta();
    c.block_on(async {
        let mut raw = pb::meta_client::MetaClient::connect(format!("http://{meta}"))
            .await
            .unwrap();
        let bad_beacon = pb::BeaconRequest {
            address: "nonsense".into(),
            ..Default::default()
        };
        assert_eq!(
            raw.beacon(bad_beacon).await.unwrap_err().code(),
            Code::InvalidArgument
        );
        let empty = pb::BeaconRequest::default();
        assert_eq!(
            raw.beacon(empty).await.unwrap_err().code(),
            Code::InvalidArgument
        );
        let zero = pb::CreateAppRequest {
            app_name: "z".into(),
            partition_count: 0,
            replica_count: 3,
            ..Default::default()
        };
        assert_eq!(
            raw.create_app(zero).await.unwrap_err().code(),
            Code::InvalidArgument
        );
        let huge = pb::CreateAppRequest {
            app_name: "h".into(),
            partition_count: 4,
            replica_count: 1000,
            ..Default::default()
        };
        assert_eq!(
            raw.create_app(huge).await.unwrap_err().code(),
            Code::FailedPrecondition
        );
        let bad_name = pb::CreateAppRequest {
            app_name: "a/b".into(),
            partition_count: 1,
            replica_count: 1,
            ..Default::default()
        };
        assert_eq!(
            raw.create_app(bad_name).await.unwrap_err().code(),
            Code::InvalidArgument
        );
        let bad_level = pb::ControlMetaRequest { level: 7 };
        assert_eq!(
            raw.control_meta(bad_level).await.unwrap_err().code(),
            Code::InvalidArgument
        );
        let bad_filter = pb::ListNodesRequest { status: 99 };
        assert_eq!(
            raw.list_nodes(bad_filter).await.unwrap_err().code(),
            Code::InvalidArgument
        );
        let recall = pb::RecallAppRequest {
            app_id: 12345,
            new_app_name: String::new(),
        };
        assert_eq!(
            raw.recall_app(recall).await.unwrap_err().code(),
            Code::NotFound
        );
        let drop = pb::DropAppRequest {
            app_name: String::new(),
            reserve_seconds: None,
        };
        assert_eq!(raw.drop_app(drop).await.unwrap_err().code(), Code::NotFound);
        let mut cli = pb::cli_client::CliClient::connect(format!("http://{meta}"))
            .await
            .unwrap();
        let reply = cli
            .call(pb::CliRequest {
                command: String::new(),
                args: vec!["x".into(); 1000],
            })
            .await
            .unwrap();
        assert!(!reply.into_inner().ok);
        // Still serving, with nothing changed.
        let apps = raw
            .list_apps(pb::ListAppsRequest { status: 0 })
            .await
            .unwrap()
            .into_inner()
            .apps;
        assert_eq!(apps.len(), 1);
    });
}

#[test]
fn a_stopped_node_turns_unalive_and_back() {
    let mut c = TestCluster::start(3, true);
    let victim = c.cluster().node_addrs()[2].clone();
    c.stop_node(&victim);
    let meta = c.meta();
    wait_node_status(&meta, &victim, "UNALIVE", Duration::from_secs(10));
    let level = c.exec("get_meta_level");
    assert!(
        level.ok().contains("effective meta level is fl_freezed"),
        "2 of 3 alive: {level:?}"
    );
    let run = c.exec("app temp -d -j").json();
    let counts: Vec<u64> = run["replicas"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["replica_count"]["alive"].as_u64().unwrap())
        .collect();
    assert!(
        counts.iter().all(|c| *c == 2),
        "every partition lost one live replica: {counts:?}"
    );
    c.start_node(&victim);
    wait_node_status(&meta, &victim, "ALIVE", Duration::from_secs(10));
}
