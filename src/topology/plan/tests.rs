//! The placement rules, one test each, on synthetic machines.

use super::*;
use crate::topology::eal_args::LcoreLayout;
use crate::topology::eal_args::parse_eal_args;
use crate::topology::model::Topology;
use crate::topology::model::{CpuNumbering, RegularShape};
use crate::topology::ports::PortPlacement;
use std::collections::BTreeSet;

fn dual_socket_smt() -> Topology {
    Topology::regular(RegularShape {
        packages: 2,
        nodes_per_package: 1,
        l3_per_node: 1,
        cores_per_l3: 16,
        threads_per_core: 2,
        numbering: CpuNumbering::SiblingsAdjacent,
    })
}

fn two_core_single_node() -> Topology {
    Topology::regular(RegularShape {
        packages: 1,
        nodes_per_package: 1,
        l3_per_node: 1,
        cores_per_l3: 2,
        threads_per_core: 1,
        numbering: CpuNumbering::SiblingsAdjacent,
    })
}

fn layout(topo: &Topology, eal: &str) -> LcoreLayout {
    let args: Vec<String> = eal.split_whitespace().map(str::to_string).collect();
    parse_eal_args(&args).unwrap().lcore_layout(topo).unwrap()
}

/// One dual-port NIC per socket.
fn four_ports() -> Vec<PortPlacement> {
    vec![
        PortPlacement::on_node("0000:17:00.0", 0),
        PortPlacement::on_node("0000:17:00.1", 0),
        PortPlacement::on_node("0000:b1:00.0", 1),
        PortPlacement::on_node("0000:b1:00.1", 1),
    ]
}

fn request(workers: Option<u16>, allow_smt: bool, allow_cross_node: bool) -> PlanRequest {
    PlanRequest { workers, allow_smt, allow_cross_node }
}

/// The guarantees every plan must keep, whatever the inputs.
fn assert_invariants(plan: &Plan, topo: &Topology, req: &PlanRequest) {
    let mut cores = BTreeSet::new();
    for worker in &plan.workers {
        let core = topo.core_of_cpu(worker.cpu).unwrap();
        assert_eq!(core.id, worker.core);
        assert_eq!(core.numa_node, worker.numa_node);
        assert!(!plan.control.cores.contains(&worker.core), "worker lcore {} on the control core", worker.lcore);
        if !cores.insert(worker.core) {
            assert!(req.allow_smt, "two workers on core {} without --allow-smt", worker.core);
        }
    }
    for port in &plan.ports {
        assert_eq!(usize::from(port.queues), port.workers.len());
        for queue in 0..port.queues {
            let servers: Vec<_> = plan.assignments.iter().filter(|a| a.port == port.port && a.queue == queue).collect();
            assert_eq!(servers.len(), 1, "port {} queue {queue}", port.port);
        }
    }
    for assignment in &plan.assignments {
        assert!(plan.assignments_for_worker(assignment.lcore).contains(&(assignment.port, assignment.queue)));
        let crosses = assignment.port_node.is_some_and(|node| node != assignment.worker_node);
        assert_eq!(crosses, assignment.cross_node);
        assert!(!crosses || req.allow_cross_node, "{assignment:?} crosses nodes");
    }
    for cpu in &plan.helper_cpus {
        let core = topo.core_of_cpu(*cpu).unwrap().id;
        assert!(plan.workers.iter().all(|w| w.core != core) || plan.helper_cpus == plan.control.cpus);
    }
}

#[test]
fn dual_socket_by_default_uses_every_free_core_near_its_ports() {
    let topo = dual_socket_smt();
    let req = PlanRequest::default();
    let plan = plan(&topo, &four_ports(), &layout(&topo, ""), &req).unwrap();
    assert_invariants(&plan, &topo, &req);
    assert_eq!(plan.control.lcore, 0);
    assert_eq!(plan.control.cores, vec![0]);
    // Node 0 loses core 0 to control: 15 workers; node 1 has 16.
    assert_eq!(plan.workers.len(), 31);
    assert_eq!(plan.workers[0].lcore, 2);
    assert_eq!(plan.workers[0].core, 1);
    assert_eq!(plan.workers[15].lcore, 32);
    assert_eq!(plan.workers[15].numa_node, 1);
    assert_eq!((0..4).map(|p| plan.queues_per_port(p)).collect::<Vec<_>>(), vec![15, 15, 16, 16]);
    assert_eq!(plan.assignments_for_worker(2), &[(0, 0), (1, 0)]);
    assert_eq!(plan.assignments_for_worker(32), &[(2, 0), (3, 0)]);
    assert_eq!(plan.assignments_for_worker(62), &[(2, 15), (3, 15)]);
    assert_eq!(plan.mempools.len(), 2);
    assert!(plan.warnings.contains(&PlanWarning::DefaultLcores));
    // The siblings EAL would start are idle, and better arguments are offered.
    assert!(plan.idle_lcores.iter().any(|idle| idle.lcore == 3 && idle.reason == IdleReason::SmtSibling { core: 1 }));
    assert_eq!(plan.idle_lcores[0].reason, IdleReason::SharesControlCore { control_lcore: 0 });
    let suggestion = plan.suggested_eal.unwrap();
    assert_eq!(suggestion.workers, 31);
    assert_eq!(suggestion.args[0], "-l");
    assert!(suggestion.args[1].starts_with("0,2,4,"), "{suggestion}");
}

#[test]
fn four_workers_on_two_port_nodes_split_two_and_two() {
    let topo = dual_socket_smt();
    let req = request(Some(4), false, false);
    let plan = plan(&topo, &four_ports(), &layout(&topo, ""), &req).unwrap();
    assert_invariants(&plan, &topo, &req);
    type Row = (LcoreId, CpuId, u32, NodeId, Vec<(PortId, QueueId)>);
    let mapping: Vec<Row> =
        plan.workers.iter().map(|w| (w.lcore, w.cpu, w.core, w.numa_node, w.queues.clone())).collect();
    assert_eq!(
        mapping,
        vec![
            (2, 2, 1, 0, vec![(0, 0), (1, 0)]),
            (4, 4, 2, 0, vec![(0, 1), (1, 1)]),
            (32, 32, 16, 1, vec![(2, 0), (3, 0)]),
            (34, 34, 17, 1, vec![(2, 1), (3, 1)]),
        ]
    );
    assert_eq!(
        plan.mempools.iter().map(|pool| (pool.numa_node, pool.workers.clone())).collect::<Vec<_>>(),
        vec![(0, vec![2, 4]), (1, vec![32, 34])]
    );
}

#[test]
fn clean_arguments_need_no_suggestion() {
    let topo = dual_socket_smt();
    let req = PlanRequest::default();
    let plan = plan(&topo, &four_ports(), &layout(&topo, "-l 0,2,4,32,34"), &req).unwrap();
    assert_invariants(&plan, &topo, &req);
    assert_eq!(plan.worker_lcores(), vec![2, 4, 32, 34]);
    assert!(plan.idle_lcores.is_empty());
    assert!(plan.warnings.is_empty(), "{:?}", plan.warnings);
    assert_eq!(plan.suggested_eal, None);
}

#[test]
fn helper_threads_avoid_every_hardware_thread_of_worker_cores() {
    let topo = dual_socket_smt();
    let req = PlanRequest::default();
    let plan = plan(&topo, &four_ports(), &layout(&topo, "-l 0,2,4,32,34"), &req).unwrap();
    for forbidden in [2, 3, 4, 5, 32, 33, 34, 35] {
        assert!(!plan.helper_cpus.contains(&forbidden), "cpu {forbidden}");
    }
    assert!(plan.helper_cpus.contains(&0) && plan.helper_cpus.contains(&1));
}

#[test]
fn two_core_machine_puts_control_and_one_worker_on_separate_cores() {
    let topo = two_core_single_node();
    let ports = vec![PortPlacement::on_node("net0", 0)];
    let req = PlanRequest::default();
    let plan = plan(&topo, &ports, &layout(&topo, "-l 0-1"), &req).unwrap();
    assert_invariants(&plan, &topo, &req);
    assert_eq!(plan.control.cpus, vec![0]);
    assert_eq!(plan.worker_lcores(), vec![1]);
    assert_eq!(plan.queues_per_port(0), 1);
    assert_eq!(plan.assignments_for_worker(1), &[(0, 0)]);
    // Every CPU hosts a worker or the control lcore: helpers share the control CPU.
    assert_eq!(plan.helper_cpus, vec![0]);
    assert!(plan.warnings.is_empty());
}

#[test]
fn two_core_machine_refuses_a_second_worker() {
    let topo = two_core_single_node();
    let ports = vec![PortPlacement::on_node("net0", 0)];
    let error = plan(&topo, &ports, &layout(&topo, "-l 0-1"), &request(Some(2), true, true)).unwrap_err();
    assert!(matches!(error.reason, RefusalReason::NotEnoughWorkers { requested: 2, distinct_cores: 1, .. }));
}

#[test]
fn smt_siblings_are_refused_then_allowed_with_a_loud_warning() {
    let topo = dual_socket_smt();
    let ports = vec![PortPlacement::on_node("p0", 0)];
    // lcores 2,3 are siblings on core 1, lcores 4,5 on core 2.
    let given = layout(&topo, "-l 0,2-5");
    let refused = plan(&topo, &ports, &given, &request(Some(4), false, false)).unwrap_err();
    assert!(matches!(
        refused.reason,
        RefusalReason::NotEnoughWorkers { requested: 4, distinct_cores: 2, smt_siblings: 2, .. }
    ));
    let message = refused.to_string();
    assert!(message.contains("--allow-smt"), "{message}");
    assert!(message.contains("suggested EAL arguments: -l 0,2,4,6,8"), "{message}");

    let req = request(Some(4), true, false);
    let allowed = plan(&topo, &ports, &given, &req).unwrap();
    assert_invariants(&allowed, &topo, &req);
    assert_eq!(allowed.worker_lcores(), vec![2, 3, 4, 5]);
    assert_eq!(allowed.workers[0].shares_core_with, vec![3]);
    assert!(allowed.warnings.contains(&PlanWarning::SmtSharedCore { core: 1, lcores: vec![2, 3] }));
    assert!(allowed.suggested_eal.is_some());
}

#[test]
fn without_a_count_siblings_stay_idle_unless_allowed() {
    let topo = dual_socket_smt();
    let ports = vec![PortPlacement::on_node("p0", 0)];
    let given = layout(&topo, "-l 0,2-5");
    let plan_default = plan(&topo, &ports, &given, &PlanRequest::default()).unwrap();
    assert_eq!(plan_default.worker_lcores(), vec![2, 4]);
    assert_eq!(
        plan_default.idle_lcores.iter().map(|idle| (idle.lcore, idle.reason.clone())).collect::<Vec<_>>(),
        vec![(3, IdleReason::SmtSibling { core: 1 }), (5, IdleReason::SmtSibling { core: 2 })]
    );
    let with_smt = plan(&topo, &ports, &given, &request(None, true, false)).unwrap();
    assert_eq!(with_smt.worker_lcores(), vec![2, 3, 4, 5]);
}

#[test]
fn a_port_on_a_node_without_workers_is_refused_then_named() {
    let topo = dual_socket_smt();
    let given = layout(&topo, "-l 0-4");
    let refused = plan(&topo, &four_ports(), &given, &PlanRequest::default()).unwrap_err();
    assert_eq!(
        refused.reason,
        RefusalReason::PortWithoutLocalWorker {
            port: 2,
            name: "0000:b1:00.0".into(),
            numa_node: 1,
            worker_nodes: vec![0],
        }
    );
    // Keep the two workers the operator gave, one near each NIC.
    assert_eq!(refused.suggested_eal.unwrap().args, vec!["-l", "0,2,32", "--main-lcore", "0"]);

    let req = request(None, false, true);
    let allowed = plan(&topo, &four_ports(), &given, &req).unwrap();
    assert_invariants(&allowed, &topo, &req);
    assert_eq!(allowed.worker_lcores(), vec![2, 4]);
    assert_eq!(allowed.queues_per_port(2), 2);
    let crossing: Vec<(LcoreId, PortId, QueueId)> = allowed
        .warnings
        .iter()
        .filter_map(|warning| match warning {
            PlanWarning::CrossNode { lcore, port, queue, .. } => Some((*lcore, *port, *queue)),
            _ => None,
        })
        .collect();
    assert_eq!(crossing, vec![(2, 2, 0), (4, 2, 1), (2, 3, 0), (4, 3, 1)]);
    assert!(allowed.suggested_eal.is_some());
}

#[test]
fn lcores_on_a_node_without_ports_stay_idle_unless_cross_node_is_allowed() {
    let topo = dual_socket_smt();
    let ports = vec![PortPlacement::on_node("p0", 0)];
    let given = layout(&topo, "-l 0,2,32");
    let strict = plan(&topo, &ports, &given, &PlanRequest::default()).unwrap();
    assert_eq!(strict.worker_lcores(), vec![2]);
    assert_eq!(strict.idle_lcores[0].reason, IdleReason::AwayFromPorts { numa_node: 1 });
    let refused = plan(&topo, &ports, &given, &request(Some(2), false, false)).unwrap_err();
    assert!(matches!(refused.reason, RefusalReason::NotEnoughWorkers { away_from_ports: 1, .. }));

    let req = request(Some(2), false, true);
    let crossing = plan(&topo, &ports, &given, &req).unwrap();
    assert_invariants(&crossing, &topo, &req);
    assert_eq!(crossing.assignments_for_worker(32), &[(0, 1)]);
    assert!(crossing.assignments.iter().any(|a| a.lcore == 32 && a.cross_node));
}

#[test]
fn ports_of_unknown_node_are_served_from_anywhere() {
    let topo = dual_socket_smt();
    let ports = vec![PortPlacement::anywhere("net_null0"), PortPlacement::on_node("0000:99:00.0", 7)];
    let req = PlanRequest::default();
    let plan = plan(&topo, &ports, &layout(&topo, "-l 0,2,32"), &req).unwrap();
    assert_invariants(&plan, &topo, &req);
    assert_eq!(plan.worker_lcores(), vec![2, 32]);
    assert_eq!(plan.queues_per_port(0), 2);
    assert_eq!(plan.queues_per_port(1), 2);
    assert_eq!(plan.ports[1].reported_missing_node, Some(7));
    assert!(plan.assignments.iter().all(|a| !a.cross_node));
    assert!(plan.warnings.contains(&PlanWarning::PortNodeUnknown { port: 0, name: "net_null0".into() }));
}

#[test]
fn control_core_sibling_and_floating_lcores_never_become_workers() {
    let topo = dual_socket_smt();
    let ports = vec![PortPlacement::on_node("p0", 0)];
    let given = layout(&topo, "--lcores 0@0,1@1,2@2,3@(4-5),4@2");
    let plan = plan(&topo, &ports, &given, &PlanRequest::default()).unwrap();
    assert_eq!(plan.worker_lcores(), vec![2]);
    let reasons: Vec<(LcoreId, IdleReason)> =
        plan.idle_lcores.iter().map(|idle| (idle.lcore, idle.reason.clone())).collect();
    assert_eq!(
        reasons,
        vec![
            (1, IdleReason::SharesControlCore { control_lcore: 0 }),
            (3, IdleReason::FloatsOverCpus),
            (4, IdleReason::SharesCpu { with_lcore: 2 }),
        ]
    );
}

#[test]
fn lcores_on_cpus_the_machine_lacks_are_refused() {
    let topo = two_core_single_node();
    let error = plan(&topo, &[], &layout(&topo, "-l 0-3"), &PlanRequest::default()).unwrap_err();
    assert_eq!(error.reason, RefusalReason::LcoreOnMissingCpu { lcore: 2, cpu: 2, machine_cpus: vec![0, 1] });
}

#[test]
fn nothing_to_run_a_worker_on_is_refused() {
    let topo = two_core_single_node();
    let error = plan(&topo, &[], &layout(&topo, "-l 0"), &PlanRequest::default()).unwrap_err();
    assert!(matches!(error.reason, RefusalReason::NoWorkerLcore { .. }));
    assert_eq!(
        plan(&topo, &[], &layout(&topo, "-l 0-1"), &request(Some(0), false, false)).unwrap_err().reason,
        RefusalReason::ZeroWorkers
    );
}

#[test]
fn suggestions_beyond_128_cpus_remap_lcores() {
    let topo = Topology::regular(RegularShape {
        packages: 2,
        nodes_per_package: 1,
        l3_per_node: 1,
        cores_per_l3: 64,
        threads_per_core: 2,
        numbering: CpuNumbering::SiblingsAdjacent,
    });
    let ports = vec![PortPlacement::on_node("far", 1)];
    let suggestion =
        plan(&topo, &ports, &layout(&topo, ""), &request(Some(2), false, false)).unwrap().suggested_eal.unwrap();
    assert_eq!(suggestion.args, vec!["--lcores", "0@0,1@128,2@130", "--main-lcore", "0"]);
    // And the suggestion parses back into the same placement.
    let args: Vec<String> = suggestion.args.clone();
    let remapped = parse_eal_args(&args).unwrap().lcore_layout(&topo).unwrap();
    let again = plan(&topo, &ports, &remapped, &request(Some(2), false, false)).unwrap();
    assert_eq!(again.workers.iter().map(|w| (w.lcore, w.cpu)).collect::<Vec<_>>(), vec![(1, 128), (2, 130)]);
    assert_eq!(again.suggested_eal, None);
}

#[test]
fn linux_style_numbering_picks_first_threads_and_skips_second_half() {
    let topo = Topology::regular(RegularShape {
        packages: 2,
        nodes_per_package: 1,
        l3_per_node: 1,
        cores_per_l3: 4,
        threads_per_core: 2,
        numbering: CpuNumbering::SiblingsInSecondHalf,
    });
    let ports = vec![PortPlacement::on_node("a", 0), PortPlacement::on_node("b", 1)];
    let req = PlanRequest::default();
    let plan = plan(&topo, &ports, &layout(&topo, ""), &req).unwrap();
    assert_invariants(&plan, &topo, &req);
    assert_eq!(plan.worker_lcores(), vec![1, 2, 3, 4, 5, 6, 7]);
    assert_eq!(plan.suggested_eal.unwrap().args, vec!["-l", "0-7", "--main-lcore", "0"]);
}
