"""Stored secrets: encrypted with a key from COCKPIT_SECRET_KEY or the SQLite key file."""

from __future__ import annotations

import os
import pickle
import stat
import threading
from pathlib import Path

import pytest

from cockpit.store.secrets import (
    SECRET_KEY_VARIABLE,
    SecretBox,
    SecretKeyError,
    load_or_create_key_file,
)

KEY_A = "a" * 16 + "-first-master-secret-for-tests"
KEY_B = "b" * 16 + "-other-master-secret-for-tests"


def test_round_trip() -> None:
    box = SecretBox(KEY_A)
    token = box.encrypt("sk-live-123")
    assert "sk-live-123" not in token
    assert box.decrypt(token) == "sk-live-123"
    assert box.encrypt("sk-live-123") != token  # Fernet tokens are randomised


def test_json_round_trip() -> None:
    box = SecretBox(KEY_A)
    secret = {"api_key": "k-1", "client_secret": "c-2"}
    assert box.decrypt_json(box.encrypt_json(secret)) == secret


def test_another_key_cannot_decrypt_and_the_error_leaks_nothing() -> None:
    token = SecretBox(KEY_A, source=SECRET_KEY_VARIABLE).encrypt("sk-live-123")
    with pytest.raises(SecretKeyError) as caught:
        SecretBox(KEY_B, source=SECRET_KEY_VARIABLE).decrypt(token)
    message = str(caught.value)
    assert SECRET_KEY_VARIABLE in message
    assert "sk-live-123" not in message
    assert KEY_B not in message


def test_fingerprint_is_stable_and_ignores_key_order() -> None:
    first, second = SecretBox(KEY_A), SecretBox(KEY_A)
    assert first.fingerprint({"a": "1", "b": "2"}) == second.fingerprint({"b": "2", "a": "1"})
    assert first.fingerprint("value") == second.fingerprint("value")
    assert len(first.fingerprint("value")) == 64
    int(first.fingerprint("value"), 16)  # hex


def test_fingerprint_changes_with_the_value_and_the_key() -> None:
    box = SecretBox(KEY_A)
    assert box.fingerprint({"api_key": "one"}) != box.fingerprint({"api_key": "two"})
    assert box.fingerprint("one") != SecretBox(KEY_B).fingerprint("one")


def test_fingerprint_key_differs_from_a_plain_hash() -> None:
    import hashlib

    box = SecretBox(KEY_A)
    assert box.fingerprint("one") != hashlib.sha256(b'"one"').hexdigest()


def test_repr_and_pickle_do_not_expose_keys() -> None:
    box = SecretBox(KEY_A, source=SECRET_KEY_VARIABLE)
    text = repr(box) + str(box)
    assert KEY_A not in text
    assert "hidden" in text
    with pytest.raises(TypeError):
        pickle.dumps(box)


def test_short_master_secret_is_rejected_naming_the_variable() -> None:
    with pytest.raises(SecretKeyError) as caught:
        SecretBox.from_environment("sqlite://", {SECRET_KEY_VARIABLE: "too-short"})
    assert SECRET_KEY_VARIABLE in str(caught.value)
    assert "too-short" not in str(caught.value)


def test_environment_variable_wins_over_the_key_file(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cockpit.db'}"
    box = SecretBox.from_environment(url, {SECRET_KEY_VARIABLE: KEY_A})
    assert box.source == SECRET_KEY_VARIABLE
    assert not (tmp_path / "cockpit.db.key").exists()
    assert SecretBox(KEY_A).decrypt(box.encrypt("x")) == "x"


def test_key_file_is_created_once_with_mode_0600_and_reused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cockpit.db'}"
    key_file = tmp_path / "cockpit.db.key"

    first = SecretBox.from_environment(url, {})
    assert key_file.is_file()
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    content = key_file.read_text()
    token = first.encrypt("sk-live-123")

    second = SecretBox.from_environment(url, {})
    assert key_file.read_text() == content
    assert second.decrypt(token) == "sk-live-123"
    assert second.fingerprint("v") == first.fingerprint("v")
    assert str(key_file) in repr(second)
    assert [p.name for p in tmp_path.iterdir()] == ["cockpit.db.key"]  # no temp files left


def test_concurrent_creators_agree_on_one_key(tmp_path: Path) -> None:
    key_file = tmp_path / "race.db.key"
    results: list[str] = []
    barrier = threading.Barrier(8)

    def create() -> None:
        barrier.wait()
        results.append(load_or_create_key_file(key_file))

    threads = [threading.Thread(target=create) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 8
    assert len(set(results)) == 1


def test_key_file_readable_by_others_is_refused(tmp_path: Path) -> None:
    key_file = tmp_path / "cockpit.db.key"
    key_file.write_text(KEY_A)
    os.chmod(key_file, 0o644)
    with pytest.raises(SecretKeyError) as caught:
        SecretBox.from_environment(f"sqlite:///{tmp_path / 'cockpit.db'}", {})
    assert "chmod 600" in str(caught.value)
    assert KEY_A not in str(caught.value)


def test_key_file_in_a_missing_directory_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SecretKeyError, match="does not exist"):
        SecretBox.from_environment(f"sqlite:///{tmp_path / 'nowhere' / 'cockpit.db'}", {})


@pytest.mark.parametrize(
    "url",
    [
        "postgresql+psycopg://cockpit@db:5432/cockpit",
        "postgresql://cockpit@db:5432/cockpit",
        "postgres://cockpit@db:5432/cockpit",
    ],
)
def test_postgres_without_the_variable_is_a_clear_error(url: str) -> None:
    with pytest.raises(SecretKeyError) as caught:
        SecretBox.from_environment(url, {})
    message = str(caught.value)
    assert SECRET_KEY_VARIABLE in message
    assert "PostgreSQL" in message


def test_postgres_with_the_variable_works() -> None:
    box = SecretBox.from_environment("postgresql://db/c", {SECRET_KEY_VARIABLE: KEY_A})
    assert box.decrypt(box.encrypt("v")) == "v"


def test_in_memory_sqlite_gets_an_ephemeral_key() -> None:
    box = SecretBox.from_environment("sqlite://", {})
    assert box.decrypt(box.encrypt("v")) == "v"
