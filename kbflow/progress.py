"""What a person at the terminal sees while a flow runs: a progress bar (on a terminal) and notices (estimates)."""

from __future__ import annotations

import sys

from tasks import progress


class TerminalBar:
    """A tqdm bar on stderr, one at a time."""

    def __init__(self, bar: bool) -> None:
        self.bar, self._bar = bar, None

    def start(self, total: int, label: str, unit: str) -> None:
        self.finish()
        if not self.bar:
            return
        from tqdm import tqdm

        self._bar = tqdm(total=total, desc=label, unit=unit, file=sys.stderr, dynamic_ncols=True)

    def advance(self, n: int, note: str) -> None:
        if self._bar is not None:
            if note:
                self._bar.set_postfix_str(note, refresh=False)
            self._bar.update(n)

    def notice(self, text: str) -> None:
        print(f"kbflow: {text}", file=sys.stderr, flush=True)

    def finish(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def enable_terminal_progress(bar: bool = True) -> None:
    """Notices on stderr from now on, and the bar too (if asked and stderr is a terminal). The CLI calls this;
    flows run by workers never do."""
    progress.listen(TerminalBar(bar=bar and sys.stderr.isatty()))
