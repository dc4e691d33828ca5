"""Tailor core: settings, the event contract, the simulator, ingestion and the CLI."""
