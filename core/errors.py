"""The exceptions riskstream raises; every message says what was expected and what was found."""


class RiskstreamError(Exception):
    """Root of every error riskstream raises on purpose; the CLI prints it without a traceback."""


class ConfigError(RiskstreamError):
    """The configuration file, an environment override or a CLI flag is invalid."""


class JavaError(RiskstreamError):
    """Java is missing or older than the version Kafka 4 and Flink 2.2 need."""


class JarError(RiskstreamError):
    """A jar from the manifest could not be fetched, or its checksum does not match."""


class ToolError(RiskstreamError):
    """A pinned program (core/resources/tools.toml) could not be fetched, or its checksum does
    not match."""


class PortInUseError(RiskstreamError):
    """A port the broker or cluster needs is already taken by another process."""


class ServiceError(RiskstreamError):
    """The local Kafka broker or Flink cluster did not start, stop or answer as expected."""


class JobError(RiskstreamError):
    """A Flink job could not be built, submitted or run."""


class SchemaError(RiskstreamError):
    """A record does not match its event contract."""


class FeatureSpecError(RiskstreamError):
    """A feature definition is invalid, or two feature sets disagree."""


class ModelContractError(RiskstreamError):
    """A model does not match the feature set or its registry entry."""


class RegistryError(RiskstreamError):
    """The model registry is missing, inconsistent, or a checksum does not match."""
