"""The ``release`` backend: connectome release folders queried locally with DuckDB.

See ``FORMAT.md`` beside this file for the folder layout.
"""
