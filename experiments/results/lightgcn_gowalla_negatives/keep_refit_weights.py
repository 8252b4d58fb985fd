"""Keep a refit's model weights every ``--every`` refit epochs while it trains, by reading its
``refit_last.pt`` after each epoch; for ``refit_test_curve.py``. The run itself never sees them.

    python experiments/results/lightgcn_gowalla_negatives/keep_refit_weights.py RUN_DIR OUT_DIR
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--every", type=int, default=10)
    args = parser.parse_args()
    args.out_dir.mkdir(parents=True, exist_ok=True)
    path, seen = args.run_dir / "refit_last.pt", None
    while not (args.run_dir / "refit.pt").exists():  # the refit's end
        try:
            mtime = path.stat().st_mtime
            if mtime != seen:
                payload = torch.load(path, map_location="cpu", weights_only=False)
                seen = mtime
                refit_epoch = payload["epoch"] - payload["state"]["selection_epoch"]
                target = args.out_dir / f"refit_e{refit_epoch:03d}.pt"
                if refit_epoch % args.every == 0 and not target.exists():
                    torch.save(payload["model"], target)
                    print("kept refit epoch", refit_epoch, flush=True)
        except (FileNotFoundError, RuntimeError, EOFError):  # not written yet, or being replaced
            pass
        time.sleep(5)


if __name__ == "__main__":
    main()
