"""Saving the report's figures, and the plots of a band over training (`curves.Band`).

Matplotlib is imported when a figure is drawn, with the Agg backend, so the grid layer imports without it.
"""

from __future__ import annotations

import numpy as np

from imbal_keras.grid import curves


def save_figure(path: str, draw) -> str:
    """Calls `draw(pyplot)`, which returns a figure, lays it out without overlaps and writes it to `path`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = draw(plt)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def plot_band(path: str, band: curves.Band, *, title: str, ylabel: str, ratio: bool = False) -> str:
    """The band's estimate (line) and simultaneous band (shaded) against the step, with its null as a dashed line.

    Steps where the band excludes the null are marked with dots. A ratio is drawn on a log scale.
    """

    def draw(plt):
        fig, ax = plt.subplots(figsize=(5.2, 3.0))
        ax.fill_between(
            band.steps, band.low, band.high, color="tab:blue", alpha=0.25, lw=0, label="simultaneous 95% band"
        )
        ax.plot(band.steps, band.estimate, color="tab:blue", lw=1.8, label="estimate")
        ax.axhline(band.null, color="black", lw=0.8, ls="--")
        decided = band.side() != 0
        if decided.any():
            ax.plot(
                band.steps[decided],
                band.estimate[decided],
                "o",
                color="tab:red",
                ms=4,
                label="band excludes no difference",
            )
        if ratio and np.all(np.isfinite(band.low[band.low > 0])) and (band.low > 0).any():
            ax.set_yscale("log")
        if len(band.steps) > 1:
            ax.set_xlim(band.steps[0], band.steps[-1])
        ax.set_xlabel("step", fontsize=8)
        ax.set_ylabel(ylabel, fontsize=8)
        ax.set_title(title, fontsize=9)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=6, loc="best")
        return fig

    return save_figure(path, draw)


__all__ = ["plot_band", "save_figure"]
