"""bf16 autocast only where the device computes bf16 natively; otherwise float32, said once."""

from __future__ import annotations

import torch

from mfr.train.precision import native_bf16, use_bf16


def test_bf16_falls_back_to_float32_with_one_line_on_a_device_without_native_bf16(monkeypatch):
    monkeypatch.setattr("mfr.train.precision.native_bf16", lambda device: False)
    lines: list[str] = []
    assert use_bf16(True, "cpu", lines.append) is False
    assert len(lines) == 1 and "float32" in lines[0]
    assert use_bf16(False, "cpu", lines.append) is False and len(lines) == 1


def test_bf16_is_kept_where_the_device_has_it(monkeypatch):
    monkeypatch.setattr("mfr.train.precision.native_bf16", lambda device: True)
    lines: list[str] = []
    assert use_bf16(True, "cpu", lines.append) is True and not lines


def test_native_bf16_on_the_cpu_is_what_onednn_reports():
    assert native_bf16("cpu") == bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    assert native_bf16("meta") is False
