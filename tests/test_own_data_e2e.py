"""Your own data and your own model from a YAML file alone (issue #14, "Done when").

A check-in CSV in Berlin local time and a model in a module outside the package, in a fresh
folder; ``tgraph run``, ``tgraph compare`` and ``tgraph analyse`` (each a new process, as a user
runs them) through the config; local-time features checked by hand: every check-in is at
08:xx or 20:xx Berlin time, in winter (UTC+1) and in summer (UTC+2), so a lost timezone would
show hours 7/19 and 6/18.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest

import tgraph
from tgraph.data import load
from tgraph.data.preprocess import time_features

BERLIN = ZoneInfo("Europe/Berlin")
FIRST_DAY, N_DAYS = date(2024, 1, 1), 213  # to 2024-07-31: both sides of the DST change

MY_MODELS = '''
"""A model written outside tgraph: matrix factorisation, registered as "my_mf"."""

from pydantic import PositiveInt
from torch import Tensor, nn

from tgraph.models import EmbeddingRecommender, ModelConfig, register


@register("my_mf")
class MyMF(EmbeddingRecommender):
    """score(u, i) = <p_u, q_i>, trained with the loss of ``config.loss`` (BPR by default)."""

    class Config(ModelConfig):
        dim: PositiveInt = 16

    def __init__(self, split, config=None):
        super().__init__(split, config)
        self.users = nn.Embedding(self.n_users, self.config.dim)
        self.items = nn.Embedding(self.n_items, self.config.dim)
        nn.init.normal_(self.users.weight, std=0.1)
        nn.init.normal_(self.items.weight, std=0.1)

    def embed(self, queries) -> tuple[Tensor, Tensor]:
        return self.users(queries.user), self.items.weight
'''

COLUMNS = {
    "user": "user_id",
    "item": "venue_id",
    "timestamp": "local_time",
    "lat": "latitude",
    "lon": "longitude",
    "category": "venue_category",
}
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"

CONFIG = f"""\
imports: [my_models]
experiment: own
seeds: [0, 1]
dataset:
  name: table
  options:
    path: checkins.csv
    columns: {COLUMNS}
    time_format: "{TIME_FORMAT}"
    timezone: Europe/Berlin
  protocol: next_poi_chronological
metrics: [acc@5, mrr]
train: {{epochs: 2, batch_size: 256, lr: 0.01, valid_metric: mrr, metrics: [mrr],
         progress: false}}
models:
  - name: my_mf
    config: {{dim: 8}}
  - name: pop
"""


def checkins(n_users: int = 30, n_venues: int = 25, seed: int = 0) -> pd.DataFrame:
    """Each user checks in on about half the days at 08:mm (at a morning venue of theirs,
    mostly) and on about half at 20:mm (an evening one), Berlin wall-clock time."""
    rng = np.random.default_rng(seed)
    venues = np.arange(n_venues)
    lat, lon = 52.4 + rng.random(n_venues) * 0.2, 13.2 + rng.random(n_venues) * 0.3
    rows = []
    for user in range(n_users):
        morning, evening = rng.choice(venues, 2, replace=False)
        for day in range(N_DAYS):
            for hour, usual in ((8, morning), (20, evening)):
                if rng.random() < 0.5:
                    venue = usual if rng.random() < 0.7 else rng.choice(venues)
                    when = datetime.combine(FIRST_DAY + timedelta(days=day), datetime.min.time())
                    when = when.replace(hour=hour, minute=int(rng.integers(60)))
                    rows.append((f"u{user:03d}", f"v{venue}", when.strftime(TIME_FORMAT),
                                 lat[venue], lon[venue], f"category {venue % 4}"))  # fmt: skip
    return pd.DataFrame(rows, columns=list(COLUMNS.values()))


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A user's folder: checkins.csv, my_models.py and experiment.yaml."""
    checkins().to_csv(tmp_path / "checkins.csv", index=False)
    (tmp_path / "my_models.py").write_text(MY_MODELS)
    (tmp_path / "experiment.yaml").write_text(CONFIG)
    return tmp_path


def tgraph_command(folder: Path, *argv: str) -> str:
    """``python -m tgraph ARGV`` in ``folder`` (a new process, as a user runs it); its stdout."""
    package_root = str(Path(tgraph.__file__).parents[1])  # the tgraph under test
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([package_root, os.environ.get("PYTHONPATH", "")]),
        "DGLBACKEND": "pytorch",
        "OMP_NUM_THREADS": "1",
    }
    done = subprocess.run(
        [sys.executable, "-m", "tgraph", *argv],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, f"tgraph {' '.join(argv)} failed:\n{done.stderr[-3000:]}"
    return done.stdout


def test_local_time_features_of_the_table(folder, monkeypatch):
    """The table dataset keeps Berlin local time: each check-in's local day and hour are those
    written in the file (08:00 in January and in July is hour 8), and its UTC offset is +60
    minutes in winter and +120 in summer (DST from 2024-03-31)."""
    monkeypatch.chdir(folder)  # the relative path of the config is read from the working folder
    written = pd.read_csv("checkins.csv")
    inter = load("table", path="checkins.csv", columns=COLUMNS, time_format=TIME_FORMAT,
                 timezone="Europe/Berlin")  # fmt: skip
    assert len(inter.events) == len(written)
    feats = time_features(inter)
    local = pd.to_datetime(written["local_time"], format=TIME_FORMAT)
    expected_day = (local - pd.Timestamp("1970-01-01")).dt.days
    assert Counter(zip(feats["day"], feats["hour"], strict=True)) == Counter(
        zip(expected_day, local.dt.hour, strict=True)
    )
    assert set(feats["hour"]) == {8, 20}
    offsets = Counter(zip(feats["day"], inter.events["tz_offset"], strict=True))
    dst = (date(2024, 3, 31) - date(1970, 1, 1)).days  # local day the clocks went forward
    assert {offset for day, offset in offsets if day < dst} == {60}
    assert {offset for day, offset in offsets if day > dst} == {120}


@pytest.mark.slow
def test_run_compare_analyse_from_a_config(folder):
    """``tgraph run`` trains the outside model and a built-in on the CSV (2 seeds),
    ``tgraph compare`` ranks them, ``tgraph analyse run`` (a process that imports my_models
    from the run's config.yaml) stratifies the test queries by local hour, and ``tgraph
    analyse dataset table`` counts events per local hour."""
    out = tgraph_command(folder, "run", "--config", "experiment.yaml")
    assert "own on table (next_poi_chronological), test:" in out
    runs = folder / "runs" / "own" / "table"
    for model in ("my_mf", "pop"):
        for seed in (0, 1):
            assert (runs / model / f"seed{seed}" / "metrics.json").is_file(), (model, seed)

    tgraph_command(folder, "compare", "runs", "--baselines", "pop", "--metrics", "mrr")
    board = pd.read_csv(folder / "runs" / "leaderboard.csv")
    assert set(board["model"]) == {"my_mf", "pop"}
    assert (board["seeds"] == 2).all()

    tgraph_command(folder, "analyse", "run", str(runs / "my_mf" / "seed0"), "--n-boot", "20")
    strata = pd.read_csv(runs / "my_mf" / "seed0" / "analysis" / "strata.csv")
    assert len(strata) > 0
    assert set(strata["hour"]) <= {8, 20}  # the test part lies in summer: UTC would be 6/18

    options = [
        "--option=path=checkins.csv",
        f"--option=columns={COLUMNS}",
        f'--option=time_format="{TIME_FORMAT}"',
        "--option=timezone=Europe/Berlin",
    ]
    tgraph_command(folder, "analyse", "dataset", "table", "--regions", "3", *options)
    activity = pd.read_csv(folder / "runs" / "analysis" / "table" / "hour_weekday_activity.csv")
    per_hour = activity.groupby("hour")["count"].sum()
    written = pd.to_datetime(pd.read_csv(folder / "checkins.csv")["local_time"])
    assert per_hour[per_hour > 0].to_dict() == written.dt.hour.value_counts().to_dict()
