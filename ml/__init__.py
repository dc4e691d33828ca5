"""Tailor ML library (models, evaluation, experiment statistics): plain Python, no orchestration.

OpenMP threads wait passively unless the user says otherwise. scikit-learn's HistGradientBoosting runs on OpenMP,
and GNU OpenMP's default is to spin at every barrier: when the cores are shared (two test workers, Dagster running
assets side by side, any other job), spinning threads take the cores from the ones doing the work. Measured on the
2-core machine at load ~10 (docs/decisions.md, "OpenMP threads wait passively"): one 200k x 40, 100-iteration fit
took 59 s spinning and 8.5 s waiting passively; two such fits side by side 75-80 s each spinning, 12 s passive,
20 s with one thread each. The variable is read when the OpenMP runtime loads, i.e. when scikit-learn is first
imported, which in Tailor happens inside this package; ``setdefault`` leaves a value the user exported alone.

Feast skips typeguard's run-time checks (`tailor.feast_typechecks`; several ml modules import Feast at their top,
so the switch is made here too, before any of them loads).
"""

import os

from tailor.feast_typechecks import skip_feast_typechecks

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
skip_feast_typechecks()
