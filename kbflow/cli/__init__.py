"""The `kbflow` command line: one module per command, one exit-code map."""

from kbflow.cli.main import main

__all__ = ["main"]
