//! The meta server's gRPC API against malformed requests: every one gets an error
//! status and the server keeps answering. Also the in-process view of node death, and
//! a stalled or failing meta store: beacons and reads still answer, and a refused
//! write is reported and undone.

use std::time::{Duration, Instant};

use ballast::client::MetaClient;
use ballast::meta::config::MetaConfig;
use ballast::meta::faulty_store::FaultyStore;
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
            Code::InvalidArgument,
            "more replicas than a partition may have"
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
        let bad_filter = pb::ListNodesRequest {
            status: 99,
            all: false,
        };
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

/// A beacon from a stand-in replica server (nothing connects back to it).
fn beacon_of(address: &str) -> pb::BeaconRequest {
    pb::BeaconRequest {
        address: address.to_string(),
        incarnation: format!("inc-{address}"),
        ..Default::default()
    }
}

#[test]
fn with_the_meta_store_stalled_beacons_and_reads_still_answer() {
    // The server runs on its own runtime: if a stalled write blocked its workers, the
    // test's deadlines (on another runtime) still fire and say so.
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let store = FaultyStore::new();
    let _unstall = Unstall(store.clone());
    let (handle, _meta) = server_rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        ballast::meta::start_with_store(MetaConfig::fast(), Box::new(store.clone()), listener)
            .await
            .unwrap()
    });
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client =
            MetaClient::new(&[handle.addr().to_string()], Duration::from_secs(30)).unwrap();
        // Stand-in nodes on ports nothing listens on: the meta server never calls them.
        let nodes: Vec<String> = (1..=3).map(|i| format!("127.0.0.1:{}", 9 + i)).collect();
        for n in &nodes {
            client.beacon(beacon_of(n)).await.unwrap();
        }
        let create = |name: &str| pb::CreateAppRequest {
            app_name: name.to_string(),
            partition_count: 2,
            replica_count: 3,
            ..Default::default()
        };
        client.create_app(create("before")).await.unwrap();
        let answer = Duration::from_secs(2);

        store.stall(true);
        let writes = store.writes();
        let attempts = store.attempts();
        let stalled = {
            let client = client.clone();
            let req = create("during");
            tokio::spawn(async move { client.create_app(req).await })
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while store.attempts() == attempts {
            assert!(
                Instant::now() < deadline,
                "the create never reached the store"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        for _ in 0..3 {
            for n in &nodes {
                let reply = tokio::time::timeout(answer, client.beacon(beacon_of(n)))
                    .await
                    .expect("a beacon answers while the store is stalled")
                    .unwrap();
                assert_eq!(reply.assignments.len(), 2, "assigned what is durable");
            }
            let listed = tokio::time::timeout(answer, client.list_nodes(pb::NodeStatus::Alive))
                .await
                .expect("nodes answers")
                .unwrap();
            assert_eq!(listed.len(), 3);
            let apps = tokio::time::timeout(answer, client.list_apps(pb::AppStatus::Available))
                .await
                .expect("ls answers")
                .unwrap();
            let names: Vec<String> = apps
                .iter()
                .map(|a| a.info.as_ref().unwrap().app_name.clone())
                .collect();
            assert_eq!(names, ["before"], "a table not yet durable is not shown");
            tokio::time::timeout(answer, client.query_app("before"))
                .await
                .expect("app answers")
                .unwrap();
        }
        assert!(!stalled.is_finished(), "the create waits for its write");
        assert_eq!(store.writes(), writes);

        let tables = || async {
            client
                .list_apps(pb::AppStatus::Available)
                .await
                .unwrap()
                .len()
        };
        store.stall(false);
        let reply = stalled.await.unwrap().unwrap();
        assert!(!reply.existed);
        assert_eq!(tables().await, 2);

        // A refused write is reported to the caller and undone.
        store.fail(true);
        let err = client.create_app(create("refused")).await.unwrap_err();
        assert!(err.to_string().contains("meta store"), "{err}");
        store.fail(false);
        assert_eq!(tables().await, 2);
        let again = client.create_app(create("refused")).await.unwrap();
        assert!(
            !again.existed,
            "the refused create was undone, not half-kept"
        );
    });
    // The client's connections live on `rt`: close them, or a graceful shutdown waits.
    drop(rt);
    server_rt.block_on(handle.shutdown());
}

/// Lets a stalled store go when the test ends, passed or not.
struct Unstall(FaultyStore);

impl Drop for Unstall {
    fn drop(&mut self) {
        self.0.stall(false);
    }
}
