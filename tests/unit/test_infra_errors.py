"""Clear errors from the infrastructure code: Java, ports, jar checksums, the flink config."""

from __future__ import annotations

import base64
import shutil
import socket
import stat
import subprocess
import sys
import uuid
from pathlib import Path
from types import SimpleNamespace

import pytest

from core.config import Settings, load_settings
from core.errors import ConfigError, JarError, JavaError, PortInUseError
from core.jars import KAFKA_BROKER_SET, JarSpec, jar_dir, load_manifest
from core.net import free_port
from jobs.env import job_configuration, restore_path
from riskstream.infra import jars
from riskstream.infra import kafka as kafka_module
from riskstream.infra.kafka import LocalKafka, new_cluster_id
from riskstream.infra.process import require_java

RISKSTREAM = str(Path(sys.executable).parent / "riskstream")


def _fake_java(directory: Path, version_line: str) -> Path:
    java = directory / "java"
    java.write_text(f"#!/bin/sh\necho '{version_line}' >&2\n")
    java.chmod(java.stat().st_mode | stat.S_IEXEC)
    return directory


def test_java_missing(tmp_path: Path) -> None:
    with pytest.raises(JavaError, match="Java not found"):
        require_java({"PATH": str(tmp_path)})


def test_java_too_old(tmp_path: Path) -> None:
    path = _fake_java(tmp_path, 'openjdk version "11.0.22" 2024-01-16')
    with pytest.raises(JavaError, match=r"Java 11 found .* need Java >= 17"):
        require_java({"PATH": str(path)})


def test_java_8_style_version(tmp_path: Path) -> None:
    path = _fake_java(tmp_path, 'java version "1.8.0_381"')
    with pytest.raises(JavaError, match="Java 8 found"):
        require_java({"PATH": str(path)})


def test_java_17_accepted(tmp_path: Path) -> None:
    path = _fake_java(tmp_path, 'openjdk version "17.0.15" 2025-04-15')
    assert require_java({"PATH": str(path)}) == 17


def test_cli_reports_missing_java_without_traceback(tmp_path: Path) -> None:
    done = subprocess.run(
        [RISKSTREAM, "--set", f"paths.run_dir={tmp_path}", "kafka", "start"],
        env={"PATH": str(tmp_path), "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert "riskstream: error: Java not found" in done.stderr
    assert "Traceback" not in done.stderr


def test_port_in_use_is_named(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        settings = load_settings(
            overrides={"paths": {"run_dir": str(tmp_path)}, "kafka": {"port": port}}, environ={}
        )
        with pytest.raises(PortInUseError, match=rf"port {port} .*--set kafka\.port="):
            LocalKafka(settings).start()
    assert LocalKafka(settings).running_pid() is None


def _cache_copy(tmp_path: Path, source: Settings) -> Settings:
    """A private jar cache holding copies of the real cached broker jars."""
    settings = load_settings(overrides={"paths": {"cache_dir": str(tmp_path)}}, environ={})
    jars.ensure_jars(source, [KAFKA_BROKER_SET])
    target = jar_dir(settings)
    target.mkdir(parents=True)
    for spec in load_manifest().of_set(KAFKA_BROKER_SET):
        shutil.copy2(jar_dir(source) / spec.file_name, target / spec.file_name)
    return settings


def test_corrupted_jar_in_cache_is_refused(tmp_path: Path) -> None:
    settings = _cache_copy(tmp_path, load_settings(environ={}))
    victim = load_manifest().of_set(KAFKA_BROKER_SET)[0]
    path = jar_dir(settings) / victim.file_name
    path.write_bytes(path.read_bytes()[:-10] + b"corrupted!")
    with pytest.raises(JarError, match=rf"checksum mismatch for {victim.coordinates}") as error:
        jars.ensure_jars(settings, [KAFKA_BROKER_SET])
    assert str(path) in str(error.value)
    assert "riskstream jars fetch" in str(error.value)


def test_download_with_wrong_checksum_never_enters_the_cache(tmp_path: Path) -> None:
    real = load_manifest().of_set(KAFKA_BROKER_SET)[0]
    wrong = JarSpec(real.set, real.coordinates, "0" * 64)
    with pytest.raises(JarError, match="checksum mismatch"):
        jars.download([wrong], tmp_path)
    assert not (tmp_path / real.file_name).exists()


def test_job_configuration_is_shared_and_checked() -> None:
    settings = load_settings(environ={})
    conf = job_configuration(settings)
    assert conf["python.execution-mode"] == "thread"
    assert conf["python.executable"] == sys.executable
    assert conf["state.backend.type"] == "rocksdb"
    assert conf["execution.checkpointing.externalized-checkpoint-retention"] == (
        "RETAIN_ON_CANCELLATION"
    )
    # A typo never reaches the job configuration: the settings refuse it when they load.
    with pytest.raises(ConfigError, match=r"flink\.execution_mode: expected one of thread, proc"):
        load_settings(overrides={"flink": {"execution_mode": "threads"}}, environ={})


def test_free_port_is_bindable() -> None:
    port = free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


def test_restore_path_accepts_rest_locations_and_refuses_missing(tmp_path: Path) -> None:
    savepoint = tmp_path / "savepoint-abc"
    savepoint.mkdir()
    assert restore_path(f"file:{savepoint}") == savepoint.as_uri()
    assert restore_path(str(savepoint)) == savepoint.as_uri()
    assert restore_path("s3://bucket/sp") == "s3://bucket/sp"
    with pytest.raises(ConfigError, match="no savepoint or checkpoint at"):
        restore_path(str(tmp_path / "missing"))


def test_cluster_id_never_starts_with_a_dash(monkeypatch: pytest.MonkeyPatch) -> None:
    """An id starting with '-' made kafka-storage read it as an option (a CI run failed on it)."""
    dash_first = uuid.UUID(bytes=b"\xf8" + bytes(15))
    plain = uuid.UUID(bytes=b"\x10" + bytes(15))
    draws = iter([dash_first, plain])
    monkeypatch.setattr(kafka_module, "uuid", SimpleNamespace(uuid4=lambda: next(draws)))
    assert base64.urlsafe_b64encode(dash_first.bytes).decode().startswith("-")
    cluster_id = new_cluster_id()
    assert cluster_id == base64.urlsafe_b64encode(plain.bytes).decode().rstrip("=")
    assert len(cluster_id) == 22
