"""Benchmark: tcim-interop side by side with the floor and the peers, on synthetic TCIM-ELAII corpora.

    python benchmarks/bench.py --subjects 100 1000 --repeat 3

For each corpus (R4 JSON bundle, and R4 NDJSON) it runs each method in a fresh process, `--repeat` rounds
of every method once (so that a change of the machine's load hits all methods alike), and prints medians
of wall time, CPU time (user + system: the steadier figure on a shared machine), resources/s and the
largest peak RSS for:
    to-sdtm      the full command (fhir.resources validation of every mapped resource, in one worker
                 process per core while the datasets are built)
    to-sdtm -j1  the same in one process (--jobs 1)
    fast         to-sdtm --fast (validates only what the mapping reads)
    floor        (a) orjson parsing of the same input + pyreadstat.write_xport of the same output frames
    validate     (b) fhir.resources validation alone of the same resources
    fhiry        (c) fhiry, the FHIR-to-DataFrame flattener, on the same bundle (bundle corpora only)
    to-fhir      SDTM -> FHIR of the datasets to-sdtm wrote (with its self-check; the output validated
                 in one worker per core); to-fhir -j1 the same in one process
    xpt+orjson   reading the same XPT files + serialising as many resources with orjson
and the ratios the targets are stated in (of wall times; of CPU times in brackets); then, across sizes,
the time ratio of each method for 10x the subjects and the peak RSS of to-sdtm against the input size.
Also the latency of `tcim-interop --help` against `python -c pass`. Figures vary with the machine's
load: compare ratios measured in one run. A method that runs longer than --timeout seconds, or fails,
is skipped with the reason printed; each run's figures are printed as it ends (a '# ' line), the
table once a corpus is done; --repeat-large sets the repeats for
corpora of --large (5,000) subjects or more; --methods runs some methods only. CPU time counts the
worker processes; peak RSS is the largest process's (the workers share the parent's parsed input
copy-on-write).
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PY = sys.executable
CLI = [PY, "-m", "tcim_interop"]

FLOOR = r"""
import sys, orjson, pickle, pyreadstat, pathlib
src, frames = pathlib.Path(sys.argv[1]), pickle.load(open(sys.argv[2], "rb"))
files = sorted(src.glob("*.ndjson")) if src.is_dir() else [src]
n = 0
for f in files:
    raw = f.read_bytes()
    if f.suffix == ".ndjson":
        n += sum(1 for line in raw.splitlines() if orjson.loads(line))
    else:
        n += len(orjson.loads(raw)["entry"])
out = pathlib.Path(sys.argv[3])
for name, (df, labels) in frames.items():
    pyreadstat.write_xport(df, str(out / f"{name}.xpt"), table_name=name.upper(), column_labels=labels, file_format_version=5)
"""

VALIDATE = r"""
import sys, orjson, pathlib
from fhir.resources.R4B import get_fhir_model_class
src = pathlib.Path(sys.argv[1])
files = sorted(src.glob("*.ndjson")) if src.is_dir() else [src]
for f in files:
    raw = f.read_bytes()
    docs = [orjson.loads(l) for l in raw.splitlines() if l.strip()] if f.suffix == ".ndjson" else [e["resource"] for e in orjson.loads(raw)["entry"]]
    for d in docs:
        get_fhir_model_class(d["resourceType"]).model_validate(d)
"""

FHIRY = r"""
import sys
from fhiry import Fhiry
f = Fhiry()
f.filename = sys.argv[1]
f.process_source()
assert len(f.df) > 0
"""

XPT_ORJSON = r"""
import sys, orjson, pathlib, pyreadstat
n = int(sys.argv[2])
rows = []
for p in sorted(pathlib.Path(sys.argv[1]).glob("*.xpt")):
    df, _ = pyreadstat.read_xport(str(p))
    rows.extend(df.to_dict("records"))
resource = {"resourceType": "Observation", "id": "x", "status": "final", "code": {"text": "t"}}
out = [orjson.dumps({**resource, "id": str(i), "valueString": str(rows[i % len(rows)].get("USUBJID"))}) for i in range(n)]
pathlib.Path(sys.argv[3]).write_bytes(b"\n".join(out))
"""


METHODS = ("to-sdtm", "to-sdtm -j1", "fast", "floor", "validate", "fhiry", "to-fhir", "to-fhir -j1", "xpt+orjson")


class Skipped(Exception):
    """A method not measured: it ran past --timeout, or failed."""


GNU_TIME = Path("/usr/bin/time").exists()


def run(cmd: list[str], timeout: float | None = None) -> tuple[float, float, int]:
    """Wall seconds, CPU seconds (user + system) and peak RSS (MiB) of one child process; killed after
    timeout seconds. On a busy machine the CPU time is the steadier figure of the two.

    The peak RSS is GNU time's report when it is installed: Linux carries a process's peak RSS over
    fork and exec, so wait4 on a child of this (large) process would report at least this one's size."""
    start = time.perf_counter()
    with tempfile.TemporaryFile() as err, tempfile.NamedTemporaryFile("r") as rss:  # files: a chatty child cannot block
        timed = ["/usr/bin/time", "-f", "%M", "-o", rss.name, *cmd] if GNU_TIME else cmd
        p = subprocess.Popen(timed, stdout=subprocess.DEVNULL, stderr=err, start_new_session=True)
        while True:
            pid, status, usage = os.wait4(p.pid, os.WNOHANG)
            if pid:
                break
            if timeout is not None and time.perf_counter() - start > timeout:
                os.killpg(p.pid, signal.SIGKILL)  # the group: GNU time and the command it runs
                os.wait4(p.pid, 0)
                raise Skipped(f"skipped: still running after {timeout:.0f} s (--timeout)")
            time.sleep(0.02)
        wall = time.perf_counter() - start
        if os.waitstatus_to_exitcode(status) != 0:
            err.seek(0)
            last = (err.read().decode(errors="replace").strip().splitlines() or ["no message"])[-1]
            raise Skipped(f"skipped: failed with exit code {os.waitstatus_to_exitcode(status)}: {last}")
        kib = int(rss.read().strip().splitlines()[-1]) if GNU_TIME else usage.ru_maxrss
    return wall, usage.ru_utime + usage.ru_stime, kib // 1024  # wait4 counts the child's waited-for children


def median_of(cmd: list[str], repeat: int, timeout: float | None = None) -> tuple[float, float, int]:
    return summary([run(cmd, timeout) for _ in range(repeat)])


def summary(results: list[tuple[float, float, int]]) -> tuple[float, float, int]:
    """Median wall, median CPU, largest peak RSS."""
    return (statistics.median(r[0] for r in results), statistics.median(r[1] for r in results),
            max(r[2] for r in results))


def corpus(work: Path, subjects: int, ndjson: bool) -> Path:
    path = work / (f"c{subjects}-ndjson" if ndjson else f"c{subjects}.json")
    if not path.exists():
        subprocess.run(CLI + ["synth", "--subjects", str(subjects), "--seed", "7", "--out", str(path)]
                       + (["--ndjson"] if ndjson else []), check=True, stderr=subprocess.DEVNULL)
    return path


def count_resources(path: Path) -> int:
    import orjson

    if path.is_dir():
        return sum(1 for f in path.glob("*.ndjson") for line in f.read_bytes().splitlines() if line.strip())
    if path.name.startswith("fhir-"):  # to-fhir's bundle (3 GB at 10,000 subjects: more than orjson parses)
        return path.read_bytes().count(b'\n      "fullUrl": ')  # an entry's own key; resources sit deeper
    return len(orjson.loads(path.read_bytes())["entry"])


def size_mib(path: Path) -> float:
    files = path.glob("*.ndjson") if path.is_dir() else [path]
    return sum(f.stat().st_size for f in files) / 2 ** 20


def frames_of(sdtm_dir: Path, pickle_path: Path) -> None:
    import pickle

    import pyreadstat

    frames = {}
    for p in sorted(sdtm_dir.glob("*.xpt")):
        df, meta = pyreadstat.read_xport(str(p))
        frames[p.stem] = (df, meta.column_labels)
    pickle_path.write_bytes(pickle.dumps(frames))


def bench_corpus(args, subjects: int, ndjson: bool) -> dict[str, tuple[float, int]]:
    src = corpus(args.work, subjects, ndjson)
    n = count_resources(src)
    name = f"{subjects}{' ndjson' if ndjson else ' bundle'}"
    out = args.work / f"out-{subjects}-{int(ndjson)}"
    repeat = args.repeat_large if subjects >= args.large and args.repeat_large else args.repeat
    runs: dict[str, list[tuple[float, float, int]]] = {}
    skipped: set[str] = set()
    fhir_out = args.work / f"fhir-{subjects}.json"
    floor_out = Path(tempfile.mkdtemp(dir=args.work))
    plan = {  # commands made when their turn comes: floor needs to-sdtm's frames, xpt+orjson to-fhir's count
        "to-sdtm": lambda: CLI + ["to-sdtm", str(src), "--out", str(out), "-q"],
        "to-sdtm -j1": lambda: CLI + ["to-sdtm", str(src), "--out", str(out), "-q", "--jobs", "1"],
        "fast": lambda: CLI + ["to-sdtm", str(src), "--out", str(out), "-q", "--fast"],
        "floor": lambda: [PY, "-c", FLOOR, str(src), str(args.work / "frames.pkl"), str(floor_out)],
        "validate": lambda: [PY, "-c", VALIDATE, str(src)],
        "fhiry": lambda: [PY, "-c", FHIRY, str(src)],
        "to-fhir": lambda: CLI + ["to-fhir", str(out), "--out", str(fhir_out), "-q"],
        "to-fhir -j1": lambda: CLI + ["to-fhir", str(out), "--out", str(fhir_out), "-q", "--jobs", "1"],
        "xpt+orjson": lambda: [PY, "-c", XPT_ORJSON, str(out), str(count_resources(fhir_out)),
                               str(args.work / "x.ndjson")],
    }
    if ndjson or args.skip_fhiry:
        del plan["fhiry"]
    if ndjson and args.skip_ndjson_fhir:  # to-fhir reads the same SDTM from either corpus
        for method in ("to-fhir", "to-fhir -j1", "xpt+orjson"):
            del plan[method]
    plan = {m: c for m, c in plan.items() if m in args.methods}
    frames = False
    fhir_out.unlink(missing_ok=True)
    # Rounds: every method once per round, so that a change of the machine's load hits all methods alike.
    for _ in range(repeat):
        for method, cmd in plan.items():
            if method in skipped or (method == "floor" and not frames) or \
                    (method in ("to-fhir", "to-fhir -j1") and not (frames or (out / "dm.xpt").exists())) or \
                    (method == "xpt+orjson" and not fhir_out.exists()):
                continue
            try:
                runs.setdefault(method, []).append(run(cmd(), args.timeout))
                print(f"# {name} {method}: wall {runs[method][-1][0]:.2f} s, cpu {runs[method][-1][1]:.2f} s, "
                      f"peak {runs[method][-1][2]} MiB", flush=True)  # kept if a later method fails
            except Skipped as e:
                skipped.add(method)
                print(f"{name:<16}{method:<13}{e}")
            if method in ("to-sdtm", "to-sdtm -j1", "fast") and not frames and method in runs:
                frames_of(out, args.work / "frames.pkl")  # every to-sdtm method writes the same datasets
                frames = True
    res = {m: summary(r) for m, r in runs.items()}
    n_fhir = count_resources(fhir_out) if "to-fhir" in res else 0
    for method, (wall, cpu, rss) in res.items():
        count = n_fhir if method in ("to-fhir", "to-fhir -j1", "xpt+orjson") else n
        ratios = []
        for mine, floor in (("to-sdtm", "floor"), ("to-sdtm -j1", "floor"), ("fast", "floor"),
                            ("to-sdtm", "validate"), ("to-sdtm -j1", "validate"), ("fast", "validate"),
                            ("to-sdtm", "fhiry"), ("fast", "fhiry"), ("to-fhir", "xpt+orjson"),
                            ("to-fhir -j1", "xpt+orjson")):
            if method == floor and mine in res:
                ratios.append(f"{mine}/{floor} {res[mine][0] / wall:.2f} (cpu {res[mine][1] / cpu:.2f})")
        print(f"{name:<16}{method:<13}{wall:8.2f}{cpu:9.2f}{count / wall:10.0f}{rss:10d}   {'; '.join(ratios)}")
    print(f"{name:<16}input       {size_mib(src):9.1f} MiB, {n} resources")
    sys.stdout.flush()
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--subjects", type=int, nargs="+", default=[100, 1000])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--repeat-large", type=int, default=0, help="repeats for corpora of >= --large subjects")
    ap.add_argument("--large", type=int, default=5000)
    ap.add_argument("--timeout", type=float, default=None, help="skip a method running longer (seconds)")
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "tcim-bench")
    ap.add_argument("--skip-fhiry", action="store_true")
    ap.add_argument("--skip-ndjson-fhir", action="store_true", help="run to-fhir on the bundle corpus only")
    ap.add_argument("--forms", nargs="+", default=["bundle", "ndjson"], choices=["bundle", "ndjson"],
                    help="the corpora to run: the R4 bundle, the R4 NDJSON directory, or both")
    ap.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS, metavar="METHOD",
                    help=f"the methods to run (default all: {', '.join(METHODS)})")
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)

    lat_cli = median_of(CLI + ["--help"], max(5, args.repeat))[0]
    lat_py = median_of([PY, "-c", "pass"], max(5, args.repeat))[0]
    print(f"latency: tcim-interop --help {lat_cli * 1000:.0f} ms, python -c pass {lat_py * 1000:.0f} ms "
          f"(ratio {lat_cli / lat_py:.1f})")
    print(f"{'corpus':<16}{'method':<13}{'wall s':>8}{'cpu s':>9}{'res/s':>10}{'peak MiB':>10}   ratios: wall (cpu)")
    forms = [nd for nd, form in ((False, "bundle"), (True, "ndjson")) if form in args.forms]
    results = {(s, nd): bench_corpus(args, s, nd) for s in args.subjects for nd in forms}

    sizes = sorted(args.subjects)
    for small, large in zip(sizes, sizes[1:]):
        for nd in forms:
            a, b = results[(small, nd)], results[(large, nd)]
            kind = "ndjson" if nd else "bundle"
            for method in (m for m in a if m in b):
                print(f"scaling {kind} {method:<11}{small} -> {large} subjects: time x{b[method][0] / a[method][0]:.2f} "
                      f"(cpu x{b[method][1] / a[method][1]:.2f}) for x{large / small:g} subjects")
            ia, ib = size_mib(corpus(args.work, small, nd)), size_mib(corpus(args.work, large, nd))
            for method in (m for m in ("to-sdtm", "to-sdtm -j1", "fast") if m in a and m in b):
                print(f"peak RSS {kind} {method} {small} -> {large} subjects: {a[method][2]} -> "
                      f"{b[method][2]} MiB (x{b[method][2] / a[method][2]:.2f}) for input "
                      f"{ia:.0f} -> {ib:.0f} MiB (x{ib / ia:.2f})")


if __name__ == "__main__":
    main()
