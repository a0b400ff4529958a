"""Pinned jars from Maven Central: fetched once into a cache, verified by sha256 on every use.

The manifest (``riskstream/resources/jars.toml``) lists every jar by group:artifact:version and
sha256, grouped into sets (the Kafka broker, the Flink connectors). Jars are fetched through the
machine's own ``mvn`` client (its configured repositories and proxy) by a throwaway pom written to a
temporary directory; the repository itself holds no pom.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from xml.sax.saxutils import escape

from riskstream.config import Settings
from riskstream.errors import JarError

KAFKA_BROKER_SET = "kafka-broker"
FLINK_CONNECTORS_SET = "flink-connectors"
KAFKA_CONNECTOR_ARTIFACT = "flink-sql-connector-kafka"
MANIFEST_RESOURCE = "jars.toml"
MVN_TIMEOUT_S = 900
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
    return Path(str(resources.files("riskstream.resources").joinpath(MANIFEST_RESOURCE)))


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


def _pom(coordinates: Iterable[str], transitive: bool) -> str:
    deps = []
    exclusion = (
        "<exclusions><exclusion><groupId>*</groupId><artifactId>*</artifactId></exclusion>"
        "</exclusions>"
    )
    for coord in coordinates:
        group, artifact, version = (escape(part) for part in coord.split(":"))
        deps.append(
            f"<dependency><groupId>{group}</groupId><artifactId>{artifact}</artifactId>"
            f"<version>{version}</version>{'' if transitive else exclusion}</dependency>"
        )
    return (
        '<project xmlns="http://maven.apache.org/POM/4.0.0"><modelVersion>4.0.0</modelVersion>'
        "<groupId>riskstream.fetch</groupId><artifactId>fetch</artifactId><version>0</version>"
        f"<dependencies>{''.join(deps)}</dependencies></project>"
    )


def _run_mvn(workdir: Path, goal_args: list[str]) -> None:
    mvn = shutil.which("mvn")
    if mvn is None:
        raise JarError("`mvn` (Apache Maven) is not on PATH; it is needed once to fetch the jars")
    cmd = [mvn, "-q", "-B", *goal_args]
    try:
        done = subprocess.run(
            cmd, cwd=workdir, capture_output=True, text=True, timeout=MVN_TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise JarError(f"mvn did not finish within {MVN_TIMEOUT_S} s: {' '.join(cmd)}") from exc
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
        raise JarError(f"mvn failed ({' '.join(goal_args[:1])}), exit {done.returncode}:\n{tail}")


def download(specs: list[JarSpec], target: Path) -> None:
    """Download exactly ``specs`` (no transitive jars), verify each, move it into ``target``."""
    with tempfile.TemporaryDirectory(prefix="riskstream-jars-") as tmp:
        work = Path(tmp)
        (work / "pom.xml").write_text(_pom((s.coordinates for s in specs), transitive=False))
        out = work / "out"
        _run_mvn(work, ["dependency:copy-dependencies", f"-DoutputDirectory={out}"])
        for spec in specs:
            fetched = out / spec.file_name
            if not fetched.is_file():
                raise JarError(f"mvn did not produce {spec.file_name} for {spec.coordinates}")
            verify(spec, fetched)
            shutil.move(str(fetched), target / spec.file_name)


def ensure_jars(settings: Settings, sets: Iterable[str] | None = None, quiet: bool = False) -> None:
    """Make sure every jar of ``sets`` (default: all) is in the cache with the pinned checksum.

    Missing jars are downloaded; a cached jar with the wrong checksum is refused, never replaced
    silently, so a corrupted cache is noticed.
    """
    manifest = load_manifest()
    wanted = set(sets) if sets is not None else set(manifest.roots)
    target = jar_dir(settings)
    target.mkdir(parents=True, exist_ok=True)
    missing = []
    for spec in manifest.jars:
        if spec.set not in wanted:
            continue
        path = target / spec.file_name
        if path.is_file():
            verify(spec, path)
        else:
            missing.append(spec)
    if missing:
        if not quiet:
            print(f"fetching {len(missing)} jar(s) into {target} ...", file=sys.stderr)
        download(missing, target)


def classpath(settings: Settings, set_name: str) -> list[Path]:
    """Verified paths of one set's jars, fetching any that are missing."""
    ensure_jars(settings, [set_name], quiet=True)
    return [jar_dir(settings) / spec.file_name for spec in load_manifest().of_set(set_name)]


def connector_jar(settings: Settings, artifact: str = KAFKA_CONNECTOR_ARTIFACT) -> Path:
    """Path of one verified Flink connector jar (the Kafka connector by default)."""
    for path in classpath(settings, FLINK_CONNECTORS_SET):
        if path.name.startswith(f"{artifact}-"):
            return path
    raise JarError(f"no connector {artifact!r} in the manifest set {FLINK_CONNECTORS_SET!r}")


def lock(path: Path | None = None) -> Manifest:
    """Re-resolve each set's roots through mvn and rewrite the manifest with fresh checksums."""
    path = path or manifest_path()
    manifest = load_manifest(path)
    lines = [line for line in path.read_text("utf-8").splitlines() if line.startswith("#")]
    body = ["\n".join(lines), ""]
    jars: list[JarSpec] = []
    for name, roots in manifest.roots.items():
        transitive = manifest.transitive[name]
        body.append(f"[sets.{name}]")
        body.append(f'description = "{manifest.descriptions[name]}"')
        body.append(f"roots = [{', '.join(repr(r).replace(chr(39), chr(34)) for r in roots)}]")
        if not transitive:
            body.append("transitive = false")
        body.append("")
        with tempfile.TemporaryDirectory(prefix="riskstream-lock-") as tmp:
            work = Path(tmp)
            (work / "pom.xml").write_text(_pom(roots, transitive))
            listing = work / "list.txt"
            _run_mvn(
                work,
                [
                    "dependency:list",
                    "-DincludeScope=runtime",
                    "-DoutputAbsoluteArtifactFilename=true",
                    f"-DoutputFile={listing}",
                ],
            )
            for raw in listing.read_text("utf-8").splitlines():
                fields = raw.strip().split(":")
                if len(fields) < 6 or fields[2] != "jar":
                    continue
                group, artifact, version = fields[0], fields[1], fields[-3]
                jar = Path(fields[-1])
                jars.append(JarSpec(name, f"{group}:{artifact}:{version}", sha256_of(jar)))
    for spec in sorted(jars, key=lambda s: (s.set, s.coordinates)):
        body.append(
            f'[[jar]]\nset = "{spec.set}"\ncoordinates = "{spec.coordinates}"\n'
            f'sha256 = "{spec.sha256}"\n'
        )
    path.write_text("\n".join(body))
    return load_manifest(path)
