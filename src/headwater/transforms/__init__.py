"""Transforms: one module per transform, each a pure DataFrame -> DataFrame step."""
