"""The exception tree. Exceptions are for misuse and unreadable input; problems found in the
data itself are findings (see findings.py), collected through the run and reported.

    TcimError                  base of everything this package raises on purpose
    ├── UsageError             bad arguments or options (exit code 2)
    ├── SpecError              a mapping spec or codelist that cannot be loaded (exit code 2)
    ├── InputError             an input file that cannot be read as what it claims to be (exit code 2)
    │   └── NoSubjectError     inputs of which no subject converts: no DM record, no delivery (.report: the run's)
    ├── OutputError            an output location that cannot be written (exit code 2)
    ├── ConformanceError       --strict run with error findings (exit code 1)
    └── ServerError            a FHIR server that cannot be reached or answers wrongly (fhir/client.py; exit code 2)

Every message is one line and names the file, and where it can, the resource or row.
"""

from __future__ import annotations


class TcimError(Exception):
    exit_code = 2


class UsageError(TcimError):
    pass


class SpecError(TcimError):
    pass


class InputError(TcimError):
    pass


class NoSubjectError(InputError):
    def __init__(self, message: str, report):
        super().__init__(message)
        self.report = report  # the accounting of what was read, for the API user (the CLI writes it beside --out)


class OutputError(TcimError):
    pass


class ConformanceError(TcimError):
    exit_code = 1
