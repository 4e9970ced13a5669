"""deploy/compose.yaml cannot start here (no registry), so it is validated: it parses, its
interpolations resolve from .env.example, what it references exists, and every SIPFLOW_*
variable the code reads is documented in .env.example. Also: the runner image's pins match
requirements.lock."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from sipflow.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
COMPOSE = DEPLOY / "compose.yaml"
ENV_EXAMPLE = ROOT / ".env.example"
SERVICES = {
    "postgresql",
    "temporal",
    "mosquitto",
    "api",
    "worker",
}
INTERPOLATION = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])([^}]*))?\}")
CODE_DIRS = ("sipflow", "api", "activities", "runners", "workflows", "backends", "entrypoints")


def documented() -> dict[str, str]:
    """Variables of .env.example (name -> example value)."""
    out = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        m = re.match(r"^([A-Z][A-Z0-9_]*)=(.*)$", line)
        if m:
            out[m.group(1)] = m.group(2)
    return out


def interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error} and $$."""

    def one(m: re.Match[str]) -> str:
        name, op, arg = m.group(1), m.group(2), m.group(3)
        value = env.get(name)
        if op in (":-", "-"):
            return value if value or (op == "-" and value is not None) else arg
        if op in (":?", "?"):
            assert value, f"${{{name}}} is required: {arg}"
            return value
        return value or ""

    return INTERPOLATION.sub(one, text).replace("$$", "$")


def compose(env: dict[str, str]) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(interpolate(COMPOSE.read_text(), env))
    return doc


def test_every_setting_and_env_read_is_documented() -> None:
    docs = documented()
    settings = {f"SIPFLOW_{name.upper()}" for name in Settings.model_fields}
    missing = sorted(settings - set(docs))
    assert not missing, f"settings not documented in .env.example: {missing}"
    # Any other SIPFLOW_* name the code mentions (environment reads, help texts).
    mentioned: set[str] = set()
    for d in CODE_DIRS:
        for path in (ROOT / d).rglob("*.py"):
            mentioned |= set(re.findall(r"\bSIPFLOW_[A-Z0-9_]*[A-Z0-9]\b", path.read_text()))
    missing = sorted(mentioned - set(docs) - {"SIPFLOW_"})
    assert not missing, f"variables the code reads but .env.example does not document: {missing}"
    # And nothing documented that no setting or compose file uses.
    text = COMPOSE.read_text()
    unused = sorted(
        v for v in docs if v not in settings and v not in mentioned and f"${{{v}" not in text
    )
    assert not unused, f".env.example documents unused variables: {unused}"


def test_compose_file_is_valid() -> None:
    env = documented()
    referenced = set(INTERPOLATION.findall(COMPOSE.read_text()))
    undocumented = sorted({name for name, _, _ in referenced} - set(env))
    assert not undocumented, f"compose variables missing from .env.example: {undocumented}"
    # Required values (${VAR:?...}) left empty in the example fail, as compose would.
    try:
        compose(env)
        raise AssertionError("compose accepted an empty POSTGRES_PASSWORD")
    except AssertionError as exc:
        assert "required" in str(exc)
    doc = compose(
        {
            **env,
            "POSTGRES_PASSWORD": "pw",
            "SIPFLOW_RUNNER_TOKEN_SECRET": "s" * 32,
            "SIPFLOW_ENCRYPTION_KEYS": "k1:" + "A" * 43 + "=",
        }
    )

    services: dict[str, Any] = doc["services"]
    assert set(services) >= SERVICES, set(services)
    volumes = set(doc.get("volumes") or {})
    for name, svc in services.items():
        assert "image" in svc or "build" in svc, name
        build = svc.get("build")
        if build:
            context = (DEPLOY / build["context"]).resolve()
            assert (context / build["dockerfile"]).is_file(), (name, build)
        for dep in svc.get("depends_on") or {}:
            assert dep in services, (name, dep)
        for v in svc.get("volumes") or []:
            source = v.split(":")[0]
            if source.startswith((".", "/")):
                if source.startswith("."):
                    assert (DEPLOY / source).exists(), (name, source)
            else:
                assert source in volumes, (name, source)
        for port in svc.get("ports") or []:
            host, container = str(port).rsplit(":", 1)
            assert host.isdigit() and container.isdigit(), (name, port)
        env_block = svc.get("environment") or {}
        assert isinstance(env_block, dict), name
        for key in env_block:
            if key.startswith("SIPFLOW_"):
                assert key in env, f"{name}: {key} is not documented"
    # The sipflow services get settings that parse.
    for name in ("api", "worker"):
        sipflow_env = {
            k.removeprefix("SIPFLOW_").lower(): v
            for k, v in services[name]["environment"].items()
            if k.startswith("SIPFLOW_")
        }
        settings = Settings(_env_file=None, **sipflow_env)  # type: ignore[call-arg]
        assert settings.default_backend == "docker"
        assert settings.container_api_url == "http://sipflow-host:8000"
        assert settings.container_mqtt == ("sipflow-host", 1883)
    worker = services["worker"]
    assert any(str(v).endswith(":/var/run/docker.sock") for v in worker["volumes"])
    # A runner host holds none of the stack's secrets (docs/runner-hosts.md).
    host_env = services["runner-host"]["environment"]
    for secret in (
        "SIPFLOW_DATABASE_URL",
        "SIPFLOW_RUNNER_TOKEN_SECRET",
        "SIPFLOW_ENCRYPTION_KEYS",
    ):
        assert secret not in host_env and secret in services["api"]["environment"], secret
    # Every service runs the one sipflow image (built offline: deploy/build_app_image.sh), so the
    # file needs no registry; they differ by command (deploy/app/sipflow-service).
    service_script = (DEPLOY / "app" / "sipflow-service").read_text()
    for name, svc in services.items():
        assert svc["image"] == env["SIPFLOW_IMAGE"] == "sipflow:latest", name
        (command,) = svc["command"]
        assert f"\n  {command})" in service_script, (name, command)


def test_runner_image_pins_match_the_lock() -> None:
    lock = {
        line.split("==")[0].lower().replace("_", "-"): line.strip()
        for line in (ROOT / "requirements.lock").read_text().splitlines()
        if "==" in line
    }
    for line in (DEPLOY / "runner" / "requirements.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name = line.split("==")[0].lower().replace("_", "-")
            assert lock.get(name, "").lower().replace("_", "-") == line.lower().replace("_", "-")
