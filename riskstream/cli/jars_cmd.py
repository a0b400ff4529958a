"""``riskstream jars``: fetch, verify and re-pin the jars from Maven Central."""

from __future__ import annotations

import argparse
from typing import Any

from core import jars as manifest_jars
from core.config import Settings
from riskstream.infra import jars


def register(subparsers: Any) -> None:
    """Add ``jars fetch|verify|lock``."""
    parser = subparsers.add_parser(
        "jars", help="fetch and verify the pinned jars (Kafka broker, Flink connectors)"
    )
    sub = parser.add_subparsers(dest="jars_command", required=True, metavar="ACTION")
    fetch = sub.add_parser("fetch", help="download missing jars into the cache and verify all")
    fetch.add_argument("--set", dest="sets", action="append", help="only this jar set (repeatable)")
    fetch.set_defaults(handler=_fetch)
    verify = sub.add_parser("verify", help="check every cached jar against its pinned sha256")
    verify.set_defaults(handler=_verify)
    lock = sub.add_parser(
        "lock", help="re-resolve each set's roots with mvn and rewrite the manifest (maintainers)"
    )
    lock.set_defaults(handler=_lock)


def _fetch(args: argparse.Namespace, settings: Settings) -> int:
    jars.ensure_jars(settings, args.sets)
    print(f"jars ready in {manifest_jars.jar_dir(settings)}")
    return 0


def _verify(args: argparse.Namespace, settings: Settings) -> int:
    manifest = manifest_jars.load_manifest()
    missing = []
    for spec in manifest.jars:
        path = manifest_jars.jar_dir(settings) / spec.file_name
        if path.is_file():
            manifest_jars.verify(spec, path)
        else:
            missing.append(spec.coordinates)
    if missing:
        print(f"not fetched yet ({len(missing)}): {', '.join(missing)}")
        return 1
    print(f"all {len(manifest.jars)} jars match their pinned sha256")
    return 0


def _lock(args: argparse.Namespace, settings: Settings) -> int:
    manifest = jars.lock()
    print(f"manifest rewritten: {len(manifest.jars)} jars in {manifest_jars.manifest_path()}")
    return 0
