"""Checks run on the client before a job starts or is submitted, so a bad setting fails here with
a one-line :class:`~core.errors.ConfigError` instead of a Java traceback after submission.

The settings model already refused wrong types, unknown keys and bad values when it loaded. This
adds what depends on the job (its sinks' delivery guarantees vs checkpointing:
:func:`core.config.check_job`), on the environment (SASL credentials when the protocol needs
them) and on the model registry (the scoring job needs a champion that has every
``scoring.fast_models``).
"""

from __future__ import annotations

from core.config import Settings, check_job
from core.errors import ConfigError, RegistryError
from scoring import registry

KAFKA_JOBS = ("skeleton", "features", "scoring", "analytics")


def check_scoring_registry(settings: Settings) -> str:
    """The champion version the scoring job will serve; raises if there is none or if a
    ``scoring.fast_models`` entry is not one of its models."""
    path = settings.registry
    version = registry.champion(path) if path.is_dir() else None
    if version is None:
        raise RegistryError(
            f"scoring: expected a champion model in {path} (scoring.registry_dir, else "
            "training.registry_dir), found none; train one with `riskstream train` and promote "
            "it with `riskstream models promote VERSION`"
        )
    models = registry.read_card(path, version)["models"]
    missing = [m for m in settings.scoring.fast_models if m not in models]
    if missing:
        raise ConfigError(
            f"scoring.fast_models: expected models of champion {version} "
            f"({', '.join(sorted(models))}), found {', '.join(missing)}"
        )
    return version


def check(settings: Settings, job: str) -> None:
    """Every client-side check of ``job``; raises :class:`ConfigError` / ``RegistryError``."""
    check_job(settings, job)
    if job in KAFKA_JOBS:
        settings.kafka.client_config()  # SASL credentials present when the protocol needs them
    if job == "scoring":
        check_scoring_registry(settings)
