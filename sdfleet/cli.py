"""The `sdfleet` command."""

from __future__ import annotations

import getpass
import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from sdfleet.domain.workers import EXIT_ORPHANED, EXIT_TOKEN_REFUSED
from sdfleet.settings import Settings

app = typer.Typer(help="sdfleet: self-hosted, multi-user Stable Diffusion.", no_args_is_help=True,
                  pretty_exceptions_enable=False)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
users_app = typer.Typer(help="Manage users from the server host (no permission checks: you are the operator).",
                        no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(users_app, name="users")
from sdfleet.cli_models import models_app  # noqa: E402 - the sub-app is defined beside this one

app.add_typer(models_app, name="models")
from sdfleet.cli_notifications import notifications_app  # noqa: E402 - the sub-app is defined beside this one

app.add_typer(notifications_app, name="notifications")
from sdfleet.cli_datasets import datasets_app  # noqa: E402

app.add_typer(datasets_app, name="datasets")
from sdfleet.cli_train import train_app  # noqa: E402

app.add_typer(train_app, name="train")
workers_app = typer.Typer(help="Worker identities for `sdfleet worker` on other hosts.", no_args_is_help=True)
app.add_typer(workers_app, name="workers")
console = Console(stderr=True, soft_wrap=True)

DataDir = Annotated[
    Path | None, typer.Option("--data-dir", help="Data directory (SQLite, objects). Env: SDFLEET_DATA_DIR.")
]


def _settings(**overrides) -> Settings:
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except Exception as exc:  # pydantic ValidationError: show the one line that matters
        errors = getattr(exc, "errors", None)
        if errors:
            first = errors()[0]
            field = ".".join(str(p) for p in first.get("loc", ()))
            _fail(f"bad setting {field.upper() and 'SDFLEET_' + field.upper()}: {first.get('msg')}")
        _fail(f"bad settings: {exc}")


def _fail(message: str, code: int = 2):
    console.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(code)


def _runtime(settings: Settings, *, migrate_db: bool = True):
    from sdfleet.bootstrap import StartupError, start_runtime

    try:
        return start_runtime(settings, migrate_db=migrate_db)
    except StartupError as exc:
        _fail(str(exc))


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to listen on. Env: SDFLEET_HOST.")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default 8080). Env: SDFLEET_PORT.")] = None,
    data_dir: DataDir = None,
    log_json: Annotated[bool, typer.Option("--log-json", help="Structured JSON logs.")] = False,
    no_demo: Annotated[bool, typer.Option("--no-demo", help="Do not create demo models on an empty registry.")] = False,
    comfy_port: Annotated[int, typer.Option(help="ComfyUI's own port (API and frontend at its root); 0 = off.")] = 8188,
) -> None:
    """Migrate the database and start the server (API, docs) on the configured storage."""
    import uvicorn

    from sdfleet.bootstrap import build_app, ensure_admin
    from sdfleet.logging_setup import configure_logging

    settings = _settings(host=host, port=port, data_dir=data_dir, log_json=log_json or None)
    configure_logging(level=settings.log_level, as_json=settings.log_json)
    runtime = _runtime(settings)
    admin = ensure_admin(runtime)
    if not no_demo:
        from sdfleet.cli_models import ensure_demo_models

        for demo in ensure_demo_models(runtime.services.checkpoints):
            console.print(f"  demo model: {demo.name} ({demo.model_type.value}, {demo.architecture})")
    url = settings.resolved_public_url()
    console.print(f"[bold green]sdfleet[/] serving on [bold]{url}[/]  (API docs: {url}/docs)")
    console.print(f"  database: {runtime.database.display_url}")
    console.print(f"  objects:  {settings.resolved_storage_url()}")
    if admin is not None:
        if admin.generated_password:
            console.print(
                f"  [bold yellow]first start: admin user '{admin.username}' created with password "
                f"'{admin.generated_password}' — shown once, change it.[/]"
            )
        else:
            console.print(f"  first start: admin user '{admin.username}' created from SDFLEET_ADMIN_PASSWORD")
    application = build_app(runtime, server_url=f"http://127.0.0.1:{settings.port}"
                            if settings.host in ("0.0.0.0", "::", "127.0.0.1", "localhost") else url)
    if comfy_port:
        from sdfleet.api.comfy.listener import start_comfy_listener

        start_comfy_listener(runtime.services, host=settings.host, port=comfy_port, login_url=f"{url}/login")
        console.print(f"  ComfyUI: {url}/comfy/ and port {comfy_port} (Basic username:api_key for API clients)")
    # Open long polls (worker claims, event streams) would hold shutdown for their full wait otherwise.
    # proxy_headers off: uvicorn would believe X-Forwarded-For from 127.0.0.1; sdfleet believes it only from
    # SDFLEET_TRUSTED_PROXIES (sdfleet/api/client_address.py).
    uvicorn.run(application, host=settings.host, port=settings.port, log_config=None, access_log=False,
                timeout_graceful_shutdown=3, proxy_headers=False)


@db_app.command("upgrade")
def db_upgrade(data_dir: DataDir = None) -> None:
    """Apply database migrations up to the newest."""
    from sdfleet.bootstrap import StartupError, open_database, prepare_data_dir
    from sdfleet.store import migrate

    settings = _settings(data_dir=data_dir)
    try:
        prepare_data_dir(settings.data_dir)
        database = open_database(settings)
    except StartupError as exc:
        _fail(str(exc))
    before = migrate.current_revision(database)
    migrate.upgrade(database)
    after = migrate.current_revision(database)
    console.print(f"database {database.display_url}: {before or 'empty'} → {after}")


@db_app.command("current")
def db_current(data_dir: DataDir = None) -> None:
    """Show the schema revision of the database and the newest this version knows."""
    from sdfleet.bootstrap import StartupError, open_database
    from sdfleet.store import migrate

    settings = _settings(data_dir=data_dir)
    try:
        database = open_database(settings)
    except StartupError as exc:
        _fail(str(exc))
    typer.echo(f"current: {migrate.current_revision(database) or 'empty'}  head: {migrate.head_revision()}")


def _read_password(password: str | None, *, confirm: bool = True) -> str:
    if password:
        return password
    if not sys.stdin.isatty():
        line = sys.stdin.readline().rstrip("\n")
        if not line:
            _fail("no password given: pass --password or type it on standard input")
        return line
    first = getpass.getpass("Password: ")
    if confirm and getpass.getpass("Repeat: ") != first:
        _fail("passwords differ")
    return first


@users_app.command("create")
def users_create(
    username: Annotated[str, typer.Argument(help="Login name.")],
    role: Annotated[list[str] | None, typer.Option("--role", "-r", help="Role name; repeat for several.")] = None,
    password: Annotated[str | None, typer.Option(help="Password (prompted, or read from stdin, if omitted).")] = None,
    email: Annotated[str | None, typer.Option(help="E-mail address.")] = None,
    data_dir: DataDir = None,
) -> None:
    """Create a user with the given roles (default: artist)."""
    from sdfleet.domain.errors import DomainError

    runtime = _runtime(_settings(data_dir=data_dir))
    try:
        user = runtime.services.users.create(
            None, username=username, password=_read_password(password), roles=role or ["artist"], email=email
        )
    except DomainError as exc:
        _fail(exc.message)
    console.print(f"created user {user.username} with roles {', '.join(user.roles) or '(none)'}")


@users_app.command("list")
def users_list(data_dir: DataDir = None) -> None:
    """List every user with their roles."""
    from sdfleet.domain.pagination import PageRequest

    runtime = _runtime(_settings(data_dir=data_dir))
    table = Table("username", "roles", "email", "disabled", "created")
    cursor = None
    while True:
        page = runtime.services.users.list(None, PageRequest.parse(cursor=cursor, limit=200))
        for u in page.items:
            table.add_row(u.username, ", ".join(u.roles), u.email or "", "yes" if u.disabled else "",
                          u.created_at.strftime("%Y-%m-%d %H:%M") if u.created_at else "")
        if not page.next_cursor:
            break
        cursor = page.next_cursor
    Console().print(table)


@users_app.command("reset-password")
def users_reset_password(
    username: Annotated[str, typer.Argument(help="Login name.")],
    password: Annotated[str | None, typer.Option(help="New password (prompted if omitted).")] = None,
    data_dir: DataDir = None,
) -> None:
    """Set a new password and end the user's sessions."""
    from sdfleet.domain.errors import DomainError

    runtime = _runtime(_settings(data_dir=data_dir))
    try:
        runtime.services.users.reset_password(username, _read_password(password))
    except DomainError as exc:
        _fail(exc.message)
    console.print(f"password of {username} changed; their sessions were ended")


def _register_generate() -> None:
    from sdfleet.cli_generate import generate

    app.command()(generate)


_register_generate()


@app.command()
def worker(
    server: Annotated[str, typer.Option(help="Server URL, e.g. http://gpu-host:8080.")] = "http://127.0.0.1:8080",
    token: Annotated[str | None, typer.Option(help="Worker token (sfw_…). Env: SDFLEET_WORKER_TOKEN.",
                                              envvar="SDFLEET_WORKER_TOKEN", show_envvar=False)] = None,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda:N.")] = "auto",
    cache_dir: Annotated[Path, typer.Option(help="Where model files are cached by sha256.")] = Path(
        "sdfleet-worker-cache"),
    name: Annotated[str, typer.Option(help="Name in logs.")] = "worker",
    cache_max_gb: Annotated[float | None, typer.Option(help="Disk budget of the model cache.")] = None,
    once: Annotated[bool, typer.Option(help="Exit after one job.")] = False,
    no_preview: Annotated[bool, typer.Option("--no-preview", help="Do not send step previews.")] = False,
    max_image_pixels: Annotated[int, typer.Option(
        help="Largest input image (width × height) LoadImage decodes. Env: SDFLEET_MAX_IMAGE_PIXELS.",
        envvar="SDFLEET_MAX_IMAGE_PIXELS", show_envvar=False, min=64 * 64)] = 4096 * 4096,
    drain_seconds: Annotated[float, typer.Option(
        help="On SIGTERM, how long the running job may go on before it is handed back. Env: SDFLEET_DRAIN_SECONDS.",
        envvar="SDFLEET_DRAIN_SECONDS", show_envvar=False, min=0)] = 60.0,
    threads: Annotated[int | None, typer.Option(
        help="CPU threads torch may use (default: one per core). Env: SDFLEET_WORKER_THREADS.",
        envvar="SDFLEET_WORKER_THREADS", show_envvar=False, min=1)] = None,
    parent_pid: Annotated[int | None, typer.Option(
        help="Exit as soon as this process (the server that launched the worker) is gone.", hidden=True)] = None,
    link_models_from: Annotated[Path | None, typer.Option(
        help="A directory of <sha256> model files on this host (the server's local object store models/): "
             "hard-link them into the cache instead of downloading. Env: SDFLEET_WORKER_LINK_MODELS_FROM.",
        envvar="SDFLEET_WORKER_LINK_MODELS_FROM", show_envvar=False)] = None,
) -> None:
    """Run jobs from a server over HTTP (this process never touches the database)."""
    from sdfleet.logging_setup import configure_logging
    from sdfleet.worker.client import TokenRefused, WorkerClient
    from sdfleet.worker.model_cache import ModelFileCache
    from sdfleet.worker.runner import WorkerLoop, WorkerOptions, resolve_device

    configure_logging(level="INFO")
    if parent_pid is not None:
        from sdfleet.worker.parent_watch import watch_parent

        # Nothing to hand back: the server this replica calls is the process that just died.
        watch_parent(parent_pid, lambda: os._exit(EXIT_ORPHANED))
    if not token:
        _fail("a worker token is required: --token or SDFLEET_WORKER_TOKEN (make one with `sdfleet workers create`)")
    if threads is not None:
        # Several workers on one host (tests, CPU pools) would otherwise each start one thread per core.
        os.environ["OMP_NUM_THREADS"] = str(threads)
        import torch

        torch.set_num_threads(threads)
    resolved = resolve_device(device)
    loop = WorkerLoop(
        client=WorkerClient(server, token),
        cache=ModelFileCache(cache_dir, max_bytes=int(cache_max_gb * 1024**3) if cache_max_gb else None,
                             link_from=link_models_from),
        options=WorkerOptions(device=resolved, once=once, preview=not no_preview, max_image_pixels=max_image_pixels,
                              drain_seconds=drain_seconds),
    )
    loop.install_signal_handlers()
    console.print(f"worker {name}: {server} on {resolved}")
    try:
        loop.run()
    except TokenRefused as exc:
        _fail(f"worker {name}: {exc}. The token was revoked (or the worker deleted): not retrying. "
              "Make a new one with `sdfleet workers create`.", code=EXIT_TOKEN_REFUSED)


@workers_app.command("create")
def workers_create(
    name: Annotated[str, typer.Argument(help="A name for the worker.")],
    endpoint: Annotated[str, typer.Option(help="Endpoint whose jobs it runs.")] = "default",
    data_dir: DataDir = None,
) -> None:
    """Register a worker and print its token (shown once)."""
    runtime = _runtime(_settings(data_dir=data_dir))
    issued = runtime.services.workers.register(name=name, endpoint=endpoint)
    console.print(f"worker {name} ({issued.worker.id}) for endpoint {endpoint}; token (shown once):")
    typer.echo(issued.token)


if __name__ == "__main__":
    app()
