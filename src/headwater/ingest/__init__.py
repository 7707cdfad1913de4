"""The ingest stage: new source rows -> keyed JSON records in Kafka, with a durable position."""
