"""A small, strict subset of FHIRPath, enough for the mapping specs to name their FHIR sources.

    expr   := union ( "??" union )*          first of: the first union that yields something wins
    union  := alt ( "|" alt )*               FHIRPath union: every alternative's values, duplicates removed
    alt    := [ "%" var "." ] step ( "." step )*
    step   := name | name "(" args ")"
    funcs  := where(key = 'value' [and key = 'value'])   keep list items whose keys equal the values
              extension('url')                            the extensions with that url
              first()                                     the first item
              resolve()                                   the resources the references point at (in the input)

"??" is this project's own: FHIRPath has no "first of" operator (a ?? b is FHIRPath's
iif((a).exists(), a, b)); a path without it is plain FHIRPath, and tests/test_fhir_path.py checks
that fhirpathpy, the reference engine, gives the same values on the example data. Navigation flattens
lists as FHIRPath does. "%var" names another resource of the row's context (%patient, %subject, %site,
%study, %consent, %encounter, %condition, %event, %age); without it the path starts at the row's own resource. Paths
are compiled once when a spec is loaded, so a typo fails at load time.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache, cached_property
from typing import Any

_STEP = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*(?:\((.*?)\))?\s*$")
_ARG = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*'([^']*)'\s*")
FUNCTIONS = ("where", "extension", "first", "resolve")
# the %vars a row can resolve; %event: a subject's enrolment event (mapping/disposition.py), R5
# ResearchSubject.progress in shape whatever the resource it was read from; %age: the subject's age as an
# Observation about its Patient (dm.yaml rows: age)
VARIABLES = ("patient", "subject", "site", "study", "consent", "encounter", "condition", "event", "age")


Resolver = Callable[[Any], Any]  # a Reference (or its string) -> the resource it points at (a dict), or None


class PathSyntaxError(ValueError):
    pass


@dataclass(frozen=True)
class Step:
    name: str
    func: str | None = None  # where / extension / first
    args: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Alternative:
    var: str | None
    steps: tuple[Step, ...]

    def __hash__(self) -> int:  # a cache key of every value to-fhir writes: hashed once, not per write
        return self._hash

    @cached_property
    def elements(self) -> tuple[str, ...]:
        """The element names the alternative walks, its functions left out (fhir/shape.py has_element)."""
        return tuple(s.name for s in self.steps if s.func is None)

    @cached_property
    def _hash(self) -> int:
        return hash((self.var, self.steps))


@dataclass(frozen=True)
class Path:
    text: str
    groups: tuple[tuple[Alternative, ...], ...]  # the operands of ??, each a union of alternatives

    @cached_property
    def alternatives(self) -> tuple[Alternative, ...]:
        """Every alternative, in order: to-fhir writes at the first."""
        return tuple(a for group in self.groups for a in group)

    def values(self, roots: Callable[[str | None], Any], resolve: Resolver | None = None) -> list[Any]:
        """The values of the first ?? operand that yields any: one alternative's, or a union's."""
        for group in self.groups:
            if len(group) == 1:
                out = _values(group[0], roots, resolve)
            else:
                out = []
                for alt in group:
                    out += [v for v in _values(alt, roots, resolve) if v not in out]
            if out:
                return out
        return []

    def first(self, roots: Callable[[str | None], Any]) -> Any:
        vals = self.values(roots)
        return vals[0] if vals else None

    @property
    def variables(self) -> set[str]:
        return {a.var for a in self.alternatives if a.var}


def _values(alt: Alternative, roots: Callable[[str | None], Any], resolve: Resolver | None) -> list[Any]:
    start = roots(alt.var)
    if start is None:
        return []
    steps = alt.steps
    # most alternatives that yield nothing fail at their first element: no walk for them
    if steps and steps[0].func is None and isinstance(start, dict) and start.get(steps[0].name) is None:
        return []
    return _walk([start], steps, resolve)


def _split_top(text: str, sep: str) -> list[str]:
    """Split on sep (one or more characters) outside parentheses and quotes."""
    parts, depth, quote, start, i = [], 0, False, 0, 0
    while i < len(text):
        ch = text[i]
        if ch == "'":
            quote = not quote
        elif not quote and ch == "(":
            depth += 1
        elif not quote and ch == ")":
            depth -= 1
        elif not quote and depth == 0 and text.startswith(sep, i):
            parts.append(text[start:i])
            i += len(sep)
            start = i
            continue
        i += 1
    parts.append(text[start:])
    return parts


def _parse_step(raw: str, text: str) -> list[Step]:
    m = _STEP.match(raw)
    if not m:
        raise PathSyntaxError(f"cannot parse step {raw!r} in path {text!r}")
    name, args = m.group(1), m.group(2)
    if args is None:
        return [Step(name)]
    if name == "where":
        terms = _split_top(args, " and ")
        pairs = tuple((a.group(1), a.group(2)) for a in map(_ARG.fullmatch, terms) if a)
        if not pairs or len(pairs) != len(terms):
            raise PathSyntaxError(f"where() takes key = 'value' comparisons joined by 'and', got {args!r} "
                                  f"in path {text!r}")
        return [Step("", "where", pairs)]
    if name == "extension":
        url = args.strip().strip("'")
        if not url:
            raise PathSyntaxError(f"extension() needs a url in path {text!r}")
        return [Step("extension"), Step("", "where", (("url", url),))]
    if name == "resolve" and not args.strip():
        return [Step("", "resolve")]
    if name == "first" and not args.strip():
        return [Step("", "first")]
    raise PathSyntaxError(f"unknown function {name}() in path {text!r}; known: {', '.join(FUNCTIONS)}")


@cache
def compile_path(text: str) -> Path:
    if not text or not text.strip():
        raise PathSyntaxError("empty path")
    return Path(text, tuple(tuple(_alternative(a, text) for a in _split_top(g, "|")) for g in _split_top(text, "??")))


def _alternative(alt_text: str, text: str) -> Alternative:
    raw_steps = [s for s in _split_top(alt_text.strip(), ".")]
    if any(not s.strip() for s in raw_steps):
        raise PathSyntaxError(f"empty step in path {text!r}")
    var = None
    if raw_steps[0].strip().startswith("%"):
        var = raw_steps[0].strip()[1:]
        raw_steps = raw_steps[1:]
        if var not in VARIABLES:
            raise PathSyntaxError(f"unknown variable %{var} in path {text!r}; known: %{', %'.join(VARIABLES)}")
    steps: list[Step] = []
    for raw in raw_steps:
        steps.extend(_parse_step(raw, text))
    return Alternative(var, tuple(steps))


def _walk(items: list[Any], steps: tuple[Step, ...], resolve: Resolver | None = None) -> list[Any]:
    # the innermost loop of to-sdtm (every variable of every row): kept to plain dict/list operations
    for step in steps:
        func = step.func
        if func is None:
            name = step.name
            nxt: list[Any] = []
            for i in items:
                if isinstance(i, dict):
                    v = i.get(name)
                    if v is None:
                        continue
                    if isinstance(v, list):
                        nxt.extend(v if None not in v else [x for x in v if x is not None])
                    else:
                        nxt.append(v)
        elif func == "where":
            args = step.args
            if len(args) == 1:  # extension('url'), where(system='...'): one comparison, no generator
                (key, want), = args
                nxt = [i for i in items if isinstance(i, dict) and i.get(key) == want]
            else:
                nxt = [i for i in items if isinstance(i, dict) and all(i.get(k) == v for k, v in args)]
        elif func == "resolve":  # the resources the references point at, where the caller can find them
            nxt = [found for i in items if resolve is not None and (found := resolve(i)) is not None]
        else:  # first()
            nxt = items[:1]
        items = nxt
        if not items:
            return []
    return items


def set_value(target: dict, path: Path, value: Any, version: str, resource_type: str) -> None:
    """Write value at the first alternative of path, creating what is missing: lists where FHIR has
    lists (fhir.shape), items satisfying where(k='v') filters. A list-valued leaf gets the value
    appended unless an equal item is there."""
    node: Any = target
    for name, is_list, match, last in _write_plan(path.alternatives[0], version, resource_type):
        if last:
            leaf = {**match, **value} if isinstance(value, dict) and match else value
            if is_list:
                items = node.setdefault(name, [])
                if leaf not in items:
                    items.append(leaf)
            else:
                node[name] = leaf
            return
        if is_list:
            items = node.setdefault(name, [])
            found = next((x for x in items if isinstance(x, dict) and all(x.get(k) == v for k, v in match.items())), None)
            if found is None:
                found = dict(match)
                items.append(found)
            node = found
        else:
            child = node.get(name)
            if not isinstance(child, dict):
                child = dict(match)
                node[name] = child
            node = child


@cache
def _write_plan(alt: Alternative, version: str, resource_type: str) -> tuple[tuple[str, bool, dict, bool], ...]:
    """(element, is it a list, the where() filter its item must satisfy, is it the leaf) per named step:
    worked out once per path, not once per value written (to-fhir writes every cell). The filter
    dicts are shared: read, never changed."""
    from .shape import element

    steps = alt.steps
    plan = []
    names: list[str] = []
    for i, step in enumerate(steps):
        if step.func is not None:  # where()/first() after a list step are handled with that step
            continue
        names.append(step.name)
        is_list, _ = element(version, resource_type, tuple(names))
        nxt = steps[i + 1] if i + 1 < len(steps) else None
        match = dict(nxt.args) if nxt is not None and nxt.func == "where" else {}
        last = all(s.func is not None for s in steps[i + 1:])
        plan.append((step.name, is_list, match, last))
        if last:
            break
    return tuple(plan)
