"""core.progress: one tqdm wrapper; shown only in a terminal and never with --quiet; the counts and
the summary are the same whether it is shown or not."""

from __future__ import annotations

import io
import threading
import time

import pytest

from core import progress
from core.progress import Progress, Summary, note


class Terminal(io.StringIO):
    """A text stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


def _terminal(monkeypatch: pytest.MonkeyPatch) -> Terminal:
    """Make stdout and stderr terminals (inside the test: pytest re-installs its capture streams
    after fixtures run); returns the stderr stream."""
    err = Terminal()
    monkeypatch.setattr("sys.stdout", Terminal())
    monkeypatch.setattr("sys.stderr", err)
    return err


def test_off_when_not_a_terminal_but_still_counting() -> None:
    out = io.StringIO()
    bar = Progress(10, "simulate", stream=out)
    assert not bar.enabled
    bar.advance(4)
    bar.advance(6)
    summary = bar.close()
    assert summary.done == 10 and summary.elapsed_s >= 0
    assert out.getvalue() == ""
    assert bar.close() is summary  # one result, however often it is closed


def test_shown_in_a_terminal_and_not_with_quiet(monkeypatch: pytest.MonkeyPatch) -> None:
    terminal = _terminal(monkeypatch)
    with Progress(3, "backfill", "payments") as bar:
        assert bar.enabled
        bar.advance(3)
    assert "backfill" in terminal.getvalue() and "3/3" in terminal.getvalue()
    quiet = Progress(3, "backfill", quiet=True)
    assert not quiet.enabled and not progress.shown(quiet=True)
    before = terminal.getvalue()
    quiet.advance(3)
    quiet.close()
    assert terminal.getvalue() == before


def test_off_when_only_stderr_is_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdout", io.StringIO())
    monkeypatch.setattr("sys.stderr", Terminal())
    assert not progress.shown()
    assert not Progress(1, "x").enabled


def test_update_to_sets_the_count(monkeypatch: pytest.MonkeyPatch) -> None:
    _terminal(monkeypatch)
    bar = Progress(None, "archive", "records")
    bar.update_to(5)
    bar.update_to(12)
    bar.describe("event time up to 2018-04-01 00:00")
    assert bar.close().done == 12


def test_summary_rate() -> None:
    assert Summary(done=100, elapsed_s=4.0).rate == 25.0
    assert Summary(done=5, elapsed_s=0.0).rate == 0.0


def test_poll_follows_a_count_while_the_block_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    _terminal(monkeypatch)
    calls = []

    def count() -> int:
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("a failed reading is skipped")
        return len(calls) * 10

    bar = Progress(100, "replay", "decisions")
    with bar.poll(count, interval_s=0.01):
        deadline = time.monotonic() + 5
        while len(calls) < 4 and time.monotonic() < deadline:
            time.sleep(0.01)
    assert len(calls) >= 4 and bar.done >= 30
    assert not any(t.name == "progress-replay" for t in threading.enumerate())
    bar.close()


def test_poll_reads_nothing_when_progress_is_off() -> None:
    called = []
    bar = Progress(100, "replay", stream=io.StringIO())

    def count() -> int:
        called.append(1)
        return 1

    with bar.poll(count, interval_s=0.001):
        time.sleep(0.05)
    assert called == [] and bar.close().done == 0


def test_note_prints_unless_quiet(capsys: pytest.CaptureFixture[str]) -> None:
    note("train: fitting mlp")
    note("hidden", quiet=True)
    assert capsys.readouterr().err == "train: fitting mlp\n"
