"""Publication figures of tracking results, drawn with matplotlib (no Qt needed).

* :func:`export_heatmap_figure`: rows are model variants, columns are the frame around the
  search region with the tracked box, the raw score, the center-ness (Eq. 4-5), the
  hard-negative map (score where the box overlaps the chosen one less than T_l), the HE
  embedding distance (Sec. 3.3; "no HE branch" in a row without one) and the final map the
  box is chosen from (Sec. 3.5, as the paper's Fig. 8 compares the variants): HNSE-Nano's
  two variants share their score and center-ness maps, so where they differ is in the last
  two. One colour scale per map column, shared by the rows, with its colour bar under the
  column. PNG or SVG by the path's suffix.
* :func:`export_score_curves`: each variant's score over the frames, as a PNG plot or as a
  CSV table (``frame`` then one column per variant, empty where a variant has no score).
"""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from model.tracking.result import TrackResult

MAP_COLUMNS = (("score", "score (raw)", "viridis"),
               ("centerness", "center-ness (Eq. 4-5)", "cividis"),
               ("hardneg", "hard-negative", "inferno"),
               ("embed_dist", "HE distance (Sec. 3.3)", "inferno"),
               ("final", "final (Sec. 3.5)", "viridis"))
MISSING_MAP_TEXT = {"embed_dist": "no HE branch"}  # why a row lacks the map; others: "not computed"
FIGURE_WIDTH_IN = 7.0  # a two-column paper figure
ROW_HEIGHT_IN = 1.35  # seven panels across 7 in: about 1 in each
COLOUR_BAR_HEIGHT_IN = 0.6
CURVES_SIZE_IN = (3.5, 2.2)  # one paper column
DPI = 300
IMAGE_FORMATS = {".png": "png", ".svg": "svg"}


def heatmap_figure_size(rows: int) -> tuple[float, float]:
    """(width, height) in inches of the heatmap figure with ``rows`` variants."""
    return FIGURE_WIDTH_IN, ROW_HEIGHT_IN * rows + COLOUR_BAR_HEIGHT_IN


def _format(path: Path, formats: dict[str, str]) -> str:
    try:
        return formats[path.suffix.lower()]
    except KeyError:
        raise ValueError(f"{path.name}: the suffix must be one of {', '.join(formats)}") from None


def frame_crop(frame_bgr: np.ndarray, box) -> np.ndarray:
    """The RGB pixels of ``frame_bgr`` inside ``box`` (x, y, w, h), black where the box
    leaves the frame."""
    x0, y0 = int(np.floor(box[0])), int(np.floor(box[1]))
    x1, y1 = int(np.ceil(box[0] + box[2])), int(np.ceil(box[1] + box[3]))
    height, width = frame_bgr.shape[:2]
    crop = np.zeros((y1 - y0, x1 - x0, 3), np.uint8)
    fx0, fy0, fx1, fy1 = max(x0, 0), max(y0, 0), min(x1, width), min(y1, height)
    if fx1 > fx0 and fy1 > fy0:
        crop[fy0 - y0:fy1 - y0, fx0 - x0:fx1 - x0] = frame_bgr[fy0:fy1, fx0:fx1, ::-1]
    return crop


def _limits(maps: list[np.ndarray | None]) -> tuple[float, float]:
    finite = np.concatenate([m[np.isfinite(m)].ravel() for m in maps if m is not None] + [np.empty(0)])
    if finite.size == 0 or finite.max() <= finite.min():
        low = float(finite.min()) if finite.size else 0.0
        return low, low + 1.0
    return float(finite.min()), float(finite.max())


def heatmap_figure(results: dict[str, TrackResult], frame_bgr: np.ndarray, dpi: int = DPI) -> Figure:
    """The variants x (frame crop, score, center-ness, hard-negative, HE distance, final)
    figure of one frame; variants whose result is ``None`` are left out, a map a variant
    lacks is a blank panel saying so."""
    results = {name: result for name, result in results.items() if result is not None}
    if not results:
        raise ValueError("no result to draw")
    figure = Figure(figsize=heatmap_figure_size(len(results)), dpi=dpi, layout="constrained")
    axes = figure.subplots(len(results), 1 + len(MAP_COLUMNS), squeeze=False)
    for row, (variant, result) in enumerate(results.items()):
        ax = axes[row, 0]
        sx, sy, sw, sh = result.search_box
        x0, y0 = np.floor(sx), np.floor(sy)
        crop = frame_crop(frame_bgr, result.search_box)
        ax.imshow(crop, extent=(x0, x0 + crop.shape[1], y0 + crop.shape[0], y0), interpolation="bilinear")
        ax.add_patch(Rectangle(result.box[:2], result.box[2], result.box[3], fill=False, edgecolor="#ffc828",
                               linewidth=1.0))
        ax.set_xlim(sx, sx + sw)
        ax.set_ylim(sy + sh, sy)
        ax.set_ylabel(variant, fontsize=8)
    axes[0, 0].set_title("frame (search region)", fontsize=8)
    for col, (name, title, colormap) in enumerate(MAP_COLUMNS, start=1):
        maps = [result.maps.get(name) for result in results.values()]
        low, high = _limits(maps)
        image = None
        for row, values in enumerate(maps):
            if values is not None:
                image = axes[row, col].imshow(values, cmap=colormap, vmin=low, vmax=high, interpolation="nearest")
            else:
                axes[row, col].text(0.5, 0.5, MISSING_MAP_TEXT.get(name, "not computed"), fontsize=6,
                                    ha="center", va="center", transform=axes[row, col].transAxes)
        axes[0, col].set_title(title, fontsize=8)
        if image is not None:
            bar = figure.colorbar(image, ax=axes[:, col], orientation="horizontal", fraction=0.05, aspect=20)
            bar.ax.tick_params(labelsize=6)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    return figure


def export_heatmap_figure(results: dict[str, TrackResult], frame_bgr: np.ndarray, path, dpi: int = DPI) -> Path:
    """Write :func:`heatmap_figure` to ``path`` (.png or .svg)."""
    path = Path(path)
    fmt = _format(path, IMAGE_FORMATS)
    heatmap_figure(results, frame_bgr, dpi).savefig(path, format=fmt, dpi=dpi)
    return path


def export_score_curves(scores: dict[str, np.ndarray], path, dpi: int = DPI) -> Path:
    """Write each variant's per-frame score (NaN: no score) to ``path``: a plot (.png) or a
    table (.csv) with one row per frame, as many frames as the longest series."""
    path = Path(path)
    fmt = _format(path, {".png": "png", ".csv": "csv"})
    frames = max((len(values) for values in scores.values()), default=0)
    padded = {name: np.pad(np.asarray(values, np.float64), (0, frames - len(values)), constant_values=np.nan)
              for name, values in scores.items()}
    if fmt == "csv":
        with path.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["frame", *padded])
            for frame in range(frames):
                values = (v[frame] for v in padded.values())
                writer.writerow([frame, *("" if np.isnan(v) else repr(float(v)) for v in values)])
        return path
    figure = Figure(figsize=CURVES_SIZE_IN, dpi=dpi, layout="constrained")
    ax = figure.subplots()
    for index, (name, values) in enumerate(padded.items()):
        ax.plot(np.arange(frames), values, linewidth=1.0, linestyle="-" if index == 0 else "--", label=name)
    ax.set_xlabel("frame", fontsize=8)
    ax.set_ylabel("score", fontsize=8)
    ax.set_ylim(0.0, 1.0)
    ax.tick_params(labelsize=7)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=7, frameon=False)
    figure.savefig(path, format=fmt, dpi=dpi)
    return path
