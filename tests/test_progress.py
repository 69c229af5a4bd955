"""Progress of long work: a live bar on a terminal, plain periodic lines off a terminal."""

import io

import pytest

from manifold_flows._mc.progress import ProgressReporter
from manifold_flows._pipeline.progress import SampleProgress
from manifold_flows._progress import ProgressLine
from manifold_flows._train.progress import Progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_off_a_terminal_plain_lines_are_printed_as_work_goes():
    # A log file or CI sees a line at the first update, then one per interval (here every
    # update), and where the work ended: never minutes of silence.
    out = io.StringIO()
    with ProgressLine("train", 200, done=50, unit="steps", stream=out, interval=0) as line:
        line.update(100, "loss 0.5")
        line.update(150, "loss 0.4")
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("train: 100/200 steps (50 %), loss 0.5, elapsed 0:00:00")
    assert "remaining ~" in lines[0]
    assert lines[1].startswith("train: 150/200 steps (75 %), loss 0.4")
    assert "\x1b" not in out.getvalue()  # no terminal control codes in a log


def test_lines_are_spaced_by_the_interval_and_the_end_is_shown(monkeypatch):
    clock = iter([0.0, 1.0, 2.0, 40.0, 41.0])
    monkeypatch.setattr("manifold_flows._progress.time.perf_counter", lambda: next(clock))
    out = io.StringIO()
    with ProgressLine("mc", 100, unit="sweeps", stream=out, interval=30) as line:
        line.update(10)  # t = 1: the first line
        line.update(20)  # t = 2: within the interval, silent
        line.update(90)  # t = 40: a line
    # t = 41 at exit: the end (90) was already shown, nothing more
    assert [s.split(",")[0] for s in out.getvalue().splitlines()] == [
        "mc: 10/100 sweeps (10 %)",
        "mc: 90/100 sweeps (90 %)",
    ]


def test_the_interval_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("MFLOWS_PROGRESS_INTERVAL", "5")
    assert ProgressLine("x", 1).interval == 5.0
    monkeypatch.setenv("MFLOWS_PROGRESS_INTERVAL", "soon")
    assert ProgressLine("x", 1).interval == 30.0


def test_a_terminal_gets_a_live_bar_and_disabled_progress_prints_nothing():
    term = Terminal()
    with ProgressLine("sample", 10, unit="samples", stream=term, interval=0) as line:
        assert line.live
        line.update(5, "mean NFE 20")
    assert "sample" in term.getvalue() and "5/10" in term.getvalue()
    quiet = io.StringIO()
    with ProgressLine("sample", 10, stream=quiet, enabled=False, interval=0) as line:
        line.update(5)
    assert quiet.getvalue() == ""


@pytest.mark.parametrize("which", ["mc", "sample", "train"])
def test_each_long_command_reports_off_a_terminal(which, capsys, monkeypatch):
    # pytest's captured stderr is not a terminal, like a log file.
    monkeypatch.setenv("MFLOWS_PROGRESS_INTERVAL", "0")
    if which == "mc":
        with ProgressReporter(1000, enabled=True) as bar:
            bar.update(
                500, phase="production", temperature=0.1, energy_per_particle=0.33, acceptance="0.4"
            )
        expected = "mc: 500/1000 sweeps (50 %), production, T=0.1, u=0.33000, acc=0.4"
    elif which == "sample":
        with SampleProgress(64, 16, True) as bar:
            bar.update(32, seconds_per_sample=0.5, mean_nfe=25.0)
        expected = "sample: 32/64 samples (50 %), 0.5 s/sample, mean NFE 25.0"
    else:
        bar = Progress(2000, 0, True)
        bar.update(500, loss=0.45, val_loss=0.44, speed=17.0)
        bar.close()
        expected = "train: 500/2000 steps (25 %), loss 0.45, val 0.44, 17 steps/s"
    err = capsys.readouterr().err
    assert err.startswith(expected), err
