"""The store's Prefect server in the background: started by the first command that runs a flow, reused by the next.

Without a Prefect API, every flow run starts a temporary server: 3 to 11 s per command on these machines, and a
second process that competes with the work for 2 cores. So the first command that runs a flow starts the server
that `make server` would (`prefect server start` on 127.0.0.1, on the store's Prefect home), detached, and later
commands report to it: they pay nothing, and the UI is always there.

A small supervisor process owns the server. It stops it after `KBFLOW_PREFECT_IDLE_MINUTES` with no command
running (commands hold a shared lock on STORE/prefect/in-use while they run, and touch it when they start and
end), and at once on `kbflow server stop`. `KBFLOW_PREFECT=temporary` keeps Prefect's temporary server per
command. A server that `make server` started is reused the same way (both write STORE/prefect/api_url).

Files, all under STORE/prefect: home/ (Prefect's settings and database), api_url, background.pid (the
supervisor), background.log, in-use, server.lock (one starter at a time).
"""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import closing, contextmanager
from pathlib import Path

STARTUP_TIMEOUT_S = 120
_held: list = []  # the in-use lock of this process, held until it exits


def state_dir(store: Path) -> Path:
    return Path(store) / "prefect"


def answering(api: str, timeout: float = 2.0) -> bool:
    """Whether a Prefect API answers its health check (no proxy: it is on loopback)."""
    try:
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(f"{api}/health", timeout=timeout) as resp:
            return resp.status == 200
    except (OSError, ValueError):
        return False


def recorded_api(store: Path) -> str:
    try:
        return (state_dir(store) / "api_url").read_text(encoding="utf-8").strip()
    except OSError:
        return ""


def supervisor_pid(store: Path) -> int | None:
    """The pid of the store's background supervisor, if it runs."""
    try:
        pid = int((state_dir(store) / "background.pid").read_text(encoding="utf-8"))
        os.kill(pid, 0)
        return pid
    except (OSError, ValueError):
        return None


@contextmanager
def _exclusive(path: Path):
    with path.open("a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def hold(store: Path) -> None:
    """Mark this process as a command using the server until it exits (the supervisor waits for it)."""
    path = state_dir(store) / "in-use"
    fh = path.open("a+")
    fcntl.flock(fh, fcntl.LOCK_SH)
    os.utime(path)
    _held.append(fh)

    import atexit

    def release() -> None:
        try:
            os.utime(path)
        except OSError:
            pass

    atexit.register(release)


def template_home() -> Path:
    """A Prefect home made at install (`make install`): its database migrated and its blocks registered."""
    return Path(sys.prefix) / "share" / "kbflow" / "prefect-home"


def _prefect_version() -> str:
    from importlib.metadata import version

    return version("prefect")


def _made_by_this_prefect(template: Path) -> bool:
    try:
        return (template / "version").read_text(encoding="utf-8").strip() == _prefect_version()
    except OSError:
        return False


def seed_home(home: Path) -> bool:
    """Copy the install's ready database into a new Prefect home, when it was made by this Prefect version and
    the database is the default SQLite file: the new server then skips 11 s of migrations. Whether it did."""
    template = template_home()
    if (home / "prefect.db").exists() or any(
        os.environ.get(name)
        for name in ("PREFECT_API_DATABASE_CONNECTION_URL", "PREFECT_SERVER_DATABASE_CONNECTION_URL")
    ):
        return False
    if not _made_by_this_prefect(template):
        return False
    try:
        tmp = home / "prefect.db.seeding"
        shutil.copyfile(template / "prefect.db", tmp)
        tmp.replace(home / "prefect.db")
        return True
    except OSError:
        return False


def make_template(dest: Path) -> int:
    """`python -m kbflow.prefect_server template DEST`: run a server once on an empty home and keep its database."""
    if _made_by_this_prefect(dest):
        return 0
    work = dest.with_name(dest.name + ".making")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-P", "-m", "kbflow.prefect_server", "serve", str(port)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        env={**os.environ, "PREFECT_HOME": str(work)},
    )
    try:
        wait_ready(f"http://127.0.0.1:{port}/api", proc.pid, work / "none.log", timeout=STARTUP_TIMEOUT_S * 2)
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    import sqlite3

    with closing(sqlite3.connect(work / "prefect.db")) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    for path in work.iterdir():
        if path.name != "prefect.db":
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    (work / "version").write_text(_prefect_version(), encoding="utf-8")
    shutil.rmtree(dest, ignore_errors=True)
    work.replace(dest)
    return 0


def ensure_server(store: Path, idle_minutes: float, before_start=None, *, wait: bool = True) -> tuple[str, bool]:
    """The API URL of the store's Prefect server, started in the background when none answers; and whether this
    call started it. before_start() runs first when a server is to be started (nothing holds its database open
    then). With wait=False it returns as soon as the server is starting: call wait_ready(api, ...) before the
    first request (the command imports what it needs meanwhile). Raises RuntimeError (with the log's tail) when it
    cannot start."""
    state = state_dir(store)
    (state / "home").mkdir(parents=True, exist_ok=True)
    log = state / "background.log"
    with _exclusive(state / "server.lock"):
        api, pid = recorded_api(store), supervisor_pid(store)
        if api and answering(api):
            return api, False
        if api and pid is not None and (state / "starting").exists():  # another command is starting it
            started = False
        else:
            if before_start is not None:
                before_start()
            seeded = seed_home(state / "home")
            port = _free_port()
            with log.open("ab") as out:
                proc = subprocess.Popen(
                    [
                        sys.executable,
                        "-P",
                        "-m",
                        "kbflow.prefect_server",
                        "supervise",
                        str(store),
                        str(port),
                        str(idle_minutes),
                    ],
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # a Ctrl-C in the terminal stops the command, not the server
                    env={
                        **os.environ,
                        "PREFECT_HOME": str(state / "home"),
                        # The seeded database has this version's blocks: registering them again costs 0.8 s.
                        **({"PREFECT_API_BLOCKS_REGISTER_ON_START": "false"} if seeded else {}),
                    },
                )
            pid, api, started = proc.pid, f"http://127.0.0.1:{port}/api", True
            (state / "background.pid").write_text(str(pid), encoding="utf-8")
            (state / "api_url").write_text(api, encoding="utf-8")
            (state / "starting").touch()
    if wait:
        wait_ready(api, pid, log)
    return api, started


def wait_ready(api: str, pid: int | None, log: Path, timeout: float = STARTUP_TIMEOUT_S) -> None:
    """Wait until the server at api answers; RuntimeError with the log's tail when its process ends first or it
    does not answer within timeout seconds."""
    deadline = time.monotonic() + timeout
    while not answering(api, timeout=1.0):
        alive = _alive(pid)
        if not alive or time.monotonic() > deadline:
            if alive:
                os.kill(pid, signal.SIGTERM)
            try:
                tail = log.read_text(encoding="utf-8", errors="replace").splitlines()[-5:]
            except OSError:
                tail = []
            raise RuntimeError(f"the Prefect server did not start (log: {log}): " + " | ".join(tail))
        time.sleep(0.1)
    (log.parent / "starting").unlink(missing_ok=True)


def _alive(pid: int | None) -> bool:
    if pid is None or pid <= 0:
        return False
    try:
        waited, _ = os.waitpid(pid, os.WNOHANG)  # our own child: reap it, or it stays a zombie that os.kill finds
        if waited == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
        return True
    except OSError:
        return False


def stop_server(store: Path, timeout: float = 30.0) -> int | None:
    """Stop the store's background server now; the supervisor's pid, or None when none ran."""
    pid = supervisor_pid(store)
    if pid is None:
        return None
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except OSError:
            break
        time.sleep(0.1)
    else:
        os.kill(pid, signal.SIGKILL)
    _forget(store)
    return pid


def _forget(store: Path) -> None:
    for name in ("api_url", "background.pid", "starting"):
        (state_dir(store) / name).unlink(missing_ok=True)


def _idle(store: Path, idle_s: float) -> bool:
    """No command holds the in-use lock, and none started or ended within idle_s."""
    path = state_dir(store) / "in-use"
    try:
        if time.time() - path.stat().st_mtime < idle_s:
            return False
        with path.open("a+") as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                return False
            fcntl.flock(fh, fcntl.LOCK_UN)
            return True
    except OSError:
        return True


def supervise(store: Path, port: int, idle_minutes: float) -> int:
    """Run the Prefect server on 127.0.0.1:PORT and stop it when idle or on SIGTERM."""
    server = subprocess.Popen(
        [sys.executable, "-P", "-m", "kbflow.prefect_server", "serve", str(port)], stdin=subprocess.DEVNULL
    )
    stopping: list[str] = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append("kbflow server stop"))
    signal.signal(signal.SIGINT, lambda *_: stopping.append("interrupted"))
    (state_dir(store) / "in-use").touch()
    ticks = 0
    while not stopping and server.poll() is None:
        time.sleep(1.0)
        ticks += 1
        if ticks % 15 == 0 and _idle(store, idle_minutes * 60):
            stopping.append(f"idle for {idle_minutes:g} minutes")
    print(f"kbflow: stopping the Prefect server: {stopping[0] if stopping else 'it exited'}", flush=True)
    if server.poll() is None:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
    if recorded_api(store) == f"http://127.0.0.1:{port}/api":
        _forget(store)
    return 0


def serve(port: int) -> int:
    """What `prefect server start --host 127.0.0.1 --port PORT` runs (API, UI and services, with its settings),
    without loading Prefect's CLI first: 1.8 s less before the server answers."""
    import uvicorn
    from prefect.server.api.server import create_app
    from prefect.settings import (
        PREFECT_SERVER_API_KEEPALIVE_TIMEOUT,
        PREFECT_SERVER_API_WEBSOCKET_PING_INTERVAL,
        PREFECT_SERVER_API_WEBSOCKET_PING_TIMEOUT,
        PREFECT_SERVER_LOGGING_LEVEL,
    )

    uvicorn.run(
        app=create_app(final=True),
        host="127.0.0.1",
        port=port,
        timeout_keep_alive=PREFECT_SERVER_API_KEEPALIVE_TIMEOUT.value(),
        ws_ping_interval=PREFECT_SERVER_API_WEBSOCKET_PING_INTERVAL.value(),
        ws_ping_timeout=PREFECT_SERVER_API_WEBSOCKET_PING_TIMEOUT.value(),
        log_level=PREFECT_SERVER_LOGGING_LEVEL.value().lower(),
    )
    return 0


def _main(argv: list[str]) -> int:
    action, args = argv[0], argv[1:]
    if action == "supervise":
        return supervise(Path(args[0]), int(args[1]), float(args[2]))
    if action == "serve":
        return serve(int(args[0]))
    if action == "template":
        return make_template(Path(args[0]))
    raise SystemExit(f"usage: python -m kbflow.prefect_server supervise|serve|template ...: not {action!r}")


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
