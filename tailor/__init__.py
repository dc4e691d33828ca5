"""Tailor's foundation and data intake: settings, the event contract, Feast store access, ingestion, streaming.

The bottom of the import graph (docs/architecture.md): nothing here imports `ml`, `orchestration`, the
simulator or the command line.

Importing the package makes Feast skip typeguard's run-time checks unless ``TAILOR_FEAST_TYPECHECKS=1``
(`tailor.feast_typechecks`): it must happen before Feast's first import, and every entry point imports this
package first.
"""

from tailor.feast_typechecks import skip_feast_typechecks

skip_feast_typechecks()
