"""Pinned jars from Maven Central: fetched once into a cache, verified by sha256 on every use.

The manifest (``core/resources/jars.toml``, read and verified by :mod:`core.jars`) lists every jar
by group:artifact:version and sha256, grouped into sets (the Kafka broker, the Flink connectors).
Jars are fetched through the machine's own ``mvn`` client (its configured repositories and proxy)
by a throwaway pom written to a temporary directory; the repository itself holds no pom.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path
from xml.sax.saxutils import escape

from core.config import Settings
from core.errors import JarError
from core.jars import (
    FLINK_CONNECTORS_SET,
    JarSpec,
    Manifest,
    connector_jar,
    jar_dir,
    load_manifest,
    manifest_path,
    sha256_of,
    verify,
)

MVN_TIMEOUT_S = 900


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


def fetch_connector_jar(settings: Settings) -> Path:
    """The verified Kafka connector jar, fetched into the cache first if it is missing."""
    ensure_jars(settings, [FLINK_CONNECTORS_SET], quiet=True)
    return connector_jar(settings)


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
