"""Settings from the environment (prefix SIPFLOW_) with embedded defaults for one machine."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SIPFLOW_", env_file=".env", extra="ignore")

    # Where the embedded stack keeps its files (SQLite, Temporal's db, runner work dirs, logs).
    data_dir: Path = Path("var")
    # SQLite file under data_dir by default; PostgreSQL: postgresql+psycopg://user@host/db
    database_url: str | None = None
    temporal_address: str = "127.0.0.1:7233"
    temporal_namespace: str = "default"
    temporal_ui_url: str = "http://127.0.0.1:8233"
    task_queue: str = "sipflow"
    mqtt_host: str = "127.0.0.1"
    mqtt_port: int = 1883
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    api_url: str = "http://127.0.0.1:8000"
    # Local backend: each session gets 127.<net_octet>.N.0/24 on the loopback device.
    local_net_octet: int = 201
    default_tenant: str = "default"

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'sipflow.db').resolve()}"

    @property
    def runs_dir(self) -> Path:
        return (self.data_dir / "runs").resolve()


@lru_cache
def get_settings() -> Settings:
    return Settings()
