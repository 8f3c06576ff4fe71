"""The MaskTheFace folder loader on the real mask-templates folder and on broken ones."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from mfr.errors import ConfigError
from mfr.masking.library import MAX_SIDE, TemplateLibrary, read_masks_cfg


def test_loader_reads_the_real_masktheface_folder(data_dir):
    folder = data_dir / "mask-templates"
    entries = read_masks_cfg(folder)
    assert "empty" not in entries and "inpaint_left" not in entries  # no template: ignored
    assert len(entries) == 21  # 7 types x (front, left, right); commented-out N95_left ignored
    path, anchors = entries["surgical"]
    assert path == folder / "templates" / "surgical.png"
    np.testing.assert_array_equal(anchors, [[21, 97], [307, 22], [600, 99], [25, 322],
                                            [295, 470], [600, 323]])  # fmt: skip
    np.testing.assert_array_equal(entries["N95_right"][1][0], [12, 222])  # keys in any order
    library = TemplateLibrary(folder)
    assert set(library.kinds) == {"surgical", "surgical_green", "surgical_blue", "N95", "cloth",
                                  "gas", "KN95"}  # fmt: skip
    assert set(library.variants["surgical"]) == {"front", "left", "right"}
    template = library.get("surgical", "left")
    assert template.name == "surgical_left"
    original = Image.open(folder / "templates" / "surgical_left.png")
    scale = MAX_SIDE / max(original.size)
    assert max(template.premultiplied.shape[:2]) == MAX_SIDE
    np.testing.assert_allclose(template.anchors[0], np.array([39, 27]) * scale, rtol=0.01)
    # premultiplied: colour never exceeds alpha; most of the template is opaque mask
    rgb, alpha = template.premultiplied[..., :3], template.premultiplied[..., 3]
    assert np.all(rgb.max(axis=2) <= alpha.astype(int) + 1)
    assert 0.3 < (alpha > 0).mean() < 0.95
    assert library.get("surgical", "left") is template  # cached


def _write_cfg(folder, text):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "masks.cfg").write_text(text)


ANCHORS = "".join(f"mask_{k}: {x}, {y}\n" for k, x, y in zip("abcdef", [1, 5, 9, 1, 5, 9],
                                                              [2, 1, 2, 8, 9, 8]))  # fmt: skip


def test_missing_cfg_names_the_file(tmp_path):
    with pytest.raises(ConfigError, match=r"masks\.cfg: no masks\.cfg"):
        TemplateLibrary(tmp_path)


def test_missing_anchor_and_bad_point_are_named(tmp_path):
    _write_cfg(tmp_path / "a", "[m]\ntemplate: m.png\nmask_a: 1, 2\n")
    with pytest.raises(ConfigError, match=r"\[m\] lacks mask_b"):
        TemplateLibrary(tmp_path / "a")
    _write_cfg(tmp_path / "b", "[m]\ntemplate: m.png\n" + ANCHORS.replace("1, 2", "one, 2"))
    with pytest.raises(ConfigError, match=r"\[m\] mask_a must be 'x, y'"):
        TemplateLibrary(tmp_path / "b")


def test_template_without_alpha_or_missing_is_named(tmp_path):
    _write_cfg(tmp_path, "[m]\ntemplate: m.png\n" + ANCHORS + "[n]\ntemplate: n.png\n" + ANCHORS)
    Image.fromarray(np.zeros((10, 10, 3), np.uint8)).save(tmp_path / "m.png")
    library = TemplateLibrary(tmp_path)
    with pytest.raises(ConfigError, match=r"m\.png: template of \[m\] has no alpha channel"):
        library.get("m", "front")
    with pytest.raises(ConfigError, match=r"n\.png: template file of \[n\] not found"):
        library.get("n", "left")  # no left variant: falls back to the front one


def test_small_rgba_template_loads_unscaled(tmp_path):
    _write_cfg(tmp_path, "[m]\ntemplate: m.png\n" + ANCHORS)
    rgba = np.zeros((10, 12, 4), np.uint8)
    rgba[2:8, 1:10] = [200, 100, 50, 255]
    Image.fromarray(rgba).save(tmp_path / "m.png")
    template = TemplateLibrary(tmp_path).get("m", "right")
    assert template.premultiplied.shape == (10, 12, 4)
    np.testing.assert_array_equal(template.premultiplied[4, 4], [200, 100, 50, 255])
    np.testing.assert_array_equal(template.anchors[4], [5, 9])
