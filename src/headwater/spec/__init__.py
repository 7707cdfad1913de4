"""The pipeline spec: one YAML file declaring source, topic, transforms, sink and connections.

Load it with :func:`load_spec` (or :func:`load_spec_text`); every problem is reported at once in a
:class:`SpecError`, a :class:`~headwater.errors.ConfigError`.
"""

from headwater.spec.loader import SpecError, load_spec, load_spec_text
from headwater.spec.models import PipelineSpec
from headwater.spec.schema import spec_json_schema

__all__ = ["PipelineSpec", "SpecError", "load_spec", "load_spec_text", "spec_json_schema"]
