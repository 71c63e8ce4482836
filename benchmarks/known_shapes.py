"""Benchmark: validation by known shapes (fhir/known_shapes.py) against fhir.resources' whole validation,
side by side in one process, on the shipped example's resources and on a synthetic study's in R5.

    python benchmarks/known_shapes.py --repeat 5

Each round validates every resource both ways (the known shapes forgotten first, so that each round
learns them again as a run does); it prints the median time of each, their ratio, and how many shapes
the resources come in. Both ways must give the same verdicts: the script stops if they do not.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import orjson

from tcim_interop.fhir import known_shapes
from tcim_interop.fhir.validate import validation_error, whole_validation_error
from tcim_interop.synth.generate import generate

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "tcim-elaii-100-r4.json"


def timed(check, resources: list[dict], version: str) -> tuple[float, list]:
    start = time.perf_counter()
    verdicts = [check(r, version) for r in resources]
    return time.perf_counter() - start, verdicts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    corpora = {"example (R4 input)": ([e["resource"] for e in orjson.loads(EXAMPLE.read_bytes())["entry"]], "R4"),
               "synth 100 subjects (R5)": (generate(100, seed=7, fhir_version="R5"), "R5")}
    for name, (resources, version) in corpora.items():
        whole, shapes = [], []
        for _ in range(args.repeat):
            known_shapes._shapes.clear()
            t_whole, expected = timed(whole_validation_error, resources, version)
            t_shapes, got = timed(validation_error, resources, version)
            if got != expected:
                raise SystemExit(f"{name}: the two ways disagree")
            whole.append(t_whole)
            shapes.append(t_shapes)
        w, s = statistics.median(whole), statistics.median(shapes)
        print(f"{name}: {len(resources):,} resources in {len(known_shapes._shapes)} shapes; "
              f"whole {w:.2f} s, known shapes {s:.2f} s (median of {args.repeat}): x{w / s:.1f}")


if __name__ == "__main__":
    main()
