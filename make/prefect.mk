# Operating kbflow with Prefect: a local server, the deployments in prefect.yaml, a worker.
# Included by the Makefile (which defines VENV, PY, KBFLOW and `install`); docs/operating.md walks through it.
#
#   make server   start the Prefect server (UI + API) on 127.0.0.1:$(PREFECT_PORT) in the background
#   make deploy   create the work pool if needed and register the deployments of prefect.yaml
#   make worker   start a process worker for the pool in the background; it runs the flow runs
#   make stop     stop the worker and the server
#
# Everything Prefect writes stays under .kbflow/prefect: its home (settings, SQLite database),
# pid files and logs. ~/.prefect is never touched. Telemetry is off (the Makefile exports
# PREFECT_SERVER_ANALYTICS_ENABLED=false and DO_NOT_TRACK=1; they are repeated below).

PREFECT := $(VENV)/bin/prefect
PREFECT_PORT ?= 4200
PREFECT_STATE ?= .kbflow/prefect
PREFECT_POOL := kbflow-pool

# Absolute, and quoted wherever the shell sees it: the project folder may contain spaces.
PREFECT_RUN := $(if $(filter /%,$(PREFECT_STATE)),$(PREFECT_STATE),$(CURDIR)/$(PREFECT_STATE))
PREFECT_UI := http://127.0.0.1:$(PREFECT_PORT)
PREFECT_API := $(PREFECT_UI)/api
# The environment of every Prefect command below: its own home, our server, no telemetry.
PREFECT_ENV := PREFECT_HOME="$(PREFECT_RUN)/home" PREFECT_API_URL=$(PREFECT_API) \
	PREFECT_SERVER_ANALYTICS_ENABLED=false DO_NOT_TRACK=1

# Exit 0 when the API answers /health. Arguments: URL, then optionally a pid file and a log; with
# them it waits (up to 120 s) while that process lives, and says where the log is when it gives up.
define PREFECT_WAIT_HEALTH
import os, sys, time, urllib.request
url, pidfile, log = (sys.argv[1:] + ["", ""])[:3]
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
deadline = time.time() + (120 if pidfile else 0)
while True:
    try:
        if opener.open(url, timeout=2).status == 200:
            sys.exit(0)
    except OSError:
        pass
    if pidfile:
        try:
            os.kill(int(open(pidfile).read()), 0)
        except (OSError, ValueError):
            sys.exit(f"the Prefect server exited; see {log}")
    if time.time() > deadline:
        sys.exit(f"no answer from {url} after 120 s; see {log}" if pidfile else 1)
    time.sleep(0.5)
endef
export PREFECT_WAIT_HEALTH

# Run a command detached: in its own session, with SIGINT back at its default. A background job
# of `make` ignores SIGINT, and Prefect's worker handles SIGTERM by sending itself SIGINT, so it
# would never stop. Usage: $(PY) -c "$$PREFECT_DETACH" COMMAND ARGS...
define PREFECT_DETACH
import os, signal, sys
os.setsid()
signal.signal(signal.SIGINT, signal.SIG_DFL)
os.execv(sys.argv[1], sys.argv[1:])
endef
export PREFECT_DETACH

# Shell test: the pid file $(1) names a live Prefect process (a stale file or a reused pid does not count).
prefect_alive = [ -f $(1) ] && ps -p "$$(cat $(1))" -o args= 2>/dev/null | grep -q prefect

# Shell step: fail with a hint unless our server answers.
prefect_need_server = $(PY) -c "$$PREFECT_WAIT_HEALTH" $(PREFECT_API)/health \
	|| { echo "No Prefect server answers on $(PREFECT_UI): run 'make server' first (or set PREFECT_PORT)." >&2; exit 1; }

# Shell step: create the process work pool unless it exists.
prefect_ensure_pool = $(PREFECT_ENV) $(PREFECT) work-pool inspect $(PREFECT_POOL) >/dev/null 2>&1 \
	|| $(PREFECT_ENV) $(PREFECT) work-pool create $(PREFECT_POOL) --type process

# Start the server in the background and wait until its API answers.
server: install
	@mkdir -p "$(PREFECT_RUN)/home"
	@if $(call prefect_alive,"$(PREFECT_RUN)/server.pid"); then \
		echo "Prefect server already running (pid $$(cat "$(PREFECT_RUN)/server.pid")): $(PREFECT_UI)"; exit 0; \
	fi; \
	if $(PY) -c "$$PREFECT_WAIT_HEALTH" $(PREFECT_API)/health; then \
		echo "Something else already answers on $(PREFECT_UI); stop it or pick another port: make server PREFECT_PORT=4201" >&2; exit 1; \
	fi; \
	$(PREFECT_ENV) $(PY) -c "$$PREFECT_DETACH" $(PREFECT) server start --host 127.0.0.1 --port $(PREFECT_PORT) \
		> "$(PREFECT_RUN)/server.log" 2>&1 < /dev/null & \
	echo $$! > "$(PREFECT_RUN)/server.pid"; \
	echo "Starting the Prefect server (log: $(PREFECT_RUN)/server.log) ..."; \
	$(PY) -c "$$PREFECT_WAIT_HEALTH" $(PREFECT_API)/health "$(PREFECT_RUN)/server.pid" "$(PREFECT_RUN)/server.log" \
		|| { tail -n 20 "$(PREFECT_RUN)/server.log" >&2; rm -f "$(PREFECT_RUN)/server.pid"; exit 1; }; \
	echo "$(PREFECT_API)" > "$(PREFECT_RUN)/api_url"; \
	echo "Prefect UI: $(PREFECT_UI) (kbflow commands run with --store .kbflow report to it)"; \
	echo "For prefect commands in your shell: export PREFECT_API_URL=$(PREFECT_API)"

# Register the deployments of prefect.yaml (kb-refresh, kb-answer) with the server, pool first.
deploy: install
	@$(prefect_need_server)
	@$(prefect_ensure_pool)
	$(PREFECT_ENV) $(PREFECT) --no-prompt deploy --all

# Start a worker for the pool in the background; it runs each flow run in a subprocess.
worker: install
	@$(prefect_need_server)
	@if $(call prefect_alive,"$(PREFECT_RUN)/worker.pid"); then \
		echo "Prefect worker already running (pid $$(cat "$(PREFECT_RUN)/worker.pid")), log: $(PREFECT_RUN)/worker.log"; exit 0; \
	fi; \
	$(prefect_ensure_pool) || exit 1; \
	$(PREFECT_ENV) $(PY) -c "$$PREFECT_DETACH" $(PREFECT) worker start --pool $(PREFECT_POOL) \
		> "$(PREFECT_RUN)/worker.log" 2>&1 < /dev/null & \
	echo $$! > "$(PREFECT_RUN)/worker.pid"; \
	sleep 3; \
	if ! $(call prefect_alive,"$(PREFECT_RUN)/worker.pid"); then \
		tail -n 20 "$(PREFECT_RUN)/worker.log" >&2; rm -f "$(PREFECT_RUN)/worker.pid"; exit 1; \
	fi; \
	echo "Prefect worker started for pool $(PREFECT_POOL) (pid $$(cat "$(PREFECT_RUN)/worker.pid")); log: $(PREFECT_RUN)/worker.log"

# Stop the worker, then the server (TERM, then KILL after 15 s). No `install` here: stopping must
# never wait for a reinstall.
stop:
	@for name in worker server; do \
		pidfile="$(PREFECT_RUN)/$$name.pid"; \
		if $(call prefect_alive,"$$pidfile"); then \
			pid=$$(cat "$$pidfile"); kill $$pid; \
			for i in $$(seq 1 30); do kill -0 $$pid 2>/dev/null || break; sleep 0.5; done; \
			if kill -0 $$pid 2>/dev/null; then kill -9 $$pid; fi; \
			echo "Stopped the Prefect $$name (pid $$pid)"; \
		else \
			echo "No Prefect $$name running"; \
		fi; \
		rm -f "$$pidfile"; \
	done; rm -f "$(PREFECT_RUN)/api_url"
