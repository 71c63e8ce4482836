"""The pull and push commands (registered on cli_app.app when cli.py imports this module).

Credentials never appear on the command line: a bearer token comes from TCIM_FHIR_TOKEN; SMART Backend
Services needs a client id, a private key file and the token URL (options, or TCIM_FHIR_CLIENT_ID,
TCIM_FHIR_PRIVATE_KEY, TCIM_FHIR_TOKEN_URL). See docs/fhir-server.md.
"""

from __future__ import annotations

from pathlib import Path

import typer

from .cli_app import app, running

SERVER = typer.Option(..., "--server", metavar="URL", help="FHIR base URL, e.g. https://fhir.example.org/R4")
CLIENT_ID = typer.Option(None, "--client-id", metavar="ID", help="SMART Backend Services client id (or TCIM_FHIR_CLIENT_ID).")
PRIVATE_KEY = typer.Option(None, "--private-key", metavar="FILE",
                           help="PEM private key signing the SMART JWT: RSA (RS384) or EC P-384 (ES384) "
                                "(or TCIM_FHIR_PRIVATE_KEY).")
TOKEN_URL = typer.Option(None, "--token-url", metavar="URL", help="SMART token endpoint (or TCIM_FHIR_TOKEN_URL).")
SCOPE = typer.Option(None, "--scope", metavar="SCOPES", help="SMART scopes (default system/*.read for pull, system/*.write for push).")
KEY_ID = typer.Option(None, "--key-id", metavar="KID", help="kid of the SMART JWT (default: the key's JWK thumbprint).")
CA_BUNDLE = typer.Option(None, "--ca-bundle", metavar="FILE", help="PEM file of the CA(s) to trust instead of the system store.")
TIMEOUT = typer.Option(30.0, "--timeout", metavar="SECONDS", help="Seconds for a whole exchange: connecting, and the answer to its last byte.")
RETRIES = typer.Option(4, "--retries", min=0, max=10, metavar="N", help="Retries on 429, 5xx and lost connections.")
WORKERS = typer.Option(4, "--workers", min=1, max=16, metavar="N", help="Requests in flight at most.")
QUIET = typer.Option(False, "--quiet", "-q", help="No summary on the terminal.")


def server_options(client_id, private_key, token_url, scope, key_id, ca_bundle, timeout, retries, workers):
    from .fhir.client import ServerOptions

    return ServerOptions(client_id=client_id, private_key=private_key, token_url=token_url, scope=scope,
                         key_id=key_id, ca_bundle=ca_bundle, timeout=timeout, retries=retries, workers=workers)


@app.command("pull")
def pull_cmd(
    server: str = SERVER,
    study: str = typer.Option(..., "--study", metavar="ID", help="The overall study's identifier: value, or system|value."),
    out: Path = typer.Option(..., "--out", "-o", metavar="DIR", help="Directory for the NDJSON files (new, empty, or a previous pull)."),
    page_size: int = typer.Option(500, "--page-size", min=1, max=10000, metavar="N", help="_count asked of the server per page."),
    client_id: str | None = CLIENT_ID, private_key: Path | None = PRIVATE_KEY,
    token_url: str | None = TOKEN_URL, scope: str | None = SCOPE, key_id: str | None = KEY_ID,
    ca_bundle: Path | None = CA_BUNDLE, timeout: float = TIMEOUT, retries: int = RETRIES,
    workers: int = WORKERS, quiet: bool = QUIET,
) -> None:
    """Download a study's records from a FHIR server as NDJSON, the input to-sdtm reads.

    Example:  tcim-interop pull --server https://fhir.example.org/R4 --study TCIM-ELAII --out export/
    """
    from .fhir.exchange import pull_to_directory

    with running(quiet) as progress:
        result = pull_to_directory(server, study, out, page_size=page_size, progress=progress, options=server_options(
            client_id, private_key, token_url, scope, key_id, ca_bundle, timeout, retries, workers))
    for w in result.warnings:
        typer.echo(f"warning: {w}", err=True)
    if not quiet:
        kinds = ", ".join(f"{n} {t}" for t, n in sorted(result.counts.items()))
        typer.echo(f"{result.resources} resources ({kinds}) pulled to {out} in {result.seconds:.1f} s, "
                   f"{result.requests} requests", err=True)


@app.command("push")
def push_cmd(
    bundle: Path = typer.Argument(..., metavar="BUNDLE", help="A transaction (or batch) Bundle, e.g. written by to-fhir."),
    server: str = SERVER,
    batch_size: int = typer.Option(50, "--batch-size", min=1, max=10000, metavar="N",
                                   help="Entries per transaction (some servers refuse more than 50 updates in one)."),
    client_id: str | None = CLIENT_ID, private_key: Path | None = PRIVATE_KEY,
    token_url: str | None = TOKEN_URL, scope: str | None = SCOPE, key_id: str | None = KEY_ID,
    ca_bundle: Path | None = CA_BUNDLE, timeout: float = TIMEOUT, retries: int = RETRIES,
    workers: int = WORKERS, quiet: bool = QUIET,
) -> None:
    """Load a to-fhir transaction bundle into a FHIR server, in transactions of --batch-size entries.

    Exit 1 when the server refused anything (each issue is one line on stderr).

    Example:  tcim-interop push study.json --server https://fhir.example.org/R4
    """
    from .fhir.exchange import push_bundle

    with running(quiet) as progress:
        result = push_bundle(bundle, server, batch_size=batch_size, progress=progress, options=server_options(
            client_id, private_key, token_url, scope, key_id, ca_bundle, timeout, retries, workers))
    for line in result.messages:
        typer.echo(line, err=True)
    if result.not_sent:
        typer.echo(f"not sent: {result.not_sent} entries of later dependency levels, after a refusal", err=True)
    if not quiet:
        typer.echo(f"{result.created + result.updated + result.refused + result.not_sent} entries in "
                   f"{result.transactions} transaction(s): {result.created} created, {result.updated} updated, "
                   f"{result.refused} refused, {result.not_sent} not sent ({result.seconds:.1f} s, "
                   f"{result.requests} requests)", err=True)
    if not result.ok:
        raise typer.Exit(1)
