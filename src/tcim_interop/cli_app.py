"""The typer app the commands register on (cli.py, cli_server.py), and how a command fails: a user error
is one line on stderr and its exit code, never a traceback."""

from __future__ import annotations

from contextlib import contextmanager
from enum import Enum

import typer

from .errors import TcimError

app = typer.Typer(add_completion=False, no_args_is_help=True, rich_markup_mode=None,
                  help="Convert the TCIM-ELAII trial's records between HL7 FHIR and CDISC SDTM.")


class FhirVersion(str, Enum):
    R4 = "R4"
    R5 = "R5"


class MuneDomain(str, Enum):
    XM = "XM"
    NV = "NV"


def _fail(e: TcimError) -> None:
    typer.echo(f"error: {e}", err=True)
    raise typer.Exit(e.exit_code)


@contextmanager
def running():
    """A command's body: a progress line for long runs, and user errors as one line and an exit code."""
    from .progress import Progress

    progress = Progress()
    try:
        yield progress
    except TcimError as e:
        progress.close()
        _fail(e)
    finally:
        progress.close()
