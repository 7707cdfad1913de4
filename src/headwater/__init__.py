"""headwater: declarative real-time pipelines on Hive, Kafka, Spark Structured Streaming and HBase."""

# The one place the version is written: pyproject.toml reads it (dynamic version), `headwater --version` prints it.
__version__ = "0.1.0"
