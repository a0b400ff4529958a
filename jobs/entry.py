"""The command line every job shares when Flink's CLI runs it (``flink run -pym jobs.<name>``).

Jobs run as modules, never as scripts: a script run (``-py jobs/scoring.py``) puts ``jobs/`` first
on ``sys.path``, where ``jobs/features.py`` and ``jobs/scoring.py`` shadow the ``features`` and
``scoring`` packages.

Settings load as everywhere else (:func:`core.config.load_settings`): the model's defaults < the
config file (``--settings-file``, else ``$RISKSTREAM_CONFIG``, else ``./riskstream.yaml``) <
``RISKSTREAM__<SECTION>__<KEY>`` environment variables, plus the SASL credentials
(``RISKSTREAM_KAFKA_SASL_*``). That is how a container deployment configures the job
(docs/deployment.md): a mounted config file and environment variables.

``riskstream run --target cluster`` writes the settings it resolved (its own environment and
``--set`` flags included) to a file and starts Flink's client without the ``RISKSTREAM__*``
variables (:func:`client_environment`), so the file, and so the flags, win there.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Mapping, Sequence

from core.config import ENV_CONFIG_FILE, ENV_PREFIX, Settings, load_settings


def run_job_script(
    main: Callable[..., None],
    description: str | None,
    argv: Sequence[str] | None,
    environ: Mapping[str, str] | None = None,
) -> None:
    """Parse the job script's arguments and call ``main(settings, bounded=...)``.

    ``environ`` (default ``os.environ``) supplies ``RISKSTREAM_CONFIG``, the ``RISKSTREAM__*``
    overrides and the SASL secrets."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--settings-file",
        help=f"settings (YAML); default ${ENV_CONFIG_FILE}, else ./riskstream.yaml if present",
    )
    parser.add_argument("--bounded", action="store_true", help="stop at the latest offsets")
    args = parser.parse_args(argv)
    environ = os.environ if environ is None else environ
    settings: Settings = load_settings(args.settings_file, environ=environ)
    main(settings, bounded=args.bounded)


def client_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """``environ`` without the settings variables (``RISKSTREAM__*``, ``RISKSTREAM_CONFIG``):
    for a Flink client that is given a file of already resolved settings. The SASL secrets
    stay (the file never holds them)."""
    return {
        name: value
        for name, value in environ.items()
        if not name.upper().startswith(ENV_PREFIX) and name != ENV_CONFIG_FILE
    }
