//! `tachyon [EAL args] -- --plan` on synthetic machines (hwloc's `HWLOC_SYNTHETIC`, set in
//! the child's environment) and on this machine, checked against the pure planner.

#![deny(unsafe_code)]

use std::collections::BTreeSet;
use std::process::{Command, Output};

use serde_json::Value;
use tachyon::topology::model::{CpuNumbering, RegularShape};
use tachyon::topology::{PlanRequest, PortPlacement, Topology, parse_eal_args, plan};

/// Two sockets, one NUMA node and one L3 each, 16 cores of 2 threads (CPUs 2k, 2k+1 on core k).
const DUAL_SOCKET: &str = "pack:2 [numa] l3:1 core:16 pu:2";
/// One socket, one node, two cores without SMT.
const TWO_CORES: &str = "pack:1 core:2 pu:1";

/// One dual-port NIC per socket.
const DUAL_NIC_PER_SOCKET: &[&str] = &[
    "--plan-port",
    "0000:17:00.0@0",
    "--plan-port",
    "0000:17:00.1@0",
    "--plan-port",
    "0000:b1:00.0@1",
    "--plan-port",
    "0000:b1:00.1@1",
];

fn run(synthetic: Option<&str>, eal: &[&str], app: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tachyon"));
    command.args(eal).arg("--").arg("--plan").args(app).env_remove("HWLOC_XMLFILE").env_remove("HWLOC_THISSYSTEM");
    match synthetic {
        Some(description) => command.env("HWLOC_SYNTHETIC", description),
        None => command.env_remove("HWLOC_SYNTHETIC"),
    };
    command.output().expect("the tachyon binary runs")
}

fn text_of(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The JSON plan; fails the test with the binary's own words when it refuses.
fn plan_json(synthetic: Option<&str>, eal: &[&str], app: &[&str]) -> Value {
    let mut app = app.to_vec();
    app.push("--plan-json");
    let output = run(synthetic, eal, &app);
    assert!(output.status.success(), "plan failed: {}", text_of(&output.stderr));
    serde_json::from_slice(&output.stdout).expect("--plan-json prints JSON")
}

/// The refusal message; fails the test if a plan was printed instead.
fn refusal(synthetic: Option<&str>, eal: &[&str], app: &[&str]) -> String {
    let output = run(synthetic, eal, app);
    assert!(!output.status.success(), "expected a refusal, got: {}", text_of(&output.stdout));
    text_of(&output.stderr)
}

fn plan_text(synthetic: Option<&str>, eal: &[&str], app: &[&str]) -> String {
    let output = run(synthetic, eal, app);
    assert!(output.status.success(), "{}", text_of(&output.stderr));
    text_of(&output.stdout)
}

/// (lcore, cpu, core, node, [(port, queue)]) per worker, in plan order.
type WorkerRow = (u64, u64, u64, u64, Vec<(u64, u64)>);

fn worker_rows(json: &Value) -> Vec<WorkerRow> {
    json["plan"]["workers"]
        .as_array()
        .expect("workers array")
        .iter()
        .map(|worker| {
            let queues = worker["queues"]
                .as_array()
                .unwrap()
                .iter()
                .map(|pair| (pair[0].as_u64().unwrap(), pair[1].as_u64().unwrap()))
                .collect();
            (
                worker["lcore"].as_u64().unwrap(),
                worker["cpu"].as_u64().unwrap(),
                worker["core"].as_u64().unwrap(),
                worker["numa_node"].as_u64().unwrap(),
                queues,
            )
        })
        .collect()
}

/// No two workers on one core, none on the control core, and (unless allowed) no queue
/// polled from another node; every port queue has exactly one worker.
fn assert_placement_rules(json: &Value, smt_allowed: bool, cross_node_allowed: bool) {
    let plan = &json["plan"];
    let control_cores: Vec<u64> =
        plan["control"]["cores"].as_array().unwrap().iter().map(|core| core.as_u64().unwrap()).collect();
    let mut cores = BTreeSet::new();
    for (lcore, _, core, _, _) in worker_rows(json) {
        assert!(!control_cores.contains(&core), "worker {lcore} on the control core");
        assert!(cores.insert(core) || smt_allowed, "two workers on core {core}");
    }
    let mut served = BTreeSet::new();
    for assignment in plan["assignments"].as_array().unwrap() {
        let crosses = assignment["cross_node"].as_bool().unwrap();
        assert_eq!(
            crosses,
            assignment["port_node"].as_u64().is_some_and(|node| Some(node) != assignment["worker_node"].as_u64())
        );
        assert!(!crosses || cross_node_allowed, "{assignment} crosses nodes");
        let key = (assignment["port"].as_u64(), assignment["queue"].as_u64());
        assert!(served.insert(key), "{key:?} served twice");
    }
    for port in plan["ports"].as_array().unwrap() {
        for queue in 0..port["queues"].as_u64().unwrap() {
            assert!(served.contains(&(port["port"].as_u64(), Some(queue))));
        }
    }
}

fn dual_socket_model() -> Topology {
    Topology::regular(RegularShape {
        packages: 2,
        nodes_per_package: 1,
        l3_per_node: 1,
        cores_per_l3: 16,
        threads_per_core: 2,
        numbering: CpuNumbering::SiblingsAdjacent,
    })
}

fn dual_nic_ports() -> Vec<PortPlacement> {
    vec![
        PortPlacement::on_node("0000:17:00.0", 0),
        PortPlacement::on_node("0000:17:00.1", 0),
        PortPlacement::on_node("0000:b1:00.0", 1),
        PortPlacement::on_node("0000:b1:00.1", 1),
    ]
}

/// The pure planner's answer for a hand-built machine, as JSON, to compare with the binary's.
fn model_plan(topo: &Topology, ports: &[PortPlacement], eal: &[&str], req: &PlanRequest) -> Value {
    let args: Vec<String> = eal.iter().map(|arg| arg.to_string()).collect();
    let layout = parse_eal_args(&args).unwrap().lcore_layout(topo).unwrap();
    serde_json::to_value(plan(topo, ports, &layout, req).unwrap()).unwrap()
}

#[test]
fn dual_socket_with_chosen_lcores_keeps_every_queue_on_its_nic_node() {
    let eal = ["-l", "0,2,4,32,34"];
    let json = plan_json(Some(DUAL_SOCKET), &eal, DUAL_NIC_PER_SOCKET);
    assert_eq!(json["topology"]["numa_nodes"], serde_json::json!([0, 1]));
    assert_eq!(json["topology"]["cores"].as_array().unwrap().len(), 32);
    assert_eq!(
        worker_rows(&json),
        vec![
            (2, 2, 1, 0, vec![(0, 0), (1, 0)]),
            (4, 4, 2, 0, vec![(0, 1), (1, 1)]),
            (32, 32, 16, 1, vec![(2, 0), (3, 0)]),
            (34, 34, 17, 1, vec![(2, 1), (3, 1)]),
        ]
    );
    assert_placement_rules(&json, false, false);
    let pools: Vec<u64> =
        json["plan"]["mempools"].as_array().unwrap().iter().map(|pool| pool["numa_node"].as_u64().unwrap()).collect();
    assert_eq!(pools, vec![0, 1]);
    assert_eq!(json["plan"]["control"]["lcore"], 0);
    assert_eq!(json["plan"]["suggested_eal"], Value::Null);
    assert_eq!(json["plan"]["warnings"], serde_json::json!([]));
    // The binary's plan is exactly the pure function's plan on the same machine.
    let expected = model_plan(&dual_socket_model(), &dual_nic_ports(), &eal, &PlanRequest::default());
    assert_eq!(json["plan"], expected);
}

#[test]
fn dual_socket_without_lcore_args_uses_one_thread_per_free_core_and_suggests_args() {
    let json = plan_json(Some(DUAL_SOCKET), &[], DUAL_NIC_PER_SOCKET);
    let mut expected_rows: Vec<WorkerRow> = Vec::new();
    for (queue, core) in (1..16).enumerate() {
        let queue = queue as u64;
        expected_rows.push((2 * core, 2 * core, core, 0, vec![(0, queue), (1, queue)]));
    }
    for (queue, core) in (16..32).enumerate() {
        let queue = queue as u64;
        expected_rows.push((2 * core, 2 * core, core, 1, vec![(2, queue), (3, queue)]));
    }
    assert_eq!(worker_rows(&json), expected_rows);
    assert_placement_rules(&json, false, false);
    let queue_counts: Vec<u64> =
        json["plan"]["ports"].as_array().unwrap().iter().map(|port| port["queues"].as_u64().unwrap()).collect();
    assert_eq!(queue_counts, vec![15, 15, 16, 16]);
    let even_cpus: Vec<String> = (0..32).map(|core| (2 * core).to_string()).collect();
    assert_eq!(
        json["plan"]["suggested_eal"]["args"],
        serde_json::json!(["-l", even_cpus.join(","), "--main-lcore", "0"])
    );
    let expected = model_plan(&dual_socket_model(), &dual_nic_ports(), &[], &PlanRequest::default());
    assert_eq!(json["plan"], expected);

    let text = plan_text(Some(DUAL_SOCKET), &[], DUAL_NIC_PER_SOCKET);
    assert!(text.contains("Workers (31)"), "{text}");
    assert!(text.contains("  32     32   16    1     1    1   2:0 3:0"), "{text}");
    assert!(text.contains("no -l/-c/--lcores given"), "{text}");
    assert!(text.contains("Suggested EAL arguments: -l 0,2,4,"), "{text}");
    assert!(text.contains("Host checks: skipped"), "{text}");
}

#[test]
fn worker_count_splits_evenly_over_the_nic_nodes() {
    let json = plan_json(Some(DUAL_SOCKET), &[], &[DUAL_NIC_PER_SOCKET, &["--workers", "4"]].concat());
    let lcores: Vec<u64> = worker_rows(&json).iter().map(|row| row.0).collect();
    assert_eq!(lcores, vec![2, 4, 32, 34]);
    assert_placement_rules(&json, false, false);
}

#[test]
fn two_core_machine_runs_control_and_one_worker_apart() {
    let json = plan_json(Some(TWO_CORES), &["-l", "0-1"], &["--plan-port", "net0@0"]);
    assert_eq!(worker_rows(&json), vec![(1, 1, 1, 0, vec![(0, 0)])]);
    assert_eq!(json["plan"]["control"]["cpus"], serde_json::json!([0]));
    assert_eq!(json["plan"]["helper_cpus"], serde_json::json!([0]));
    assert_eq!(json["plan"]["ports"][0]["queues"], 1);
    assert_placement_rules(&json, false, false);

    let message = refusal(Some(TWO_CORES), &["-l", "0-1"], &["--plan-port", "net0@0", "--workers", "2"]);
    assert!(message.contains("2 workers requested"), "{message}");
}

#[test]
fn smt_siblings_are_refused_and_allowed_only_with_a_warning() {
    // lcores 2,3 share core 1 and lcores 4,5 share core 2.
    let eal = ["-l", "0,2-5"];
    let message = refusal(Some(DUAL_SOCKET), &eal, &["--plan-port", "p0@0", "--workers", "4"]);
    assert!(message.contains("placement refused"), "{message}");
    assert!(message.contains("--allow-smt"), "{message}");
    assert!(message.contains("suggested EAL arguments: -l 0,2,4,6,8 --main-lcore 0"), "{message}");

    let app = ["--plan-port", "p0@0", "--workers", "4", "--allow-smt"];
    let json = plan_json(Some(DUAL_SOCKET), &eal, &app);
    let lcores: Vec<u64> = worker_rows(&json).iter().map(|row| row.0).collect();
    assert_eq!(lcores, vec![2, 3, 4, 5]);
    assert_placement_rules(&json, true, false);
    let smt_warnings = json["plan"]["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|warning| warning["kind"] == "smt_shared_core")
        .count();
    assert_eq!(smt_warnings, 2);
    let text = plan_text(Some(DUAL_SOCKET), &eal, &app);
    assert!(text.contains("SMT: workers 2,3 share physical core 1"), "{text}");
    assert!(text.contains("[SMT: shares core with 3]"), "{text}");
}

#[test]
fn cross_node_polling_is_refused_and_named_when_allowed() {
    // Every lcore is on node 0, but two ports are on node 1.
    let eal = ["-l", "0-4"];
    let message = refusal(Some(DUAL_SOCKET), &eal, DUAL_NIC_PER_SOCKET);
    assert!(message.contains("port 2 (0000:b1:00.0) is on node 1 but the workers are on node(s) 0"), "{message}");
    assert!(message.contains("--allow-cross-node"), "{message}");
    assert!(message.contains("suggested EAL arguments: -l 0,2,32 --main-lcore 0"), "{message}");

    let app = [DUAL_NIC_PER_SOCKET, &["--allow-cross-node"]].concat();
    let json = plan_json(Some(DUAL_SOCKET), &eal, &app);
    assert_eq!(
        worker_rows(&json),
        vec![(2, 2, 1, 0, vec![(0, 0), (1, 0), (2, 0), (3, 0)]), (4, 4, 2, 0, vec![(0, 1), (1, 1), (2, 1), (3, 1)]),]
    );
    assert_placement_rules(&json, false, true);
    let crossing: Vec<(u64, u64)> = json["plan"]["assignments"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["cross_node"] == true)
        .map(|a| (a["lcore"].as_u64().unwrap(), a["port"].as_u64().unwrap()))
        .collect();
    assert_eq!(crossing, vec![(2, 2), (4, 2), (2, 3), (4, 3)]);
    let text = plan_text(Some(DUAL_SOCKET), &eal, &app);
    assert!(text.contains("cross-node: worker lcore 2 on node 0 polls port 2 queue 0 on node 1"), "{text}");
    assert!(text.contains("Suggested EAL arguments: -l 0,2,32"), "{text}");
}

#[test]
fn a_malformed_synthetic_description_is_an_error_not_the_real_machine() {
    let message = refusal(Some("bogus:2"), &["-l", "0-1"], &["--plan-port", "p@0"]);
    assert!(message.contains("HWLOC_SYNTHETIC"), "{message}");
}

#[test]
fn this_machine_plans_like_the_pure_function() {
    // Assumes at least two CPUs, as on the project's machines.
    let eal = ["-l", "0-1"];
    let app = ["--plan-port", "net_null0@any"];
    let json = plan_json(None, &eal, &app);
    assert_eq!(json["topology"]["origin"]["kind"], "this_system");
    assert_eq!(json["host"]["kind"], "checked");
    assert_placement_rules(&json, false, false);
    let workers = worker_rows(&json);
    assert!(!workers.is_empty());
    for (queue, worker) in workers.iter().enumerate() {
        assert_eq!(worker.4, vec![(0, queue as u64)], "the any-node port reaches every worker");
    }

    // The same plan, computed in this process from hwloc's view of this machine.
    if std::env::var_os("HWLOC_SYNTHETIC").is_none() && std::env::var_os("HWLOC_XMLFILE").is_none() {
        let topo = tachyon::topology::discover().unwrap();
        let expected = model_plan(&topo, &[PortPlacement::anywhere("net_null0")], &eal, &PlanRequest::default());
        assert_eq!(json["plan"], expected);
    }

    let text = plan_text(None, &eal, &app);
    assert!(text.contains("Topology: this machine"), "{text}");
    assert!(text.contains("Host checks:\n"), "{text}");
    assert!(text.contains("node unknown (any node)"), "{text}");
}
