"""Benchmark: tcim-interop side by side with the floor and the peers, on synthetic TCIM-ELAII corpora.

    python benchmarks/bench.py --subjects 100 1000 --repeat 3

For each corpus (R4 JSON bundle, and R4 NDJSON) it runs, each in a fresh process, `--repeat` times, and
prints medians of wall time, resources/s and peak RSS for:
    to-sdtm      the full command (fhir.resources validation of every mapped resource)
    fast         to-sdtm --fast (validates only what the mapping reads)
    floor        (a) orjson parsing of the same input + pyreadstat.write_xport of the same output frames
    validate     (b) fhir.resources validation alone of the same resources
    fhiry        (c) fhiry, the FHIR-to-DataFrame flattener, on the same bundle (bundle corpora only)
    to-fhir      SDTM -> FHIR of the datasets to-sdtm wrote (with its self-check)
    xpt+orjson   reading the same XPT files + serialising as many resources with orjson
and the ratios the targets are stated in. Also the latency of `tcim-interop --help` against
`python -c pass`. Figures vary with the machine's load: compare ratios measured in one run.
"""

from __future__ import annotations

import argparse
import os
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


def run(cmd: list[str]) -> tuple[float, int]:
    """Wall seconds and peak RSS (MiB) of a child process."""
    start = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(p.pid, 0)
    wall = time.perf_counter() - start
    err = p.stderr.read().decode()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{err}")
    return wall, usage.ru_maxrss // 1024


def median_of(cmd: list[str], repeat: int) -> tuple[float, int]:
    results = [run(cmd) for _ in range(repeat)]
    return statistics.median(r[0] for r in results), max(r[1] for r in results)


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
    return len(orjson.loads(path.read_bytes())["entry"])


def frames_of(sdtm_dir: Path, pickle_path: Path) -> None:
    import pickle

    import pyreadstat

    frames = {}
    for p in sorted(sdtm_dir.glob("*.xpt")):
        df, meta = pyreadstat.read_xport(str(p))
        frames[p.stem] = (df, meta.column_labels)
    pickle_path.write_bytes(pickle.dumps(frames))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--subjects", type=int, nargs="+", default=[100, 1000])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "tcim-bench")
    ap.add_argument("--skip-fhiry", action="store_true")
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)

    lat_cli, _ = median_of(CLI + ["--help"], max(5, args.repeat))
    lat_py, _ = median_of([PY, "-c", "pass"], max(5, args.repeat))
    print(f"latency: tcim-interop --help {lat_cli * 1000:.0f} ms, python -c pass {lat_py * 1000:.0f} ms "
          f"(ratio {lat_cli / lat_py:.1f})")
    print(f"{'corpus':<16}{'method':<12}{'wall s':>9}{'res/s':>10}{'peak MiB':>10}   ratio")
    for subjects in args.subjects:
        for ndjson in (False, True):
            src = corpus(args.work, subjects, ndjson)
            n = count_resources(src)
            name = f"{subjects}{' ndjson' if ndjson else ' bundle'}"
            out = args.work / f"out-{subjects}-{int(ndjson)}"
            res = {}
            res["to-sdtm"] = median_of(CLI + ["to-sdtm", str(src), "--out", str(out), "-q"], args.repeat)
            res["fast"] = median_of(CLI + ["to-sdtm", str(src), "--out", str(out), "-q", "--fast"], args.repeat)
            frames_of(out, args.work / "frames.pkl")
            floor_out = Path(tempfile.mkdtemp(dir=args.work))
            res["floor"] = median_of([PY, "-c", FLOOR, str(src), str(args.work / "frames.pkl"), str(floor_out)], args.repeat)
            res["validate"] = median_of([PY, "-c", VALIDATE, str(src)], args.repeat)
            if not ndjson and not args.skip_fhiry:
                res["fhiry"] = median_of([PY, "-c", FHIRY, str(src)], args.repeat)
            fhir_out = args.work / f"fhir-{subjects}.json"
            res["to-fhir"] = median_of(CLI + ["to-fhir", str(out), "--out", str(fhir_out), "-q"], args.repeat)
            n_fhir = count_resources(fhir_out)
            res["xpt+orjson"] = median_of([PY, "-c", XPT_ORJSON, str(out), str(n_fhir), str(args.work / "x.ndjson")],
                                          args.repeat)
            for method, (wall, rss) in res.items():
                count = n_fhir if method in ("to-fhir", "xpt+orjson") else n
                ratio = ""
                if method in ("floor", "validate", "fhiry"):
                    ratio = f"to-sdtm / {method} = {res['to-sdtm'][0] / wall:.2f}"
                    if method != "validate":
                        ratio += f", fast / {method} = {res['fast'][0] / wall:.2f}"
                if method == "xpt+orjson":
                    ratio = f"to-fhir / {method} = {res['to-fhir'][0] / wall:.2f}"
                print(f"{name:<16}{method:<12}{wall:9.2f}{count / wall:10.0f}{rss:10d}   {ratio}")
            sys.stdout.flush()


if __name__ == "__main__":
    main()
