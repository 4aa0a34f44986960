"""`kbflow server [status|start|stop]`: the store's Prefect server that commands start in the background."""

from __future__ import annotations

import argparse

from kbflow.cli.common import EXIT_NOT_RUNNING, EXIT_OK, print_json, setting_option


def run(args: argparse.Namespace) -> int:
    from kbflow import prefect_server
    from tasks.settings import load_settings

    cfg = load_settings(store_dir=args.store)
    store = cfg.store_dir.resolve()
    if args.action == "stop":
        from kbflow import warm

        commands = warm.running_commands(store)  # the warm process's children: they stop with the server
        for child in commands:
            warm.end_command(child)
        pid = prefect_server.stop_server(store)
        state = {
            "stopped": pid is not None,
            "pid": pid,
            "ended_commands": [{"pid": child, "argv": argv} for child, argv in commands.items()],
        }
        line = (
            f"Stopped the Prefect server of {store} (pid {pid})" if pid else f"No background Prefect server for {store}"
        )
        for child, argv in commands.items():
            line += f"\nEnded the running command `kbflow {' '.join(argv)}` (pid {child})"
    else:
        started = False
        if args.action == "start":
            _, started = prefect_server.ensure_server(store, cfg.prefect_idle_minutes)
        api = prefect_server.recorded_api(store)
        up = bool(api) and prefect_server.answering(api)
        pid = prefect_server.supervisor_pid(store)
        state = {"running": up, "api_url": api if up else None, "pid": pid, "started": started}
        if not up:
            line = f"No Prefect server for {store}: the next `kbflow ingest` or `kbflow ask` starts one"
        else:
            owner = (
                f"in the background (pid {pid}); stops after {cfg.prefect_idle_minutes:g} idle minutes or with "
                "`kbflow server stop`"
                if pid
                else "started by `make server`; `make stop` stops it"
            )
            line = f"Prefect server for {store}: UI at {api.removesuffix('/api')}, {owner}"
    if args.json:
        print_json(state)
    else:
        print(line)
    if args.action == "status" and not state["running"]:
        return EXIT_NOT_RUNNING
    return EXIT_OK


def add_parser(sub) -> None:
    sp = sub.add_parser(
        "server",
        help="the store's Prefect server (UI and API) that commands start and reuse",
        description="The store's Prefect server (UI and API) that commands start and reuse. Exit status of "
        "`status`, as systemctl's: 0 when the server answers, 3 when it is not running.",
    )
    sp.add_argument(
        "action",
        nargs="?",
        choices=["status", "start", "stop"],
        default="status",
        help="status (the default; exits 3 when no server is running), start it now, or stop it now",
    )
    setting_option(sp, "--store", "store_dir", dest="store")
    sp.add_argument("--json", action="store_true", help="print one JSON object")
    sp.set_defaults(func=run)
