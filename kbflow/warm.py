"""Warm starts: a process with kbflow's modules already loaded forks one child per command.

Most of what a small refresh waits for is Python loading Prefect, chromadb, unstructured and spaCy (about 5 s of
an edited file's 7 s). So, as Rails' Spring or Android's zygote do, after a command that used the store's
background Prefect server, a warm process starts detached, loads those modules once (no model, no thread), and
waits on a Unix socket. The next command (`kbflow ingest`, `ask`, `demo`, `dataset`) connects, passes its
arguments, environment, working folder and its stdin, stdout and stderr, and a forked child runs the command
exactly as the shell would have; signals are forwarded and the exit code comes back.

A warm process serves only commands whose environment, working folder and kbflow code and packages are the ones
it loaded with (they are hashed into its socket's name), because Prefect reads its settings when it is imported.
It exits after the server's idle time, when its store's background server stops (`kbflow server stop`), or when
anything goes wrong before a child runs. `KBFLOW_WARM=off` turns it off (tasks/settings.py).
"""

from __future__ import annotations

import atexit
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

# Variables that differ between two shells without changing what a command does.
_VOLATILE = {"_", "OLDPWD", "PWD", "SHLVL", "COLUMNS", "LINES", "KBFLOW_WARM_CHILD"}
_PACKAGES = ("flows", "tasks", "connectors", "kbflow")
READY_TIMEOUT_S = 20.0


def _code_stamp() -> list:
    """What a warm process's loaded code depends on: kbflow's own sources and the installed packages."""
    root = Path(__file__).resolve().parents[1]
    stamps = []
    for package in _PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            st = path.stat()
            stamps.append((str(path.relative_to(root)), st.st_mtime_ns, st.st_size))
    site = Path(json.__file__).parent  # the stdlib, then the venv's packages (pip changes its folder's time)
    stamps.append((str(site), site.stat().st_mtime_ns))
    for entry in sys.path:
        if entry.endswith("site-packages") and os.path.isdir(entry):
            stamps.append((entry, os.stat(entry).st_mtime_ns))
    return stamps


def key(env: dict, cwd: str) -> str:
    wanted = {k: v for k, v in env.items() if k not in _VOLATILE}
    blob = json.dumps([sorted(wanted.items()), cwd, sys.executable, _code_stamp()])
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def socket_path(warm_key: str) -> Path:
    """A short path (Unix socket paths are limited to 108 bytes) in a folder only this user can enter."""
    folder = Path(tempfile.gettempdir()) / f"kbflow-warm-{os.getuid()}"
    folder.mkdir(mode=0o700, exist_ok=True)
    if folder.stat().st_uid != os.getuid() or folder.stat().st_mode & 0o077:
        raise OSError(f"{folder} is not private to this user")
    return folder / f"{warm_key}.sock"


# ---------------------------------------------------------------------------------------------------------------
# The command's side


def run_warm(argv: list[str], env: dict, cwd: str) -> int | None:
    """Run the command in a warm process of this environment: its exit code, or None when there is none ready (the
    command then runs here, as usual). Nothing has run when this returns None."""
    try:
        path = socket_path(key(env, cwd))
    except OSError:
        return None
    if not path.exists():
        return None
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        conn.settimeout(READY_TIMEOUT_S)
        conn.connect(str(path))
        if conn.recv(64) != b"ready":  # the child's hello: before it, nothing runs
            conn.close()
            return None
        request = json.dumps({"argv": argv, "env": env, "cwd": cwd}).encode()
        socket.send_fds(conn, [request], [0, 1, 2])
    except OSError:
        conn.close()
        return None
    # The command is the child's now: whatever happens, it must not run a second time here.
    try:
        hello = conn.recv(64)
        if not hello.startswith(b"pid "):
            raise ValueError(hello.decode(errors="replace") or "no answer")
        child = int(hello[4:])
    except (OSError, ValueError) as exc:
        conn.close()
        print(
            f"kbflow: error: the warm process did not start the command ({exc}); run it again "
            "(KBFLOW_WARM=off runs it in this process)",
            file=sys.stderr,
        )
        return 1
    conn.settimeout(None)

    def forward(signum, _frame):
        try:
            os.kill(child, signum)
        except OSError:
            pass

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, forward)
    while True:
        try:
            answer = conn.recv(64)
            break
        except InterruptedError:
            continue
    conn.close()
    if not answer.startswith(b"exit "):
        print(f"kbflow: error: the warm process (pid {child}) ended without an exit code", file=sys.stderr)
        return 1
    return int(answer[5:])


def launch(env: dict, cwd: str, store: Path, idle_s: float) -> None:
    """Start a warm process for this environment in the background, unless one is there; it serves while the
    store's Prefect server does (its log: STORE/prefect/warm.log)."""
    from kbflow.prefect_server import state_dir

    try:
        path = socket_path(key(env, cwd))
    except OSError:
        return
    if path.exists() and _answers(path):
        return
    with (state_dir(store) / "warm.log").open("ab") as out:
        subprocess.Popen(
            [sys.executable, "-P", "-m", "kbflow.cli", "--warm-serve", str(path), str(idle_s), str(store)],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env={**env, "KBFLOW_WARM_CHILD": "1"},
            start_new_session=True,
        )


def _answers(path: Path) -> bool:
    """Whether a warm process listens at path (a socket file whose process was killed refuses)."""
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        probe.settimeout(1.0)
        probe.connect(str(path))
        return True
    except OSError:
        return False
    finally:
        probe.close()


# ---------------------------------------------------------------------------------------------------------------
# The warm process


def preload() -> None:
    """Load what the commands load first: no model and no thread (a fork copies one thread only)."""
    import chromadb  # noqa: F401

    import flows.answer  # noqa: F401
    import flows.ingest  # noqa: F401
    from tasks.ingest.partition import partition_document
    from tasks.text import tokenize

    partition_document(b"Warm up. Two sentences.", "warm-up.txt")  # unstructured, spaCy's model
    tokenize("预热")  # jieba's dictionary


def serve(path: Path, idle_s: float, store: Path, run: Callable[[list[str]], int]) -> int:
    """Serve commands on path until idle or stopped; each runs in a forked child as `run(argv)` (the CLI's main)."""
    from kbflow.prefect_server import recorded_api

    api = os.environ.get("PREFECT_API_URL", "")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        if path.exists() and not _answers(path):
            path.unlink()  # left by a warm process that was killed
        listener.bind(str(path))
        bound = os.stat(path).st_ino
    except OSError:  # another warm process has it
        return 0
    stop: list[str] = []
    try:
        listener.listen(8)
        started = time.monotonic()
        preload()
        if threading.active_count() != 1:
            names = [t.name for t in threading.enumerate()]
            print(f"kbflow warm: not serving: threads {names} would not survive a fork", flush=True)
            return 1
        print(f"kbflow warm: ready in {time.monotonic() - started:.1f} s at {path}", flush=True)
        signal.signal(signal.SIGTERM, lambda *_: stop.append("SIGTERM"))
        listener.settimeout(1.0)
        last = time.monotonic()
        while not stop:
            _reap(store)
            if time.monotonic() - last > idle_s:
                stop.append(f"idle for {idle_s:g} s")
            elif recorded_api(store) != api:
                stop.append("its Prefect server stopped")
            try:
                conn, _ = listener.accept()
            except OSError:  # the 1 s tick (TimeoutError), or an interrupted accept
                continue
            last = time.monotonic()
            sys.stdout.flush()
            sys.stderr.flush()
            pid = os.fork()
            if pid == 0:
                listener.close()
                _child(conn, run, store)  # never returns
            conn.close()
            print(f"kbflow warm: child {pid}", flush=True)
        return 0
    finally:
        for pid in running_commands(store):  # the server stopped: so do the commands it served
            end_command(pid)
        _reap(store)
        try:
            if os.stat(path).st_ino == bound:  # not a newer warm process's socket
                path.unlink()
        except OSError:
            pass
        listener.close()
        print(f"kbflow warm: exiting: {stop[0] if stop else 'an error'}", flush=True)


def _reap(store: Path) -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        (running_dir(store) / str(pid)).unlink(missing_ok=True)


def running_dir(store: Path) -> Path:
    """One file per command a warm child runs (its pid; the command's argv), removed when it ends."""
    from kbflow.prefect_server import state_dir

    folder = state_dir(store) / "running"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def running_commands(store: Path) -> dict[int, list[str]]:
    """The commands warm children of this store run now: pid -> argv (records of dead pids are dropped)."""
    found = {}
    for record in running_dir(store).iterdir():
        try:
            pid = int(record.name)
            os.kill(pid, 0)
            found[pid] = json.loads(record.read_text(encoding="utf-8"))["argv"]
        except (ValueError, OSError, KeyError):
            record.unlink(missing_ok=True)
    return found


def end_command(pid: int, grace_s: float = 1.0) -> None:
    """End a warm child's whole process group: SIGTERM (Prefect marks the run), then SIGKILL after grace_s."""
    for signum, wait in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 0.0)):
        try:
            os.killpg(pid, signum)
        except OSError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except OSError:
                return
            time.sleep(0.05)


def _end_with_client(conn: socket.socket) -> None:
    """In a warm child: when the client's connection closes (it ended, or was killed with SIGKILL), end this
    command's process group, so no killed command goes on answering and writing the cache."""
    while True:
        try:
            if not conn.recv(64):
                break
        except InterruptedError:
            continue
        except OSError:
            break
    end_command(os.getpid())


def _child(conn: socket.socket, run: Callable[[list[str]], int], store: Path) -> None:
    """Run one command for the connected client, then exit: the exit code goes back over the connection."""
    code = 1
    try:
        os.setsid()
        for signum in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        conn.settimeout(READY_TIMEOUT_S)
        conn.sendall(b"ready")
        msg, fds, _flags, _addr = socket.recv_fds(conn, 1 << 20, 3)
        if len(fds) != 3 or not msg:
            os._exit(1)
        conn.settimeout(None)
        request = json.loads(msg)
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
            os.close(fd)
        for stream in (sys.stdout, sys.stderr):
            stream.reconfigure(line_buffering=stream.isatty())
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        os.environ["KBFLOW_WARM_CHILD"] = "1"  # this command runs here: it hands over to no other
        sys.argv = ["kbflow", *request["argv"]]
        conn.sendall(f"pid {os.getpid()}".encode())
        record = running_dir(store) / str(os.getpid())
        record.write_text(json.dumps({"argv": request["argv"], "cwd": request["cwd"]}), encoding="utf-8")
        threading.Thread(target=_end_with_client, args=(conn,), name="kbflow-client-watch", daemon=True).start()
        try:
            code = run(request["argv"])
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        except KeyboardInterrupt:
            code = 130
        atexit._run_exitfuncs()
    except BaseException:  # noqa: BLE001 - the client must hear an exit code whatever happened
        import traceback

        traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except BaseException:  # noqa: BLE001
            pass
        try:
            conn.sendall(f"exit {int(code or 0)}".encode())
        except BaseException:  # noqa: BLE001
            pass
        os._exit(int(code or 0))
