"""kbflow's application shell: the command line, the folder watcher, the reports server and the progress bar."""

from importlib.metadata import PackageNotFoundError, version

try:
    # The one place the version is written is pyproject.toml; the installed distribution's metadata carries it.
    __version__ = version("kbflow")
except PackageNotFoundError:  # a source tree on PYTHONPATH that was never installed
    __version__ = "0+unknown"
