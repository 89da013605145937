"""`sdfleet generate`: submit a txt2img job through the API, follow its progress, save the images."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import httpx
import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from sdfleet.cli_connection import DEFAULT_SERVER, MISSING_TOKEN, Server, Token, sse_events

console = Console(stderr=True, soft_wrap=True)


def _events(client: httpx.Client, job_id: str):
    """Parse the job's Server-Sent Events into (event, data) pairs."""
    with client.stream("GET", f"/api/v1/inferences/{job_id}/events", timeout=httpx.Timeout(30, read=None)) as r:
        yield from sse_events(r)


def generate(
    prompt: Annotated[str, typer.Argument(help="What to draw. <lora:name:weight> tags work.")],
    model: Annotated[str | None, typer.Option(help="Checkpoint name (default: the first you may use).")] = None,
    out: Annotated[Path, typer.Option(help="Directory for the PNGs.")] = Path("."),
    negative: Annotated[str, typer.Option(help="Negative prompt.")] = "",
    steps: Annotated[int, typer.Option(min=1, max=10000)] = 20,
    width: Annotated[int, typer.Option(min=64, max=16384)] = 512,
    height: Annotated[int, typer.Option(min=64, max=16384)] = 512,
    cfg: Annotated[float, typer.Option(help="CFG scale.")] = 7.0,
    seed: Annotated[int, typer.Option(help="-1 for random.")] = -1,
    sampler: Annotated[str, typer.Option(help='A1111 sampler name, e.g. "Euler a", "DPM++ 2M Karras".')] = "Euler a",
    batch_size: Annotated[int, typer.Option(min=1, max=64)] = 1,
    server: Server = DEFAULT_SERVER,
    token: Token = None,
) -> None:
    """Generate images on the fleet and save them (with their parameters embedded) to --out."""
    if not token:
        console.print(f"[bold red]error:[/] {MISSING_TOKEN}")
        raise typer.Exit(2)
    params = {"prompt": prompt, "negative_prompt": negative, "steps": steps, "width": width, "height": height,
              "cfg_scale": cfg, "seed": seed, "sampler_name": sampler, "batch_size": batch_size}
    if model:
        params["override_settings"] = {"sd_model_checkpoint": model}
    with httpx.Client(base_url=server.rstrip("/"), headers={"Authorization": f"Bearer {token}"},
                      timeout=60) as client:
        r = client.post("/api/v1/inferences", json={"task": "txt2img", "params": params})
        if r.status_code != 202:
            error = r.json().get("error", {}) if r.headers.get("content-type", "").startswith("application/json") else {}
            console.print(f"[bold red]error:[/] {error.get('message') or r.text}")
            raise typer.Exit(1)
        job_id = r.json()["id"]
        console.print(f"job {job_id} queued")
        with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                      TimeElapsedColumn(), console=console) as bar:
            task = bar.add_task("queued", total=steps)
            final = None
            for event, data in _events(client, job_id):
                if event == "started":
                    bar.update(task, description="running")
                elif event == "progress" and data.get("phase") == "loading_model":
                    # A worker loading a model reports no steps for a while (a minute for SD 1.5 on a CPU).
                    bar.update(task, description=f"loading model {data.get('model') or ''}".strip())
                elif event == "progress":
                    bar.update(task, description="running", completed=data.get("value", 0),
                               total=data.get("max") or steps)
                elif event in ("succeeded", "failed", "cancelled"):
                    final = event
                    bar.update(task, description=event)
                    break
        job = client.get(f"/api/v1/inferences/{job_id}").json()
        if final != "succeeded":
            console.print(f"[bold red]{final}:[/] {(job.get('error') or {}).get('message', '')}")
            raise typer.Exit(1)
        out.mkdir(parents=True, exist_ok=True)
        for output in job["outputs"]:
            path = out / f"{job_id}-{output['index']}.png"
            path.write_bytes(client.get(output["url"]).content)
            typer.echo(str(path))
        console.print(f"seed {job.get('seed')}, model {job.get('model')}")
