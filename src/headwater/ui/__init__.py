"""The live dashboard: a static page (vanilla JS, inline SVG) over a JSON view of the pipelines."""
