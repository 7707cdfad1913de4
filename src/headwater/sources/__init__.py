"""Sources: one module per source system. See :mod:`headwater.sources.base` for the contract."""
