"""A Ctrl-C that a step's code swallows still stops the run (found by a new-user trial: a SIGINT during the drift
checks, and the run trained a model for two more minutes and exited 0).

The swallowing is real: DuckDB, interrupted in a query by the exception Dagster's signal handler raises, raises
``RuntimeError: Query interrupted`` instead, and a step that falls back on an error goes on as if nothing happened.
"""

from __future__ import annotations

import ast
import os
import signal
import threading
from dataclasses import replace

import dagster as dg
import duckdb
import pytest

from orchestration.lib.progress import was_interrupted
from orchestration.lib.runner import INTERRUPTED_TEXT, RunOutcome, outcome_of, signalled
from orchestration.lib.signals import signal_record, stop_if_signalled
from tailor.settings import REPO_ROOT

pytestmark = pytest.mark.unit

ran: list[str] = []
#: Long enough to be running when the signal comes 0.3 s in, short enough (~8 s at full speed on one core) that a
#: DuckDB which looks at the signal only when the query ends still ends soon: it then raises the same error.
LONG_QUERY = "select count(*) from range(3000000000) t(a) where a % 7 = 3"


def _query_while_sigint_comes() -> None:
    """A long DuckDB query, with a SIGINT to this process 0.3 s into it."""
    threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT)).start()
    duckdb.connect().execute(LONG_QUERY).fetchall()


@dg.asset
def swallows() -> None:
    """Falls back on a query error, as a step may: the signal's exception never leaves DuckDB."""
    stop_if_signalled()
    try:
        _query_while_sigint_comes()
    except RuntimeError as error:
        ran.append(f"swallowed: {error}")


@dg.asset(deps=[swallows])
def next_step() -> None:
    stop_if_signalled()
    ran.append("next_step")


@dg.asset
def fails_on_it() -> None:
    """Lets DuckDB's error through: a failure that is the signal's doing, not the step's."""
    stop_if_signalled()
    _query_while_sigint_comes()


@dg.asset
def last() -> None:
    """The last step swallows the signal: nothing is left to stop."""
    stop_if_signalled()
    try:
        _query_while_sigint_comes()
    except RuntimeError:
        ran.append("last")


def _run(assets: list[dg.AssetsDefinition]) -> tuple[dg.ExecuteInProcessResult, dg.DagsterInstance, list[str]]:
    ran.clear()
    job = dg.Definitions(assets=assets, jobs=[dg.define_asset_job("job")]).resolve_job_def("job")
    instance = dg.DagsterInstance.ephemeral()
    with signal_record() as record:
        result = job.execute_in_process(raise_on_error=False, instance=instance)
    assert record is not None
    return result, instance, [s.name for s in record.received]


def test_a_signal_a_step_swallowed_stops_the_run_at_the_next_step() -> None:
    result, instance, received = _run([swallows, next_step])
    assert received == ["SIGINT"]
    assert ran == ["swallowed: Query interrupted"]  # DuckDB turned the interrupt into an error; next_step never ran
    [stopped] = [event for event in result.all_events if event.is_step_failure]
    assert stopped.step_key == "next_step" and was_interrupted(stopped)
    outcome = signalled(outcome_of(result, instance), received[0])
    assert not outcome.success and outcome.interrupted == ["next_step"] and outcome.signal == "SIGINT"
    assert outcome.errors["next_step"] == INTERRUPTED_TEXT


def test_a_step_that_failed_on_the_signals_error_is_said_interrupted() -> None:
    result, instance, received = _run([fails_on_it])
    plain = outcome_of(result, instance)
    assert plain.failed_steps == ["fails_on_it"] and plain.interrupted == []  # Dagster saw a RuntimeError
    assert "Query interrupted" in plain.errors["fails_on_it"]
    outcome = signalled(plain, received[0])
    assert outcome.interrupted == ["fails_on_it"] and outcome.errors["fails_on_it"] == INTERRUPTED_TEXT


def test_a_run_whose_last_step_swallowed_the_signal_is_a_success_that_says_so() -> None:
    result, instance, received = _run([last])
    assert ran == ["last"] and received == ["SIGINT"]
    outcome = signalled(outcome_of(result, instance), received[0])
    assert outcome.success and outcome.interrupted == [] and outcome.signal == "SIGINT"


def test_without_a_record_the_check_does_nothing_and_the_old_wakeup_fd_comes_back() -> None:
    stop_if_signalled()  # outside a run: no record, no error
    read_fd, write_fd = os.pipe()
    os.set_blocking(write_fd, False)
    previous = signal.set_wakeup_fd(write_fd)
    try:
        with signal_record() as record:
            assert record is not None and not record.seen()
        assert signal.set_wakeup_fd(write_fd) == write_fd  # restored
    finally:
        signal.set_wakeup_fd(previous)
        os.close(read_fd)
        os.close(write_fd)


def test_a_signal_after_the_last_step_leaves_a_finished_run_a_success_and_a_second_one_is_said_too() -> None:
    """Found by a re-check trial: a Ctrl-C just after the last step, which Dagster marks "interrupted unexpectedly"
    with every step a success, said "the run failed (a step); every asset was built" (exit 1); and after a double
    Ctrl-C the step the first one stopped was listed as failed with "RuntimeError: Query interrupted"."""
    after_last = RunOutcome(False, "r", [], [], ["a:check"])
    done = signalled(after_last, "SIGINT")
    assert done.success and done.interrupted == [] and done.signal == "SIGINT"
    assert not signalled(replace(after_last, failed_checks=["a:check"]), "SIGINT").success  # a failed check stays
    assert not signalled(replace(after_last, not_built=["ml/ranker"]), "SIGINT").success
    double = RunOutcome(False, "r", ["checks", "ranker"], [], [], {"checks": "RuntimeError: Query interrupted"},
                        interrupted=["ranker"])  # fmt: skip
    both = signalled(double, "SIGINT")
    assert both.interrupted == ["ranker", "checks"]
    assert both.errors == {"ranker": INTERRUPTED_TEXT, "checks": INTERRUPTED_TEXT}


def _decorator_name(decorator: ast.expr) -> str:
    """``asset`` for ``@dg.asset(...)``, ``@asset`` or ``@dg.asset``."""
    target = decorator.func if isinstance(decorator, ast.Call) else decorator
    return target.attr if isinstance(target, ast.Attribute) else getattr(target, "id", "")


def test_every_asset_and_check_stops_first_on_a_signal_an_earlier_step_swallowed() -> None:
    """Each step's first statement is `stop_if_signalled()`: a step without it would run on after a Ctrl-C that an
    earlier step's code turned into an error of its own. Read from the source, so a new asset or check that leaves
    it out fails here, not only in a signal test that happens to stop elsewhere."""
    steps = {"asset", "multi_asset", "dbt_assets", "asset_check", "multi_asset_check"}
    found, missing = [], []
    for path in sorted((REPO_ROOT / "orchestration" / "defs").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.FunctionDef) or not {_decorator_name(d) for d in node.decorator_list} & steps:
                continue
            found.append(node.name)
            body = node.body[1:] if ast.get_docstring(node) is not None else node.body
            first = body[0].value if body and isinstance(body[0], ast.Expr) else None
            if not (isinstance(first, ast.Call) and getattr(first.func, "id", None) == "stop_if_signalled"):
                missing.append(f"{path.relative_to(REPO_ROOT)}:{node.lineno} {node.name}")
    assert len(found) >= 17, found  # every asset and check of the graph was found
    assert not missing, missing


class _Raises:
    """Raises ``error`` while Python deletes it: Python cannot propagate it and hands it to sys.unraisablehook."""

    def __init__(self, error: BaseException) -> None:
        self.error = error

    def __del__(self) -> None:
        raise self.error


def test_a_dropped_interrupt_is_not_printed_during_a_run_and_other_dropped_errors_are(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Found by a clean-clone suite run: a Ctrl-C landing in SQLAlchemy's GC callback printed "Exception ignored ...
    Traceback ... KeyboardInterrupt" among `tailor run`'s lines; the record has the signal, which stops the next
    step, so the traceback only alarms. Any other dropped error still reaches the hook in place before."""
    seen: list[type[BaseException]] = []
    monkeypatch.setattr("sys.unraisablehook", lambda unraisable: seen.append(type(unraisable.exc_value)))
    with signal_record():
        _Raises(KeyboardInterrupt())
        _Raises(ValueError("a real bug"))
    assert seen == [ValueError]
    _Raises(KeyboardInterrupt())  # outside a run: the hook in place before sees it
    assert seen == [ValueError, KeyboardInterrupt]
