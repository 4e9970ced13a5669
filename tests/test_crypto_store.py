"""The keyring (AES-256-GCM, rotation), the secret store on SQLite and PostgreSQL, and the codec
endpoint's protocol (encode/decode, CORS preflight, admin only)."""

from __future__ import annotations

import base64
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from api.main import create_app
from sipflow import secret_store, session_secrets, store
from sipflow.accounts import Role
from sipflow.crypto import CryptoError, keyring, new_key_entry, parse_keys
from sipflow.db import session_scope
from sipflow.payload_codec import ENCODING
from sipflow.session_secrets import MASK, secret_name
from sipflow.settings import Settings
from tests.api_fixtures import bearer, dead_address, mint_key

UI = "http://ui.test:8233"


def test_rotation_new_key_encrypts_old_keys_decrypt() -> None:
    old_entry, new_entry = new_key_entry(), new_key_entry()
    old = parse_keys(old_entry)
    key_id, blob = old.encrypt(b"hunter2", b"ctx")
    rotated = parse_keys(f"{new_entry},{old_entry}")
    assert rotated.current == new_entry.split(":")[0] != key_id
    assert rotated.decrypt(key_id, blob, b"ctx") == b"hunter2"
    assert rotated.encrypt(b"x")[0] == rotated.current
    with pytest.raises(CryptoError):  # another context
        rotated.decrypt(key_id, blob, b"other")
    with pytest.raises(CryptoError):  # the old key dropped
        parse_keys(new_entry).decrypt(key_id, blob, b"ctx")


@pytest.mark.parametrize(
    ("keys", "says"),
    [
        ("k1", "expected id:base64"),
        ("k1:not base64!", "not base64"),
        ("k1:" + base64.b64encode(b"short").decode(), "32 bytes"),
        ("bad id:" + base64.b64encode(bytes(32)).decode(), "expected id:base64"),
    ],
)
def test_bad_keys_are_refused_without_showing_them(keys: str, says: str) -> None:
    with pytest.raises(CryptoError, match=says) as err:
        parse_keys(keys)
    assert keys.partition(":")[2] not in str(err.value) or not keys.partition(":")[2]


def test_duplicate_key_ids_are_refused() -> None:
    entry = new_key_entry()
    with pytest.raises(CryptoError, match="twice"):
        parse_keys(f"{entry},{entry}")


def test_generated_key_file_is_owner_only_and_shared(tmp_path: Path) -> None:
    ring = keyring(Settings(data_dir=tmp_path))
    path = tmp_path / "secrets" / "encryption.keys"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert parse_keys(path.read_text()).keys == ring.keys  # what another process reads


def test_secret_store(database_url: str) -> None:
    first, second = new_key_entry(), new_key_entry()
    keys = parse_keys(first)
    with session_scope(database_url) as db:
        secret_store.put(db, keys, "team-a", "webhook/x", "s3cret-value")
        secret_store.put(db, keys, "team-b", "webhook/x", "other-value")
        assert secret_store.get(db, keys, "team-a", "webhook/x") == "s3cret-value"
        assert secret_store.get(db, keys, "team-a", "nothing") is None
        assert secret_store.names(db, "team-a", "webhook/") == ["webhook/x"]
        raw = db.connection().execute(text("SELECT tenant, ciphertext FROM secret")).all()
        assert all(b"value" not in bytes(c) for _, c in raw)  # never in clear
        # A ciphertext moved to another tenant's row does not decrypt there.
        team_a = next(bytes(c) for t, c in raw if t == "team-a")
        db.connection().execute(
            text("UPDATE secret SET ciphertext = :c WHERE tenant = 'team-b'"), {"c": team_a}
        )
        db.commit()
        db.expire_all()
        with pytest.raises(CryptoError):
            secret_store.get(db, keys, "team-b", "webhook/x")
        # Rotation: re-encrypted under the new key, readable without the old one.
        rotated = parse_keys(f"{second},{first}")
        secret_store.put(db, keys, "team-b", "webhook/x", "other-value")
        assert secret_store.reencrypt(db, rotated) == 2
        assert secret_store.get(db, parse_keys(second), "team-a", "webhook/x") == "s3cret-value"
        assert secret_store.remove(db, "team-a", "webhook/x")
        assert not secret_store.exists(db, "team-a", "webhook/x")


@pytest.fixture
def codec_client(tmp_path: Path) -> TestClient:
    settings = Settings(
        data_dir=tmp_path,
        database_url=f"sqlite:///{tmp_path / 'api.db'}",
        temporal_address=dead_address(),
        temporal_ui_url=UI + "/",
    )
    return TestClient(create_app(settings))


def test_codec_endpoint_round_trip_for_admins_only(codec_client: TestClient) -> None:
    clear = {"metadata": {"encoding": base64.b64encode(b"json/plain").decode()},
             "data": base64.b64encode(b'{"password": "hunter2"}').decode()}  # fmt: skip
    with codec_client as client:
        url = client.app.state.settings.resolved_database_url  # type: ignore[attr-defined]
        assert client.post("/v1/codec/encode", json={"payloads": [clear]}).status_code == 401
        operator = bearer(mint_key(url, role=Role.operator))
        for op in ("encode", "decode"):
            r = client.post(f"/v1/codec/{op}", json={"payloads": [clear]}, headers=operator)
            assert r.status_code == 403
        client.headers.update(bearer(mint_key(url, role=Role.admin)))
        encoded = client.post("/v1/codec/encode", json={"payloads": [clear]}).json()["payloads"]
        meta = encoded[0]["metadata"]
        assert base64.b64decode(meta["encoding"]) == ENCODING and "encryption-key-id" in meta
        assert b"hunter2" not in base64.b64decode(encoded[0]["data"])
        decoded = client.post("/v1/codec/decode", json={"payloads": encoded})
        assert decoded.json() == {"payloads": [clear]}
        # A clear payload decodes as it is; a foreign key id is a 400, naming no key.
        assert client.post("/v1/codec/decode", json={"payloads": [clear]}).json()["payloads"] == [
            clear
        ]
        meta["encryption-key-id"] = base64.b64encode(b"nosuch").decode()
        r = client.post("/v1/codec/decode", json={"payloads": encoded})
        assert r.status_code == 400 and "nosuch" in r.text


def test_codec_preflight_allows_the_ui_origin_only(codec_client: TestClient) -> None:
    headers = {"Origin": UI, "Access-Control-Request-Method": "POST"}
    with codec_client as client:
        r = client.options("/v1/codec/decode", headers=headers)
        assert r.status_code == 204
        assert r.headers["access-control-allow-origin"] == UI
        assert r.headers["access-control-allow-credentials"] == "true"
        assert "content-type" in r.headers["access-control-allow-headers"].lower()
        evil = client.options("/v1/codec/decode", headers={**headers, "Origin": "http://x.test"})
        assert evil.status_code == 403 and "access-control-allow-origin" not in evil.headers


def test_sessions_stored_before_are_sealed_at_start(database_url: str, tmp_path: Path) -> None:
    spec = {"roles": {"callers": {"accounts": [{"user": "a", "password": "old-clear-pw"}]}}}
    with session_scope(database_url) as db:
        store.create_session(db, "legacy1", "team-a", "old", spec, None)
    settings = Settings(data_dir=tmp_path, database_url=database_url)
    with TestClient(create_app(settings)):
        pass  # the API's start-up seals them
    with session_scope(database_url) as db:
        row = store.get_session(db, "legacy1")
        assert row is not None
        assert row.spec["roles"]["callers"]["accounts"][0]["password"] == MASK
        name = secret_name("legacy1", "callers", 0)
        assert secret_store.get(db, keyring(settings), "team-a", name) == "old-clear-pw"
        assert session_secrets.seal_stored(db, keyring(settings)) == 0  # idempotent


def test_processes_starting_at_once_share_one_key(tmp_path: Path) -> None:
    code = (
        "import sys; from pathlib import Path; from sipflow.crypto import keyring;"
        "from sipflow.settings import Settings;"
        "print(keyring(Settings(data_dir=Path(sys.argv[1]))).current)"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE)
        for _ in range(8)
    ]
    ids = {p.communicate(timeout=60)[0].strip() for p in procs}
    assert len(ids) == 1 and all(p.returncode == 0 for p in procs), ids
    assert [p.name for p in (tmp_path / "secrets").iterdir()] == ["encryption.keys"]
