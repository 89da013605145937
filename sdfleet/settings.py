"""Settings: `SDFLEET_*` environment variables and CLI flags, validated once at start."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PLACEHOLDER_SECRETS = {"changethis", "changeme", "secret", "password", ""}


class Settings(BaseSettings):
    """Everything configurable. Only `bootstrap` and `cli` read it; the rest receives values."""

    model_config = SettingsConfigDict(env_prefix="SDFLEET_", extra="ignore")

    data_dir: Path = Field(default=Path("sdfleet-data"), description="Where SQLite, objects and caches live.")
    database_url: str | None = Field(
        default=None, description="sqlite:///path or postgresql+psycopg://…; default SQLite in data_dir."
    )
    storage_url: str | None = Field(
        default=None, description="A directory path or s3://bucket/prefix; default data_dir/objects."
    )
    s3_endpoint_url: str | None = Field(default=None, description="S3-compatible endpoint (MinIO, moto …).")
    s3_region: str = "us-east-1"
    admin_username: str = "admin"
    admin_password: SecretStr | None = None
    secret_key: SecretStr | None = Field(
        default=None, description="Signs URLs; generated and kept in data_dir/secret_key when unset."
    )
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    public_url: str | None = Field(default=None, description="Base URL clients reach; default http://host:port.")
    session_ttl_seconds: int = Field(default=7 * 24 * 3600, ge=60)
    login_attempts_per_user: int = Field(
        default=10, ge=1, description="Failed logins per username from one client address per window.")
    login_attempts_per_address: int = Field(
        default=30, ge=1, description="Failed logins per client address (any usernames) per window.")
    login_user_backoff_after: int = Field(
        default=10, ge=1,
        description="Failed logins per username (all addresses) after which clients that failed back off.")
    login_window_seconds: int = Field(default=300, ge=1)
    trusted_proxies: str = Field(
        default="", description="Comma-separated proxy addresses/networks whose X-Forwarded-For is believed.")
    max_request_bytes: int = Field(default=8 * 1024 * 1024, ge=1024, description="Largest JSON request body.")
    metrics_token: SecretStr | None = Field(
        default=None, description="Bearer token that may scrape GET /metrics (admins may always scrape).")
    log_level: str = "INFO"
    log_json: bool = False
    # Jobs and workers
    lease_seconds: float = Field(default=30.0, ge=1.0, le=3600.0, description="A worker's lease on a job.")
    max_attempts: int = Field(default=3, ge=1, le=20, description="Tries of a job whose worker stops answering.")
    max_queued_per_user: int = Field(default=200, ge=1, description="Queued jobs one user may have.")
    comfy_sockets_per_user: int = Field(
        default=16, ge=1, le=10_000,
        description="ComfyUI WebSockets one user may hold open (both listeners); the oldest is closed past it.")
    max_running_per_user: int | None = Field(
        default=None, ge=1, description="Jobs of one user running at once (unset: as many as there are workers)."
    )
    max_work_per_request: int = Field(
        default=2048 * 2048 * 150 * 8, ge=1, description="Limit of width × height × steps × batch of one request."
    )
    max_image_pixels: int = Field(
        default=4096 * 4096, ge=64 * 64,
        description="Largest input image (width × height), checked from its header before any pixel is decoded.",
    )
    max_output_pixels: int = Field(
        default=8192 * 8192, ge=64 * 64,
        description="Largest output image a worker may upload (width × height), checked from its PNG header: "
                    "thumbnails and galleries decode outputs, so a rogue worker token cannot upload a bomb.",
    )
    a1111_wait_seconds: float = Field(
        default=3600.0, gt=0, description="How long a /sdapi/v1 txt2img/img2img call waits for its job (then 504)."
    )
    local_workers: int = Field(default=1, ge=0, le=64, description="Worker processes `serve` starts on this host.")
    worker_device: str = Field(default="auto", description="Device of the local workers: auto, cpu or cuda:N.")
    # Ray launcher (`launcher: "ray"` endpoints; `pip install 'sdfleet[ray]'`)
    ray_address: str | None = Field(
        default=None, description="Ray cluster for `ray` endpoints: ray://head:10001, host:6379 or auto; unset: none.")
    ray_namespace: str | None = Field(
        default=None, description="Ray namespace of this install's replica actors; default from the database URL.")
    ray_pending_seconds: float = Field(
        default=300.0, gt=0, description="A replica waiting this long for Ray resources is an endpoint event.")
    worker_threads: int | None = Field(
        default=None, ge=1, le=256,
        description="CPU threads each local worker gives torch (default: torch's own choice, one per core).",
    )
    # Model registry
    import_allowed_hosts: list[str] = Field(
        default_factory=list,
        description="Hosts (or host:port) model imports may fetch from even when they resolve to private addresses.",
    )
    import_max_workers: int = Field(default=2, ge=1, le=16, description="Concurrent URL imports per server.")
    import_timeout_seconds: int = Field(default=6 * 3600, ge=10, description="Wall-clock cap of one URL import.")
    upload_part_size: int = Field(
        default=64 * 1024 * 1024, ge=5 * 1024 * 1024, le=1024**3, description="Bytes per resumable upload part."
    )
    upload_expiry_seconds: int = Field(default=24 * 3600, ge=60, description="An unfinished upload expires after.")
    max_model_bytes: int = Field(default=64 * 1024**3, ge=1024, description="Largest model file accepted.")
    # Notifications
    smtp_url: SecretStr | None = Field(default=None, description="smtp[s]://[user:pass@]host[:port][?starttls=…]")
    mail_from: str = Field(default="sdfleet@localhost", description="From address of notification mail.")
    webhook_allowed_hosts: list[str] = Field(
        default_factory=list, description="Hosts (or host:port) webhooks may reach even on private addresses.")
    webhook_timeout_seconds: float = Field(default=15.0, ge=0.1, le=120, description="One webhook attempt.")
    notify_retry_base_seconds: float = Field(default=5.0, gt=0, description="First retry delay (×4 per attempt).")
    notify_retry_max_seconds: float = Field(default=6 * 3600.0, gt=0, description="Longest delay between tries.")
    notify_max_attempts: int = Field(default=11, ge=1, le=50, description="Tries of one delivery (~a day).")
    notify_disable_after: int = Field(default=5, ge=1, description="Failed deliveries in a row that disable one.")
    notify_poll_seconds: float = Field(
        default=30.0, gt=0, le=3600,
        description="How often the delivery worker looks for events written by other processes (a CLI, another "
                    "server); this server's own events wake it at once.")
    # Training
    max_dataset_upload_bytes: int = Field(
        default=2 * 1024**3, ge=1024 * 1024, description="Largest body of one dataset upload (an image or a zip)."
    )

    @field_validator("secret_key")
    @classmethod
    def _refuse_placeholder_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and value.get_secret_value().strip().lower() in PLACEHOLDER_SECRETS:
            raise ValueError("SDFLEET_SECRET_KEY is a placeholder; set a long random value or leave it unset")
        if value is not None and len(value.get_secret_value()) < 16:
            raise ValueError("SDFLEET_SECRET_KEY must be at least 16 characters")
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _check_trusted_proxies(cls, value: str) -> str:
        import ipaddress

        for item in filter(None, (v.strip() for v in value.split(","))):
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(f"SDFLEET_TRUSTED_PROXIES: {item!r} is not an IP address or network") from None
        return value

    def trusted_proxy_networks(self) -> tuple[str, ...]:
        """The trusted proxies, one address or CIDR network per item."""
        return tuple(v.strip() for v in self.trusted_proxies.split(",") if v.strip())

    def resolved_database_url(self) -> str:
        """The database URL, defaulting to SQLite inside the data dir."""
        return self.database_url or f"sqlite:///{(self.data_dir / 'sdfleet.db').resolve()}"

    def resolved_storage_url(self) -> str:
        """The object store location, defaulting to data_dir/objects."""
        return self.storage_url or str((self.data_dir / "objects").resolve())

    def resolved_public_url(self) -> str:
        """The base URL printed to users and used in signed links."""
        if self.public_url:
            return self.public_url.rstrip("/")
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::") else self.host
        return f"http://{host}:{self.port}"
