"""`sdfleet notifications`: list your e-mail addresses and webhooks, send them a test event, see the outcome."""

from __future__ import annotations

import time
from typing import Annotated

import httpx
import typer
from rich.console import Console
from rich.table import Table

from sdfleet.cli_connection import MISSING_TOKEN, Server, Token, id_column

notifications_app = typer.Typer(help="Your notification subscriptions (through the API, with your API key).",
                                no_args_is_help=True)
console = Console(soft_wrap=True)
errors = Console(stderr=True, soft_wrap=True)

ApiKey = Token
BASE = "/api/v1/notifications"


def _client(server: str, api_key: str | None) -> httpx.Client:
    if not api_key:
        errors.print(f"[bold red]error:[/] {MISSING_TOKEN}")
        raise typer.Exit(2)
    return httpx.Client(base_url=server.rstrip("/"), headers={"Authorization": f"Bearer {api_key}"}, timeout=30)


def _check(response: httpx.Response) -> dict:
    if response.status_code >= 400:
        try:
            message = response.json()["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = response.text[:200]
        errors.print(f"[bold red]error:[/] {response.status_code}: {message}")
        raise typer.Exit(1)
    return response.json()


def _subscriptions(client: httpx.Client) -> list[dict]:
    items, cursor = [], None
    while True:
        page = _check(client.get(f"{BASE}/subscriptions", params={"limit": 200, **({"cursor": cursor} if cursor
                                                                                   else {})}))
        items += page["items"]
        cursor = page["next_cursor"]
        if not cursor:
            return items


@notifications_app.command("list")
def list_subscriptions(server: Server = "http://127.0.0.1:8080", api_key: ApiKey = None) -> None:
    """Your e-mail addresses and webhooks with their status."""
    with _client(server, api_key) as client:
        table = Table(id_column(), "channel", "target", "status", "events", "failures")
        for sub in _subscriptions(client):
            table.add_row(sub["id"], sub["channel"], sub["address"] or sub["url"], sub["status"],
                          ", ".join(sub["events"]) or "all", str(sub["consecutive_failures"]))
        console.print(table)


@notifications_app.command("test")
def send_test(
    subscription: Annotated[str | None, typer.Option(help="One subscription id (default: every active one).")] = None,
    wait: Annotated[float, typer.Option(help="Seconds to wait for the outcome of the first attempt.")] = 60.0,
    server: Server = "http://127.0.0.1:8080",
    api_key: ApiKey = None,
) -> None:
    """Send a test event to your subscriptions and print what each receiver answered (exit 1 if any failed)."""
    with _client(server, api_key) as client:
        targets = [s for s in _subscriptions(client) if s["status"] == "active" and
                   (subscription is None or s["id"] == subscription)]
        if subscription is not None and not targets:
            _check(client.get(f"{BASE}/subscriptions/{subscription}"))  # 404, or says why it is not active
            errors.print(f"[bold red]error:[/] subscription {subscription} is not active")
            raise typer.Exit(1)
        if not targets:
            errors.print("no active subscription: add an address or a webhook first (web UI: API & settings)")
            raise typer.Exit(1)
        queued = [(s, _check(client.post(f"{BASE}/subscriptions/{s['id']}/test"))) for s in targets]
        deadline = time.monotonic() + wait
        table = Table("target", "status", "code", "latency", "error")
        failed = False
        for sub, delivery in queued:
            while True:
                delivery = _check(client.get(f"{BASE}/deliveries/{delivery['id']}"))
                if delivery["attempts"] > 0 or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            ok = delivery["status"] == "succeeded"
            failed |= not ok
            status = delivery["status"] if delivery["attempts"] else "not attempted yet"
            table.add_row(sub["address"] or sub["url"], status, str(delivery["last_status_code"] or ""),
                          f"{delivery['last_latency_ms']} ms" if delivery["last_latency_ms"] is not None else "",
                          delivery["last_error"] or "")
        console.print(table)
        raise typer.Exit(1 if failed else 0)
