"""`sdfleet models`: upload (resumable, with a progress bar), import, list, and the demo models."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, BinaryIO

import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn
from rich.table import Table

from sdfleet.cli_connection import DEFAULT_SERVER, MISSING_TOKEN, Server, Token, id_column
from sdfleet.domain.checkpoints import PICKLE_EXTENSIONS, SAFE_EXTENSIONS

MODEL_EXTENSIONS = SAFE_EXTENSIONS + PICKLE_EXTENSIONS

models_app = typer.Typer(help="The model registry: upload, import, list, demo models.", no_args_is_help=True)
console = Console(stderr=True, soft_wrap=True)

RETRIES = 8
#: demo files: file name → type (the demo builder's output, see sdfleet.engine.demo)
DEMO_TIMEOUT_S = 600


def _fail(message: str, code: int = 2):
    console.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(code)


# 1. Talking to a server


class ApiClient:
    """A small JSON client of /api/v1 with the caller's token; errors become one readable line."""

    def __init__(self, server: str, token: str | None) -> None:
        import httpx

        if not token:
            _fail(MISSING_TOKEN)
        self._http = httpx.Client(base_url=server.rstrip("/") + "/api/v1", timeout=httpx.Timeout(300, connect=10),
                                  headers={"Authorization": f"Bearer {token}"})

    def call(self, method: str, path: str, **kwargs) -> dict:
        response = self._http.request(method, path, **kwargs)
        if response.status_code >= 400:
            try:
                error = response.json()["error"]
                message = error["message"]
            except (ValueError, KeyError, TypeError):
                message = response.text[:300]
            raise ServerRefused(response.status_code, message)
        return response.json() if response.content else {}


class ServerRefused(Exception):
    """The server answered 4xx/5xx: retrying the same request will not help (except 5xx)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message


def _state_path(path: Path) -> Path:
    """Where the upload id of this exact file (path, size, mtime) is kept so a rerun resumes it."""
    stat = path.stat()
    key = hashlib.sha256(f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()[:32]
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "sdfleet" / "uploads"
    return base / f"{key}.json"


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _open_or_resume(client: ApiClient, path: Path, *, body: dict, server: str) -> dict:
    state_file = _state_path(path)
    if state_file.exists():
        saved = json.loads(state_file.read_text())
        if saved.get("server") == server:
            try:
                upload = client.call("GET", f"/checkpoints/uploads/{saved['upload_id']}")
                if upload["status"] == "open":
                    console.print(f"resuming upload {upload['upload_id']}: {len(upload['parts'])} parts already sent")
                    return upload
            except ServerRefused:
                pass
    upload = client.call("POST", "/checkpoints/uploads", json=body)
    state_file.parent.mkdir(parents=True, exist_ok=True)
    state_file.write_text(json.dumps({"server": server, "upload_id": upload["upload_id"]}))
    return upload


@dataclass(frozen=True)
class _FilePart:
    """One part read from the file, with its sha256."""

    number: int
    data: bytes
    sha256: str


class _PartFeed:
    """Reads and hashes parts one ahead of the part being sent (hashlib releases the GIL, so this overlaps the
    transfer); keeps the whole-file sha256 while parts come in order."""

    def __init__(self, handle: BinaryIO, *, part_size: int) -> None:
        self._handle = handle
        self._part_size = part_size
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sdfleet-upload-read")
        self.whole = hashlib.sha256()
        self.hashed_parts = 0  # parts 1..hashed_parts are in `whole`

    def parts(self, numbers: list[int]) -> Iterator[_FilePart]:
        """Yield the parts `numbers` in that order, reading the next while the caller sends the current one."""
        pending: Future[_FilePart] | None = None
        for n in numbers:
            following = self._pool.submit(self._load, n)
            if pending is not None:
                yield pending.result()
            pending = following
        if pending is not None:
            yield pending.result()

    def close(self) -> None:
        """Wait for a read in flight and stop the reader thread."""
        self._pool.shutdown(wait=True)

    def _load(self, n: int) -> _FilePart:
        # Runs on the one reader thread, so parts are loaded (and `whole` updated) strictly in submission order.
        self._handle.seek((n - 1) * self._part_size)
        data = self._handle.read(self._part_size)
        if n == self.hashed_parts + 1:
            self.whole.update(data)
            self.hashed_parts = n
        return _FilePart(number=n, data=data, sha256=hashlib.sha256(data).hexdigest())


def name_with_extension(name: str, path: Path) -> str:
    """`--name realsd15` for `model.safetensors` registers `realsd15.safetensors`: a name without a model file
    extension takes the file's."""
    if name.lower().endswith(MODEL_EXTENSIONS) or not path.suffix.lower().endswith(MODEL_EXTENSIONS):
        return name
    return f"{name}{path.suffix.lower()}"


def upload_file(client: ApiClient, path: Path, *, model_type: str, name: str | None, roles: list[str] | None,
                server: str) -> dict:
    """Upload `path` in parts, resuming after dropped connections and across reruns; return the checkpoint."""

    size = path.stat().st_size
    # The whole-file sha256 is computed while the parts go out in order (no extra pass over a large file)
    # and sent at completion, where the server checks it against what it assembled.
    body = {"filename": path.name, "type": model_type, "size": size}
    if name:
        body["name"] = name_with_extension(name, path)
    if roles:
        body["allowed_roles"] = roles
    upload = _open_or_resume(client, path, body=body, server=server)
    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
               TimeRemainingColumn())
    with Progress(*columns, console=console) as progress, path.open("rb") as handle:
        done = sum(p["size"] for p in upload["parts"])
        task = progress.add_task(path.name, total=size, completed=done)
        feed = _PartFeed(handle, part_size=upload["part_size"])
        try:
            _send_parts(client, upload, feed=feed, progress=progress, task=task)
        finally:
            feed.close()
        whole, hashed_parts = feed.whole, feed.hashed_parts
        # After the last part the server checks the whole file's hash and inspects it (seconds for GBs).
        progress.update(task, description=f"{path.name}: verifying…")
        digest = whole.hexdigest() if hashed_parts == upload["part_count"] else _file_sha256(path)
        checkpoint = client.call("POST", f"/checkpoints/uploads/{upload['upload_id']}/complete",
                                 json={"sha256": digest})
        progress.update(task, description=f"{path.name}: registered")
    _state_path(path).unlink(missing_ok=True)
    return checkpoint


def _send_parts(client: ApiClient, upload: dict, *, feed: _PartFeed, progress: Progress, task) -> None:
    """PUT the missing parts; after a dropped connection or a 5xx, ask the server what is missing and go on."""
    import httpx

    for attempt in range(RETRIES + 1):
        try:
            for part in feed.parts(upload["missing_parts"]):
                client.call("PUT", f"/checkpoints/uploads/{upload['upload_id']}/parts/{part.number}",
                            content=part.data,
                            headers={"X-Part-SHA256": part.sha256, "Content-Type": "application/octet-stream"})
                progress.advance(task, len(part.data))
            return
        except (httpx.TransportError, ServerRefused) as exc:
            if isinstance(exc, ServerRefused) and exc.status < 500 or attempt == RETRIES:
                raise
            delay = min(30, 2**attempt)
            progress.console.print(f"connection problem ({exc}); resuming in {delay} s")
            time.sleep(delay)
            upload = client.call("GET", f"/checkpoints/uploads/{upload['upload_id']}")
            progress.update(task, completed=sum(p["size"] for p in upload["parts"]))


@models_app.command("upload")
def upload(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True, help="Model file.")],
    model_type: Annotated[str, typer.Option("--type", help="Stable-diffusion, Lora, VAE, ControlNet, embeddings, "
                                                           "upscaler.")],
    name: Annotated[str | None, typer.Option(help="Registered name (default: the file name; without an "
                                                  "extension it takes the file's).")] = None,
    role: Annotated[list[str] | None, typer.Option("--role", help="Role that may see it; repeat (default: everyone).")] = None,
    server: Server = DEFAULT_SERVER,
    token: Token = None,
) -> None:
    """Upload a model file in parts; a dropped connection or a rerun resumes where it stopped."""
    client = ApiClient(server, token)
    try:
        checkpoint = upload_file(client, file, model_type=model_type, name=name, roles=role, server=server)
    except ServerRefused as exc:
        _fail(exc.message)
    console.print(f"registered {checkpoint['name']} ({checkpoint['type']}, {checkpoint['architecture']}, "
                  f"{checkpoint['short_hash']}) as {checkpoint['id']}")


@models_app.command("import")
def import_(
    url: Annotated[str, typer.Argument(help="http(s) URL of a model file.")],
    model_type: Annotated[str, typer.Option("--type", help="Model type.")],
    name: Annotated[str | None, typer.Option(help="Registered name (default: from the URL).")] = None,
    server: Server = DEFAULT_SERVER,
    token: Token = None,
) -> None:
    """Have the server fetch a model from a URL, and follow its progress."""
    client = ApiClient(server, token)
    try:
        job = client.call("POST", "/checkpoints/imports", json={"url": url, "type": model_type,
                                                                 **({"name": name} if name else {})})
        while job["status"] in ("queued", "running"):
            time.sleep(1)
            job = client.call("GET", f"/checkpoints/imports/{job['id']}")
            console.print(f"{job['status']}: {job['bytes_done']} / {job['bytes_total'] or '?'} bytes", end="\r")
    except ServerRefused as exc:
        _fail(exc.message)
    if job["status"] != "succeeded":
        _fail(f"import failed: {job['error']}")
    console.print(f"\nregistered as {job['checkpoint_id']}")


@models_app.command("list")
def list_(
    model_type: Annotated[str | None, typer.Option("--type", help="Only this type.")] = None,
    architecture: Annotated[str | None, typer.Option(help="Only this architecture (sd1, sdxl …).")] = None,
    server: Server = DEFAULT_SERVER,
    token: Token = None,
) -> None:
    """The models you may see."""
    client = ApiClient(server, token)
    table = Table("name", "type", "architecture", "precision", "size", "hash", id_column())
    cursor = None
    try:
        while True:
            params = {k: v for k, v in {"type": model_type, "architecture": architecture, "cursor": cursor}.items()
                      if v}
            page = client.call("GET", "/checkpoints", params=params)
            for c in page["items"]:
                table.add_row(c["name"], c["type"], c["architecture"], c["precision"], str(c["size"]),
                              c["short_hash"], c["id"])
            cursor = page["next_cursor"]
            if not cursor:
                break
    except ServerRefused as exc:
        _fail(exc.message)
    Console().print(table)


# 2. Demo models (on the server host, as the operator)


def build_demo_files(out_dir: Path) -> list[dict]:
    """Run the demo builder in a subprocess (this process never imports torch); return its file list."""
    command = [sys.executable, "-m", "sdfleet.engine.demo", str(out_dir)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=DEMO_TIMEOUT_S, check=False)
    if done.returncode != 0:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"demo model builder failed: {tail}")
    files = []
    for line in done.stdout.strip().splitlines():
        name, model_type, architecture, size, sha256, path = line.split("\t")
        files.append({"name": Path(path).name, "type": model_type, "architecture": architecture, "path": Path(path)})
    return files


def register_demo_models(checkpoints) -> list:
    """Build the demo models and register the ones whose names are free (everyone may see them)."""
    from sdfleet.domain.errors import Conflict

    registered = []
    with tempfile.TemporaryDirectory(prefix="sdfleet-demo-") as folder:
        for demo in build_demo_files(Path(folder)):
            try:
                registered.append(checkpoints.register_file(demo["path"], name=demo["name"],
                                                            model_type=demo["type"], allowed_roles=["*"],
                                                            source="demo"))
            except Conflict:
                continue
    return registered


def ensure_demo_models(checkpoints) -> list:
    """On an empty registry, create and register the demo models (what `serve` does unless --no-demo)."""
    if not checkpoints.is_empty():
        return []
    return register_demo_models(checkpoints)


@models_app.command("create-demo")
def create_demo(
    data_dir: Annotated[Path | None, typer.Option("--data-dir", help="Data directory. Env: SDFLEET_DATA_DIR.")] = None,
) -> None:
    """Build tiny random SD 1.x and SDXL checkpoints and a LoRA, and register them (visible to everyone)."""
    from sdfleet.bootstrap import StartupError, start_runtime
    from sdfleet.settings import Settings

    try:
        runtime = start_runtime(Settings(**({"data_dir": data_dir} if data_dir else {})))
    except StartupError as exc:
        _fail(str(exc))
    for checkpoint in register_demo_models(runtime.services.checkpoints):
        console.print(f"registered {checkpoint.name} ({checkpoint.model_type.value}, {checkpoint.architecture}, "
                      f"{checkpoint.size} bytes)")
