"""The command line every job shares when Flink's CLI runs it (``flink run -pym jobs.<name>``).

Jobs run as modules, never as scripts: a script run (``-py jobs/scoring.py``) puts ``jobs/`` first
on ``sys.path``, where ``jobs/features.py`` and ``jobs/scoring.py`` shadow the ``features`` and
``scoring`` packages.

``riskstream run --target cluster`` writes the resolved settings to a file and passes
``--settings-file`` (and ``--bounded``); the job reads exactly those settings, not the environment
of the cluster's client, except the SASL credentials (``RISKSTREAM_KAFKA_SASL_*``), which are
never written to a file.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence

from core.config import Settings, load_settings, secrets_only


def run_job_script(
    main: Callable[..., None], description: str | None, argv: Sequence[str] | None
) -> None:
    """Parse the job script's arguments and call ``main(settings, bounded=...)``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--settings-file", required=True, help="resolved settings (YAML)")
    parser.add_argument("--bounded", action="store_true", help="stop at the latest offsets")
    args = parser.parse_args(argv)
    # Exactly the resolved settings, plus the SASL secrets, which the file never holds.
    settings: Settings = load_settings(args.settings_file, environ=secrets_only())
    main(settings, bounded=args.bounded)
