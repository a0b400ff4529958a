"""The pinned-jar manifest: which jars, where they are cached, and their sha256 check.

The manifest (``core/resources/jars.toml``) lists every jar by group:artifact:version and sha256,
grouped into sets (the Kafka broker, the Flink connectors). This module only reads the manifest
and verifies cached jars; fetching them through Maven is the CLI's job
(:mod:`riskstream.infra.jars`, ``riskstream jars fetch``). It sits at the bottom so the job
environment (:mod:`jobs.env`) can find the connector jar without importing the CLI package.
"""

from __future__ import annotations

import hashlib
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from core.config import Settings
from core.errors import JarError

KAFKA_BROKER_SET = "kafka-broker"
FLINK_CONNECTORS_SET = "flink-connectors"
KAFKA_CONNECTOR_ARTIFACT = "flink-sql-connector-kafka"
MANIFEST_RESOURCE = "jars.toml"
HASH_CHUNK_BYTES = 1 << 20


@dataclass(frozen=True)
class JarSpec:
    """One pinned jar of the manifest."""

    set: str
    coordinates: str
    sha256: str

    @property
    def group(self) -> str:
        """Maven group id."""
        return self.coordinates.split(":")[0]

    @property
    def artifact(self) -> str:
        """Maven artifact id."""
        return self.coordinates.split(":")[1]

    @property
    def version(self) -> str:
        """Maven version."""
        return self.coordinates.split(":")[2]

    @property
    def file_name(self) -> str:
        """File name Maven gives the jar (``artifact-version.jar``)."""
        return f"{self.artifact}-{self.version}.jar"


@dataclass(frozen=True)
class Manifest:
    """All pinned jars, plus the root coordinates each set was resolved from."""

    jars: tuple[JarSpec, ...]
    roots: dict[str, tuple[str, ...]]
    transitive: dict[str, bool]
    descriptions: dict[str, str]

    def of_set(self, name: str) -> tuple[JarSpec, ...]:
        """The jars of one set; raises if the set is unknown."""
        found = tuple(j for j in self.jars if j.set == name)
        if not found:
            raise JarError(f"jar set {name!r} is not in the manifest; known: {sorted(self.roots)}")
        return found


def manifest_path() -> Path:
    """Path of the manifest shipped with the package."""
    return Path(str(resources.files("core.resources").joinpath(MANIFEST_RESOURCE)))


def load_manifest(path: Path | None = None) -> Manifest:
    """Parse and check the manifest (coordinates and sha256 shapes)."""
    path = path or manifest_path()
    try:
        doc = tomllib.loads(path.read_text("utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise JarError(f"cannot read jar manifest {path}: {exc}") from exc
    jars = []
    for entry in doc.get("jar", []):
        spec = JarSpec(entry["set"], entry["coordinates"], entry["sha256"].lower())
        if spec.coordinates.count(":") != 2 or len(spec.sha256) != 64:
            raise JarError(f"{path}: bad entry {entry!r}; expected group:artifact:version + sha256")
        jars.append(spec)
    sets = doc.get("sets", {})
    roots = {name: tuple(body.get("roots", [])) for name, body in sets.items()}
    transitive = {name: bool(body.get("transitive", True)) for name, body in sets.items()}
    descriptions = {name: str(body.get("description", "")) for name, body in sets.items()}
    return Manifest(tuple(jars), roots, transitive, descriptions)


def jar_dir(settings: Settings) -> Path:
    """Where fetched jars live: ``paths.jar_dir``, by default ``<paths.cache_dir>/jars``."""
    return settings.paths.jars


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(HASH_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def verify(spec: JarSpec, path: Path) -> None:
    """Raise :class:`JarError` unless ``path`` has the pinned sha256."""
    found = sha256_of(path)
    if found != spec.sha256:
        raise JarError(
            f"checksum mismatch for {spec.coordinates} at {path}: expected sha256 {spec.sha256}, "
            f"found {found}. The file is corrupt or not the pinned jar; delete it and run "
            "`riskstream jars fetch` to download it again."
        )


def connector_jar(settings: Settings, artifact: str = KAFKA_CONNECTOR_ARTIFACT) -> Path:
    """Path of one cached, verified Flink connector jar (the Kafka connector by default).

    Raises :class:`JarError` if the jar is not in the cache: ``riskstream jars fetch`` (or
    ``make jars``) fetches it; ``riskstream run`` does so before it starts a job.
    """
    for spec in load_manifest().of_set(FLINK_CONNECTORS_SET):
        if spec.artifact != artifact:
            continue
        path = jar_dir(settings) / spec.file_name
        if not path.is_file():
            raise JarError(
                f"connector jar {spec.coordinates} is not in {jar_dir(settings)}; "
                "run `riskstream jars fetch` (or `make jars`) first"
            )
        verify(spec, path)
        return path
    raise JarError(f"no connector {artifact!r} in the manifest set {FLINK_CONNECTORS_SET!r}")
