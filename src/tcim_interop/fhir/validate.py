"""Validate resources with fhir.resources: its R4B package for R4, its root package for R5.

The release is imported explicitly here and nowhere else, so that what "the root" means next year
cannot change what we validate against.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
from collections.abc import Callable, Iterable, Iterator
from functools import cache
from typing import Any

import orjson

from .known_shapes import Shape


@cache
def model_class(version: str, resource_type: str):
    if version == "R4":
        from fhir.resources.R4B import get_fhir_model_class
    else:
        from fhir.resources import get_fhir_model_class
    try:
        return get_fhir_model_class(resource_type)
    except (KeyError, ValueError, AttributeError):
        return None


def validation_error(resource: dict, version: str) -> str | None:
    """None when the resource is valid in its release, else a one-line reason. A resource of a shape
    fhir.resources has found valid before is checked leaf by leaf (fhir/known_shapes.py); any other, and
    any that fails there, is validated whole, so that the reason is always fhir.resources' own."""
    shape = Shape(resource, version)
    if shape.passes():
        return None
    reason = whole_validation_error(resource, version)
    if reason is None:
        shape.learn(resource, model_class(version, resource["resourceType"]))
    return reason


def whole_validation_error(resource: dict, version: str) -> str | None:
    """validation_error by fhir.resources alone: the model of the resource built element by element."""
    cls = model_class(version, resource.get("resourceType", ""))
    if cls is None:
        return f"unknown {version} resource type {resource.get('resourceType')!r}"
    from pydantic import ValidationError

    try:
        cls.model_validate(resource)
    except ValidationError as e:
        errs = e.errors()
        first = errs[0]
        loc = ".".join(str(p) for p in first.get("loc", ()) if p != "__root__")
        msg = str(first.get("msg", "")).replace("Value error, ", "")
        more = f" (+{len(errs) - 1} more)" if len(errs) > 1 else ""
        return f"invalid {version} {resource.get('resourceType')}: {loc or '(resource)'}: {_short(msg)}{more}"
    except (TypeError, ValueError, RecursionError) as e:
        return f"invalid {version} {resource.get('resourceType')}: {_short(str(e))}"
    return None


def _short(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


# -- many resources, on every core ---------------------------------------------------------------
# Validation is most of a full to-sdtm run and of to-fhir, and each resource is validated on its own:
# it spreads over forked worker processes. Each resource goes to its worker serialised (orjson), not
# by copy-on-write: reading the parent's dicts would write their reference counts and copy every page
# of the parsed input into every worker. Resources are serialised as the workers take them, so at any
# time only a few chunks are in flight; only the reasons of the invalid ones come back.

MIN_PARALLEL = 2000  # below this a fork costs more than it saves
CHUNK = 256  # resources per task: few pipe round trips, a short tail


def default_jobs() -> int:
    """The cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


class Validation:
    """The validation of resources item(0) .. item(count - 1), each `(resource, release)` where the
    resource is its dict or its JSON bytes (an NDJSON line as read: not parsed in this process), running
    in the background in `jobs` forked workers while the caller goes on; `reasons()` waits for it and
    gives {index: one-line reason} of the invalid ones. With one job, too few resources, or no fork
    (Windows, macOS's default), the work is done in this process when `reasons()` is called."""

    def __init__(self, count: int, item: Callable[[int], tuple[dict | bytes, str]], jobs: int | None = None,
                 min_parallel: int | None = None, progress: Callable[[int], None] | None = None,
                 kinds: Iterable[tuple[str, str]] = ()):
        """kinds: the (release, resource type) pairs met, whose models are imported here once rather than
        in every worker."""
        self.count, self.item, self.progress = count, item, progress
        jobs = jobs or default_jobs()
        self._pool = self._pending = None
        if jobs > 1 and count >= (MIN_PARALLEL if min_parallel is None else min_parallel) and \
                "fork" in multiprocessing.get_all_start_methods():
            for version, resource_type in set(kinds):
                model_class(version, resource_type)
            self._pool = multiprocessing.get_context("fork").Pool(jobs)
            # the pool's feeder thread serialises each chunk when a worker is ready for it
            self._pending = self._pool.imap_unordered(_validate_chunk, self._chunks())

    @property
    def in_background(self) -> bool:
        return self._pool is not None

    def __enter__(self) -> Validation:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Stop the workers (also when the caller failed before asking for the reasons)."""
        if self._pool is not None:
            self._pool.terminate()
            self._pool.join()

    def _chunks(self) -> Iterator[list[tuple[int, str, bytes]]]:
        for start in range(0, self.count, CHUNK):
            chunk = []
            for i in range(start, min(start + CHUNK, self.count)):
                resource, version = self.item(i)
                chunk.append((i, version, resource if isinstance(resource, bytes) else orjson.dumps(resource)))
            yield chunk

    def reasons(self) -> dict[int, str]:
        out: dict[int, str] = {}
        if self._pool is None:
            for i in range(self.count):
                reason = _reason(*self.item(i))
                if reason:
                    out[i] = reason
                if self.progress:
                    self.progress(i + 1)
            return out
        assert self._pending is not None  # set with the pool
        try:
            for done, found in enumerate(self._pending, start=1):
                out.update(found)
                if self.progress:
                    self.progress(min(self.count, done * CHUNK))
        finally:
            self.close()
        return dict(sorted(out.items()))


def _validate_chunk(chunk: list[tuple[int, str, bytes]]) -> list[tuple[int, str]]:
    found = []
    for i, version, raw in chunk:
        reason = _reason(raw, version)
        if reason:
            found.append((i, reason))
    return found


def _reason(resource: dict | bytes, version: str) -> str | None:
    return validation_error(orjson.loads(resource) if isinstance(resource, bytes) else resource, version)


class StreamedValidation:
    """The validation of resources handed over as they are made (to-fhir's parts), each `add(key, raw)`
    with its JSON bytes: in `jobs` forked workers when `parallel` (the pool takes chunks from a short
    queue, so only a few are in flight), else here at once. `reasons()` waits for the workers and gives
    {key: one-line reason} of the invalid ones, by key (any key that sorts: to-fhir's is (place, source))."""

    def __init__(self, version: str, jobs: int | None = None, parallel: bool = True,
                 kinds: Iterable[tuple[str, str]] = ()):
        self.version = version
        self._found: dict[Any, str] = {}
        self._chunk: list[tuple[Any, str, bytes]] = []
        self._pool = self._pending = None
        jobs = jobs or default_jobs()
        if parallel and jobs > 1 and "fork" in multiprocessing.get_all_start_methods():
            for version_, resource_type in set(kinds):
                model_class(version_, resource_type)
            self._queue: queue.Queue = queue.Queue(maxsize=2 * jobs)
            self._pool = multiprocessing.get_context("fork").Pool(jobs)
            self._pending = self._pool.imap_unordered(_validate_chunk, iter(self._queue.get, None))

    def __enter__(self) -> StreamedValidation:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Stop the workers, also when the caller failed: the pool's feeder, waiting on the queue, is
        told there is no more first."""
        if self._pool is not None:
            try:
                while True:
                    self._queue.get_nowait()
            except queue.Empty:
                self._queue.put(None)
            self._pool.terminate()
            self._pool.join()
            self._pool = None

    def add(self, key: Any, raw: bytes) -> None:
        if self._pool is None:
            reason = _reason(raw, self.version)
            if reason:
                self._found[key] = reason
            return
        self._chunk.append((key, self.version, raw))
        if len(self._chunk) >= CHUNK:
            self._queue.put(self._chunk)
            self._chunk = []

    def reasons(self) -> dict[Any, str]:
        if self._pool is not None:
            assert self._pending is not None  # set with the pool
            if self._chunk:
                self._queue.put(self._chunk)
            self._queue.put(None)
            try:
                for found in self._pending:
                    self._found.update(found)
            finally:
                self.close()
        return dict(sorted(self._found.items()))
