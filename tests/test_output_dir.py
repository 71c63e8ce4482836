"""The output directory is one package: replaced whole by a run that succeeds, left byte for byte as
it was by a run that fails or is killed, refused when it holds a user's files or another run holds it."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import DATA

from tcim_interop import OutputError, output_dir, to_sdtm
from tcim_interop.errors import ConformanceError, InputError

MINI = DATA / "mini-r4.json"


def snapshot(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def assert_whole_package(out: Path) -> bytes:
    """out holds exactly what its manifest lists, each file with the listed sha256; returns the manifest."""
    manifest = (out / "manifest.json").read_bytes()
    listed = {o["path"]: o["sha256"] for o in json.loads(manifest)["outputs"]}
    assert set(snapshot(out)) == set(listed) | {"manifest.json"}
    assert {n: h for n, h in snapshot(out).items() if n != "manifest.json"} == listed
    return manifest


def leftovers(out: Path) -> list[str]:
    return sorted(p.name for p in out.parent.iterdir()
                  if p.name.startswith(f".{out.name}.tcim-") and not p.name.endswith("-lock"))


@pytest.mark.parametrize("first, second, gone", [
    ({}, {"masked": True}, "ex.xpt"),                                # an unmasked EX under a masked delivery
    ({}, {"mune_domain": "NV"}, "xm.xpt"),                           # the other MUNE domain
    ({"formats": ("xpt", "json")}, {"formats": ("xpt",)}, "dm.json"),  # fewer formats
])
def test_a_run_replaces_the_whole_package(tmp_path, first, second, gone):
    out = tmp_path / "sdtm"
    to_sdtm([MINI], out, **first)
    assert (out / gone).is_file()
    to_sdtm([MINI], out, **second)
    assert not (out / gone).exists()
    assert_whole_package(out)
    assert leftovers(out) == []


def test_files_the_tool_did_not_write_are_refused_and_kept(tmp_path):
    out = tmp_path / "sdtm"
    to_sdtm([MINI], out)
    (out / "my-notes.txt").write_text("mine")
    before = snapshot(out)
    with pytest.raises(OutputError, match="my-notes.txt"):
        to_sdtm([MINI], out, masked=True)
    assert snapshot(out) == before
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "data.csv").write_text("x")
    with pytest.raises(OutputError, match="data.csv"):
        to_sdtm([MINI], plain)


def _empty_bundle(tmp_path: Path) -> Path:
    path = tmp_path / "empty.json"
    path.write_text('{"resourceType": "Bundle", "type": "collection", "entry": []}')
    return path


@pytest.mark.parametrize("how", ["strict", "no-subject", "write-fails"])
def test_a_failed_run_leaves_the_previous_package_and_reports_beside_it(tmp_path, monkeypatch, how):
    out = tmp_path / "sdtm"
    to_sdtm([MINI], out)
    before = snapshot(out)
    if how == "strict":  # the mini bundle's AE without AEDECOD is an error under --strict
        with pytest.raises(ConformanceError):
            to_sdtm([MINI], out, masked=True, strict=True)
    elif how == "no-subject":
        with pytest.raises(InputError, match="no subject converted"):
            to_sdtm([_empty_bundle(tmp_path)], out)
    else:  # a full disk at the last write before the swap
        from tcim_interop import package_writer

        def full(*args, **kwargs):
            raise OutputError("manifest.json: cannot write: No space left on device")
        monkeypatch.setattr(package_writer, "write_manifest", full)
        with pytest.raises(OutputError, match="No space left"):
            to_sdtm([MINI], out, masked=True)
    assert snapshot(out) == before
    assert leftovers(out) == []
    failed = output_dir.failed_report_path(out)
    assert failed.parent == out.parent and json.loads(failed.read_text())["resources"]["input"] >= 0
    monkeypatch.undo()
    to_sdtm([MINI], out)
    assert not failed.exists(), "a successful run keeps the report of an earlier failure"


def test_the_swap_without_an_atomic_exchange(tmp_path, monkeypatch):
    monkeypatch.setattr(output_dir, "_exchange", lambda a, b: False)
    out = tmp_path / "sdtm"
    to_sdtm([MINI], out)
    to_sdtm([MINI], out, mune_domain="NV")
    assert (out / "nv.xpt").is_file() and not (out / "xm.xpt").exists()
    assert leftovers(out) == []


def test_leftovers_of_a_killed_run_are_cleaned_and_an_old_package_set_aside_is_restored(tmp_path):
    out = tmp_path / "sdtm"
    to_sdtm([MINI], out)
    before = snapshot(out)
    # killed between the two renames of the fallback swap: no package in place, the old one aside
    os.rename(out, tmp_path / ".sdtm.tcim-old-1234")
    (tmp_path / ".sdtm.tcim-staging-abcd").mkdir()
    (tmp_path / ".sdtm.tcim-staging-abcd" / "dm.xpt").write_bytes(b"half")
    with pytest.raises(InputError):  # even a run that fails puts the old package back first
        to_sdtm([_empty_bundle(tmp_path)], out)
    assert snapshot(out) == before
    assert leftovers(out) == []


def test_a_second_run_into_the_same_out_is_refused(tmp_path):
    out = tmp_path / "sdtm"
    to_sdtm([MINI], out)
    before = snapshot(out)
    with open(tmp_path / ".sdtm.tcim-lock", "a") as lock:  # what a running to-sdtm holds
        fcntl.flock(lock, fcntl.LOCK_EX)
        done = subprocess.run([sys.executable, "-m", "tcim_interop", "to-sdtm", str(MINI), "--out", str(out)],
                              capture_output=True, text=True)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [done.stderr.strip()]
    assert "another tcim-interop run is writing this package" in done.stderr
    assert snapshot(out) == before


# One process that has run a conversion once (its imports and what it loads, made) forks a child per run:
# a killed run is then a conversion killed at any moment, not mostly a Python start. A line in:
# [argv, TMPDIR]; a line out: the pid. Children are reaped at once (SIGCHLD ignored), so a pid that is
# gone is a run that has ended.
FORK_SERVER = """
import json, os, signal, sys, tempfile
from tcim_interop import to_sdtm
from tcim_interop.cli import app
with tempfile.TemporaryDirectory() as warm:
    to_sdtm([sys.argv[1]], os.path.join(warm, "sdtm"))
signal.signal(signal.SIGCHLD, signal.SIG_IGN)
for line in sys.stdin:
    argv, tmpdir = json.loads(line)
    pid = os.fork()
    if pid == 0:
        os.environ["TMPDIR"], tempfile.tempdir = tmpdir, None
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, 1), os.dup2(null, 2)
        code = 70  # anything but the command's own exit: the run failed
        try:
            app(args=argv, prog_name="tcim-interop")
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 1
        finally:
            os._exit(code)  # never back into this loop
    print(pid, flush=True)
"""


class ForkServer:
    def __enter__(self) -> ForkServer:
        self.proc = subprocess.Popen([sys.executable, "-c", FORK_SERVER, str(MINI)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        return self

    def start(self, argv: list[str], tmpdir: Path) -> int:
        self.proc.stdin.write(json.dumps([argv, str(tmpdir)]) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            pytest.fail(f"the fork server stopped: {self.proc.stderr.read()[-2000:]}")
        return int(line)

    @staticmethod
    def wait(pid: int, timeout: float = 120) -> None:
        """Until the run has ended (its pid is gone)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.005)
        pytest.fail(f"a run did not end in {timeout} s")

    def __exit__(self, *exc) -> None:
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def test_kill_9_at_random_moments_leaves_the_old_package_or_the_new_one(tmp_path):
    """SIGKILL a conversion at random moments: each time, --out is the old package or the new one, whole."""
    kills = int(os.environ.get("TCIM_KILL_LOOPS", "16"))  # TCIM_KILL_LOOPS=200 for a longer hunt
    out = tmp_path / "sdtm"
    command = ["to-sdtm", str(MINI), "--out", str(out), "-q", "-j", "1"]
    variants = {"XM": [], "NV": ["--mune-domain", "NV"]}
    temp = tmp_path / "tmp"  # the runs' temporary folder: a killed run leaves nothing there
    temp.mkdir()
    with ForkServer() as server:
        manifests, durations = {}, []
        for name, extra in variants.items():  # each variant's package, as a finished run writes it
            pid = server.start(command + extra, temp)
            started = time.monotonic()
            server.wait(pid)
            durations.append(time.monotonic() - started)
            manifests[name] = assert_whole_package(out)
        duration = max(durations)
        rng = random.Random(1)
        outcomes = {"old": 0, "new": 0}
        state = "NV"
        for _ in range(kills):
            target = "XM" if state == "NV" else "NV"
            pid = server.start(command + variants[target], temp)
            time.sleep(rng.uniform(0.05, 1.1) * duration)  # from its first step to around the writing and swap
            with contextlib.suppress(ProcessLookupError):  # a run that ended first: its package is the new one
                os.kill(pid, signal.SIGKILL)
            server.wait(pid)
            manifest = assert_whole_package(out)
            assert manifest in (manifests[state], manifests[target])
            outcomes["new" if manifest == manifests[target] and target != state else "old"] += 1
            state = target if manifest == manifests[target] else state
            assert not [p for p in out.iterdir() if p.is_dir()], "a staging folder inside --out"
        server.wait(server.start(command, temp))  # the next run cleans what the kills left
    assert assert_whole_package(out) == manifests["XM"]
    assert leftovers(out) == []
    assert list(temp.iterdir()) == []
    print(f"{kills} kills: {outcomes['old']} left the old package, {outcomes['new']} the new one")
