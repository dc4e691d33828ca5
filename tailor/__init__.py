"""Tailor's foundation and data intake: settings, the event contract, Feast store access, ingestion, streaming.

The bottom of the import graph (docs/architecture.md): nothing here imports `ml`, `orchestration`, the
simulator or the command line.
"""
