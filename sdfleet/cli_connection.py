"""How every client command finds the server: one pair of options and environment variables.

`--server` / `SDFLEET_URL` and `--token` / `SDFLEET_TOKEN` everywhere; the older names (`SDFLEET_SERVER`,
`SDFLEET_API_KEY`, `--api-key`, `--url`) are still accepted, the new ones winning when both are set."""

from __future__ import annotations

from typing import Annotated

import typer

DEFAULT_SERVER = "http://127.0.0.1:8080"
SERVER_ENV = ["SDFLEET_URL", "SDFLEET_SERVER"]
TOKEN_ENV = ["SDFLEET_TOKEN", "SDFLEET_API_KEY"]

Server = Annotated[str, typer.Option("--server", "--url", envvar=SERVER_ENV, show_envvar=False,
                                     help="Server URL. Env: SDFLEET_URL (or SDFLEET_SERVER).")]
Token = Annotated[str | None, typer.Option("--token", "--api-key", envvar=TOKEN_ENV, show_envvar=False,
                                           help="API key (sfk_…) or session token. Env: SDFLEET_TOKEN "
                                                "(or SDFLEET_API_KEY).")]
MISSING_TOKEN = ("a token is required: --token or SDFLEET_TOKEN (create an API key in the web UI, "
                 "API & settings, or with POST /api/v1/api-keys)")
