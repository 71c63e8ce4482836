import io

from tcim_interop.progress import ERASE_LINE, Progress


class Tty(io.StringIO):
    def isatty(self):
        return True


def test_silent_when_not_a_terminal():
    out = io.StringIO()
    p = Progress(out, delay=0)
    p("reading", 1, 2)
    assert out.getvalue() == ""


def test_silent_with_quiet_and_on_a_dumb_terminal(monkeypatch):
    out = Tty()
    Progress(out, delay=0, interval=0, quiet=True)("reading", 1, 2)
    monkeypatch.setenv("TERM", "dumb")
    Progress(out, delay=0, interval=0)("reading", 1, 2)
    assert out.getvalue() == ""


def test_silent_during_the_first_seconds_then_draws_and_clears(monkeypatch):
    monkeypatch.setenv("TERM", "xterm")
    out = Tty()
    p = Progress(out, delay=3600)
    p("reading", 1, 2)
    assert out.getvalue() == ""
    p = Progress(out, delay=0, interval=0)
    p("validating", 5, 10)
    assert "validating" in out.getvalue() and "5/10" in out.getvalue()
    p.close()
    assert out.getvalue().endswith(ERASE_LINE)


def test_a_shorter_line_leaves_nothing_of_the_longer_one(monkeypatch):
    """What a terminal shows is the text after the last erase: each draw starts by erasing the line, so
    no stale tail ("51.0ss") can survive a shorter redraw."""
    monkeypatch.setenv("TERM", "xterm")
    out = Tty()
    p = Progress(out, delay=0, interval=0)
    p("validating", 12345, 99999)
    p("writing", 1)
    draws = out.getvalue().split(ERASE_LINE)
    assert draws[0] == "" and len(draws) == 3
    assert draws[-1].startswith("writing") and draws[-1].endswith(" s") and "/" not in draws[-1]


def test_every_stage_of_a_run_reports_progress(tmp_path, mini_bundle):
    """Reading, validating, mapping (once per resource of a row type) and writing all move the line,
    in --fast too, so that a long run never looks stuck."""
    from tcim_interop import to_sdtm

    for fast in (False, True):
        calls = []
        to_sdtm([mini_bundle], tmp_path / f"out-{fast}", fast=fast, jobs=1,
                progress=lambda stage, done, total=None: calls.append((stage, done, total)))
        stages = list(dict.fromkeys(c[0] for c in calls))
        assert stages == ["reading", "mapping", "writing"] if fast else ["reading", "validating", "mapping", "writing"]
        mapping = [c for c in calls if c[0] == "mapping"]
        assert [c[1] for c in mapping] == list(range(1, len(mapping) + 1)) and mapping[-1][2] == len(mapping)
        writing = [c for c in calls if c[0] == "writing"]
        assert writing[-1][1] == writing[-1][2] > 1
