"""The process stage: Kafka -> decode -> transforms -> sink, with bad records to the dead-letter topic."""
