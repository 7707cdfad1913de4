"""Progress reporting and latency tracking shared by the stages and the ``run`` command."""
