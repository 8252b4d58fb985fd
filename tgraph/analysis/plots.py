"""Shared matplotlib helpers for the analysis modules: headless backend, one style, safe saving.

Every ``plot_<name>`` companion in :mod:`tgraph.analysis` builds its figure with
:func:`new_figure` and writes it with :func:`save_png`, so all figures look alike and every file
written is a non-empty PNG.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

if TYPE_CHECKING:
    from matplotlib.typing import RcKeyType

#: rcParams applied to every analysis figure (paper-ready: readable fonts, light grid, 150 dpi)
STYLE: dict[RcKeyType, Any] = {
    "figure.dpi": 100,
    "savefig.dpi": 150,
    "savefig.bbox": "tight",
    "font.size": 10,
    "axes.titlesize": 11,
    "axes.labelsize": 10,
    "legend.fontsize": 9,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "image.cmap": "viridis",
}


@contextmanager
def style() -> Iterator[None]:
    """Context manager applying :data:`STYLE` (use around any custom figure code)."""
    with plt.rc_context(STYLE):
        yield


def new_figure(
    nrows: int = 1, ncols: int = 1, *, width: float = 6.0, height: float = 4.0, **subplots_kw
) -> tuple[Figure, Any]:
    """Return ``(fig, axes)`` in the shared style; ``axes`` is an Axes or an array of Axes
    (typed ``Any``, as :func:`plt.subplots` is, so callers unpack or index it without casts).

    ``width``/``height`` are inches per panel; extra keywords go to :func:`plt.subplots`.
    """
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(
            nrows, ncols, figsize=(width * ncols, height * nrows), **subplots_kw
        )
    return fig, axes


def save_png(fig: Figure, path: str | Path) -> Path:
    """Write ``fig`` as a PNG to ``path`` (parents created), close it and return the path.

    Raises :class:`OSError` if the written file is empty.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with plt.rc_context(STYLE):
        fig.savefig(path, format="png")
    plt.close(fig)
    if path.stat().st_size == 0:
        raise OSError(f"matplotlib wrote an empty file: {path}")
    return path


def mark_x(ax: Axes, x: float, label: str) -> None:
    """A dashed grey reference line at ``x`` with ``label`` above the axes."""
    ax.axvline(x, color="grey", ls="--", lw=0.8, zorder=0)
    ax.text(
        x,
        1,
        label,
        transform=ax.get_xaxis_transform(),
        ha="center",
        va="bottom",
        fontsize=8,
        color="grey",
    )
