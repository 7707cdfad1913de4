"""Sinks: one module per sink system, plus pure codecs (row keys, values) shared with serving."""
