"""A Dagster logger that prints one short line per finished asset or check, for `tailor run`; and what an asset
says to the person waiting (`say`), e.g. that it waits for another process."""

import logging
import sys
from typing import Any

import dagster as dg

#: The log record attribute that marks a message for the console (`say`).
_SAY = "tailor_say"


def say(log: logging.Logger, message: str) -> None:
    """Log ``message`` as a warning to the run's Dagster log and, under `tailor run` (not --quiet), print it on the
    console among the progress lines: for what a person watching must know now, such as a wait with no end
    they can see."""
    log.warning(message, extra={_SAY: True})


class _ProgressHandler(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        meta = getattr(record, "dagster_meta", None) or {}
        event = meta.get("dagster_event")
        if event is None:
            if getattr(record, _SAY, False):
                print(f"  {'note':<10} {meta.get('orig_message', record.getMessage())}", file=sys.stderr, flush=True)
            return
        kind = event.event_type_value
        if kind == "ASSET_MATERIALIZATION":
            key = event.asset_key.to_user_string() if event.asset_key else "?"
            note = materialization_metadata(event).get("note")
            print(f"  {_action(event):<10} {key}{f': {note}' if note else ''}", file=sys.stderr, flush=True)
        elif kind == "ASSET_CHECK_EVALUATION":
            data = event.event_specific_data
            if data is not None and not data.passed:
                where = data.asset_key.to_user_string()
                # A WARN-severity check that did not pass leaves the run successful: say so in the line too.
                failed = data.severity != dg.AssetCheckSeverity.WARN
                label = "CHECK FAILED" if failed else "CHECK WARNED"
                print(f"  {label} {where}: {data.check_name}", file=sys.stderr, flush=True)
        elif kind == "STEP_FAILURE" and was_interrupted(event):
            print(f"  INTERRUPTED {event.step_key}: stopped by a signal while it ran", file=sys.stderr, flush=True)
        elif kind == "STEP_FAILURE":
            print(f"  FAILED  {event.step_key}: {meta.get('orig_message', '')}", file=sys.stderr, flush=True)


def was_interrupted(event: dg.DagsterEvent) -> bool:
    """Whether a STEP_FAILURE event is a step stopped by a signal (Ctrl-C; SIGTERM, which Dagster handles as
    SIGINT, e.g. from `timeout` or a shutdown) rather than one whose code failed.

    Dagster raises DagsterExecutionInterruptedError (or KeyboardInterrupt) in the step and records the failure
    with the error source INTERRUPT; compared by name, as the enum (ErrorSource) is not in Dagster's public API.
    """
    data = event.step_failure_data if event.is_step_failure else None
    return data is not None and getattr(data.error_source, "name", None) == "INTERRUPT"


def materialization_metadata(event: dg.DagsterEvent) -> dict[str, Any]:
    """The plain values of an ASSET_MATERIALIZATION event's metadata (``{}`` for other events)."""
    data = event.step_materialization_data if event.event_type_value == "ASSET_MATERIALIZATION" else None
    materialization = data.materialization if data is not None else None
    if materialization is None:
        return {}
    return {key: getattr(value, "value", value) for key, value in materialization.metadata.items()}


def _action(event: dg.DagsterEvent) -> str:
    """What the materialization did: its ``action`` metadata (``up to date``, ``kept``, ``trained``, ``applied``...)
    when the asset records one, else ``built`` (dbt models, which rebuild their window every run). Said before the
    asset's name; what else it has to say (its ``note`` metadata, e.g. files set aside) comes after the name."""
    action = materialization_metadata(event).get("action")
    return action if isinstance(action, str) and action else "built"


@dg.logger(
    config_schema={}, description="One line per built asset and per failed check or step (used by `tailor run`)."
)
def progress_logger(init_context: dg.InitLoggerContext) -> logging.Logger:
    logger = logging.Logger("tailor.progress", level=logging.DEBUG)
    logger.addHandler(_ProgressHandler())
    return logger
