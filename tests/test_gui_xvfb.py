"""The application under a real X server: ``main.py gui --demo`` renders, and the pixels say so.

Starts its own Xvfb (which picks a free display itself, ``-displayfd``), runs the demo as
a subprocess on Qt's xcb platform, and reads the screenshot with the layout file the
demo writes beside it (where the frame, the box and the heatmap panels lie).
Skipped only when Xvfb is not installed; scripts/setup.sh installs it.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SAMPLE_FRAMES = sorted((REPO / "resources" / "sample" / "img").glob("*.jpg"))
XVFB = shutil.which("Xvfb")

pytestmark = pytest.mark.skipif(XVFB is None, reason="Xvfb is not installed (scripts/setup.sh installs it)")


@pytest.fixture
def display():
    read_end, write_end = os.pipe()
    server = subprocess.Popen([XVFB, "-displayfd", str(write_end), "-screen", "0", "1920x1200x24", "-nolisten", "tcp"],
                              pass_fds=(write_end,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(write_end)
    try:
        with os.fdopen(read_end) as pipe:
            number = pipe.readline().strip()
        if not number:
            pytest.fail("Xvfb did not start")
        yield f":{number}"
    finally:
        server.terminate()
        server.wait(10)


def crop(image: np.ndarray, rect) -> np.ndarray:
    x, y, w, h = (int(round(v)) for v in rect)
    return image[max(y, 0): y + h, max(x, 0): x + w]


def test_demo_screenshot_shows_frame_box_and_six_heatmaps(display, tmp_path):
    shot = tmp_path / "demo.png"
    env = dict(os.environ, DISPLAY=display, QT_QPA_PLATFORM="xcb", XDG_RUNTIME_DIR=str(tmp_path))
    # untrained stand-ins (an empty weights folder): seeded, so their maps are the same on every run,
    # whereas a trained model's hard-negative map may rightly be empty on these frames
    done = subprocess.run([sys.executable, "main.py", "gui", "--demo", "--frames", "5", "--screenshot", str(shot),
                           "--threads", "1", "--settings", str(tmp_path / "settings.ini"),
                           "--weights", str(tmp_path / "no-weights")],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    image = cv2.imread(str(shot))  # BGR
    layout = json.loads(shot.with_suffix(".json").read_text())
    assert image.shape[:2] == (900, 1440)
    assert layout["frame_index"] == 5

    # the frame region holds the sample's frame 6 (index 5), scaled to the view
    shown = cv2.cvtColor(crop(image, layout["frame_rect"]), cv2.COLOR_BGR2GRAY).astype(np.float64)
    original = cv2.imread(str(SAMPLE_FRAMES[5]), cv2.IMREAD_GRAYSCALE)
    expected = cv2.resize(original, shown.shape[::-1], interpolation=cv2.INTER_AREA).astype(np.float64)
    assert shown.shape[0] > 200 and shown.shape[1] > 300
    assert np.corrcoef(shown.ravel(), expected.ravel())[0, 1] > 0.9
    other = cv2.resize(cv2.imread(str(SAMPLE_FRAMES[0]), cv2.IMREAD_GRAYSCALE)[::-1], shown.shape[::-1])
    assert np.corrcoef(shown.ravel(), other.astype(np.float64).ravel())[0, 1] < 0.5

    # the track's colour outlines the box: present in a band around its edges, rare elsewhere
    colour_bgr = np.array(layout["track_color"][::-1], dtype=np.int32)
    near = np.abs(image.astype(np.int32) - colour_bgr).sum(axis=2) < 45
    x, y, w, h = layout["box_rect"]
    band = np.zeros(near.shape, bool)
    band[int(y) - 3: int(y + h) + 4, int(x) - 3: int(x + w) + 4] = True
    band[int(y) + 4: int(y + h) - 3, int(x) + 4: int(x + w) - 3] = False
    perimeter = 2 * (w + h)
    assert near[band].sum() > 0.5 * perimeter
    frame_mask = np.zeros(near.shape, bool)
    fx, fy, fw, fh = (int(v) for v in layout["frame_rect"])
    frame_mask[fy: fy + fh, fx: fx + fw] = True
    assert near[frame_mask & ~band].mean() < 0.01

    # six heatmap panels (2 variants x 3 maps), each colour-mapped and not uniform
    panels = layout["panels"]
    assert sorted((p["variant"], p["map"]) for p in panels) == sorted(
        (v, m) for v in ("with HE", "without HE") for m in ("score", "centerness", "hardneg"))
    for panel in panels:
        pixels = crop(image, panel["rect"]).astype(np.float64)
        assert pixels.shape[0] > 40 and pixels.shape[1] > 40, panel
        inner = pixels[2:-2, 2:-2]
        assert inner.reshape(-1, 3).std(axis=0).max() > 8, panel  # not one flat colour
        chroma = np.abs(inner[..., 2] - inner[..., 1]) + np.abs(inner[..., 1] - inner[..., 0])
        assert chroma.mean() > 20, panel  # a colour map, not grey


RENAME_SESSION = r'''
import sys
from pathlib import Path

from PyQt5 import QtCore, QtWidgets
from PyQt5.QtTest import QTest

from hnse_gui.app import SAMPLE, create_application, default_variants
from hnse_gui.main_window import MainWindow
from hnse_gui.track_list import LABEL_COLUMN

scratch, project = Path(sys.argv[1]), sys.argv[2]
app = create_application()
settings = QtCore.QSettings(str(scratch / "settings.ini"), QtCore.QSettings.IniFormat)
settings.setValue("autosave/interval_s", 0)
window = MainWindow(default_variants(scratch / "no-weights"), settings, scratch / "recovery", torch_threads=1)
window.files.offer_recovery = False
window.files.ask_save_path = lambda *args: project
window.show()
window.activateWindow()
assert QTest.qWaitForWindowActive(window), "the window never became active"
assert window.open_media(SAMPLE)
tree = window.views.track_list.list
point = tree.visualRect(tree.indexFromItem(tree.topLevelItem(0), LABEL_COLUMN)).center()
QTest.mouseClick(tree.viewport(), QtCore.Qt.LeftButton, QtCore.Qt.NoModifier, point)
QTest.mouseDClick(tree.viewport(), QtCore.Qt.LeftButton, QtCore.Qt.NoModifier, point)
QTest.qWait(300)
editor = QtWidgets.QApplication.focusWidget()
assert isinstance(editor, QtWidgets.QLineEdit), f"no label editor has the focus: {editor}"
editor.selectAll()
QTest.keyClicks(editor, "tall pedestrian")
QTest.keyClick(editor, QtCore.Qt.Key_Return)
QTest.qWait(300)
QTest.keyClick(window.frame_view, QtCore.Qt.Key_S, QtCore.Qt.ControlModifier)
window.close()
'''


def test_a_track_renamed_by_double_click_and_typing_is_saved(display, tmp_path):
    from hnse_gui.store import load_project

    project = tmp_path / "renamed.h5"
    env = dict(os.environ, DISPLAY=display, QT_QPA_PLATFORM="xcb", XDG_RUNTIME_DIR=str(tmp_path))
    done = subprocess.run([sys.executable, "-c", RENAME_SESSION, str(tmp_path), str(project)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    (track,) = load_project(project).tracks.values()
    assert track.label == "tall pedestrian"


def test_demo_with_the_pipeline_dock_shows_each_variants_decision(display, tmp_path):
    shot = tmp_path / "pipeline.png"
    env = dict(os.environ, DISPLAY=display, QT_QPA_PLATFORM="xcb", XDG_RUNTIME_DIR=str(tmp_path))
    done = subprocess.run([sys.executable, "main.py", "gui", "--demo", "--pipeline", "--frames", "3",
                           "--screenshot", str(shot), "--threads", "1", "--settings", str(tmp_path / "settings.ini"),
                           "--weights", str(tmp_path / "no-weights")],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    image = cv2.imread(str(shot))  # BGR
    layout = json.loads(shot.with_suffix(".json").read_text())
    x, y, w, h = layout["pipeline_rect"]
    assert w >= 500 and h > 600  # the dock got its width beside the other views
    assert x + w <= image.shape[1] and layout["frame_rect"][0] + layout["frame_rect"][2] < x
    dock = crop(image, layout["pipeline_rect"])
    # crops of the frame, colour-mapped maps, the table: many colours, not a blank panel
    colours = np.unique(dock.reshape(-1, 3), axis=0)
    assert len(colours) > 2000
    upper, lower = np.array_split(dock, 2)
    for half in (upper, lower):
        assert half.reshape(-1, 3).std(axis=0).max() > 20
