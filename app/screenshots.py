"""`make screenshots`: the README's pictures of the app on the demo history (`python -m app.screenshots`).

Starts the app on a loopback port for TAILOR_HOME (the demo's ./data by default), tours every page in Debian's
chromium (an experiment with a planted effect, a personalized user), and writes docs/img/app-<page>.png.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from app.browser import tour
from app.server import running_app
from tailor.settings import REPO_ROOT, Settings, get_settings

#: The demo's experiment with a planted effect on CTR (dbt_project/seeds/experiments.csv).
DEFAULT_EXPERIMENT = "exp_feed_ranker"


def pick_user(settings: Settings) -> str | None:
    """The most active user whose batch page is personalized (a holdout user's two columns would be the same)."""
    pages = settings.marts_dir / "batch_recommendations.parquet"
    users = pd.read_parquet(settings.marts_dir / "dim_users.parquet", columns=["user_id", "active_days"])
    if pages.exists():
        personalized = pd.read_parquet(pages, columns=["user_id", "policy"]).query("policy == 'personalized'")
        users = users.loc[users["user_id"].isin(set(personalized["user_id"]))]
    users = users.sort_values(["active_days", "user_id"], ascending=[False, True])
    return str(users["user_id"].iloc[0]) if len(users) else None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--home", type=Path, default=None, help="Tailor home (default: TAILOR_HOME or ./data)")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "docs" / "img")
    parser.add_argument("--experiment", default=DEFAULT_EXPERIMENT)
    parser.add_argument("--user", default=None, help="default: the most active personalized user")
    args = parser.parse_args(argv)
    settings = get_settings(args.home)
    if not (settings.marts_dir / "dim_users.parquet").exists():
        raise SystemExit(f"nothing published in {settings.marts_dir}: run `make demo` first")
    user = args.user or pick_user(settings)
    with running_app(settings.home) as url:
        seen = tour(url, args.experiment, user, args.out)
    for path in seen.screenshots:
        print(path)
    for slug, values in seen.metrics.items():
        print(slug, f"{seen.first_render_s[slug]:.1f} s", values)


if __name__ == "__main__":
    main()
