"""DE, KP-CVX and KP-SYN on real faces: what they change, where, and their labels."""

from __future__ import annotations

import numpy as np
import pytest
from _masking_faces import face, grace_hopper_path, real_faces
from matplotlib.path import Path as PolygonPath

from mfr.errors import ConfigError
from mfr.masking import METHODS, REGISTRY, make_method
from mfr.masking.designs import KINDS, STYLES, builtin_template
from mfr.masking.erase import erase, erase_rows
from mfr.masking.generate import image_rng
from mfr.masking.hull import HULL_POINTS, hull
from mfr.masking.template import apply_template, brightness_factor, parse_types

TEMPLATES = "mask-templates"


def _no_black(image):
    """The face with no pure-zero channel values, so erasing to 0 changes every covered pixel."""
    return np.maximum(image, 1)


def _check_below_eyes_and_over_mouth(label, lm, name):
    rows = np.flatnonzero(label.any(axis=1))
    assert rows.size, f"{name}: empty label"
    assert rows.min() > lm[36:48, 1].max(), f"{name}: label reaches the eyes"
    mouth = np.round(lm[48:68]).astype(int)
    assert np.all(label[mouth[:, 1], mouth[:, 0]] == 255), f"{name}: mouth not covered"


def test_registry_names_the_three_methods():
    assert METHODS == ("erase", "hull", "template") and set(REGISTRY) == set(METHODS)


@pytest.mark.parametrize("height", [7, 112, 113, 250])
def test_erase_changes_exactly_the_lower_40_percent(height, rng):
    image = rng.integers(1, 256, (height, 31, 3), dtype=np.uint8)
    out, label = erase(image, None, rng)
    top = int(round(0.6 * height))
    assert erase_rows(height) == top
    np.testing.assert_array_equal(out[:top], image[:top])
    assert np.all(out[top:] == 0)
    expected = np.zeros((height, 31), np.uint8)
    expected[top:] = 255
    np.testing.assert_array_equal(label, expected)
    np.testing.assert_array_equal((out != image).any(axis=2), label == 255)
    assert label.dtype == np.uint8 and out.dtype == np.uint8


def test_hull_label_is_the_changed_pixels_below_the_eyes_over_the_mouth(data_dir, rng):
    for name, image, lm in real_faces(data_dir):
        image = _no_black(image)
        out, label = hull(image, lm, rng)
        assert set(np.unique(label)) == {0, 255}
        np.testing.assert_array_equal((out != image).any(axis=2), label == 255)
        assert np.all(out[label == 255] == 0)
        _check_below_eyes_and_over_mouth(label, lm, name)


def test_hull_matches_a_naive_point_in_hull_test(data_dir):
    from scipy.spatial import ConvexHull

    _, image, lm = real_faces(data_dir)[0]
    _, label = hull(image, lm)
    points = lm[HULL_POINTS]
    polygon = PolygonPath(points[ConvexHull(points).vertices])
    yy, xx = np.mgrid[0 : image.shape[0], 0 : image.shape[1]]
    inside = polygon.contains_points(np.c_[xx.ravel(), yy.ravel()]).reshape(label.shape)
    inside[: int(np.floor(lm[36:48, 1].max())) + 1] = False
    disagree = inside != (label == 255)
    # rasterisation may differ only on the hull's boundary pixels
    assert disagree.sum() <= 0.05 * inside.sum()
    boundary = inside ^ np.roll(inside, 1, 0) | inside ^ np.roll(inside, 1, 1)
    grown = boundary | np.roll(boundary, -1, 0) | np.roll(boundary, -1, 1)
    assert not (disagree & ~grown).any()


def _check_template(out, image, label, lm, name):
    assert set(np.unique(label)) <= {0, 255}
    changed = (out != image).any(axis=2)
    assert not (changed & (label == 0)).any(), f"{name}: changed a pixel outside its label"
    # A covered pixel stays unchanged only when the blend rounds back to the face colour.
    assert (label == 255).sum() - changed.sum() <= 0.01 * (label == 255).sum(), name
    _check_below_eyes_and_over_mouth(label, lm, name)


@pytest.mark.parametrize("kind", KINDS)
def test_builtin_templates_cover_nose_mouth_chin_and_label_what_changed(kind, data_dir):
    masker = make_method("template", kind)
    for name, image, lm in real_faces(data_dir):
        for seed in range(2):
            out, label = masker(image, lm, np.random.default_rng(seed))
            _check_template(out, image, label, lm, f"{name} {masker.last_template}")
            tip = np.round(lm[33]).astype(int)
            assert label[tip[1], tip[0]] == 255, "nose tip not covered"
            chin = np.round(lm[8] - [0, 0.03 * (lm[8, 1] - lm[27, 1])]).astype(int)
            assert label[chin[1], chin[0]] == 255, "chin not covered"


def test_masktheface_templates_cover_the_face_and_label_what_changed(data_dir):
    masker = make_method("template", None, data_dir / TEMPLATES)
    assert {"surgical", "N95", "KN95", "cloth"} <= set(masker.types)
    for name, image, lm in real_faces(data_dir):
        for kind in masker.types:
            template = masker.source.get(kind, "front")
            out, label = apply_template(image, lm, template)
            _check_template(out, image, label, lm, f"{name} {template.name}")


def test_template_blends_only_inside_the_warped_alpha_with_brightness_matched(data_dir):
    _, image, lm = real_faces(data_dir)[0]
    template = builtin_template("surgical", 1)  # white
    out, label = apply_template(image, lm, template)
    dark = (image * 0.35).astype(np.uint8)
    out_dark, label_dark = apply_template(dark, lm, template)
    np.testing.assert_array_equal(label, label_dark)
    covered = label == 255
    assert out_dark[covered].mean() < 0.7 * out[covered].mean()
    assert brightness_factor(np.full((5, 3), 170, np.uint8)) == pytest.approx(1.0)
    assert brightness_factor(np.full((5, 3), 10, np.uint8)) == pytest.approx(0.45)
    assert brightness_factor(np.full((5, 3), 255, np.uint8)) == pytest.approx(1.15)


def test_fully_opaque_pixels_show_the_mask_colour_exactly():
    image, lm = face(str(grace_hopper_path()))
    template = builtin_template("kn95", 0)
    out, label = apply_template(image, lm, template)
    # naive recomputation of the blend for one interior pixel of the warped mask
    import cv2

    from mfr.masking.geometry import anchor_points, fit_homography

    matrix = fit_homography(template.anchors, anchor_points(lm))
    warped = cv2.warpPerspective(template.premultiplied, matrix, image.shape[1::-1])
    ys, xs = np.nonzero((warped[..., 3] == 255) & (label == 255))
    y, x = ys[len(ys) // 2], xs[len(xs) // 2]
    factor = brightness_factor(image[(warped[..., 3] > 127) & (label == 255)])
    expected = np.clip(np.round(warped[y, x, :3] * factor), 0, 255)
    np.testing.assert_allclose(out[y, x], expected, atol=1)


def test_type_mix_is_parsed_and_followed(rng):
    names, p = parse_types("surgical:0.5,n95:0.2,cloth:0.3", KINDS)
    assert names == ["surgical", "n95", "cloth"]
    np.testing.assert_allclose(p, [0.5, 0.2, 0.3])
    names, p = parse_types("kn95,Cloth", KINDS)
    assert names == ["kn95", "cloth"] and np.allclose(p, 0.5)
    assert parse_types(None, KINDS)[0] == list(KINDS)
    image, lm = face(str(grace_hopper_path()))
    masker = make_method("template", "surgical:0.7,n95:0.3")
    kinds = [masker.choose(lm, np.random.default_rng(s)).name[:3] for s in range(400)]
    share = kinds.count("sur") / len(kinds)
    assert 0.62 < share < 0.78


@pytest.mark.parametrize(
    "spec, message",
    [("gas_mask:1", "unknown mask type 'gas_mask'"), ("surgical:x", "no numeric weight"),
     ("surgical:0", "add up to more than 0"), ("surgical:-1", "must be >= 0")],
)  # fmt: skip
def test_bad_type_mix_is_a_clear_config_error(spec, message):
    with pytest.raises(ConfigError, match=message):
        parse_types(spec, KINDS)


def test_types_and_masks_only_apply_to_template():
    with pytest.raises(ConfigError, match="apply to --method template"):
        make_method("hull", "surgical")
    with pytest.raises(ConfigError, match="unknown masking method 'blur'"):
        make_method("blur")


def test_every_builtin_design_renders_with_its_anchors_on_the_mask():
    for kind in KINDS:
        for style in range(STYLES[kind]):
            for variant in ("front", "left", "right"):
                template = builtin_template(kind, style, variant)
                alpha = template.premultiplied[..., 3]
                assert alpha.shape == (160, 200)
                coverage = (alpha > 0).mean()
                assert 0.6 < coverage < 0.95, (kind, style, variant, coverage)
                # each anchor lies on (or within 3 px of) the opaque mask
                for x, y in np.round(template.anchors).astype(int):
                    patch = alpha[max(0, y - 3) : y + 4, max(0, x - 3) : x + 4]
                    assert patch.max() > 0, (kind, variant, x, y)
    front, left = builtin_template("surgical", 0), builtin_template("surgical", 0, "left")
    assert (
        left.anchors[1, 0]
        < front.anchors[1, 0]
        < builtin_template("surgical", 0, "right").anchors[1, 0]
    )


def test_per_image_random_streams_depend_only_on_seed_and_path():
    a = image_rng(3, "x/1.png").integers(1 << 30, size=4)
    np.testing.assert_array_equal(a, image_rng(3, "x/1.png").integers(1 << 30, size=4))
    assert not np.array_equal(a, image_rng(3, "x/2.png").integers(1 << 30, size=4))
    assert not np.array_equal(a, image_rng(4, "x/1.png").integers(1 << 30, size=4))


def test_registry_gives_the_table_labels_and_the_cli_help():
    from mfr.experiments.cells import AD_HOC, SOURCE_LABELS
    from mfr.masking.registry import MASK_METHODS, method_help

    labels = {name: method.label for name, method in MASK_METHODS.items()}
    assert labels == {"erase": "DE", "hull": "KP-CVX", "template": "KP-SYN"}
    assert AD_HOC == METHODS and all(SOURCE_LABELS[name] == labels[name] for name in METHODS)
    assert method_help() == "erase (DE), hull (KP-CVX) or template (KP-SYN)"
    assert REGISTRY["erase"] is erase and REGISTRY["hull"] is hull


def test_masking_modules_import_one_another_without_a_cycle():
    import ast
    from pathlib import Path

    import mfr.masking

    folder = Path(mfr.masking.__file__).parent
    graph = {}
    for path in folder.glob("*.py"):
        imports = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("mfr.masking."):
                imports.add(node.module.split(".")[2])
        graph[path.stem] = imports - {path.stem}

    def reaches(start, target, seen=()):
        return any(n == target or (n not in seen and reaches(n, target, (*seen, n)))
                   for n in graph.get(start, ()))  # fmt: skip

    cycles = [name for name in graph if reaches(name, name)]
    assert not cycles, f"import cycle through {cycles}"
