"""Tables of the ``train.fold_valid`` runs (``paired.md``): each model's test metrics with and
without the validation period folded in, and paired tests on the per-query results.

For each preset (the ``sthgcn_nyc`` board and ``sthrec_nyc``, the ``getnext_nyc`` board):
mean ± std over seeds of every run here and of its unfolded twin (the same trained weights:
the fold happens after selection); the fold's own effect per model (folded vs unfolded, the
same seeds, paired); and the folded flagship blend against every folded reference (per-query
values averaged over each model's seeds, paired t-test and Wilcoxon, Holm over the
references; :func:`tgraph.compare.paired_table`).

    python experiments/results/fold_valid/paired.py
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from tgraph.compare import paired_markdown, paired_table, seed_mean_per_query

HERE = Path(__file__).parent
RESULTS = HERE.parent
METRICS = ["acc@1", "acc@5", "acc@10", "mrr"]
#: board folder here -> (its preset, the folder of the unfolded runs, the revisit rule's file)
BOARDS = {
    "sthgcn_nyc": ("sthgcn_nyc", RESULTS / "sthgcn_nyc", "revisit_sthgcn_nyc"),
    "sthrec_nyc": ("getnext_nyc", RESULTS / "sthrec_nyc", "revisit_getnext_nyc"),
}
OURS = "sthrec_blend"
#: folded runs trained afresh (their unfolded run directory was gone): not the same trained
#: model as the committed unfolded run of that seed (float noise; GETNext seed 0 selected epoch 8
#: in both, validation MRR 0.3558 against 0.3560)
FRESH = {("sthgcn_nyc", "getnext", 0)}


def runs(folder: Path, label: str) -> dict[int, Path]:
    """Seed -> per-query CSV of ``label``'s runs in ``folder``."""
    found = {}
    for path in folder.glob(f"{label}_seed*.csv"):
        seed = path.stem.removeprefix(f"{label}_seed")
        if seed.isdigit():
            found[int(seed)] = path
    return dict(sorted(found.items()))


def twins(board: str, label: str) -> tuple[list[int], list[Path], list[Path]]:
    """The folded seeds of ``label`` resumed from an unfolded run (the same selected model:
    every seed but those of :data:`FRESH`), with the two runs' files; the rule has one
    deterministic run of each kind."""
    preset_folder, rule = BOARDS[board][1], BOARDS[board][2]
    folded = runs(HERE / board, f"{label}_fold")
    if label == "revisit":
        return [], list(folded.values()), [RESULTS / "revisit" / f"{rule}.csv"]
    plain = runs(preset_folder, label)
    seeds = [s for s in folded if s in plain and (board, label, s) not in FRESH]
    return seeds, [folded[s] for s in seeds], [plain[s] for s in seeds]


def seeds_text(folder: Path, label: str) -> str:
    if label == "revisit":
        return "deterministic"
    return "seeds " + ", ".join(map(str, runs(folder, f"{label}_fold")))


def mean_std(paths: list[Path]) -> str:
    values = {m: [] for m in METRICS}
    for path in paths:
        test = json.loads(path.with_name(path.stem + "_metrics.json").read_text())["test"]
        for m in METRICS:
            values[m].append(test[m])
    cells = []
    for m in METRICS:
        v = np.array(values[m])
        cells.append(f"{v.mean():.4f} ± {v.std(ddof=1):.4f}" if len(v) > 1 else f"{v[0]:.4f}")
    return " | ".join(cells)


def board_text(board: str) -> str:
    preset = BOARDS[board][0]
    folder = HERE / board
    labels = sorted(
        {p.stem.split("_fold_seed")[0] for p in folder.glob("*_fold_seed*.csv")},
        key=lambda name: (name != OURS, name),
    )
    out = [f"## `{preset}` (board `{board}`)", ""]
    out += ["| model | seeds | fold | " + " | ".join(METRICS) + " |"]
    out += ["|---|---|---|" + "---|" * len(METRICS)]
    folded: dict[str, list[Path]] = {}
    for label in labels:
        seeds = runs(folder, f"{label}_fold")
        folded[label] = list(seeds.values())
        seed_text = "-" if label == "revisit" else ", ".join(map(str, seeds))
        out.append(f"| {label} | {seed_text} | yes | {mean_std(folded[label])} |")
        if label != "revisit":
            plain = runs(BOARDS[board][1], label)
            plain_text = ", ".join(map(str, plain))
            out.append(f"| {label} | {plain_text} | no | {mean_std(list(plain.values()))} |")
    rule = RESULTS / "revisit" / f"{BOARDS[board][2]}.csv"
    out.append(f"| revisit | - | no | {mean_std([rule])} |")
    out += [
        "",
        "The fold's effect per model: folded minus unfolded over the twin seeds (the folded run",
        "resumed from the unfolded one: the same selected model), in brackets:",
        "",
    ]
    for label in labels:
        seeds, mine, theirs = twins(board, label)
        ours, twin = (seed_mean_per_query(paths, METRICS) for paths in (mine, theirs))
        name = f"{label} unfolded [{', '.join(map(str, seeds)) or 'deterministic'}]"
        out += [paired_markdown(paired_table(ours, {name: twin}, METRICS), f"{label} folded")]
    ours = seed_mean_per_query(folded[OURS], METRICS)
    refs = {
        f"{label} folded ({seeds_text(folder, label)})": seed_mean_per_query(folded[label], METRICS)
        for label in labels
        if label != OURS
    }
    out += [f"{OURS} folded against the folded references (Holm over them):", ""]
    out += [paired_markdown(paired_table(ours, refs, METRICS), f"{OURS} folded")]
    return "\n".join(out)


def main() -> None:
    text = "# `train.fold_valid` runs: tables written by `paired.py`\n\n" + "\n".join(
        board_text(board) for board in BOARDS
    )
    (HERE / "paired.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
