"""headwater: declarative real-time pipelines on Hive, Kafka, Spark Structured Streaming and HBase."""

__version__ = "0.1.0"
