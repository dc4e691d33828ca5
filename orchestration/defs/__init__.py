"""The code location's definitions, by area. Importing any of them first silences the stack's known, harmless
warnings (`tailor.feature_store.silence_known_noise`): every step of a run the Dagster UI launches imports them in
a process of its own, and each printed sqlglot's "sqlglotrs is deprecated" (127 times in a trial's UI log)."""

from tailor.feature_store import silence_known_noise

silence_known_noise()
