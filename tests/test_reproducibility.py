"""The same input and options give byte-identical outputs, and a manifest that proves it."""

import hashlib
import json

from tcim_interop import to_sdtm


def digests(d):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(d.iterdir())}


def test_two_runs_give_the_same_bytes_and_manifest(tmp_path, mini_bundle):
    a, b = tmp_path / "a", tmp_path / "b"
    to_sdtm([mini_bundle], a)
    to_sdtm([mini_bundle], b)
    assert digests(a) == digests(b)
    assert {"dm.xpt", "ae.xpt", "run-report.json", "manifest.json"} <= set(digests(a))


def test_manifest_lists_outputs_inputs_and_versions_with_checksums(tmp_path, mini_bundle):
    to_sdtm([mini_bundle], tmp_path)
    m = json.loads((tmp_path / "manifest.json").read_text())
    listed = {o["path"]: o["sha256"] for o in m["outputs"]}
    on_disk = {k: v for k, v in digests(tmp_path).items() if k != "manifest.json"}
    assert listed == on_disk
    assert m["inputs"][0]["sha256"] == hashlib.sha256(mini_bundle.read_bytes()).hexdigest()
    assert m["tool"]["version"] and len(m["specs"]["sha256"]) == 64


def test_creation_time_comes_from_the_option_not_the_clock(tmp_path, mini_bundle):
    from datetime import datetime

    to_sdtm([mini_bundle], tmp_path / "x", created=datetime(2024, 3, 1, 12, 0, 0))
    head = (tmp_path / "x" / "dm.xpt").read_bytes()[:400]
    assert b"01MAR24:12:00:00" in head
    to_sdtm([mini_bundle], tmp_path / "y", created=datetime(2024, 3, 2, 12, 0, 0))
    assert (tmp_path / "x" / "dm.xpt").read_bytes() != (tmp_path / "y" / "dm.xpt").read_bytes()
