"""Next-POI protocol presets.

- :func:`getnext_nyc`: GETNext/STHGCN next-POI protocol on Foursquare NYC (see
  ``docs/protocols.md``).
- :func:`next_poi_chronological`: the same recipe for any check-in table (STHGCN-style).

Each preset records every count it filters in ``split.report`` and ends with
:meth:`~tgraph.data.split.Split.check_no_leakage`. Their splits are ``task: next_poi`` with
``query_time: hidden`` (a query knows its history, not the time of the check-in to predict,
as in GETNext and STHGCN; ``dataset.query_time: known`` gives the "time-aware next-POI" task).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tgraph.data.interactions import Interactions
from tgraph.data.preprocess import static_item_columns
from tgraph.data.protocols.builders import (
    check_ratios,
    drop_unseen,
    last_of_trajectory,
    require_no_duplicates,
    trajectories,
)
from tgraph.data.readers.getnext import read_getnext_csv
from tgraph.data.readers.stan import NYC_TZ_OFFSET, find_file, read_stan_nyc
from tgraph.data.split import EVENT_KEY, NEXT_POI, Split
from tgraph.errors import DataError

logger = logging.getLogger(__name__)

NYC_FOLDER = "foursquare_nyc"


def data_folder(root: Path, name: str) -> Path:
    """``root/name`` when it exists (``root`` is the data root), else ``root`` itself."""
    root = Path(root)
    return root / name if (root / name).is_dir() else root


def _local_minute(events: pd.DataFrame) -> np.ndarray:
    return (events["timestamp"].to_numpy() + events["tz_offset"].to_numpy() * 60) // 60


# ------------------------------------------------------------------------------ GETNext NYC
def map_getnext_to_stan(
    getnext: pd.DataFrame, stan: pd.DataFrame, poi_coords: pd.DataFrame
) -> tuple[np.ndarray, dict[str, int]]:
    """STAN POI id of each GETNext check-in, matched on ``(user, local minute)``.

    ``getnext`` has columns ``user, venue, minute, lat, lon``; ``stan`` has ``user, poi,
    minute``; ``poi_coords`` is indexed by STAN POI id. A user often checks in several times
    in one minute, so a row can have several candidate POIs. Rows with one candidate fix a
    venue -> POI map (one-to-one on these files); it resolves the others, repeatedly, and a
    POI already taken by another venue is no candidate. What is left takes the candidate
    nearest to the check-in's coordinates. Rows without a ``(user, minute)`` match use the
    venue map when the venue is known, else get -1. Returns the ids and counts per rule.
    """
    rows = getnext.assign(row=np.arange(len(getnext)))
    cand = rows.merge(stan[["user", "minute", "poi"]].drop_duplicates(), on=["user", "minute"])
    venue_of_poi: dict[int, str] = {}
    poi_of_venue: dict[str, int] = {}
    while True:
        n_cand = cand.groupby("row")["poi"].transform("nunique").to_numpy()
        single = cand[n_cand == 1].drop_duplicates("row")
        pairs = single[["venue", "poi"]].drop_duplicates()
        clean = ~pairs["venue"].duplicated(keep=False) & ~pairs["poi"].duplicated(keep=False)
        poi_of_venue = dict(zip(pairs["venue"][clean], pairs["poi"][clean], strict=True))
        venue_of_poi = {p: v for v, p in poi_of_venue.items()}
        known = cand["venue"].map(poi_of_venue)
        taken = cand["poi"].map(venue_of_poi)
        keep = np.where(
            known.notna() & (n_cand > 1),
            known.to_numpy() == cand["poi"].to_numpy(),
            taken.isna().to_numpy()
            | (taken.to_numpy() == cand["venue"].to_numpy())
            | (n_cand == 1),
        )
        # never remove a row's last candidate
        keep |= ~pd.Series(keep).groupby(cand["row"].to_numpy()).transform("any").to_numpy()
        if keep.all():
            break
        cand = cand[keep]
    n_cand = cand.groupby("row")["poi"].transform("nunique").to_numpy()
    distance = np.hypot(
        cand["lat"].to_numpy() - poi_coords.loc[cand["poi"], "lat"].to_numpy(),
        cand["lon"].to_numpy() - poi_coords.loc[cand["poi"], "lon"].to_numpy(),
    )
    best = cand.assign(distance=distance).sort_values(["row", "distance"], kind="stable")
    best = best.drop_duplicates("row")
    poi = np.full(len(getnext), -1, dtype=np.int64)
    poi[best["row"].to_numpy()] = best["poi"].to_numpy()
    nearest_rows = np.unique(cand["row"].to_numpy()[n_cand > 1])
    unmatched = poi < 0
    by_venue = getnext["venue"].map(poi_of_venue).to_numpy()
    venue_only = unmatched & pd.notna(by_venue)
    poi[venue_only] = by_venue[venue_only].astype(np.int64)
    final = pd.DataFrame({"venue": getnext["venue"], "poi": poi})[poi >= 0].drop_duplicates()
    report = {
        "rows": len(getnext),
        "venues_with_several_pois": int(final["venue"].duplicated().sum()),
        "pois_with_several_venues": int(final["poi"].duplicated().sum()),
        "by_user_minute": int((~unmatched).sum()),
        "resolved_by_nearest_coordinates": len(nearest_rows),
        "by_venue_only": int(venue_only.sum()),
        "unmatched": int((poi < 0).sum()),
    }
    return poi, report


def getnext_nyc(root: Path) -> Split:
    """The GETNext/STHGCN next-POI protocol on Foursquare NYC, re-created from the shared files.

    - ``train``: the STAN rows without their exact duplicates, strictly before the minute of the
      first GETNext validation check-in (GETNext's own train file is not available; the STAN
      table is larger, so this train set is about a third larger than GETNext's).
    - ``valid`` / ``test``: GETNext's validation/test check-ins with their venue mapped to a
      STAN POI by :func:`map_getnext_to_stan`; unmatched rows are counted and left out.
      Times use the STAN clock (local time + 5 h, ``tz_offset = -300``), coordinates the POI's.
    - trajectories: GETNext's ``trajectory_id`` for valid/test; 24-hour trajectories
      (ids ``train:<user>_<k>``) for train.
    - targets: the last check-in of each valid/test trajectory; targets whose user or POI
      does not occur in ``train`` are dropped (counts in ``report``).
    - items: all 5,135 STAN POIs stay in the catalogue (full ranking over them); POIs unseen in
      training can never be a target.

    ``root`` is the data root or the ``foursquare_nyc`` folder itself.
    """
    folder = data_folder(root, NYC_FOLDER)
    stan = read_stan_nyc(folder)
    # the catalogue is the POI file: its coordinates are static, not derived from check-ins
    static = sorted(static_item_columns(stan) | {"lat", "lon"})
    stan = stan.with_events(stan.events, meta={**stan.meta, "static_item_columns": static})
    report: dict[str, Any] = {"stan_rows": len(stan)}
    key = list(EVENT_KEY)
    events = stan.events.drop_duplicates(key).reset_index(drop=True)
    report["stan_exact_duplicates_dropped"] = len(stan) - len(events)
    stan_minute = _local_minute(events)
    poi_raw = stan.items["raw_id"].to_numpy()
    user_code = pd.Series(np.arange(stan.n_users), index=stan.users["raw_id"].to_numpy())
    poi_coords = stan.items.set_index("raw_id")[["lat", "lon"]]
    stan_rows = pd.DataFrame(
        {
            "user": stan.users["raw_id"].to_numpy()[events["user"].to_numpy()],
            "poi": poi_raw[events["item"].to_numpy()],
            "minute": stan_minute,
        }
    )
    parts = {
        name: read_getnext_csv(find_file(folder, f"getnext_NYC_{name}.csv"))
        for name in ("val", "test")
    }
    first_minute = int(_local_minute(parts["val"].events).min())
    train_mask = stan_minute < first_minute
    train = stan.with_events(events[train_mask], name="foursquare_nyc_train")
    train, report["train_trajectories"] = trajectories(train, gap_hours=24, prefix="train:")
    boundary = stan_minute == first_minute
    report.update(
        first_valid_local_time=str(pd.to_datetime(first_minute * 60, unit="s")),
        train_rows=len(train),
        stan_rows_in_first_valid_minute=int(boundary.sum()),
        stan_rows_after_train_not_in_getnext=int((~train_mask).sum()),
    )
    splits: dict[str, Interactions] = {}
    for name, inter in parts.items():
        part = "valid" if name == "val" else "test"
        ev = inter.events
        getnext = pd.DataFrame(
            {
                "user": inter.users["raw_id"].to_numpy()[ev["user"].to_numpy()],
                "venue": inter.items["raw_id"].to_numpy()[ev["item"].to_numpy()],
                "minute": _local_minute(ev),
                "lat": ev["lat"].to_numpy(),
                "lon": ev["lon"].to_numpy(),
            }
        )
        poi, report[f"{part}_mapping"] = map_getnext_to_stan(getnext, stan_rows, poi_coords)
        users = user_code.reindex(getnext["user"]).to_numpy()
        ok = (poi >= 0) & pd.notna(users)
        report[f"{part}_mapping"]["unmatched_rows"] = (
            ev.loc[~ok, ["trajectory"]]
            .assign(user=getnext["user"][~ok], venue=getnext["venue"][~ok])
            .to_dict("records")
        )
        local = ev["timestamp"].to_numpy() + ev["tz_offset"].to_numpy() * 60
        items = pd.Index(poi_raw).get_indexer(poi[ok])
        frame = pd.DataFrame(
            {
                "user": users[ok].astype(np.int64),
                "item": items,
                "timestamp": local[ok] - NYC_TZ_OFFSET * 60,
                "tz_offset": NYC_TZ_OFFSET,
                "lat": stan.items["lat"].to_numpy()[items],
                "lon": stan.items["lon"].to_numpy()[items],
                "trajectory": ev["trajectory"].to_numpy()[ok],
            }
        )
        splits[part] = stan.with_events(frame, name=f"foursquare_nyc_{part}")
    report["pois_unseen_in_train"] = int(stan.n_items - train.events["item"].nunique())
    return _next_poi_split("getnext_nyc", train, splits["valid"], splits["test"], report, 60)


def _next_poi_split(
    protocol: str,
    train: Interactions,
    valid: Interactions,
    test: Interactions,
    report: dict[str, Any],
    time_resolution: int,
    query_time: str = "hidden",
) -> Split:
    """The next-POI split of chronological parts: the last check-in of each validation/test
    trajectory is a target, targets with a user or POI unseen in ``train`` are dropped (counts
    in ``report``), and the leakage checks run before it is returned. ``task`` is
    ``next_poi``, ``query_time`` hidden unless given."""
    targets = {}
    for name, part in (("valid", valid), ("test", test)):
        found, report[f"{name}_targets"] = last_of_trajectory(part.events)
        targets[name], report[f"{name}_unseen"] = drop_unseen(found, train)
    logger.info("%s: %s", protocol, {k: v for k, v in report.items() if "mapping" not in k})
    split = Split(
        train=train,
        valid=valid,
        test=test,
        valid_targets=targets["valid"],
        test_targets=targets["test"],
        mask_history=False,
        protocol=protocol,
        report=report,
        time_order="global",
        require_seen=True,
        time_resolution=time_resolution,
        query_time=query_time,
        task=NEXT_POI,
    )
    split.report["leakage_checks"] = split.check_no_leakage()
    return split


# ------------------------------------------------------------------------------ generic next-POI
def next_poi_chronological(
    inter: Interactions, ratios: Sequence[float] = (0.8, 0.1, 0.1), gap_hours: float = 24.0
) -> Split:
    """STHGCN-style next-POI protocol for any check-in table.

    One global chronological cut (``ratios`` of the events; events tied with a cut go to the
    later part), each user's check-ins cut into trajectories where the gap exceeds
    ``gap_hours`` and also at the two cuts (so a trajectory lies in one part), targets = the
    last check-in of each validation/test trajectory with >= 2 check-ins, targets whose user
    or POI is unseen in train dropped. Exact duplicate events raise (drop them first).
    """
    require_no_duplicates(inter)
    train_r, valid_r, _ = check_ratios(ratios)
    ts = inter.events["timestamp"].to_numpy()
    n = len(ts)
    cut_valid = int(ts[min(n - 1, int(round(train_r * n)))])
    cut_test = int(ts[min(n - 1, int(round((train_r + valid_r) * n)))])
    part_of = np.searchsorted([cut_valid, cut_test], ts, side="right")  # 0 train, 1 valid, 2 test
    with_traj, traj_report = trajectories(inter, gap_hours=gap_hours)
    traj = with_traj.events["trajectory"].to_numpy().astype(str)
    names = ("train", "valid", "test")
    labelled = with_traj.events.assign(
        trajectory=np.char.add(np.asarray(names, dtype=str)[part_of], np.char.add(":", traj))
    )
    report: dict[str, Any] = {
        "cut_valid": cut_valid,
        "cut_test": cut_test,
        "trajectories": traj_report,
        "trajectories_cut_at_split": int(
            labelled["trajectory"].nunique() - with_traj.events["trajectory"].nunique()
        ),
    }
    parts: dict[str, Interactions] = {}
    for index, name in enumerate(names):
        mask = part_of == index
        if not mask.any():
            raise DataError(
                f"the {name} part is empty",
                source=inter.source,
                column="ratios",
                fix="change the ratios so every part has events",
            )
        parts[name] = inter.with_events(labelled[mask], name=f"{inter.name}_{name}")
        report[f"{name}_events"] = int(mask.sum())
    return _next_poi_split(
        "next_poi_chronological",
        parts["train"],
        parts["valid"],
        parts["test"],
        report,
        int(inter.meta.get("time_resolution_s", 1)),
    )
