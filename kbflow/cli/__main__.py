"""`python -m kbflow.cli`: the kbflow command; `--warm-serve PATH IDLE_S STORE` is the warm process that forks
commands (kbflow/warm.py), started by a command that used the store's background server."""

import sys
from pathlib import Path

from kbflow.cli.main import main

if __name__ == "__main__":
    if sys.argv[1:2] == ["--warm-serve"]:
        from kbflow import warm

        sys.exit(warm.serve(Path(sys.argv[2]), float(sys.argv[3]), Path(sys.argv[4]), run=main))
    sys.exit(main())
