"""``riskstream cluster start|stop|status|add-taskmanager``: the local standalone Flink session
cluster, and standby TaskManagers that take over a lost one's tasks (docs/operations.md)."""

from __future__ import annotations

import argparse
from typing import Any

from core.config import Settings, with_overrides
from riskstream.infra.cluster import LocalCluster


def register(subparsers: Any) -> None:
    """Add ``cluster start|stop|status``."""
    parser = subparsers.add_parser(
        "cluster", help="run a local standalone Flink session cluster (JobManager + TaskManager)"
    )
    sub = parser.add_subparsers(dest="cluster_command", required=True, metavar="ACTION")
    start = sub.add_parser("start", help="start the cluster with REST on 127.0.0.1")
    start.add_argument("--rest-port", type=int, help="REST/web UI port (default: flink.rest_port)")
    start.add_argument("--rpc-port", type=int, help="JobManager RPC port (default: flink.rpc_port)")
    start.add_argument("--slots", type=int, help="task slots (default: flink.taskmanager_slots)")
    start.set_defaults(handler=_start)
    stop = sub.add_parser("stop", help="stop the cluster this project started (and nothing else)")
    stop.set_defaults(handler=_stop)
    status = sub.add_parser("status", help="show each process's role, slots and running jobs")
    status.set_defaults(handler=_status)
    add = sub.add_parser(
        "add-taskmanager",
        help="start one more TaskManager (a standby with free slots: a lost TaskManager's tasks "
        "restart on it at once)",
    )
    add.set_defaults(handler=_add_taskmanager)


def _start(args: argparse.Namespace, settings: Settings) -> int:
    flags = {
        "rest_port": args.rest_port,
        "rpc_port": args.rpc_port,
        "taskmanager_slots": args.slots,
    }
    chosen = {k: v for k, v in flags.items() if v is not None}
    cluster = LocalCluster(with_overrides(settings, flink=chosen) if chosen else settings)
    pids = cluster.running_pids()
    if pids:
        print(f"Flink is already running (pids {sorted(pids.values())}) at {cluster.rest_url}")
        return 0
    pids = cluster.start()
    print(f"Flink cluster started at {cluster.rest_url} (pids {sorted(pids.values())})")
    print(f"config: {cluster.conf_dir}  logs: {cluster.log_dir}")
    return 0


def _stop(args: argparse.Namespace, settings: Settings) -> int:
    if LocalCluster(settings).stop():
        print("Flink cluster stopped")
    else:
        print("Flink cluster was not running (none started by this project)")
    return 0


def _status(args: argparse.Namespace, settings: Settings) -> int:
    state = LocalCluster(settings).status()
    if not state.running:
        print(f"Flink: not running (would serve {state.rest_url})")
        return 3
    pids = sorted(p.pid for p in state.processes) or sorted(state.pids.values())
    print(f"Flink: running at {state.rest_url} (pids {pids})")
    print(
        f"taskmanagers: {state.taskmanagers}  slots: {state.slots_available}/{state.slots_total} "
        f"free  running jobs: {state.jobs_running}"
    )
    for proc in state.processes:
        slots = f"  slots {proc.slots_free}/{proc.slots_total} free" if proc.slots_total else ""
        ident = f"  {proc.resource_id}" if proc.resource_id else ""
        print(f"  pid {proc.pid:>7}  {proc.role}{ident}{slots}")
    return 0


def _add_taskmanager(args: argparse.Namespace, settings: Settings) -> int:
    cluster = LocalCluster(settings)
    pid = cluster.start_taskmanager()
    print(f"TaskManager started (pid {pid}) and registered at {cluster.rest_url}")
    return 0
