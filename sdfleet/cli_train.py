"""`sdfleet train`: start a LoRA training and follow it with a progress bar (steps, loss), list, show, cancel,
download its LoRA or last checkpoint."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import httpx
import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from sdfleet.cli_connection import DEFAULT_SERVER, Server, Token, id_column, sse_events
from sdfleet.cli_datasets import find_dataset
from sdfleet.cli_models import ApiClient, ServerRefused, console

train_app = typer.Typer(help="LoRA trainings: start (with a progress bar), list, show, cancel, download.",
                        no_args_is_help=True)
TERMINAL = ("succeeded", "failed", "cancelled")


def _fail(message: str, code: int = 2):
    console.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(code)


def _value(text: str):
    """A `--set` value: JSON when it parses (numbers, true/false, null), else the text."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def training_events(server: str, token: str, job_id: str):
    """(event, data) pairs of a training's Server-Sent Events, until it ends."""
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.stream("GET", f"{server.rstrip('/')}/api/v1/trainings/{job_id}/events", headers=headers,
                      timeout=httpx.Timeout(30, read=None)) as r:
        yield from sse_events(r)


def follow(client: ApiClient, server: str, token: str, job_id: str) -> dict:
    """Show a progress bar (step of max steps, loss, ETA) until the training ends; returns the final record."""
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[loss]}"),
               TimeRemainingColumn())
    with Progress(*columns, console=console) as bar:
        task = bar.add_task("queued", total=None, loss="")
        for event, data in training_events(server, token, job_id):
            if event == "started":
                bar.update(task, description=f"running (attempt {data.get('attempt', 1)})")
            elif event == "requeued":
                bar.update(task, description=f"requeued ({data.get('reason', '')})")
            elif event == "progress":
                metrics = data.get("metrics") or {}
                loss = f"loss {metrics['loss']:.4f}" if "loss" in metrics else ""
                bar.update(task, completed=data.get("value", 0), total=data.get("max") or None,
                           **({"loss": loss} if loss else {}))
            elif event in TERMINAL:
                bar.update(task, description=event)
                break
    return client.call("GET", f"/trainings/{job_id}")


@train_app.command("start")
def start(
    dataset: Annotated[str, typer.Option("--dataset", "-d", help="Dataset name or id.")],
    base_model: Annotated[str, typer.Option("--base-model", "-m", help="Checkpoint to train on.")],
    name: Annotated[str, typer.Option("--name", "-n", help="The LoRA's name in the registry.")],
    steps: Annotated[int | None, typer.Option(help="max_train_steps (or give --epochs).")] = None,
    epochs: Annotated[int | None, typer.Option()] = None,
    rank: Annotated[int | None, typer.Option(help="network_rank (default 16).")] = None,
    alpha: Annotated[float | None, typer.Option(help="network_alpha (default 16).")] = None,
    unet_lr: Annotated[float | None, typer.Option(help="UNet learning rate (default 1e-4).")] = None,
    text_encoder_lr: Annotated[float | None, typer.Option(help="Text encoder learning rate (default 5e-5).")] = None,
    train_text_encoder: Annotated[bool, typer.Option(help="Train the text encoder(s) too.")] = False,
    resolution: Annotated[int | None, typer.Option(help="Default: the dataset's.")] = None,
    batch_size: Annotated[int | None, typer.Option(help="train_batch_size (default 1).")] = None,
    save_every: Annotated[int | None, typer.Option(help="save_every_n_steps: checkpoint period.")] = None,
    sample_every: Annotated[int | None, typer.Option(help="sample_every_n_steps.")] = None,
    sample_prompt: Annotated[list[str] | None, typer.Option(help="A sample prompt (repeatable).")] = None,
    seed: Annotated[int | None, typer.Option()] = None,
    share: Annotated[list[str] | None, typer.Option(help="A role that may use the LoRA ('*': everyone).")] = None,
    endpoint: Annotated[str | None, typer.Option(help="An endpoint whose workers train.")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="Any other parameter: name=value "
                                                                 "(e.g. --set lr_scheduler=cosine).")] = None,
    wait: Annotated[bool, typer.Option(help="Follow the training with a progress bar until it ends.")] = True,
    server: Server = DEFAULT_SERVER,
    token: Token = None,
) -> None:
    """Queue a LoRA training; prints its id, then (with --wait) steps and loss until the LoRA is registered."""
    client = ApiClient(server, token)
    given = {"max_train_steps": steps, "epochs": epochs, "network_rank": rank, "network_alpha": alpha,
             "unet_lr": unet_lr, "text_encoder_lr": text_encoder_lr, "resolution": resolution,
             "train_batch_size": batch_size, "save_every_n_steps": save_every, "sample_every_n_steps": sample_every,
             "seed": seed, "endpoint": endpoint, "allowed_roles": share}
    body = {k: v for k, v in given.items() if v is not None}
    if train_text_encoder:
        body["train_text_encoder"] = True
    if sample_prompt:
        body["samples"] = {"prompts": sample_prompt}
    for item in set_ or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            _fail(f"--set takes name=value, got {item!r}")
        body[key.strip()] = _value(value.strip())
    try:
        found = find_dataset(client, dataset)
        job = client.call("POST", "/trainings", json={"name": name, "base_model": base_model,
                                                      "dataset_id": found["id"], **body})
    except ServerRefused as exc:
        _fail(exc.message)
    typer.echo(job["id"])
    if not wait:
        return
    final = follow(client, server, token, job["id"])
    if final["status"] != "succeeded":
        _fail(f"training {final['status']}: {(final.get('error') or {}).get('message', '')}", code=1)
    lora = final["lora"]
    console.print(f"LoRA {lora['name']} registered ({lora['short_hash']}); use it as <lora:"
                  f"{lora['name'].removesuffix('.safetensors')}:1>", highlight=False)


@train_app.command("watch")
def watch(job_id: Annotated[str, typer.Argument()], server: Server = DEFAULT_SERVER, token: Token = None) -> None:
    """Follow a training with a progress bar until it ends."""
    client = ApiClient(server, token)
    final = follow(client, server, token, job_id)
    console.print(f"{final['status']}" + (f": LoRA {final['lora']['name']}" if final.get("lora") else ""))


@train_app.command("list")
def list_(server: Server = DEFAULT_SERVER, token: Token = None) -> None:
    """Your trainings, newest first."""
    client = ApiClient(server, token)
    table = Table(id_column(), "status", "name", "base model", "dataset", "step", "LoRA")
    page = client.call("GET", "/trainings", params={"limit": 100})
    for t in page["items"]:
        p = t["progress"]
        table.add_row(t["id"], t["status"], t["name"], t["base_model"], t["dataset_name"],
                      f"{p['step']}/{p['max_steps']}", (t.get("lora") or {}).get("name", "-"))
    console.print(table)


@train_app.command("show")
def show(job_id: Annotated[str, typer.Argument()], server: Server = DEFAULT_SERVER, token: Token = None) -> None:
    """A training as JSON (parameters, progress, loss, the LoRA)."""
    client = ApiClient(server, token)
    try:
        typer.echo(json.dumps(client.call("GET", f"/trainings/{job_id}"), indent=2))
    except ServerRefused as exc:
        _fail(exc.message)


@train_app.command("cancel")
def cancel(job_id: Annotated[str, typer.Argument()], server: Server = DEFAULT_SERVER, token: Token = None) -> None:
    """Stop a training at its next step (its last checkpoint stays downloadable)."""
    client = ApiClient(server, token)
    try:
        job = client.call("POST", f"/trainings/{job_id}/cancel")
    except ServerRefused as exc:
        _fail(exc.message)
    console.print(f"{job['id']}: {job['status']}" + (" (stopping)" if job["cancel_requested"] else ""))


@train_app.command("download")
def download(job_id: Annotated[str, typer.Argument()],
             artifact: Annotated[str, typer.Option(help="lora.safetensors, grid.png, samples/… or 'checkpoint' "
                                                        "(the last one).")] = "lora.safetensors",
             out: Annotated[Path | None, typer.Option("--out", "-o")] = None,
             server: Server = DEFAULT_SERVER, token: Token = None) -> None:
    """Save a file of a training: the LoRA (default), the evaluation grid, a sample or the last checkpoint."""
    client = ApiClient(server, token)
    try:
        artifacts = client.call("GET", f"/trainings/{job_id}/artifacts")
    except ServerRefused as exc:
        _fail(exc.message)
    if artifact == "checkpoint":
        found = [a for a in artifacts if a["name"].startswith("checkpoints/")]
        found = found[-1:] if found else []
    else:
        found = [a for a in artifacts if a["name"] == artifact]
    if not found:
        _fail(f"training {job_id} has no {artifact}; it has: {', '.join(a['name'] for a in artifacts) or 'nothing'}")
    item = found[0]
    target = out or Path(f"{job_id}-{item['name'].replace('/', '-')}")
    with httpx.stream("GET", f"{server.rstrip('/')}{item['url']}", headers={"Authorization": f"Bearer {token}"},
                      timeout=httpx.Timeout(30, read=300)) as r, target.open("wb") as handle:
        for chunk in r.iter_bytes(1 << 20):
            handle.write(chunk)
    typer.echo(str(target))
