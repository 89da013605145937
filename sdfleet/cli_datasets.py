"""`sdfleet datasets`: create, upload a folder (kohya captions and repeat folders) with a progress bar, list."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from sdfleet.cli_connection import id_column
from sdfleet.cli_models import ApiClient, Server, ServerRefused, Token, console
from sdfleet.domain.dataset_files import plan_files
from sdfleet.domain.errors import InvalidInput

datasets_app = typer.Typer(help="Training datasets: create, upload folders or zips, list.", no_args_is_help=True)


def _fail(message: str, code: int = 2):
    console.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(code)


def find_dataset(client: ApiClient, name_or_id: str) -> dict:
    """The visible dataset with this id, or the caller's (else any visible) dataset with this exact name."""
    if len(name_or_id) == 26:
        try:
            return client.call("GET", f"/datasets/{name_or_id}")
        except ServerRefused as exc:
            if exc.status != 404:
                raise
    matches, cursor = [], None
    while True:
        page = client.call("GET", "/datasets", params={"name": name_or_id, "limit": 200,
                                                      **({"cursor": cursor} if cursor else {})})
        matches += [d for d in page["items"] if d["name"] == name_or_id]
        cursor = page["next_cursor"]
        if not cursor:
            break
    me = client.call("GET", "/me")["id"]
    matches.sort(key=lambda d: d["user_id"] != me)
    if not matches:
        _fail(f"no dataset named {name_or_id!r} that you may see")
    return matches[0]


def _image_sha256s(client: ApiClient, dataset_id: str) -> set[str]:
    found, cursor = set(), None
    while True:
        page = client.call("GET", f"/datasets/{dataset_id}/images",
                           params={"limit": 200, **({"cursor": cursor} if cursor else {})})
        found |= {i["sha256"] for i in page["items"]}
        cursor = page["next_cursor"]
        if not cursor:
            return found


def upload_folder(client: ApiClient, dataset: dict, folder: Path, *, repeats: int = 1) -> int:
    """Upload a folder's images with their sidecar captions and `N_name` repeats, skipping images the dataset
    already holds (a rerun resumes). Returns how many were uploaded."""
    paths = [p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()]
    try:
        planned = plan_files(paths, default_repeats=repeats)
    except InvalidInput as exc:
        _fail(exc.message)
    present = _image_sha256s(client, dataset["id"])
    uploaded = 0
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console) as progress:
        task = progress.add_task(f"uploading to {dataset['name']}", total=len(planned))
        for item in planned:
            data = (folder / item.path).read_bytes()
            if hashlib.sha256(data).hexdigest() not in present:
                caption = item.folder_caption
                if item.caption_path is not None:
                    caption = (folder / item.caption_path).read_text(encoding="utf-8", errors="replace")
                try:
                    client.call("POST", f"/datasets/{dataset['id']}/images", files={"file": (item.path, data)},
                                data={"caption": caption, "repeats": str(item.repeats)})
                except ServerRefused as exc:
                    progress.stop()
                    _fail(f"{item.path}: {exc.message}")
                uploaded += 1
            progress.advance(task)
    return uploaded


@datasets_app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="Dataset name (yours; unique among your datasets).")],
    server: Server = "http://127.0.0.1:8080",
    token: Token = None,
    resolution: Annotated[int, typer.Option(help="Training resolution the images are checked against.")] = 512,
    share: Annotated[list[str] | None, typer.Option(help="A role that may see it ('*': every trainer).")] = None,
    description: Annotated[str, typer.Option()] = "",
) -> None:
    """Create an empty dataset."""
    client = ApiClient(server, token)
    try:
        dataset = client.call("POST", "/datasets", json={"name": name, "resolution": resolution,
                                                         "description": description, "allowed_roles": share})
    except ServerRefused as exc:
        _fail(exc.message)
    print(dataset["id"])


@datasets_app.command("upload")
def upload(
    source: Annotated[Path, typer.Argument(exists=True, help="A folder (kohya layout) or a .zip of one.")],
    dataset: Annotated[str, typer.Option("--dataset", "-d", help="Dataset name or id; created if missing.")],
    server: Server = "http://127.0.0.1:8080",
    token: Token = None,
    resolution: Annotated[int, typer.Option(help="Resolution of a dataset created here.")] = 512,
    repeats: Annotated[int, typer.Option(min=1, max=100, help="Repeats of images outside `N_name` folders.")] = 1,
) -> None:
    """Upload images with their `.txt` captions; `N_name` folders repeat their images N times per epoch."""
    client = ApiClient(server, token)
    try:
        try:
            found = find_dataset(client, dataset)
        except typer.Exit:
            found = client.call("POST", "/datasets", json={"name": dataset, "resolution": resolution})
            console.print(f"created dataset {found['name']} ({found['id']}) at {resolution} px")
        if source.is_dir():
            count = upload_folder(client, found, source, repeats=repeats)
        else:
            with source.open("rb") as handle:
                count = len(client.call("POST", f"/datasets/{found['id']}/images", files={"file": (source.name, handle)},
                                        data={"repeats": str(repeats)})["items"])
        final = client.call("GET", f"/datasets/{found['id']}")
    except ServerRefused as exc:
        _fail(exc.message)
    console.print(f"{count} image(s) uploaded; {final['name']} holds {final['image_count']} "
                  f"(content hash {final['content_hash'][:12]})")


@datasets_app.command("list")
def list_(server: Server = "http://127.0.0.1:8080", token: Token = None) -> None:
    """Datasets you may see."""
    client = ApiClient(server, token)
    table = Table(id_column(), "name", "images", "resolution", "shared with", "content hash")
    cursor = None
    while True:
        page = client.call("GET", "/datasets", params={"limit": 200, **({"cursor": cursor} if cursor else {})})
        for d in page["items"]:
            table.add_row(d["id"], d["name"], str(d["image_count"]), str(d["resolution"]),
                          ", ".join(d["allowed_roles"]) or "-", d["content_hash"][:12])
        cursor = page["next_cursor"]
        if not cursor:
            break
    console.print(table)


@datasets_app.command("delete")
def delete(dataset: Annotated[str, typer.Argument(help="Dataset name or id.")],
           server: Server = "http://127.0.0.1:8080", token: Token = None) -> None:
    """Delete a dataset and its images."""
    client = ApiClient(server, token)
    found = find_dataset(client, dataset)
    try:
        client.call("DELETE", f"/datasets/{found['id']}")
    except ServerRefused as exc:
        _fail(exc.message)
    console.print(f"deleted {found['name']}")
