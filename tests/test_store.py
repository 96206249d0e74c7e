"""The HDF5 project file: round trip, validation of damaged files, atomic saves, exports."""
import multiprocessing
import os
import random
import signal
import stat
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hnse_gui.document import Document, Flag, Origin
from hnse_gui.store import (
    ProjectFileError,
    export_boxes_txt,
    export_cvat_video,
    export_mot_csv,
    import_boxes_txt,
    import_mot,
    load_project,
    save_project,
    write_track_result,
)
from model.core.errors import InputError


def make_document(frame_count=40, map_frames=range(0, 40, 3), map_size=9, seed=0) -> Document:
    """A document using every field: two tracks, two variants, flags, kept maps, settings."""
    rng = np.random.default_rng(seed)
    document = Document("videos/clip.mp4", frame_count, (640, 360))
    document.weights = {"with HE": "resources/weights/lite_he.pt", "without HE": "resources/weights/lite_nohe.pt"}
    document.primary_variant = "with HE"
    document.review_threshold = 0.45
    document.keep_maps = True
    document.autosave.enabled, document.autosave.interval_s = False, 30
    car = document.add_track("car")
    document.add_track("person", color=(1, 2, 3))
    document.set_box(car.id, 0, (10.5, 20.25, 30, 40))
    document.set_box(car.id, frame_count - 1, (50, 60, 30, 40))
    document.interpolate(car.id, 0, frame_count // 2)
    for frame in range(frame_count // 2, frame_count - 1):
        box = (*rng.uniform(0, 300, 2), *rng.uniform(5, 50, 2))
        for variant in document.weights:
            document.apply_tracking(car.id, frame, box, float(rng.uniform()), variant=variant)
    document.set_flags(car.id, 3, Flag.OCCLUDED | Flag.DECODE_FAILED)
    for frame in map_frames:
        for variant in document.weights:
            document.store_maps(variant, frame, {name: rng.random((map_size, map_size), dtype=np.float32)
                                                 for name in ("score", "final", "hardneg")})
    return document


def assert_same_document(a: Document, b: Document) -> None:
    assert (a.video_path, a.frame_count, a.frame_size) == (b.video_path, b.frame_count, b.frame_size)
    assert (a.weights, a.primary_variant, a.review_threshold, a.keep_maps, a.autosave) == \
        (b.weights, b.primary_variant, b.review_threshold, b.keep_maps, b.autosave)
    assert a.tracks.keys() == b.tracks.keys()
    for track_id, track in a.tracks.items():
        other = b.tracks[track_id]
        assert (track.id, track.label, track.color) == (other.id, other.label, other.color)
        for name in ("boxes", "origin", "flags", "scores"):
            ours, theirs = getattr(track, name), getattr(other, name)
            assert ours.dtype == theirs.dtype
            np.testing.assert_array_equal(ours, theirs)
        for name in ("variant_scores", "variant_boxes"):
            ours, theirs = getattr(track, name), getattr(other, name)
            assert ours.keys() == theirs.keys()
            for variant in ours:
                np.testing.assert_array_equal(ours[variant], theirs[variant])
    assert a.maps.keys() == b.maps.keys()
    for variant, by_frame in a.maps.items():
        assert by_frame.keys() == b.maps[variant].keys()
        for frame, maps in by_frame.items():
            assert maps.keys() == b.maps[variant][frame].keys()
            for name, array in maps.items():
                np.testing.assert_array_equal(array, b.maps[variant][frame][name])


@pytest.fixture
def project(tmp_path) -> Path:
    path = tmp_path / "project.h5"
    save_project(make_document(), path)
    return path


def test_round_trip_keeps_every_field(tmp_path):
    document = make_document()
    assert document.dirty
    path = tmp_path / "project.h5"
    save_project(document, path)
    assert not document.dirty
    loaded = load_project(path)
    assert_same_document(document, loaded)
    assert not loaded.dirty and loaded.tracks[1].variant_scores["without HE"].shape == (40,)
    assert [p.name for p in tmp_path.iterdir()] == ["project.h5"]  # no temporary file left
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    path.chmod(0o640)
    save_project(document, path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o640  # a save keeps the file's permissions


def test_saved_layout_matches_the_documented_schema(project):
    with h5py.File(project, "r") as f:
        assert f.attrs["schema"] == b"hnse-studio-annotations" and f.attrs["schema_version"] == 1
        assert f["settings"].attrs["primary_variant"].decode() == "with HE"
        assert len(f.attrs) <= 8 and len(f["settings"].attrs) <= 8  # compact, checksummed attribute storage
        assert f.attrs["frame_count"] == 40 and f.attrs["frame_size"].tolist() == [640, 360]
        track = f["tracks/1"]
        assert track["boxes"].shape == (40, 4) and track["boxes"].dtype == np.float32
        assert track["origin"].dtype == np.uint8 and track["flags"].dtype == np.uint8
        assert track["variants/without HE/scores"].shape == (40,)
        assert f["maps/with HE/frames"][()].tolist() == list(range(0, 40, 3))
        assert f["maps/with HE/score"].shape == (14, 9, 9) and f["maps/with HE/score"].compression == "gzip"


def _rewrite(path: Path, edit) -> None:
    with h5py.File(path, "a") as f:
        edit(f)


def _replace_dataset(name, data):
    def edit(f):
        del f[name]
        f[name] = data
    return edit


CORRUPTIONS = {
    "other schema version": (lambda f: f.attrs.__setitem__("schema_version", 2), "schema version 2"),
    "other schema": (lambda f: f.attrs.__setitem__("schema", "something-else"), "not an HNSE Studio project"),
    "missing settings": (lambda f: f.__delitem__("settings"), "group 'settings' missing from /"),
    "missing dataset": (lambda f: f.__delitem__("tracks/1/flags"), "dataset 'flags' missing from /tracks/1"),
    "missing attribute": (lambda f: f.attrs.__delitem__("frame_count"), "'frame_count' missing"),
    "wrong shape": (_replace_dataset("tracks/2/boxes", np.zeros((39, 4), np.float32)), "shape (39, 4)"),
    "wrong dtype": (_replace_dataset("tracks/1/scores", np.zeros(40, np.float64)), "dtype float64"),
    "wrong map frames": (_replace_dataset("maps/with HE/frames", np.arange(14) * 10), "increasing frame indices"),
    "bad origin": (_replace_dataset("tracks/1/origin", np.full(40, 7, np.uint8)), "origin holds values"),
    "half-NaN box": (_replace_dataset("tracks/1/boxes", np.tile([np.nan, 1, 1, 1], (40, 1)).astype(np.float32)),
                     "partly NaN"),
    "bad track id": (lambda f: f.move("tracks/1", "tracks/one"), "'one' is not a positive integer"),
}


@pytest.mark.parametrize("case", sorted(CORRUPTIONS))
def test_damaged_project_raises_project_file_error_naming_file(project, case):
    edit, expected = CORRUPTIONS[case]
    _rewrite(project, edit)
    with pytest.raises(ProjectFileError) as caught:
        load_project(project)
    message = str(caught.value)
    assert message.startswith(f"{project}:") and expected in message and "\n" not in message
    assert isinstance(caught.value, InputError)


def test_truncated_random_and_missing_files(project, tmp_path):
    data = project.read_bytes()
    truncated = tmp_path / "truncated.h5"
    truncated.write_bytes(data[: len(data) // 2])
    noise = tmp_path / "noise.h5"
    noise.write_bytes(np.random.default_rng(0).bytes(5000))
    for path in (truncated, noise, tmp_path / "absent.h5", tmp_path):
        with pytest.raises(ProjectFileError, match=f"^{path}: "):
            load_project(path)


@pytest.fixture(scope="module")
def valid_project(tmp_path_factory) -> tuple[bytes, Document]:
    path = tmp_path_factory.mktemp("valid") / "small.h5"
    document = make_document(frame_count=8, map_frames=(0, 5), map_size=4)
    save_project(document, path)
    return path.read_bytes(), document


def _load_bytes(data: bytes) -> Document | None:
    """Load ``data`` as a project: it must either load or raise ProjectFileError (then None)."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "fuzz.h5"
        path.write_bytes(data)
        try:
            return load_project(path)
        except ProjectFileError as error:
            assert str(error).startswith(f"{path}:") and "\n" not in str(error)
            return None


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=4096))
def test_random_bytes_raise_only_project_file_error(data):
    _load_bytes(data)


@settings(max_examples=150, deadline=None)
@given(flips=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(1, 255)), min_size=1, max_size=8),
       cut=st.one_of(st.none(), st.floats(0, 1)))
def test_mutated_project_raises_project_file_error_or_loads_unchanged(valid_project, flips, cut):
    """Damage is detected (checksums), or it hit bytes that do not matter: never wrong boxes."""
    valid_bytes, document = valid_project
    data = bytearray(valid_bytes)
    for where, mask in flips:
        data[int(where * len(data))] ^= mask
    if cut is not None:
        data = data[: int(cut * len(data))]
    loaded = _load_bytes(bytes(data))
    if loaded is not None:
        assert_same_document(document, loaded)


def _save_in_a_loop(document: Document, path: Path, tag: str, connection) -> None:
    """The child's work: save forever, reporting each save's duration."""
    generation = 0
    while True:
        generation += 1
        document.set_track_label(1, f"{tag} {generation}")
        started = time.perf_counter()
        save_project(document, path)
        connection.send(time.perf_counter() - started)


def test_sigkill_during_saves_leaves_old_or_new_file_intact(tmp_path):
    """20 child processes save a large project in a loop and are SIGKILLed at random moments.

    Even rounds kill during the first save (the file should still be the old one), odd
    rounds after it completed, possibly during the next (the file should be new). The
    children are forked, so that each starts saving at once.
    """
    path = tmp_path / "project.h5"
    initial = Document("clip.mp4", 10, (640, 360))
    initial.add_track("initial")
    save_project(initial, path)
    large = make_document(frame_count=2000, map_frames=range(0, 2000, 40), map_size=25)
    fork = multiprocessing.get_context("fork")
    rng = random.Random(0)
    save_seconds = 0.2  # refined from the children's own timings
    found = {"old": 0, "new": 0}
    old_label = "initial"
    for kill in range(20):
        tag = f"child {kill}"
        receiver, sender = fork.Pipe(duplex=False)
        child = fork.Process(target=_save_in_a_loop, args=(large, path, tag, sender), daemon=True)
        child.start()
        try:
            if kill % 2:
                assert receiver.poll(60), "the child never finished a save"
                save_seconds = receiver.recv()
            time.sleep(rng.uniform(0.0, save_seconds))
        finally:
            os.kill(child.pid, signal.SIGKILL)
            child.join()
            receiver.close()
            sender.close()
        label = load_project(path).tracks[1].label  # loads intact, or raises and fails the test
        if label == old_label:
            found["old"] += 1
        else:
            assert label.startswith(f"{tag} ")
            found["new"] += 1
        old_label = label
    leftovers = [p for p in tmp_path.iterdir() if p.suffix == ".tmp"]
    print(f"after 20 kills: old file {found['old']}x, new file {found['new']}x, "
          f"{len(leftovers)} interrupted writes")
    assert found["old"] + found["new"] == 20
    assert found["old"] and found["new"] and leftovers  # kills hit before, after and inside writes


def test_failed_save_leaves_old_file_and_no_temporary(project):
    before = project.read_bytes()
    document = make_document()
    document.tracks[1].variant_scores["a/b"] = np.zeros(40, np.float32)  # not a valid group name
    with pytest.raises(ValueError):
        save_project(document, project)
    assert project.read_bytes() == before
    assert [p.name for p in project.parent.iterdir()] == ["project.h5"]


def test_export_boxes_txt_one_line_per_frame(tmp_path):
    document = Document("clip", 4, (100, 100))
    track = document.add_track("car")
    document.set_box(track.id, 1, (1.5, 2, 3.25, 4))
    document.set_box(track.id, 3, (10, 20, 30, 40.125))
    export_boxes_txt(document, track.id, tmp_path / "boxes.txt")
    assert (tmp_path / "boxes.txt").read_text().splitlines() == [
        "NaN,NaN,NaN,NaN", "1.5,2,3.25,4", "NaN,NaN,NaN,NaN", "10,20,30,40.125"]
    loaded = np.loadtxt(tmp_path / "boxes.txt", delimiter=",")
    np.testing.assert_array_equal(loaded, track.boxes)


def test_export_boxes_txt_writes_no_box_on_absent_frames(tmp_path):
    document = Document("clip", 3, (100, 100))
    track = document.add_track("car")
    for frame in range(3):
        document.set_box(track.id, frame, (1, 2, 3, 4))
    document.set_flags(track.id, 1, Flag.ABSENT)
    document.set_flags(track.id, 2, Flag.OCCLUDED)
    export_boxes_txt(document, track.id, tmp_path / "boxes.txt")
    assert (tmp_path / "boxes.txt").read_text().splitlines() == ["1,2,3,4", "NaN,NaN,NaN,NaN", "1,2,3,4"]


def test_export_mot_csv_writes_mot17_ground_truth_rows_by_frame_then_id(tmp_path):
    document = Document("clip", 4, (100, 100))
    car, person = document.add_track("car"), document.add_track("person")
    document.set_box(person.id, 0, (1, 1, 2, 2))
    document.apply_tracking(person.id, 1, (3, 3, 2, 2), 0.75)
    document.apply_tracking(car.id, 1, (5, 6, 7, 8), 0.5)
    document.set_flags(car.id, 1, Flag.OCCLUDED | Flag.NEEDS_REVIEW)
    document.apply_tracking(car.id, 2, (5, 6, 7, 8), 0.5)
    document.set_flags(car.id, 2, Flag.ABSENT)  # a stored box, but the object is not there: no row
    export_mot_csv(document, tmp_path / "mot.csv")
    assert (tmp_path / "mot.csv").read_text().splitlines() == [
        "1,2,1,1,2,2,1,1,1",
        "2,1,5,6,7,8,1,1,0",
        "2,2,3,3,2,2,1,1,1",
    ]


MOT_GROUND_TRUTH = """\
1,3,10,20,30,40,1,1,1
1,7,100.5,50.25,20,60.125,1,1,0
2,3,12,21,30,40,1,1,1
3,7,104,52,20,60,1,1,0
4,3,16,23,31,41,1,1,1
4,7,106,53,21,61,1,1,1
"""


def test_import_mot_makes_one_track_per_identity(tmp_path):
    path = tmp_path / "gt.txt"
    path.write_text(MOT_GROUND_TRUTH.replace("1,1,0\n", "1,1,0.0\n", 1) + "\n\n")
    document = Document("clip", 5, (320, 240))
    tracks = import_mot(document, path)
    assert [(t.id, t.label) for t in tracks] == [(3, "id 3"), (7, "id 7")]
    three, seven = document.tracks[3], document.tracks[7]
    np.testing.assert_array_equal(seven.boxes[0], np.float32([100.5, 50.25, 20, 60.125]))
    assert np.isnan(seven.boxes[[1, 4]]).all() and np.isnan(three.boxes[[2, 4]]).all()
    assert seven.origin.tolist() == [Origin.MANUAL, 0, Origin.MANUAL, Origin.MANUAL, 0]
    assert seven.flags.tolist() == [Flag.OCCLUDED, 0, Flag.OCCLUDED, 0, 0] and not three.flags.any()
    assert np.isnan(three.scores).all() and document.next_track_id == 8
    # identities the document already gave out: new ids, the label keeps the identity
    again = import_mot(document, path)
    assert [(t.id, t.label) for t in again] == [(8, "id 3"), (9, "id 7")]


def test_mot_round_trip_keeps_every_box_id_and_flag(tmp_path):
    source, exported = tmp_path / "gt.txt", tmp_path / "out.txt"
    source.write_text(MOT_GROUND_TRUTH)
    document = Document("clip", 4, (320, 240))
    import_mot(document, source)
    export_mot_csv(document, exported)
    assert exported.read_text() == MOT_GROUND_TRUTH
    reloaded = Document("clip", 4, (320, 240))
    import_mot(reloaded, exported)
    for track_id, track in document.tracks.items():
        np.testing.assert_array_equal(reloaded.tracks[track_id].boxes, track.boxes)
        np.testing.assert_array_equal(reloaded.tracks[track_id].flags, track.flags)


@pytest.mark.parametrize("text, line, expected", [
    ("1,1,1,1,2,2\n\n2,1,1,1,2,x\n", 3, "not numbers"),
    ("1,1,1,1,2,2\n\n1,2,1,1,2,2\n9,1,1,1,2,2\n", 4, "frame 9 is beyond the video's 4 frames"),
    ("1,1,1,1,2,2\n2,1,1,1,2,2\n\n2,1,5,5,2,2\n", 4, "a second box for id 1 on frame 2"),
])
def test_import_mot_refuses_a_bad_line_and_leaves_the_document_unchanged(tmp_path, text, line, expected):
    path = tmp_path / "gt.txt"
    path.write_text(text)
    document = Document("clip", 4, (320, 240))
    document.add_track("kept")
    revision = document.revision
    with pytest.raises(InputError, match=f"^{path} line {line}: .*{expected}"):
        import_mot(document, path)
    assert list(document.tracks) == [1] and document.revision == revision


def test_import_boxes_txt_reads_the_exported_format(tmp_path):
    document = Document("clip", 5, (100, 100))
    track = document.add_track("car")
    document.set_box(track.id, 1, (1.5, 2, 3.25, 4))
    document.apply_tracking(track.id, 3, (10, 20, 30, 40.125), 0.9)
    export_boxes_txt(document, track.id, tmp_path / "boxes.txt")
    imported = import_boxes_txt(document, tmp_path / "boxes.txt", "car again")
    assert imported.label == "car again" and imported.id == 2
    np.testing.assert_array_equal(imported.boxes, track.boxes)
    assert imported.origin.tolist() == [0, Origin.MANUAL, 0, Origin.MANUAL, 0]
    (tmp_path / "short.txt").write_text("1 2 3 4\n\nnan,nan,nan,nan\n")
    short = import_boxes_txt(document, tmp_path / "short.txt", "short")
    assert short.origin.tolist() == [Origin.MANUAL, 0, 0, 0, 0] and np.isnan(short.boxes[1:]).all()


@pytest.mark.parametrize("text, line, expected", [
    ("1,2,3,4\n1,2,3\n", 2, "expected 4 values"),
    ("1,2,3,4\n1,2,0,4\n", 2, "zero or negative size"),
    ("1,2,3,4\n" * 5 + "NaN,NaN,NaN,NaN\n", 6, "the video has only 5 frames"),
])
def test_import_boxes_txt_refuses_a_bad_file_and_leaves_the_document_unchanged(tmp_path, text, line, expected):
    path = tmp_path / "boxes.txt"
    path.write_text(text)
    document = Document("clip", 5, (100, 100))
    with pytest.raises(InputError, match=f"^{path} line {line}: .*{expected}"):
        import_boxes_txt(document, path, "car")
    assert not document.tracks and document.revision == 0


def test_export_cvat_video_writes_cvat_for_video_1_1(tmp_path):
    document = Document("videos/street.mp4", 10, (640, 360))
    car, person = document.add_track("car"), document.add_track("person")
    document.add_track("car")  # a second "car" without any box: no track element, no second label
    document.set_box(car.id, 1, (10, 20, 30, 40))
    document.apply_tracking(car.id, 2, (12, 20, 30, 40), 0.9)
    document.set_box(car.id, 4, (20, 20, 30, 40))
    document.interpolate(car.id, 0, 10)  # frame 3
    document.set_flags(car.id, 2, Flag.OCCLUDED)
    document.set_box(car.id, 5, (1, 1, 5, 5))
    document.set_flags(car.id, 5, Flag.ABSENT)  # a stored box on an absent frame: outside
    document.set_box(car.id, 7, (30.5, 20, 30, 40.25))
    document.set_box(person.id, 8, (1, 2, 3, 4))
    document.set_box(person.id, 9, (2, 2, 3, 4))
    path = tmp_path / "annotations.xml"
    export_cvat_video(document, path)

    assert path.read_text().startswith("<?xml version='1.0' encoding='utf-8'?>")
    root = ET.parse(path).getroot()
    assert root.tag == "annotations" and root.find("version").text == "1.1"
    task = root.find("meta/task")
    assert {child.tag: child.text for child in task if child.text and child.text.strip()} == {
        "name": "street.mp4", "size": "10", "mode": "interpolation", "overlap": "0"}
    assert [label.find("name").text for label in task.findall("labels/label")] == ["car", "person"]
    assert (task.find("original_size/width").text, task.find("original_size/height").text) == ("640", "360")
    tracks = root.findall("track")
    assert [t.attrib for t in tracks] == [{"id": "1", "label": "car"}, {"id": "2", "label": "person"}]
    attributes = ["frame", "outside", "occluded", "keyframe", "xtl", "ytl", "xbr", "ybr", "z_order"]
    boxes = [[box.attrib[name] for name in attributes] for box in tracks[0]]
    assert all(box.tag == "box" and sorted(box.attrib) == sorted(attributes) for box in tracks[0])
    assert boxes == [
        ["1", "0", "0", "1", "10", "20", "40", "60", "0"],  # MANUAL: a keyframe
        ["2", "0", "1", "1", "12", "20", "42", "60", "0"],  # TRACKED and OCCLUDED
        ["3", "0", "0", "0", "16", "20", "46", "60", "0"],  # INTERPOLATED: not a keyframe
        ["4", "0", "0", "1", "20", "20", "50", "60", "0"],
        ["5", "1", "0", "1", "20", "20", "50", "60", "0"],  # ABSENT: outside, repeating the last box
        ["7", "0", "0", "1", "30.5", "20", "60.5", "60.25", "0"],
        ["8", "1", "0", "1", "30.5", "20", "60.5", "60.25", "0"],  # the track ends after its last box
    ]
    person_boxes = [(box.attrib["frame"], box.attrib["outside"]) for box in tracks[1]]
    assert person_boxes == [("8", "0"), ("9", "0")]  # last box on the last frame: no outside box after it


def test_write_track_result_opens_as_a_project(tmp_path):
    boxes = np.array([[10, 10, 20, 20], [11, 10, 20, 20], [np.nan] * 4, [13, 10, 20, 20]], np.float32)
    scores = np.array([np.nan, 0.9, np.nan, 0.1], np.float32)
    flags = np.array([0, 0, Flag.DECODE_FAILED, 0], np.uint8)
    write_track_result(tmp_path / "r.h5", boxes, scores, "seq/img", "w/lite_he.pt", (320, 240),
                       start=2, frame_count=10, flags=flags)
    document = load_project(tmp_path / "r.h5")
    track = document.tracks[1]
    assert document.frame_count == 10 and document.weights == {"lite_he": "w/lite_he.pt"}
    assert track.origin.tolist() == [0, 0, Origin.MANUAL, Origin.TRACKED, 0, Origin.TRACKED, 0, 0, 0, 0]
    assert track.flags.tolist() == [0, 0, 0, 0, Flag.DECODE_FAILED, Flag.NEEDS_REVIEW, 0, 0, 0, 0]
    np.testing.assert_array_equal(track.boxes[2:6], boxes)
