import io

from tcim_interop.progress import Progress


class Tty(io.StringIO):
    def isatty(self):
        return True


def test_silent_when_not_a_terminal():
    out = io.StringIO()
    p = Progress(out, delay=0)
    p("reading", 1, 2)
    assert out.getvalue() == ""


def test_silent_during_the_first_seconds_then_draws_and_clears():
    out = Tty()
    p = Progress(out, delay=3600)
    p("reading", 1, 2)
    assert out.getvalue() == ""
    p = Progress(out, delay=0, interval=0)
    p("validating", 5, 10)
    assert "validating" in out.getvalue() and "5/10" in out.getvalue()
    p.close()
    assert out.getvalue().endswith("\r")
