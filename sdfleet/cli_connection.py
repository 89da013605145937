"""How every client command finds the server: one pair of options and environment variables.

`--server` / `SDFLEET_URL` and `--token` / `SDFLEET_TOKEN` everywhere; the older names (`SDFLEET_SERVER`,
`SDFLEET_API_KEY`, `--api-key`, `--url`) are still accepted, the new ones winning when both are set."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Annotated

import httpx
import typer
from rich.table import Column

DEFAULT_SERVER = "http://127.0.0.1:8080"
SERVER_ENV = ["SDFLEET_URL", "SDFLEET_SERVER"]
TOKEN_ENV = ["SDFLEET_TOKEN", "SDFLEET_API_KEY"]

Server = Annotated[str, typer.Option("--server", "--url", envvar=SERVER_ENV, show_envvar=False,
                                     help="Server URL. Env: SDFLEET_URL (or SDFLEET_SERVER).")]
Token = Annotated[str | None, typer.Option("--token", "--api-key", envvar=TOKEN_ENV, show_envvar=False,
                                           help="API key (sfk_…) or session token. Env: SDFLEET_TOKEN "
                                                "(or SDFLEET_API_KEY).")]
def id_column(header: str = "id") -> Column:
    """A table column for ids (26-character ULIDs) and hashes: never cut or wrapped, whatever the terminal's
    width, since users copy them into the next command; the other columns give way."""
    return Column(header, no_wrap=True, min_width=26)


MISSING_TOKEN = ("a token is required: --token or SDFLEET_TOKEN (create an API key in the web UI, "
                 "API & settings, or with POST /api/v1/api-keys)")


def sse_events(response: httpx.Response) -> Iterator[tuple[str, dict]]:
    """(event, data) pairs of a Server-Sent Events response, data parsed as JSON, until the stream ends."""
    response.raise_for_status()
    event, data = None, None
    for line in response.iter_lines():
        if line.startswith("event: "):
            event = line[7:]
        elif line.startswith("data: "):
            data = json.loads(line[6:])
        elif line == "" and event:
            yield event, data or {}
            event, data = None, None
