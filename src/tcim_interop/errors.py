"""The exception tree. Exceptions are for misuse and unreadable input; problems found in the
data itself are findings (see findings.py), collected through the run and reported.

    TcimError                  base of everything this package raises on purpose
    ├── UsageError             bad arguments or options (exit code 2)
    ├── SpecError              a mapping spec or codelist that cannot be loaded (exit code 2)
    ├── InputError             an input file that cannot be read as what it claims to be (exit code 2)
    │   ├── NotFhirError       a JSON or XML document that is no FHIR resource: an error when named,
    │   │                      skipped when met in a directory (raised by fhir/read.py, fhir/xml.py)
    │   └── NoSubjectError     inputs of which no subject converts: no DM record, no delivery (.report: the run's)
    ├── OutputError            an output location that cannot be written (exit code 2)
    ├── ConformanceError       --strict run with error findings (exit code 1)
    └── ServerError            a FHIR server that cannot be reached or answers wrongly (exit code 2; raised by
        │                      fhir/client.py, fhir/exchange.py)
        └── _Ignored           fhir/exchange.py: a search answered resources that do not match (the server
                               ignored a parameter); caught there to try the next parameter name, it
                               reaches the user, as a ServerError, only when the last one is ignored too

Internal signals, ValueError subclasses defined beside the code that raises them and caught by their
callers, so they never reach the user:

    ValueError
    ├── DateError              sdtm/dates.py: no FHIR date/dateTime/instant; the row algorithms make it a
    │                          BAD_DATE finding, to-fhir leaves the value as it is
    └── PathSyntaxError        fhir/path.py: a path of a mapping spec that cannot be parsed; the spec
                               loader raises it again as SpecError

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


class NotFhirError(InputError):
    """where: the file (and place in it); what: why it is not FHIR. A file met in a directory is skipped
    with `what` as the reason; one named on the command line stops the run with the whole message."""

    def __init__(self, where: str, what: str):
        super().__init__(f"{where}: {what}")
        self.what = what


class NoSubjectError(InputError):
    def __init__(self, message: str, report):
        super().__init__(message)
        self.report = report  # the accounting of what was read, for the API user (the CLI writes it beside --out)


class OutputError(TcimError):
    pass


class ConformanceError(TcimError):
    exit_code = 1


class ServerError(TcimError):
    """The server cannot be reached, refuses the credentials, or answers what cannot be used (exit 2)."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status  # the HTTP status when the server answered one
