"""Face detection and landmarks with MediaPipe 0.10.21: BlazeFace boxes and FaceMesh's 468
points, from the model files inside the ``mediapipe`` wheel (Apache-2.0; later releases
download their models at run time, so the version is pinned).

**Candidates**, cheapest step first; the steps run until a candidate is accepted:

1. **coarse**: BlazeFace short-range on the image shrunk so its longer side is at most
   ``COARSE_SIDE``, with a black border of 0.25, 0 and 0.5 of its longer side, in turn
   (tight crops defeat BlazeFace unless the face is framed with some margin: on masked-real
   the three framings together find 393 of 400 faces, the best single one 376); the same
   at ``LOW_SCORE`` when nothing scores ``MIN_SCORE``;
2. **rotated**: the bordered copy turned by 90, 270 and 180 degrees;
3. **tiles**: BlazeFace full-range on overlapping ``TILE`` px tiles of an image pyramid,
   coarsest level first (BlazeFace's box of a 40 px face, ~30 px, is 8 % of a tile; the
   full-range model finds faces down to ~7 % of its input): small faces in large photos;
4. **second detector**: when no candidate of those steps is accepted, the faces of
   libfacedetection's CNN (:mod:`mfr.align.yuface`), judged as second-chance faces.
   A second-chance face that both detectors find (boxes at IoU ``CORROBORATE_IOU``, eyes
   within ``MAX_EYE_SHIFT`` inter-ocular distances) is corroborated: it needs no further
   confirmation.

**Landmarks**: every candidate, in ``pick`` order (largest, or nearest the centre), is cut
out of the full-resolution image upright (rotated by BlazeFace's eye keypoints) and framed
as FaceMesh frames a detection (1.5 x the box), and FaceMesh's landmark model (its
``FaceLandmarkCpu`` subgraph, fed this region instead of its own detector) gives 468 points.
So detection on a shrunk copy is never the last word, and a face on its side or upside down
is meshed upright.

**Acceptance**: the landmark model's own face-presence score is not used for coarse faces
(it scores masked faces low: with its default threshold FaceMesh drops 270 of 726 masked
faces BlazeFace finds on rmfrd-dev). A candidate is accepted when :func:`implausible_mesh`
finds the mesh upright in its own frame (eyes above nose above mouth) and consistent with
BlazeFace's keypoints (eyes within ``MAX_EYE_SHIFT``, nose and mouth, which a mask hides
from both, within ``MAX_LOWER_SHIFT`` inter-ocular distances); when it is not, BlazeFace
is run again on an upright, well-framed cut and the mesh redone; when that does not settle
it, once more on a cut framed by the mesh itself (:func:`mesh_framed`), and the face found
there must also reach face-presence ``MIN_PRESENCE``. A candidate of a second-chance step
(low score, rotated, tile, second detector) must in addition score ``MIN_SCORE`` on an
upright cut, reach face-presence ``MIN_PRESENCE``, or be corroborated by the other
detector. Upside-down faces are refused (:class:`SecondLook`). The aligned crop is checked
once more by ``mfr.align.align.misaligned``; when it fails, the mesh is fitted once more
in the template's frame (:func:`refit_on_template`) and checked again. Constants were
chosen on LFW, masked-real and non-faces (noise, LFW background corners), never on the
evaluation sets (docs/alignment.md).
"""

from __future__ import annotations

import contextlib
import os
import warnings
from dataclasses import dataclass

import numpy as np

from mfr.align.detect import box_iou
from mfr.data.images import shrink_to_side
from mfr.errors import MfrError

MEDIAPIPE_VERSION = "0.10.21"
INSTALL_HINT = (
    f"pip install --no-deps mediapipe=={MEDIAPIPE_VERSION} absl-py attrs flatbuffers "
    "'protobuf>=6.31.1,<7' (what `make setup` does)"
)

COARSE_SIDE = 640
PADS = (0.25, 0.0, 0.5)
LOOSE_FACE = 0.35  # a face smaller than this share of the image: not a tight crop
ROTATIONS = (90, 270, 180)
MIN_SCORE = 0.5
LOW_SCORE = 0.35  # second coarse try, only when nothing scores MIN_SCORE
MIN_PRESENCE = 0.01  # landmark model's face score that confirms a second-chance face
MAX_FACES = 4
TILE = 384
TILE_STRIDE = 288
LANDMARK_SIDE = 256  # the upright cut FaceMesh's landmark model sees (it resizes to 192)
LANDMARK_SCALE = 1.5  # cut side / BlazeFace box side, as FaceMesh frames a detection
REFIT_SCALE = 1.25  # cut side / the first mesh's extent, for the second fit
TEMPLATE_CUT = 1.4  # cut side / aligned crop side, for the fit in the template's frame
CONFIRM_SIDE = 192
CONFIRM_SCALE = 2.5  # face at 40 % of the cut: BlazeFace short-range's comfortable size
FLIP_MARGIN = 0.1
SURE_SCORE = 0.9  # BlazeFace scores no upside-down face this high (LFW, masked-real: max 0.82)
HOG_FLIP_MARGIN = 0.5
HOG_SCALE = 2.0  # the cut HOG judges: face at half its side
MAX_EYE_SHIFT = 0.6
MAX_LOWER_SHIFT = 1.0
CORROBORATE_IOU = 0.5  # two detectors' boxes of one face (PASCAL VOC's match criterion)
NOT_CONFIRMED = "not confirmed"
UPSIDE_DOWN = "upside down"

_SHORT_RANGE_SCORE = (
    "facedetectionshortrange__facedetection__TensorsToDetectionsCalculator.min_score_thresh"
)
_PRESENCE_PARAM = "facelandmarkcpu__ThresholdingCalculator.threshold"
# FaceMesh's landmark subgraph alone, fed a region of interest instead of its own detector.
_LANDMARK_GRAPH = """
input_stream: "image"
input_stream: "roi"
output_stream: "face_landmarks"
node {
  calculator: "FaceLandmarkCpu"
  input_stream: "IMAGE:image"
  input_stream: "ROI:roi"
  input_side_packet: "WITH_ATTENTION:with_attention"
  output_stream: "LANDMARKS:face_landmarks"
}
"""

# FaceMesh vertices of the points BlazeFace reports (keypoints 0-3: the subject's right eye,
# left eye, nose tip, mouth centre): eye corners 33/133 and 362/263, nose tip 1, lips 13/14.
_MESH_RIGHT_EYE = (33, 133)
_MESH_LEFT_EYE = (362, 263)
_MESH_NOSE = 1
_MESH_MOUTH = (13, 14)


@dataclass
class MeshFace:
    """A face found by MediaPipe, in source-image pixels (float64): ``box`` (left, top, right,
    bottom), BlazeFace's six ``keypoints`` (6 x 2: right eye, left eye, nose tip, mouth,
    right ear, left ear of the subject), its ``score`` (0-1), the 468-point ``mesh`` (468 x 2
    or None before refinement) and the ``step`` that found it (coarse, rotated, tile)."""

    box: np.ndarray
    keypoints: np.ndarray
    score: float
    mesh: np.ndarray | None
    step: str = "coarse"


@contextlib.contextmanager
def _quiet_stderr():
    """Silence C++ logging on file descriptor 2 (TFLite and protobuf notices at start-up)."""
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _mediapipe():
    os.environ.setdefault("GLOG_minloglevel", "2")
    try:
        with _quiet_stderr():
            import mediapipe
            from mediapipe.python.solution_base import SolutionBase
            from mediapipe.python.solutions import face_detection, face_mesh
    except ImportError as error:
        raise MfrError(
            f"the mediapipe detector needs mediapipe: {INSTALL_HINT} ({error})"
        ) from None
    if mediapipe.__version__ != MEDIAPIPE_VERSION:
        raise MfrError(
            f"mediapipe {mediapipe.__version__} is installed; mfr needs {MEDIAPIPE_VERSION}, "
            f"the last release that ships its face models: {INSTALL_HINT}"
        )
    return SolutionBase, face_detection, face_mesh


_graphs: dict = {}


def _keep_inherited_graphs() -> None:
    """In a forked child: the parent's graphs are unusable (their threads did not fork) and
    destroying them aborts the process, so they are never freed (a deliberate leak)."""
    import ctypes

    for graph in _graphs.values():
        ctypes.pythonapi.Py_IncRef(ctypes.py_object(graph))
    _graphs.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_keep_inherited_graphs)


def _graph(kind: str, min_score: float = MIN_SCORE):
    """One graph per process, kind and threshold (graphs hold threads, so a forked worker
    builds its own): ``short`` and ``full`` range BlazeFace, ``landmarks`` (FaceMesh)."""
    key = (kind, min_score)
    if key not in _graphs:
        solution_base, face_detection, _ = _mediapipe()
        with _quiet_stderr(), warnings.catch_warnings():
            # mediapipe 0.10.21 calls a protobuf API that protobuf 6 marks deprecated
            warnings.simplefilter("ignore", DeprecationWarning)
            if kind == "short":
                graph = solution_base(
                    binary_graph_path=face_detection._SHORT_RANGE_GRAPH_FILE_PATH,
                    calculator_params={_SHORT_RANGE_SCORE: min_score},
                    outputs=["detections"],
                )
            elif kind == "full":
                graph = face_detection.FaceDetection(
                    model_selection=1, min_detection_confidence=min_score
                )
            else:
                from google.protobuf import text_format
                from mediapipe.framework import calculator_pb2

                config = text_format.Parse(_LANDMARK_GRAPH, calculator_pb2.CalculatorGraphConfig())
                graph = solution_base(
                    graph_config=config,
                    side_inputs={"with_attention": False},
                    calculator_params={_PRESENCE_PARAM: min_score},
                    outputs=["face_landmarks"],
                )
            # the first run logs start-up notices (XNNPACK, feedback tensors): run it here,
            # silenced, on a blank image
            blank = np.zeros((64, 64, 3), np.uint8)
            if kind == "landmarks":
                from mediapipe.framework.formats import rect_pb2

                roi = rect_pb2.NormalizedRect(x_center=0.5, y_center=0.5, width=1, height=1)
                graph.process({"image": blank, "roi": roi})
            elif kind == "full":
                graph.process(blank)
            else:
                graph.process({"image": blank})
        _graphs[key] = graph
    return _graphs[key]


def warm_up() -> None:
    """Build this process's graphs now (workers do it once, before the first image)."""
    _graph("short")
    _graph("short", LOW_SCORE)
    _graph("landmarks", 0.0)


def _detections(result_detections, width: int, height: int):
    faces = []
    for detection in result_detections or []:
        data = detection.location_data
        rel = data.relative_bounding_box
        box = np.array(
            [
                rel.xmin * width,
                rel.ymin * height,
                (rel.xmin + rel.width) * width,
                (rel.ymin + rel.height) * height,
            ]
        )
        keypoints = np.array([(k.x * width, k.y * height) for k in data.relative_keypoints])
        faces.append((box, keypoints, float(detection.score[0])))
    return faces


def run_short(image: np.ndarray, min_score: float = MIN_SCORE) -> list[MeshFace]:
    """BlazeFace short-range on an RGB uint8 image: faces scoring at least ``min_score``, in
    that image's pixels, without mesh."""
    height, width = image.shape[:2]
    result = _graph("short", min_score).process({"image": np.ascontiguousarray(image)})
    return [
        MeshFace(box, keypoints, score, None)
        for box, keypoints, score in _detections(result.detections, width, height)
    ]


def run_landmarks(cut: np.ndarray, min_presence: float = 0.0) -> np.ndarray | None:
    """FaceMesh's 468 points (float64, 468 x 2, in ``cut`` pixels) for a face filling the
    upright square ``cut`` the way FaceMesh frames it (see :func:`upright_matrix`); None when
    the landmark model's face-presence score is under ``min_presence``."""
    from mediapipe.framework.formats import rect_pb2

    side = cut.shape[0]
    roi = rect_pb2.NormalizedRect(x_center=0.5, y_center=0.5, width=1.0, height=1.0, rotation=0)
    result = _graph("landmarks", min_presence).process(
        {"image": np.ascontiguousarray(cut), "roi": roi}
    )
    if result.face_landmarks is None:
        return None
    points = result.face_landmarks.landmark
    return np.array([(p.x * side, p.y * side) for p in points], dtype=np.float64)


def run_full_range(image: np.ndarray) -> list[MeshFace]:
    """BlazeFace full-range detections (no mesh) in ``image`` pixels."""
    height, width = image.shape[:2]
    result = _graph("full").process(np.ascontiguousarray(image))
    return [
        MeshFace(box, keypoints, score, None, "tile")
        for box, keypoints, score in _detections(result.detections, width, height)
    ]


def _affine(face: MeshFace, matrix: np.ndarray) -> MeshFace:
    """Map a face found in a transformed image back through the 2 x 3 ``matrix`` (source ->
    transformed)."""
    inverse = np.vstack([matrix, [0, 0, 1]])
    inverse = np.linalg.inv(inverse)[:2]

    def back(points):
        return np.asarray(points) @ inverse[:, :2].T + inverse[:, 2]

    corners = back(
        [
            [face.box[0], face.box[1]],
            [face.box[2], face.box[1]],
            [face.box[0], face.box[3]],
            [face.box[2], face.box[3]],
        ]
    )
    box = np.r_[corners.min(0), corners.max(0)]
    mesh = None if face.mesh is None else back(face.mesh)
    return MeshFace(box, back(face.keypoints), face.score, mesh, face.step)


def _scale_matrix(factor: float, pad: float = 0.0) -> np.ndarray:
    return np.array([[factor, 0.0, pad], [0.0, factor, pad]])


def _rotation_matrix(angle: int, width: int, height: int) -> np.ndarray:
    """The 2 x 3 matrix of ``np.rot90``-style turns by 90/180/270 degrees counter-clockwise."""
    if angle == 90:
        return np.array([[0.0, 1.0, 0.0], [-1.0, 0.0, width - 1.0]])
    if angle == 180:
        return np.array([[-1.0, 0.0, width - 1.0], [0.0, -1.0, height - 1.0]])
    return np.array([[0.0, -1.0, height - 1.0], [1.0, 0.0, 0.0]])


def _bordered(image: np.ndarray, pad: float):
    import cv2

    border = int(round(pad * max(image.shape[:2])))
    if not border:
        return image, 0
    bordered = cv2.copyMakeBorder(
        image, border, border, border, border, cv2.BORDER_CONSTANT, value=(0, 0, 0)
    )
    return bordered, border


def _coarse(image: np.ndarray):
    return shrink_to_side(image, COARSE_SIDE)


def coarse_faces(image: np.ndarray) -> list[MeshFace]:
    """Step 1: the faces of the first bordered coarse copy (``PADS`` in turn, at
    ``MIN_SCORE`` then ``LOW_SCORE``) where BlazeFace finds any, in source pixels."""
    small, factor = _coarse(image)
    for min_score in (MIN_SCORE, LOW_SCORE):
        for pad in PADS:
            bordered, border = _bordered(small, pad)
            faces = run_short(bordered, min_score)
            if faces:
                found = [_affine(face, _scale_matrix(factor, border)) for face in faces]
                side = max(max(f.box[2] - f.box[0], f.box[3] - f.box[1]) for f in found)
                if side < LOOSE_FACE * max(image.shape[:2]):
                    # not a tight crop: look for smaller faces with the full-range model too
                    more = [_affine(f, _scale_matrix(factor)) for f in run_full_range(small)]
                    found = _suppress(found + more)
                for face in found:
                    face.step = "coarse" if min_score == MIN_SCORE else "low score"
                return found
    return []


def rotated_faces(image: np.ndarray):
    """Step 2, lazily: for 90, 270 and 180 degrees, the faces BlazeFace finds on the bordered
    coarse copy turned that way, in source pixels."""
    small, factor = _coarse(image)
    bordered, border = _bordered(small, PADS[0])
    height, width = bordered.shape[:2]
    for angle in ROTATIONS:
        turned = np.ascontiguousarray(np.rot90(bordered, k=angle // 90))
        faces = run_short(turned)
        if faces:
            rotation = np.vstack([_rotation_matrix(angle, width, height), [0, 0, 1]])
            matrix = (rotation @ np.vstack([_scale_matrix(factor, border), [0, 0, 1]]))[:2]
            found = [_affine(face, matrix) for face in faces]
            for face in found:
                face.step = "rotated"
            yield found


def tile_levels(image: np.ndarray):
    """Step 3, lazily: for each level of a pyramid halving the image until it fits one
    ``TILE`` px tile, coarsest first (larger faces first), the faces full-range BlazeFace
    finds on its tiles (stride ``TILE_STRIDE``), in source pixels, without mesh."""
    import cv2

    height, width = image.shape[:2]
    levels = []
    factor = 1.0
    while True:
        levels.append(factor)
        if max(height, width) * factor <= TILE:
            break
        factor /= 2
    for factor in reversed(levels):
        level = image
        if factor < 1.0:
            size = (max(1, round(width * factor)), max(1, round(height * factor)))
            level = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        found = []
        level_height, level_width = level.shape[:2]
        ys = range(0, max(1, level_height - TILE + TILE_STRIDE), TILE_STRIDE)
        xs = range(0, max(1, level_width - TILE + TILE_STRIDE), TILE_STRIDE)
        for y in ys:
            for x in xs:
                tile = level[y : y + TILE, x : x + TILE]
                for face in run_full_range(tile):
                    found.append(_affine(face, np.array([[factor, 0, -x], [0, factor, -y]])))
        if found:
            yield _suppress(found)


def _suppress(faces: list[MeshFace]) -> list[MeshFace]:
    """Keep the best-scoring of overlapping detections (tiles overlap; two models)."""
    kept: list[MeshFace] = []
    for face in sorted(faces, key=lambda f: -f.score):
        if all(box_iou(face.box, other.box) < 0.3 for other in kept):
            kept.append(face)
    return kept


def upright_matrix(keypoints: np.ndarray, box: np.ndarray, side: int, scale: float):
    """2 x 3 matrix cutting a ``side`` px square around ``box`` (``scale`` times its longer
    side), rotated so BlazeFace's eye keypoints lie level (right eye of the subject on the
    left): FaceMesh's own framing of a detection with ``scale`` 1.5."""
    import cv2

    centre = (box[:2] + box[2:]) / 2
    right_eye, left_eye = keypoints[0], keypoints[1]
    dx, dy = left_eye - right_eye
    angle = np.degrees(np.arctan2(dy, dx))
    extent = scale * max(box[2] - box[0], box[3] - box[1])
    matrix = cv2.getRotationMatrix2D((float(centre[0]), float(centre[1])), angle, side / extent)
    matrix[:, 2] += np.array([side / 2, side / 2]) - centre
    return matrix


def _cut(image: np.ndarray, matrix: np.ndarray, side: int) -> np.ndarray:
    import cv2

    shrink = np.hypot(matrix[0, 0], matrix[0, 1])
    source = image
    if shrink < 0.5:  # area-average first so the bilinear warp does not alias
        factor = min(1.0, 2.0 * shrink)
        height, width = image.shape[:2]
        size = (max(1, round(width * factor)), max(1, round(height * factor)))
        source = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        matrix = matrix @ np.diag([1 / (size[0] / width), 1 / (size[1] / height), 1.0])
    return cv2.warpAffine(
        source, matrix, (side, side), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT
    )


def _mesh_in(image: np.ndarray, matrix: np.ndarray, min_presence: float) -> np.ndarray | None:
    mesh = run_landmarks(_cut(image, matrix, LANDMARK_SIDE), min_presence)
    if mesh is None:
        return None
    inverse = cv2_invert(matrix)
    return mesh @ inverse[:, :2].T + inverse[:, 2]


def add_mesh(image: np.ndarray, face: MeshFace, min_presence: float = 0.0) -> MeshFace | None:
    """``face`` with its 468-point mesh, computed on a full-resolution upright cut; None when
    the face-presence score is under ``min_presence``.

    The first mesh is fitted in the region BlazeFace's box and eye keypoints give; the mesh
    is then fitted once more in the region its own eye corners and extent give (``REFIT_SCALE``
    times the extent), as FaceMesh does when it tracks: BlazeFace's box moves when a mask
    covers the lower face, the mesh's own frame much less (LFW faces with a painted mask: eye
    shift median 0.051 -> 0.031, 90th percentile 0.098 -> 0.058 inter-ocular distances)."""
    matrix = upright_matrix(face.keypoints, face.box, LANDMARK_SIDE, LANDMARK_SCALE)
    mesh = _mesh_in(image, matrix, min_presence)
    if mesh is None:
        return None
    eyes = np.vstack([mesh[list(_MESH_RIGHT_EYE)].mean(0), mesh[list(_MESH_LEFT_EYE)].mean(0)])
    extent = np.r_[mesh.min(0), mesh.max(0)]
    refit = _mesh_in(image, upright_matrix(eyes, extent, LANDMARK_SIDE, REFIT_SCALE), 0.0)
    face.mesh = mesh if refit is None else refit
    return face


def refit_on_template(image: np.ndarray, landmarks68: np.ndarray) -> np.ndarray | None:
    """The 468-point mesh (source pixels, float64) fitted once more in the frame the ArcFace
    template gives ``landmarks68`` (68 x 2, source pixels): the cut is the similarity fit of
    their five points onto the template, ``TEMPLATE_CUT`` template crops wide around the
    crop's centre, at ``LANDMARK_SIDE`` px. Used when an aligned crop fails its check: the
    fit of a turned or half-cut face spreads the error of one frame over five points, and the
    mesh of the face seen upright in the aligned frame is usually consistent with itself.
    None when the landmark model finds nothing there."""
    from mfr.align.similarity import arcface_template, five_points, umeyama

    crop = 112.0
    matrix = umeyama(five_points(landmarks68), arcface_template(112))
    frame = np.array(
        [[1.0, 0.0, crop * (TEMPLATE_CUT - 1) / 2], [0.0, 1.0, crop * (TEMPLATE_CUT - 1) / 2]]
    ) * (LANDMARK_SIDE / (TEMPLATE_CUT * crop))
    matrix = frame @ np.vstack([matrix, [0.0, 0.0, 1.0]])
    return _mesh_in(image, matrix, 0.0)


def cv2_invert(matrix: np.ndarray) -> np.ndarray:
    """The inverse of a 2 x 3 affine matrix."""
    full = np.vstack([matrix, [0.0, 0.0, 1.0]])
    return np.linalg.inv(full)[:2]


def _hog_score(cut: np.ndarray) -> float:
    """dlib HOG's best score (threshold -4, no upsampling) for a face near the cut's centre."""
    from mfr.align.detect import hog_faces

    boxes, scores = hog_faces(cut, upsample=0, threshold=-4.0)
    centre = np.array(cut.shape[1::-1]) / 2
    near = [
        s
        for b, s in zip(boxes, scores, strict=True)
        if np.linalg.norm((b[:2] + b[2:]) / 2 - centre) < cut.shape[0] / 4
    ]
    return max(near, default=-4.0)


class SecondLook:
    """BlazeFace again on an upright, well-framed cut around ``face`` (face at 1 /
    ``CONFIRM_SCALE`` of ``CONFIRM_SIDE`` px) and on that cut turned by 180 degrees; each
    pass runs only when asked for (the common upright face needs the turned pass alone).

    :meth:`confirmed`: the detection nearest the cut's centre scoring ``MIN_SCORE``, in
    source pixels, or None. :meth:`flipped`: whether the face is upside down. BlazeFace also
    finds upside-down faces, with their keypoints upside down (LFW faces turned over: all 100
    tried, median score 0.68). A face is upside down when both judges say so: BlazeFace
    scores the turned cut more than ``FLIP_MARGIN`` higher, and dlib's upright-only HOG
    detector scores it more than ``HOG_FLIP_MARGIN`` higher. Measured on 100 LFW faces each:
    turned over, BlazeFace flags 100 and HOG 98 (5th percentile of HOG's margin 0.92);
    upright with a painted mask, BlazeFace flags 6 and HOG's margin stays under 0.38 for 95
    (masked-real: 1 of 94 and 0.41). A flagged face is refused, never turned. When nothing
    scores ``LOW_SCORE`` on the turned cut, BlazeFace cannot flag the face whatever the
    upright cut scores, so the upright pass is skipped (same decision, one pass fewer); a
    face BlazeFace scores ``SURE_SCORE`` is not judged at all (turned over, 175 LFW and
    masked-real faces scored at most 0.82; upright, 94 of 100 LFW faces and 2 of 93
    masked-real faces score 0.9 or more)."""

    def __init__(self, image: np.ndarray, face: MeshFace):
        self.image, self.face = image, face
        self.matrix = upright_matrix(face.keypoints, face.box, CONFIRM_SIDE, CONFIRM_SCALE)
        self.cut = _cut(image, self.matrix, CONFIRM_SIDE)
        self._upright: list | None = None

    def _near(self, picture) -> list[MeshFace]:
        centre = np.array([CONFIRM_SIDE / 2, CONFIRM_SIDE / 2])
        return [
            f
            for f in run_short(picture, LOW_SCORE)
            if np.linalg.norm((f.box[:2] + f.box[2:]) / 2 - centre) < CONFIRM_SIDE / 4
        ]

    def _best(self) -> MeshFace | None:
        if self._upright is None:
            self._upright = [max(self._near(self.cut), key=lambda f: f.score, default=None)]
        return self._upright[0]

    def flipped(self) -> bool:
        if self.face.score >= SURE_SCORE:
            return False
        turned = max(
            (f.score for f in self._near(np.ascontiguousarray(self.cut[::-1, ::-1]))),
            default=0.0,
        )
        if turned <= FLIP_MARGIN:  # nothing found turned (scores start at LOW_SCORE)
            return False
        best = self._best()
        if turned <= (best.score if best else 0.0) + FLIP_MARGIN:
            return False
        face = self.face
        hog_cut = upright_matrix(face.keypoints, face.box, CONFIRM_SIDE, HOG_SCALE)
        hog_cut = _cut(self.image, hog_cut, CONFIRM_SIDE)
        return (
            _hog_score(np.ascontiguousarray(hog_cut[::-1, ::-1])) - _hog_score(hog_cut)
            > HOG_FLIP_MARGIN
        )

    def confirmed(self) -> MeshFace | None:
        best = self._best()
        if best is None or best.score < MIN_SCORE:
            return None
        confirmed = _affine(best, self.matrix)
        confirmed.step = self.face.step
        return confirmed


def implausible_mesh(face: MeshFace) -> str | None:
    """Why a mesh cannot be the face BlazeFace found (a short phrase), or None.

    In the face's own frame (x along the mesh's eye line): the eyes lie above the nose, the
    nose above the mouth; the mesh's eyes, nose tip and mouth lie within
    ``MAX_KEYPOINT_SHIFT`` inter-ocular distances of BlazeFace's keypoints."""
    mesh = face.mesh
    if mesh is None:
        return "no landmarks"
    right_eye = mesh[list(_MESH_RIGHT_EYE)].mean(0)
    left_eye = mesh[list(_MESH_LEFT_EYE)].mean(0)
    nose = mesh[_MESH_NOSE]
    mouth = mesh[list(_MESH_MOUTH)].mean(0)
    axis = left_eye - right_eye
    interocular = float(np.hypot(*axis))
    if interocular < 1.0:
        return "eyes on one point"
    down = np.array([-axis[1], axis[0]]) / interocular  # image y grows downwards
    eyes = (left_eye + right_eye) / 2
    if not 0 < (nose - eyes) @ down < (mouth - eyes) @ down:
        return "eyes, nose and mouth out of order"
    ours = np.vstack([right_eye, left_eye, nose, mouth])
    shift = np.linalg.norm(ours - face.keypoints[:4], axis=1) / interocular
    if shift[:2].max() > MAX_EYE_SHIFT or shift[2:].max() > MAX_LOWER_SHIFT:
        return "landmarks disagree with the detector"
    return None


def mesh_framed(face: MeshFace) -> MeshFace:
    """A detection framed by ``face``'s mesh instead of BlazeFace: the mesh's extent as box,
    its eye corners' centres, nose tip and lips as keypoints (ears: the extent's sides)."""
    mesh = face.mesh
    keypoints = np.vstack(
        [
            mesh[list(_MESH_RIGHT_EYE)].mean(0),
            mesh[list(_MESH_LEFT_EYE)].mean(0),
            mesh[_MESH_NOSE],
            mesh[list(_MESH_MOUTH)].mean(0),
            mesh[[234, 454]],
        ]
    )
    return MeshFace(np.r_[mesh.min(0), mesh.max(0)], keypoints, face.score, None, face.step)


def _accept(image: np.ndarray, face: MeshFace, corroborated: bool = False) -> MeshFace | str:
    """The face with its mesh if it passes the checks (see module doc), else the reason.
    A ``corroborated`` second-chance face (the other detector found it too) needs neither
    the upright cut's ``MIN_SCORE`` nor the landmark model's ``MIN_PRESENCE``."""
    look = SecondLook(image, face)
    if look.flipped():
        return UPSIDE_DOWN
    if face.step == "coarse":
        face = add_mesh(image, face)
        reason = implausible_mesh(face)
        first = face
        confirmed = look.confirmed() if reason else None
        if confirmed is not None:
            # the second look settles most disagreements: BlazeFace's keypoints of a tilted
            # or tightly cropped face are the rougher of the two
            face = add_mesh(image, confirmed)
            reason = implausible_mesh(face)
    else:
        # a face found only by a second-chance step must score MIN_SCORE again once upright
        # and well framed, or the landmark model must score its presence MIN_PRESENCE (noise
        # and patterns that pass LOW_SCORE rarely do either), or the other detector must
        # have found it too
        confirmed = look.confirmed()
        if confirmed is not None:
            face = add_mesh(image, confirmed)
        else:
            face = add_mesh(image, face, 0.0 if corroborated else MIN_PRESENCE)
            if face is None:
                return NOT_CONFIRMED
        first = face
        reason = implausible_mesh(face)
    if reason:
        # a third look, framed by the mesh: a mask moves BlazeFace's box and keypoints of a
        # tight or turned face more than the mesh; the face must then also reach presence
        # MIN_PRESENCE (masked-real: 7 faces more, 1 wrong; without the bar 9, 2 wrong)
        confirmed = SecondLook(image, mesh_framed(first)).confirmed()
        if confirmed is not None:
            third = add_mesh(image, confirmed, MIN_PRESENCE)
            if third is not None and not implausible_mesh(third):
                return third
    return reason or face


def _ordered(faces: list[MeshFace], shape, pick: str) -> list[MeshFace]:
    """Faces in the order ``pick`` prefers them (largest first, or nearest the centre)."""
    if not faces:
        return []
    height, width = shape[:2]
    boxes = np.array([face.box for face in faces])
    if pick == "largest":
        keys = -(boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    else:
        centres = (boxes[:, :2] + boxes[:, 2:]) / 2
        keys = np.linalg.norm(centres - [width / 2, height / 2], axis=1)
    return [faces[i] for i in np.argsort(keys, kind="stable")]


def find_face(image: np.ndarray, pick: str = "largest") -> tuple[MeshFace, int] | str:
    """The face of ``image`` (RGB uint8) with its mesh, and how many faces the step that found
    it saw; or the reason none was accepted. The first step that finds any candidate is the
    last: its candidates are tried in ``pick`` order and the first one accepted wins (a face
    refused as upside down is refused, never searched for again turned)."""
    import itertools

    candidates = coarse_faces(image)
    if not candidates:
        later = itertools.chain(rotated_faces(image), tile_levels(image))
        candidates = next(later, [])
    reason = "no face found"
    unconfirmed, upright = [], []  # upright: candidates not refused as upside down
    for face in _ordered(candidates, image.shape, pick):
        result = _accept(image, face)
        if isinstance(result, MeshFace):
            return result, len(candidates)
        if result == NOT_CONFIRMED:
            unconfirmed.append(face)
        if result != UPSIDE_DOWN:
            upright.append(face)
        reason = f"no face found ({result})"
    second = second_detector_faces(image)
    # in pick order of the second detector's faces: first the unconfirmed BlazeFace faces it
    # corroborates, then the face itself (corroborated by any upright BlazeFace candidate)
    for face in _ordered(second, image.shape, pick):
        for other in [f for f in unconfirmed if _found_by(f, [face])]:
            unconfirmed.remove(other)
            result = _accept(image, other, corroborated=True)
            if isinstance(result, MeshFace):
                return result, len(candidates)
            reason = f"no face found ({result})"
        result = _accept(image, face, corroborated=_found_by(face, upright))
        if isinstance(result, MeshFace):
            return result, len(second)
    return reason


def _found_by(face: MeshFace, others: list[MeshFace]) -> bool:
    """Whether another detector found ``face``: a box matching its box (IoU
    ``CORROBORATE_IOU``) with both eyes within ``MAX_EYE_SHIFT`` inter-ocular distances of
    its eyes (so a face one detector sees upside down is not corroborated by its box)."""
    eyes = face.keypoints[:2]
    interocular = max(float(np.linalg.norm(eyes[1] - eyes[0])), 1.0)
    return any(
        box_iou(face.box, other.box) >= CORROBORATE_IOU
        and np.linalg.norm(other.keypoints[:2] - eyes, axis=1).max() <= MAX_EYE_SHIFT * interocular
        for other in others
    )


def second_detector_faces(image: np.ndarray) -> list[MeshFace]:
    """Step 4: the faces of :mod:`mfr.align.yuface`, as second-chance candidates (step
    ``second detector``: confirmed on an upright cut, by the landmark model's presence or by a
    BlazeFace candidate that matches it)."""
    from mfr.align.yuface import detect

    return [MeshFace(box, keypoints, score, None, "second detector")
            for box, keypoints, score in detect(image)]  # fmt: skip


def find_upright_face(crop: np.ndarray) -> MeshFace | str:
    """The face of an image that should already be an upright face crop (no rotation search,
    no tiles): BlazeFace on the bordered crop at ``MIN_SCORE`` then ``LOW_SCORE``, the face
    nearest the centre, the upside-down judge of :class:`SecondLook`, its mesh, and
    :func:`implausible_mesh`; or the reason it failed."""
    faces = []
    for min_score in (MIN_SCORE, LOW_SCORE):
        for pad in PADS:
            bordered, border = _bordered(crop, pad)
            faces = [_affine(f, _scale_matrix(1.0, border)) for f in run_short(bordered, min_score)]
            if faces:
                break
        if faces:
            break
    if not faces:
        return "no face"
    face = _ordered(faces, crop.shape, "central")[0]
    if SecondLook(crop, face).flipped():
        return UPSIDE_DOWN
    face = add_mesh(crop, face)
    return implausible_mesh(face) or face
