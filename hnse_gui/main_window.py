"""The main window: the menus, the toolbar, the layout and the wiring between the rooms.

Each concern is a room of its own, and all of them share one
:class:`~hnse_gui.session.Session` (the document, the frame, the current track, the run):

* :mod:`hnse_gui.project`: opening media and projects, recovery, saving, autosave,
  exports, the window title;
* :mod:`hnse_gui.playback`: the frame index, stepping, the play timer, jumps;
* :mod:`hnse_gui.edits`: the user's edits;
* :mod:`hnse_gui.runs`: tracking runs on the worker thread;
* :mod:`hnse_gui.views`: the widgets that show the work, and their redraws; the
  Pipeline dock (View › Pipeline, P) holds its pipeline view and "why this box" table,
  which follow the frame like the heatmaps: the step mode.

Data flow, one way round:

* the user's edits become :mod:`hnse_gui.commands` pushed on the ``QUndoStack``; they
  change the :class:`~hnse_gui.document.Document`, whose listener schedules one redraw
  (several changes in one event-loop turn are drawn once);
* tracking runs in :class:`~hnse_gui.worker.TrackingThread`; each
  :class:`~hnse_gui.worker.FrameStep` it sends is written into the document as it
  arrives, and when the run ends the whole run (of one track or of several) becomes one
  undoable :class:`~hnse_gui.commands.TrackingRunCommand`;
* the views (frame, heatmaps, timeline, score plot, track list) only draw the document,
  the current frame index and the :class:`~model.tracking.result.TrackResult` s kept from this
  session's runs.

Frames are decoded on demand by index, in the GUI thread from the window's own
:class:`~model.data.sources.FrameSource` (the worker has its own decoder).
Every :class:`~model.core.errors.HNSEError` ends up in :meth:`MainWindow.show_error`:
a non-blocking dialog and the status bar; the window stays usable.
"""
from __future__ import annotations

from pathlib import Path

from PyQt5 import QtCore, QtGui, QtWidgets

from hnse_gui import dialogs
from hnse_gui.document import Document, Flag
from hnse_gui.edits import Edits
from hnse_gui.playback import Playback
from hnse_gui.project import PROJECT_SUFFIXES, ProjectFiles  # noqa: F401 (hnse_cli.gui takes PROJECT_SUFFIXES from here)
from hnse_gui.runs import TrackingRuns
from hnse_gui.session import Session
from hnse_gui.views import Views
from hnse_gui.worker import RunEnd, VariantSpec
from model.tracking.result import TrackResult

MODEL_LOAD_DELAY_MS = 300
PREDICTED_MOTION = 0.5  # Track › Predict motion: the validation split's value for nano_he (BENCHMARKS.md, "Fourth session")
COLOUR_RERANK = 2.0  # Track › Re-rank look-alikes by colour: the split's value for nano_he (BENCHMARKS.md, "Fifth session")
# Track-menu switches of a tracking setting for the HNSE variants' next runs, remembered
# across sessions: (settings key, menu text, tip, TrackConfig field, value when on); off,
# the weights' own value (the shipped files leave both off).
TRACK_SWITCHES = (
    ("track/predict_motion", "&Predict motion (low frame rate)",
     "Centre each frame's search ahead along the target's course: for video with large motion between "
     "frames (a low frame rate, skipped frames)", "motion_prediction", PREDICTED_MOTION),
    ("track/colour_rerank", "Re-rank look-alikes by &colour",
     "Where look-alikes compete, prefer the one whose colours match the first box's: for look-alikes "
     "that differ in colour (teams, cars); it hurts where the light changes the target's colours",
     "colour_rerank", COLOUR_RERANK),
)
PIPELINE_DOCK_WIDTH = 560  # two variant columns of crops and maps, and the "why this box" table
DONE_KEYS = (QtCore.Qt.Key_Return, QtCore.Qt.Key_Enter, QtCore.Qt.Key_Escape)


class FocusBackOnDone(QtCore.QObject):
    """An event filter for fields (the toolbar's spin boxes): once the user ends an edit
    with Enter or Escape, ``give_back`` hands the focus back (to the frame view), so the
    frame's keys work again."""

    def __init__(self, give_back, parent=None):
        super().__init__(parent)
        self._give_back = give_back

    def eventFilter(self, watched, event):  # noqa: N802 - Qt's name
        if event.type() == QtCore.QEvent.KeyPress and event.key() in DONE_KEYS:
            QtCore.QTimer.singleShot(0, self._give_back)  # after the field took the key
        return False


class MainWindow(QtWidgets.QMainWindow):
    """HNSE Studio's window. ``variants`` are the model variants tracked side by side
    (the first one's boxes become the track's); ``settings`` keeps the user's preferences;
    ``recovery_dir`` holds recovery files of unsaved work whose video folder is read-only."""

    runFinished = QtCore.pyqtSignal(object)  # RunEnd, after the run's command was pushed

    def __init__(self, variants: list[VariantSpec], settings: QtCore.QSettings, recovery_dir: Path,
                 torch_threads: int | None = None):
        super().__init__()
        self.variants = list(variants)
        self.variant_names = [spec.name for spec in self.variants]
        self.settings = settings
        self.session = Session()
        self.last_error = ""

        self.undo_stack = QtWidgets.QUndoStack(self)
        self.runs = TrackingRuns(self.session, self.undo_stack, self.variants, torch_threads, parent=self)
        self.runs.started.connect(self._run_started)
        self.runs.ended.connect(self._run_ended)
        self.runs.status.connect(self.statusBar().showMessage)
        self.runs.failed.connect(self.show_error)
        self.runs.mapsDropped.connect(self._maps_dropped)
        self.files = ProjectFiles(self.session, settings, recovery_dir, self, lambda: self.threshold_spin.value())
        self.files.opened.connect(self._set_document)
        self.files.saved.connect(self.undo_stack.setClean)
        self.files.status.connect(self.statusBar().showMessage)
        self.files.failed.connect(self.show_error)
        self.playback = Playback(self.session, lambda: self.runs.busy, parent=self)
        self.views = Views(self.session, self.variant_names, parent=self)
        self.views.status.connect(self.statusBar().showMessage)
        self.views.selectionChanged.connect(self._update_actions)
        self.views.documentRedrawn.connect(self.files.update_title)
        self.views.documentRedrawn.connect(self._update_actions)
        self.playback.frameChanged.connect(self.views.show_frame)
        self.runs.tracked.connect(self.playback.set_frame)
        self.edits = Edits(self.session, self.undo_stack, self.views.frame_view, parent=self)
        self.edits.status.connect(self.statusBar().showMessage)
        self.edits.trackRequested.connect(self.views.select_track)
        self.files.imported.connect(self.edits.tracks_imported)
        self.playback.playingChanged.connect(self._update_actions)

        self._build_views()
        self._build_actions()
        self._build_menus_and_toolbar()
        self._build_status_bar()
        self.setAcceptDrops(True)
        self.resize(1440, 900)
        self.files.update_title()
        self._update_actions()

    # the session's state, read-only: the rooms change it
    @property
    def document(self) -> Document | None:
        return self.session.document

    @property
    def project_path(self) -> Path | None:
        return self.session.project_path

    @property
    def frame_index(self) -> int:
        return self.session.frame_index

    @property
    def current_track(self) -> int | None:
        return self.session.current_track

    # ================================================================ construction

    def _build_views(self) -> None:
        views = self.views
        self.frame_view, self.inspect, self.timeline = views.frame_view, views.inspect, views.timeline
        self.score_plot, self.slider = views.score_plot, views.slider
        self.frame_view.drawingChanged.connect(self._update_actions)
        for widget in (self.timeline, self.score_plot):
            widget.frameRequested.connect(self.playback.set_frame)
        self.slider.valueChanged.connect(self.playback.set_frame)
        views.track_list.renameRequested.connect(self.edits.rename_track)
        views.track_list.recolorRequested.connect(self.edits.recolor_track)
        views.track_list.newRequested.connect(self.edits.begin_new_box)
        views.track_list.deleteRequested.connect(self.edits.delete_track)
        views.track_list.editingFinished.connect(self.focus_frame)
        self.transport = QtWidgets.QHBoxLayout()
        self.transport.setContentsMargins(4, 0, 4, 0)

        left = QtWidgets.QWidget()
        left_layout = QtWidgets.QVBoxLayout(left)
        left_layout.setContentsMargins(0, 0, 0, 0)
        left_layout.setSpacing(2)
        left_layout.addWidget(self.frame_view, 1)
        left_layout.addLayout(self.transport)
        left_layout.addWidget(self.timeline)

        right = QtWidgets.QSplitter(QtCore.Qt.Vertical)
        right.addWidget(self.inspect)
        right.addWidget(self.score_plot)
        right.addWidget(views.track_list)
        right.setStretchFactor(0, 5)
        right.setStretchFactor(1, 2)
        right.setStretchFactor(2, 2)
        right.setSizes([480, 170, 170])

        splitter = QtWidgets.QSplitter(QtCore.Qt.Horizontal)
        splitter.addWidget(left)
        splitter.addWidget(right)
        splitter.setStretchFactor(0, 3)
        splitter.setStretchFactor(1, 2)
        splitter.setSizes([860, 560])
        self.setCentralWidget(splitter)

        steps = QtWidgets.QSplitter(QtCore.Qt.Vertical)
        steps.addWidget(views.pipeline)
        steps.addWidget(views.why_box)
        steps.setStretchFactor(0, 3)
        steps.setStretchFactor(1, 1)
        steps.setSizes([600, 200])
        self.pipeline_dock = QtWidgets.QDockWidget("Pipeline", self)
        self.pipeline_dock.setObjectName("pipeline-dock")
        self.pipeline_dock.setWidget(steps)
        self.pipeline_dock.visibilityChanged.connect(self._pipeline_shown)
        self.addDockWidget(QtCore.Qt.RightDockWidgetArea, self.pipeline_dock)
        self.pipeline_dock.hide()
        self._pipeline_sized = False

    def _action(self, text: str, slot, shortcut=None, tip: str = "", checkable: bool = False,
                dialog: bool = False) -> QtWidgets.QAction:
        """A window action; ``dialog``: its slot may open a modal dialog, after which the
        frame view gets the keyboard focus back."""
        action = QtWidgets.QAction(text, self)
        if shortcut:
            shortcuts = shortcut if isinstance(shortcut, (list, tuple)) else [shortcut]
            action.setShortcuts([QtGui.QKeySequence(s) for s in shortcuts])
        action.setStatusTip(tip or text)
        action.setToolTip(f"{tip or text} ({action.shortcut().toString()})" if shortcut else tip or text)
        action.setCheckable(checkable)
        if slot is not None:
            action.triggered.connect(slot)
        if dialog:  # once the dialog's window has handed the focus back
            action.triggered.connect(lambda: QtCore.QTimer.singleShot(0, self.focus_frame))
        self.addAction(action)  # shortcuts work whichever widget has focus
        return action

    def _build_actions(self) -> None:
        a = self._action
        std = QtGui.QKeySequence
        files = self.files
        self.act_open = a("&Open video…", files.open_media_dialog, std.Open, dialog=True)
        self.act_open_folder = a("Open &folder…", files.open_folder_dialog, "Ctrl+Alt+O",
                                 "Open an image folder or a benchmark sequence folder", dialog=True)
        self.act_open_project = a("Open &project…", files.open_project_dialog, "Ctrl+Shift+O", dialog=True)
        self.act_save = a("&Save project", files.save, std.Save, dialog=True)
        self.act_save_as = a("Save project &as…", files.save_as, "Ctrl+Shift+S", dialog=True)
        self.act_export_txt = a("Export track as &text…", files.export_txt, "Ctrl+E",
                                "Export the current track's boxes, one x,y,w,h line per frame", dialog=True)
        self.act_export_mot = a("Export all as &MOT CSV…", files.export_mot, "Ctrl+Shift+E", dialog=True)
        self.act_export_cvat = a("Export all as &CVAT XML…", files.export_cvat, None,
                                 "Export every track as CVAT for video 1.1 XML", dialog=True)
        self.act_export_figure = a("Export &figure…", lambda: files.export_figure(self.current_results()), None,
                                   "Export this frame's heatmaps of every variant as a PNG or SVG figure",
                                   dialog=True)
        self.act_export_scores = a("Export score c&urves…", lambda: files.export_scores(self.views.current_scores()),
                                   None, "Export the current track's scores over the clip as a PNG plot or a CSV "
                                   "table", dialog=True)
        self.act_open_demo = a("Open &demo scene…", files.open_demo_scene_dialog, None,
                               "Open a synthetic scene with look-alike distractors, ready to track", dialog=True)
        self.act_import_mot = a("&Import MOT…", files.import_mot_dialog, None,
                                "Add one track per identity of a MOT file", dialog=True)
        self.act_import_boxes = a("Import &boxes (text)…", files.import_boxes_dialog, None,
                                  "Add a track from a file of x,y,w,h lines, one per frame", dialog=True)
        self.act_settings = a("Se&ttings…", files.settings_dialog, "Ctrl+,", dialog=True)
        self.act_quit = a("&Quit", self.close, std.Quit)

        edit = self.edits
        self.act_undo = a("&Undo", edit.undo, std.Undo)
        self.act_redo = a("&Redo", edit.redo, ["Ctrl+Shift+Z", "Ctrl+Y"])
        self.undo_stack.indexChanged.connect(self._update_actions)
        self.act_new_box = a("&New track (draw a box)", edit.begin_new_box, "N",
                             "Drag on the frame to draw the first box of a new track")
        self.act_draw_box = a("Draw &box for current track", edit.begin_box_for_track, "B",
                              "Drag on the frame to give the current track a keyframe here")
        self.act_keyframe = a("Make &keyframe here", edit.make_keyframe, "K",
                              "Keep this frame's box (or the nearest earlier one) as a manual keyframe")
        self.act_delete_track = a("&Delete track…", edit.delete_current_track, std.Delete,
                                  "Delete the current track, or only its box on this frame (asks first)", dialog=True)
        self.act_copy_forward = a("&Copy box to next frame", self._copy_box_forward, "D",
                                  "Give the next frame this frame's box as a keyframe, and go there")
        self.act_delete_box = a("Delete box on this &frame", edit.delete_box, "Shift+Del",
                                "Remove the current track's box on this frame only")
        self.act_rename = a("Re&name track", lambda: self.views.track_list.edit_label(self.current_track), "F2",
                            "Edit the current track's label in the Tracks list (Enter keeps it, Esc cancels)")
        self.act_interpolate = a("&Interpolate around current frame", edit.interpolate_gap, "I",
                                 "Fill the frames between the keyframes around the current frame")
        self.act_interpolate_all = a("Interpolate all &empty gaps", edit.interpolate_empty, "Shift+I",
                                     "Fill every frame without a box that lies between two keyframes")
        self.act_occluded = a("Flag &occluded", lambda: edit.toggle_flag(Flag.OCCLUDED), "O")
        self.act_absent = a("Flag &absent", lambda: edit.toggle_flag(Flag.ABSENT), "A")
        self.act_review = a("Flag needs &review", lambda: edit.toggle_flag(Flag.NEEDS_REVIEW), "R")

        play = self.playback
        self.act_play = a("&Play / pause", play.toggle_play, "Space")
        self.act_faster = a("Play faster", lambda: self._show_speed(play.change_speed(1)), ">")
        self.act_slower = a("Play slower", lambda: self._show_speed(play.change_speed(-1)), "<")
        self.act_next = a("Next frame", lambda: play.step(1), "Right")
        self.act_prev = a("Previous frame", lambda: play.step(-1), "Left")
        self.act_next10 = a("Forward 10 frames", lambda: play.step(10), "Shift+Right")
        self.act_prev10 = a("Back 10 frames", lambda: play.step(-10), "Shift+Left")
        self.act_first = a("First frame", lambda: play.set_frame(0), "Home")
        self.act_last = a("Last frame", play.last, "End")
        self.act_goto = a("&Go to frame…", lambda: play.goto_dialog(self), "Ctrl+G", dialog=True)
        self.act_next_key = a("Next keyframe", lambda: play.jump_keyframe(1), "]")
        self.act_prev_key = a("Previous keyframe", lambda: play.jump_keyframe(-1), "[")
        self.act_next_flag = a("Next flagged frame", lambda: play.jump_flagged(1), "Ctrl+]")
        self.act_prev_flag = a("Previous flagged frame", lambda: play.jump_flagged(-1), "Ctrl+[")

        self.act_track_fwd = a("Track &forward", lambda: self.start_tracking(1), "T",
                               "Track the current track forward from this frame (both model variants)")
        self.act_track_back = a("Track &backward", lambda: self.start_tracking(-1), "Shift+T",
                                "Track the current track backward from this frame")
        self.act_track_all_fwd = a("Track &all tracks forward", lambda: self.start_tracking_all(1), "Ctrl+T",
                                   "Track every track with a box on this frame forward, each with its own "
                                   "trackers; each stops on its own when its score drops")
        self.act_track_all_back = a("Track all tracks back&ward", lambda: self.start_tracking_all(-1),
                                    "Ctrl+Shift+T", "Track every track with a box on this frame backward")
        self.act_stop = a("&Stop tracking", self.stop_tracking, "Esc", "Stop tracking (or leave \"new box\" mode)")
        self.track_switches = {}
        for key, text, tip, field, value in TRACK_SWITCHES:
            action = a(text, lambda on, key=key, field=field, value=value: self._switch_track_setting(
                key, field, value, on), None, tip, checkable=True)
            action.setChecked(self.settings.value(key, False, type=bool))
            self._switch_track_setting(key, field, value, action.isChecked())
            self.track_switches[field] = action
        self.act_predict_motion = self.track_switches["motion_prediction"]
        self.act_colour_rerank = self.track_switches["colour_rerank"]

        self.act_zoom_in = a("Zoom in", lambda: self.frame_view.zoom(1.25), ["+", "="])
        self.act_zoom_out = a("Zoom out", lambda: self.frame_view.zoom(0.8), "-")
        self.act_fit = a("Fit frame", self.frame_view.fit, "0")
        self.act_final = a("Final map in first column", None, "H", checkable=True)
        self.act_levels = a("Per-level maps", None, "L", checkable=True)
        self.act_candidates = a("Show candidates", None, "C", checkable=True)
        self.act_overlay = a("Cycle map overlay", self.inspect.cycle_overlay, "M")
        self.act_reference = a("Show ground truth", self.views.set_show_reference, "G", checkable=True)
        self.act_reference.setChecked(True)
        self.act_keep_maps = a("Keep maps in project", self._toggle_keep_maps, None, checkable=True)
        self.act_pipeline = self.pipeline_dock.toggleViewAction()  # follows the dock's own close button
        self.act_pipeline.setText("&Pipeline (step mode)")
        self.act_pipeline.setShortcut("P")
        self.act_pipeline.setStatusTip("Show how each variant decided on this frame, step by step; "
                                       "the arrow keys step the frames")
        self.addAction(self.act_pipeline)
        for action, box in ((self.act_final, self.inspect.final_box), (self.act_levels, self.inspect.levels_box),
                            (self.act_candidates, self.inspect.candidates_box)):
            action.setChecked(box.isChecked())
            action.toggled.connect(box.setChecked)
            box.toggled.connect(action.setChecked)

        self.act_help = a("&Keyboard shortcuts", self.show_help, std.HelpContents)
        self.act_about = a("&About HNSE Studio", self._about, dialog=True)

    def _build_menus_and_toolbar(self) -> None:
        menus = {
            "&File": [self.act_open, self.act_open_folder, self.act_open_project, self.act_open_demo, None,
                      self.act_save, self.act_save_as, None, self.act_import_mot, self.act_import_boxes, None,
                      self.act_export_txt, self.act_export_mot, self.act_export_cvat, self.act_export_figure,
                      self.act_export_scores, None, self.act_settings, None, self.act_quit],
            "&Edit": [self.act_undo, self.act_redo, None, self.act_new_box, self.act_draw_box, self.act_keyframe,
                      self.act_copy_forward, self.act_rename, self.act_delete_box, self.act_delete_track, None,
                      self.act_interpolate, self.act_interpolate_all, None,
                      self.act_occluded, self.act_absent, self.act_review],
            "&Navigate": [self.act_play, self.act_faster, self.act_slower, self.act_next, self.act_prev,
                          self.act_next10, self.act_prev10,
                          self.act_first, self.act_last, self.act_goto, None, self.act_next_key,
                          self.act_prev_key, self.act_next_flag, self.act_prev_flag],
            "&Track": [self.act_track_fwd, self.act_track_back, self.act_track_all_fwd, self.act_track_all_back,
                       self.act_stop, None, self.act_predict_motion, self.act_colour_rerank],
            "&View": [self.act_zoom_in, self.act_zoom_out, self.act_fit, None, self.act_final,
                      self.act_levels, self.act_candidates, self.act_overlay, self.act_reference,
                      self.act_pipeline, None, self.act_keep_maps],
            "&Help": [self.act_help, self.act_about],
        }
        self.menus: dict[str, QtWidgets.QMenu] = {}
        for title, actions in menus.items():
            menu = self.menuBar().addMenu(title)
            for action in actions:
                menu.addSeparator() if action is None else menu.addAction(action)
            self.menus[title.replace("&", "")] = menu

        toolbar = self.addToolBar("Main")
        toolbar.setObjectName("main-toolbar")
        toolbar.setMovable(False)
        toolbar.setToolButtonStyle(QtCore.Qt.ToolButtonTextOnly)
        for action in (self.act_open, self.act_save, None, self.act_undo, self.act_redo, None,
                       self.act_new_box, self.act_interpolate, None, self.act_track_back, self.act_track_fwd,
                       self.act_stop):
            toolbar.addSeparator() if action is None else toolbar.addAction(action)
        self.act_undo.setIconText("Undo")
        self.act_redo.setIconText("Redo")
        self.act_open.setIconText("Open")
        self.act_save.setIconText("Save")
        self.act_new_box.setIconText("New box")
        self.act_interpolate.setIconText("Interpolate")
        self.act_track_back.setIconText("◀ Track")
        self.act_track_fwd.setIconText("Track ▶")
        self.act_stop.setIconText("■ Stop")
        self.frames_spin = QtWidgets.QSpinBox()
        self.frames_spin.setRange(0, 100000)
        self.frames_spin.setSpecialValueText("until stopped")
        self.frames_spin.setValue(int(self.settings.value("track/frames", 100)))
        self.frames_spin.setToolTip("How many frames one tracking run covers (0: until stopped)")
        self.frames_spin.setSuffix(" frames")
        self.threshold_spin = QtWidgets.QDoubleSpinBox()
        self.threshold_spin.setRange(0.0, 1.0)
        self.threshold_spin.setSingleStep(0.05)
        self.threshold_spin.setDecimals(2)
        self.threshold_spin.setValue(float(self.settings.value("track/review_threshold", 0.3)))
        self.threshold_spin.setToolTip("Tracking stops and flags the frame for review when the score "
                                       "falls below this (0: never)")
        self.threshold_spin.valueChanged.connect(self._threshold_changed)
        self.frames_spin.valueChanged.connect(lambda v: self.settings.setValue("track/frames", v))
        focus_back = FocusBackOnDone(self.focus_frame, self)
        for label, widget in (("  run:", self.frames_spin), ("  stop below:", self.threshold_spin)):
            toolbar.addWidget(QtWidgets.QLabel(label))
            toolbar.addWidget(widget)
            widget.installEventFilter(focus_back)
        toolbar.addWidget(QtWidgets.QLabel("  tracker:"))
        toolbar.addWidget(self.runs.tracker_choice)

        style = self.style()
        for action, icon in ((self.act_first, QtWidgets.QStyle.SP_MediaSkipBackward),
                             (self.act_prev, QtWidgets.QStyle.SP_MediaSeekBackward),
                             (self.act_play, QtWidgets.QStyle.SP_MediaPlay),
                             (self.act_next, QtWidgets.QStyle.SP_MediaSeekForward),
                             (self.act_last, QtWidgets.QStyle.SP_MediaSkipForward)):
            action.setIcon(style.standardIcon(icon))
            button = QtWidgets.QToolButton()
            button.setDefaultAction(action)
            button.setAutoRaise(True)
            button.setFocusPolicy(QtCore.Qt.NoFocus)
            self.transport.addWidget(button)
        self.transport.addWidget(self.slider, 1)
        self.transport.addWidget(self.views.frame_label)

    def _build_status_bar(self) -> None:
        for widget in (self.runs.fps_label, self.runs.progress, self.runs.model_label):
            self.statusBar().addPermanentWidget(widget)

    # ================================================================ a newly opened document, errors, help

    def _set_document(self, document: Document, source, project: Path | None, reference) -> None:
        """Show a newly opened document: the old one, its run, its undo steps and results go."""
        session = self.session
        self.runs.drop()
        self.frame_view.cancel_drawing()
        self.playback.stop()
        if session.document is not None:
            session.document.unsubscribe(self.views.document_changed)
        if session.source is not None and session.source is not source:
            session.source.close()
        session.document, session.source, session.project_path = document, source, project
        session.reference_boxes = reference
        document.primary_variant = self.variant_names[0]
        document.weights = {spec.name: spec.weights or "" for spec in self.variants}
        self.act_keep_maps.setChecked(document.keep_maps)
        document.subscribe(self.views.document_changed)
        self.undo_stack.clear()
        session.results.clear()
        self.files.autosaver.attach(document, project)
        self.runs.open_source(str(source.path))
        self.threshold_spin.setValue(document.review_threshold)  # a project keeps its own
        self.views.set_document(document)
        session.current_track = None
        first = next(iter(document.tracks), None)
        start = 0
        if first is not None:
            keys = document.keyframes(first)
            start = int(keys[0]) if len(keys) else 0
        session.frame_index = -1  # whatever the start, it is a new frame to draw
        self.views.select_track(first)
        self.playback.set_frame(start)
        self.files.update_title()  # now: the document may not change for a while
        if not self.runs.models_ready:
            # torch and the weights load in the worker thread, but importing torch holds the
            # interpreter's lock for long stretches: start once the first frame is painted
            QtCore.QTimer.singleShot(MODEL_LOAD_DELAY_MS, self.runs.load_models)  # bound: dropped if the window goes

    def show_error(self, message: str) -> None:
        """Tell the user without blocking: the status bar and a window-modal dialog."""
        self.last_error = message
        self.statusBar().showMessage(message, 15000)
        box = QtWidgets.QMessageBox(QtWidgets.QMessageBox.Warning, "HNSE Studio", message,
                                    QtWidgets.QMessageBox.Ok, self)
        box.setAttribute(QtCore.Qt.WA_DeleteOnClose)
        box.finished.connect(self.focus_frame)
        box.open()

    def focus_frame(self) -> None:
        """Give the keyboard focus to the frame view, where T, the arrows and the other
        single keys act on the frame: after a dialog closes or a field's edit is done."""
        self.frame_view.setFocus(QtCore.Qt.OtherFocusReason)

    def show_help(self) -> None:
        self.help_dialog = dialogs.ShortcutsDialog(self.menus, self)
        self.help_dialog.finished.connect(self.focus_frame)
        self.help_dialog.open()

    def shortcut_table(self) -> dict[str, list[tuple[str, str]]]:
        """Every menu action that has a shortcut, by menu: the Help dialog's content."""
        return dialogs.shortcut_table(self.menus)

    def _about(self) -> None:
        QtWidgets.QMessageBox.about(self, "About HNSE Studio", "HNSE Studio: annotate and inspect with the "
                                    "anchor-free Siamese tracker with Hard Negative Samples Emphasis "
                                    "(Zhang & Zhang, ACM MM 2020).")

    # ================================================================ the rooms' entry points that tests and scripts use

    def open_path(self, path: str | Path) -> bool:
        """Open a project file (.h5) or a video / image folder / sequence folder."""
        return self.files.open_path(path)

    def open_media(self, path: str | Path) -> bool:
        """Start a new document on a video file, an image folder or a benchmark sequence folder."""
        return self.files.open_media(path)

    def set_frame(self, index: int) -> None:
        """Show frame ``index`` (clamped to the video), decoded on demand."""
        self.playback.set_frame(index)

    def step(self, delta: int) -> None:
        self.playback.step(delta)

    def select_track(self, track_id: int | None) -> None:
        self.views.select_track(track_id)

    def toggle_flag(self, flag: Flag) -> None:
        self.edits.toggle_flag(flag)

    def current_results(self) -> dict[str, TrackResult | None]:
        return self.views.current_results()

    # ================================================================ document settings on the toolbar and menus

    def _switch_track_setting(self, key: str, field: str, value: float, on: bool) -> None:
        """One of :data:`TRACK_SWITCHES`: the HNSE variants' ``field`` for the next runs,
        ``value`` when on, the weights' own when off; remembered under ``key``."""
        self.settings.setValue(key, bool(on))
        if on:
            self.runs.track_settings[field] = value
        else:
            self.runs.track_settings.pop(field, None)

    def _toggle_keep_maps(self, keep: bool) -> None:
        if self.document is not None:
            self.document.keep_maps = bool(keep)

    def _threshold_changed(self, value: float) -> None:
        self.settings.setValue("track/review_threshold", float(value))
        if self.document is not None:
            self.document.review_threshold = float(value)
        self.score_plot.set_threshold(value)

    def _pipeline_shown(self, shown: bool) -> None:
        if shown and not self._pipeline_sized:
            self._pipeline_sized = True
            QtCore.QTimer.singleShot(0, self._size_pipeline_dock)  # once the dock is laid out
        self.views.set_pipeline_shown(shown)

    def _size_pipeline_dock(self) -> None:
        """Give the dock its width the first time it shows: the window widens by what the
        dock lacks (the other views have their minimum widths), as far as its screen
        allows when the screen is wider than the window."""
        lacking = PIPELINE_DOCK_WIDTH - self.pipeline_dock.width()
        if lacking > 0 and not (self.isMaximized() or self.isFullScreen()):
            width = self.width() + lacking
            screen = self.windowHandle().screen().availableGeometry().width() if self.windowHandle() else 0
            if screen >= self.width():
                width = min(width, screen)
            self.resize(width, self.height())
        self.resizeDocks([self.pipeline_dock], [PIPELINE_DOCK_WIDTH], QtCore.Qt.Horizontal)

    def _show_speed(self, speed: float) -> None:
        self.statusBar().showMessage(f"playback at {speed:g}× the video's speed", 3000)

    def _copy_box_forward(self) -> None:
        if self.edits.copy_box_forward():
            self.playback.step(1)

    # ================================================================ tracking

    def start_tracking(self, direction: int) -> bool:
        """Track the current track from the current frame, as many frames as the toolbar says."""
        return self.runs.start(direction, self.frames_spin.value() or None)

    def start_tracking_all(self, direction: int) -> bool:
        """Track every track with a box on the current frame, as many frames as the toolbar says."""
        return self.runs.start_all(direction, self.frames_spin.value() or None)

    def stop_tracking(self) -> None:
        """Esc: leave "new box" mode, and stop the run in progress."""
        if self.frame_view.drawing:
            self.frame_view.cancel_drawing()
        self.runs.stop()

    def _run_started(self) -> None:
        self.playback.stop()
        self.frame_view.cancel_drawing()
        self._update_actions()
        self.views.redraw_frame_overlays()

    def _run_ended(self, end: RunEnd) -> None:
        self.views.redraw_document()  # now, not on the next turn: listeners of runFinished see the final views
        self.runFinished.emit(end)

    def _maps_dropped(self, message: str) -> None:
        self.act_keep_maps.setChecked(False)
        self.show_error(message)

    # ================================================================ actions

    def _update_actions(self) -> None:
        has_document = self.document is not None
        running = self.session.run is not None
        has_track = has_document and self.current_track is not None
        editable = has_document and not running
        for action in (self.act_save, self.act_save_as, self.act_export_mot, self.act_export_cvat,
                       self.act_import_mot, self.act_import_boxes, self.act_new_box,
                       self.act_play, self.act_next, self.act_prev, self.act_next10, self.act_prev10,
                       self.act_first, self.act_last, self.act_goto):
            action.setEnabled(has_document and (editable or action not in (
                self.act_new_box, self.act_play, self.act_import_mot, self.act_import_boxes)))
        for action in (self.act_draw_box, self.act_keyframe, self.act_copy_forward, self.act_rename,
                       self.act_delete_box, self.act_delete_track,
                       self.act_interpolate, self.act_interpolate_all, self.act_occluded,
                       self.act_absent, self.act_review, self.act_track_fwd, self.act_track_back):
            action.setEnabled(has_track and editable)
        for action in (self.act_track_all_fwd, self.act_track_all_back):
            action.setEnabled(editable and bool(self.document.tracks))
        for action in (self.act_export_txt, self.act_export_figure, self.act_export_scores):
            action.setEnabled(has_track)
        self.act_stop.setEnabled(running or self.frame_view.drawing)  # Esc also leaves "new box" mode
        self.act_undo.setEnabled(editable and self.undo_stack.canUndo())
        self.act_redo.setEnabled(editable and self.undo_stack.canRedo())
        self.act_undo.setText(f"&Undo {self.undo_stack.undoText()}".rstrip())
        self.act_redo.setText(f"&Redo {self.undo_stack.redoText()}".rstrip())

    # ================================================================ window events

    def dragEnterEvent(self, event: QtGui.QDragEnterEvent) -> None:
        if event.mimeData().hasUrls() and any(url.isLocalFile() for url in event.mimeData().urls()):
            event.acceptProposedAction()

    def dropEvent(self, event: QtGui.QDropEvent) -> None:
        paths = [url.toLocalFile() for url in event.mimeData().urls() if url.isLocalFile()]
        if paths:
            event.acceptProposedAction()
            self.open_path(paths[0])

    def closeEvent(self, event: QtGui.QCloseEvent) -> None:
        if not self.files.maybe_save():
            event.ignore()
            return
        self.playback.stop()
        self.files.autosaver.attach(None, None)
        self.runs.shutdown()
        if self.session.source is not None:
            self.session.source.close()
        event.accept()
