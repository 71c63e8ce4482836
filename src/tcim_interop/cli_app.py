"""The typer app the commands register on (cli.py, cli_server.py), and how a command fails: a user error
is one line on stderr and its exit code, never a traceback."""

from __future__ import annotations

from contextlib import contextmanager
from enum import Enum

import typer
import typer.core

from .errors import TcimError

app = typer.Typer(no_args_is_help=True, rich_markup_mode=None,
                  help="Convert the TCIM-ELAII trial's records between HL7 FHIR and CDISC SDTM.")


def _version(value: bool) -> None:
    if value:
        from . import __version__

        typer.echo(f"tcim-interop {__version__}")
        raise typer.Exit()


@app.callback()
def _main(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="Print the version and exit.")) -> None:
    """Convert the TCIM-ELAII trial's records between HL7 FHIR and CDISC SDTM."""


# Recent typer releases print a Python type after every placeholder ("inputs... <list[Path]>",
# "--out <path>"). Help reads better with the placeholders click users know: an option's metavar when
# it has one, else its type in capitals (PATH, TEXT, INTEGER, [R4|R5]); an argument's own name alone.
def _option_placeholder(self, ctx) -> str | None:
    if self.metavar is not None:
        return self.metavar
    label = self.display_type(ctx).strip("<>")
    if "|" in label:
        return f"[{label}]"
    return {"str": "TEXT", "int range": "INTEGER", "int": "INTEGER", "float": "NUMBER",
            "float range": "NUMBER"}.get(label, label.upper())


if hasattr(typer.core.TyperOption, "display_type_rich"):
    typer.core.TyperOption.display_type_rich = _option_placeholder  # type: ignore[method-assign]
    typer.core.TyperArgument.display_type_rich = lambda self, ctx: None  # type: ignore[method-assign]


class FhirVersion(str, Enum):  # options taking it say case_sensitive=False: r4 is R4
    R4 = "R4"
    R5 = "R5"



class MuneDomain(str, Enum):
    XM = "XM"
    NV = "NV"


def _fail(e: TcimError) -> None:
    typer.echo(f"error: {e}", err=True)
    raise typer.Exit(e.exit_code)


@contextmanager
def running(quiet: bool = False):
    """A command's body: a progress line for long runs (none with --quiet), and user errors as one line
    and an exit code."""
    from .progress import Progress

    progress = Progress(quiet=quiet)
    try:
        yield progress
    except TcimError as e:
        progress.close()
        _fail(e)
    finally:
        progress.close()
