"""The sha256 of every file the converter writes on three reference inputs, for proving that a change
to the code's structure changes no output byte:

    python3 benchmarks/output_digests.py > before.txt   # on the old commit
    python3 benchmarks/output_digests.py > after.txt    # on the new one
    diff before.txt after.txt

The inputs: the shipped example (to-sdtm with every format, masked and NV too, and to-fhir as a
bundle in R4 and R5 and as NDJSON), the CDISC pilot's round trip (to-fhir, then to-sdtm of that; skipped
without ../shared), and a 300-subject NDJSON corpus from `synth` (seed 3).
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "tcim-elaii-100-r4.json"
PILOT = ROOT.parent / "shared" / "external" / "cdiscpilot01"
CREATED = ["--created", "2024-01-01T00:00:00"]


def run(*args: str) -> None:
    quiet = [] if args[0] == "synth" else ["-q"]
    subprocess.run([sys.executable, "-m", "tcim_interop", *args, *quiet], check=True, cwd=ROOT,
                   stderr=subprocess.DEVNULL if args[0] == "synth" else None)


def digests(path: Path, label: str) -> list[str]:
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    return [f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {label}/{p.relative_to(path) if path.is_dir() else p.name}"
            for p in files]


def main() -> None:
    lines: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        run("to-sdtm", str(EXAMPLE), "--out", str(t / "ex"), "--format", "xpt,json", *CREATED)
        run("to-sdtm", str(EXAMPLE), "--out", str(t / "ex-masked"), "--masked", *CREATED)
        run("to-sdtm", str(EXAMPLE), "--out", str(t / "ex-nv"), "--mune-domain", "NV", "--format", "json", *CREATED)
        run("to-fhir", str(t / "ex"), "--out", str(t / "ex-r4.json"))
        run("to-fhir", str(t / "ex"), "--out", str(t / "ex-r5.json"), "--fhir-version", "R5")
        run("to-fhir", str(t / "ex"), "--out", str(t / "ex-ndjson"), "--ndjson")
        for name in ("ex", "ex-masked", "ex-nv", "ex-r4.json", "ex-r5.json", "ex-ndjson"):
            lines += digests(t / name, name)
        if PILOT.is_dir():
            run("to-fhir", str(PILOT), "--out", str(t / "pilot.json"), "--timezone", "America/New_York")
            run("to-sdtm", str(t / "pilot.json"), "--out", str(t / "pilot-sdtm"), "--format", "xpt,json", *CREATED)
            for name in ("pilot.json", "pilot-sdtm"):
                lines += digests(t / name, name)
        run("synth", "--subjects", "300", "--seed", "3", "--ndjson", "--out", str(t / "corpus"))
        run("to-sdtm", str(t / "corpus"), "--out", str(t / "corpus-sdtm"), "--format", "xpt,json", *CREATED)
        for name in ("corpus", "corpus-sdtm"):
            lines += digests(t / name, name)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
