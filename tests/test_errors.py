"""Every exception class of the package is in the tree of errors.py's docstring, so that a newcomer
finds there what can be raised, where it lives and whether it reaches the user."""

import importlib
import inspect
import pkgutil

import tcim_interop
from tcim_interop import errors


def _exception_classes() -> dict[str, str]:
    found = {}
    for info in pkgutil.walk_packages(tcim_interop.__path__, "tcim_interop."):
        if info.name.endswith(".__main__"):  # runs the command line when imported
            continue
        module = importlib.import_module(info.name)
        for name, cls in inspect.getmembers(module, inspect.isclass):
            if issubclass(cls, BaseException) and cls.__module__ == info.name:
                found[name] = info.name
    return found


def test_the_walk_finds_exceptions_outside_errors_py():
    found = _exception_classes()
    assert found["TcimError"] == "tcim_interop.errors"
    assert found["DateError"] == "tcim_interop.sdtm.dates"


def test_every_exception_class_is_in_the_documented_tree():
    missing = {name: module for name, module in _exception_classes().items()
               if f" {name} " not in errors.__doc__}
    assert not missing, f"exception classes not in errors.py's tree: {missing}"


def test_moved_exceptions_are_still_importable_where_they_were():
    from tcim_interop.fhir.client import ServerError
    from tcim_interop.fhir.read import NotFhirError

    assert ServerError is errors.ServerError and NotFhirError is errors.NotFhirError
