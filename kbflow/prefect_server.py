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
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
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


def ensure_server(store: Path, idle_minutes: float, before_start=None) -> tuple[str, bool]:
    """The API URL of the store's Prefect server, started in the background when none answers; and whether this
    call started it. before_start() runs first when a server is to be started (nothing holds its database open
    then). Raises RuntimeError (with the log's tail) when it cannot start."""
    state = state_dir(store)
    (state / "home").mkdir(parents=True, exist_ok=True)
    with _exclusive(state / "server.lock"):
        api = recorded_api(store)
        if api and answering(api):
            return api, False
        if before_start is not None:
            before_start()
        port = _free_port()
        log = state / "background.log"
        with log.open("ab") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "kbflow.prefect_server", str(store), str(port), str(idle_minutes)],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a Ctrl-C in the terminal stops the command, not the server
                env={**os.environ, "PREFECT_HOME": str(state / "home")},
            )
        (state / "background.pid").write_text(str(proc.pid), encoding="utf-8")
        api = f"http://127.0.0.1:{port}/api"
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while not answering(api, timeout=1.0):
            if proc.poll() is not None or time.monotonic() > deadline:
                if proc.poll() is None:
                    proc.terminate()
                tail = log.read_text(encoding="utf-8", errors="replace").splitlines()[-5:]
                raise RuntimeError(f"the Prefect server did not start (log: {log}): " + " | ".join(tail))
            time.sleep(0.2)
        (state / "api_url").write_text(api, encoding="utf-8")
        return api, True


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
    for name in ("api_url", "background.pid"):
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
    """Run `prefect server start` on 127.0.0.1:PORT and stop it when idle or on SIGTERM."""
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        stdin=subprocess.DEVNULL,
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


if __name__ == "__main__":
    sys.exit(supervise(Path(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])))
