"""The plugin API, discovery without heavy imports, the CLI listing, and the trust list."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest

from medviewer.core.volume import Volume
from medviewer.plugins import trust
from medviewer.plugins.api import (
    Box, BoxesResult, ImageResult, LabelMapResult, Manifest, Param, PluginError, Prompts, Request,
    ScoresResult, check_result,
)
from medviewer.plugins.registry import discover, get_manifest, load_plugin, static_availability

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PY = sys.executable


def test_the_built_in_plugins_are_found_through_entry_points():
    found, problems = discover()
    assert not problems
    assert {"monai-bundle", "denoise", "lesion-density"} <= set(found)
    assert found["monai-bundle"].kind == "segmentation" and "detection" in found["monai-bundle"].also_kinds
    assert found["monai-bundle"].isolation == "process" and found["monai-bundle"].executes_untrusted_code
    assert found["denoise"].kind == "image-to-image" and "not a neural network" in found["denoise"].title
    assert found["lesion-density"].kind == "classification" and "heuristic" in found["lesion-density"].title
    for m in found.values():
        assert static_availability(m).ok, static_availability(m).describe()


def test_listing_plugins_imports_no_torch_monai_or_qt():
    code = ("import sys; from medviewer.cli import main; main(['plugins', '-v']); "
            "bad = [m for m in ('torch', 'monai', 'PySide6', 'vtk') if m in sys.modules]; "
            "print('HEAVY', bad)")
    out = subprocess.run([PY, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "HEAVY []" in out.stdout
    for pid in ("monai-bundle", "denoise", "lesion-density"):
        assert pid in out.stdout
    assert "available" in out.stdout and "--param bundle=<path, required>" in out.stdout


def test_a_user_folder_plugin_is_discovered_and_a_broken_one_reported(tmp_path, monkeypatch):
    good = tmp_path / "mine"
    good.mkdir()
    (good / "plugin.json").write_text(json.dumps({
        "id": "my-thresh", "title": "My threshold", "kind": "segmentation", "entry": "my_thresh_impl:T",
        "requires": ["numpy", "a_package_that_is_not_there"],
        "params": [{"name": "level", "type": "float", "default": 100}]}))
    (good / "my_thresh_impl.py").write_text("raise ImportError('imported too early')\n")
    bad = tmp_path / "broken"
    bad.mkdir()
    (bad / "plugin.json").write_text('{"id": "x", "kind": "poetry", "title": "x", "entry": "a:b"}')
    monkeypatch.setenv("MEDVIEWER_PLUGIN_PATH", str(tmp_path))
    found, problems = discover()
    assert "my-thresh" in found  # found without importing its module (which would raise)
    m = found["my-thresh"]
    avail = static_availability(m)
    assert not avail.ok and "a_package_that_is_not_there" in avail.describe()
    assert len(problems) == 1 and "poetry" in problems[0].message
    with pytest.raises(PluginError, match="cannot import"):
        load_plugin(m)


def test_parameters_are_typed_and_unknown_ones_refused():
    m = get_manifest("denoise")
    values = m.resolve_params({"iterations": "3", "method": "bilateral"})
    assert values["iterations"] == 3 and values["method"] == "bilateral" and values["sigma_mm"] == 1.0
    with pytest.raises(PluginError, match="one of"):
        m.resolve_params({"method": "magic"})
    with pytest.raises(PluginError, match="no parameter 'strength'"):
        m.resolve_params({"strength": "2"})
    with pytest.raises(PluginError, match="number"):
        m.resolve_params({"iterations": "many"})
    with pytest.raises(PluginError, match="needs parameter"):
        get_manifest("monai-bundle").resolve_params({})
    assert Param("amp", "bool").parse("false") is False


def test_requests_and_results_are_frozen_and_cross_a_process_boundary():
    v = Volume(np.zeros((2, 3, 4), np.int16), spacing=(1, 1, 2), meta={"patient_id": "X"})
    r = Request(v, Prompts(positive=[(1, 2, 3)]), {"a": 1})
    with pytest.raises(Exception):
        r.device = "cuda"
    with pytest.raises(TypeError):
        r.params["a"] = 2
    back = pickle.loads(pickle.dumps(r))
    assert back.params == {"a": 1} and back.prompts.positive == ((1.0, 2.0, 3.0),)
    assert back.volume.meta["patient_id"] == "X" and back.volume.same_grid(v)
    s = pickle.loads(pickle.dumps(ScoresResult({"a": 0.25})))
    assert s.scores["a"] == 0.25
    with pytest.raises(PluginError):
        Prompts(positive=[(1, 2)])


def test_results_are_checked_against_the_source_grid():
    v = Volume(np.zeros((2, 3, 4), np.int16), spacing=(1, 1, 2))
    seg = Manifest("s", "s", "segmentation", "m:C")
    ok = LabelMapResult(v.with_array(np.ones(v.shape, np.uint8)))
    assert check_result(seg, Request(v), ok) is ok
    shifted = LabelMapResult(v.with_array(np.ones(v.shape, np.uint8), origin=(0.0, 0.0, 5.0)))
    with pytest.raises(PluginError, match="off the source grid"):
        check_result(seg, Request(v), shifted)
    with pytest.raises(PluginError, match="integers"):
        check_result(seg, Request(v), LabelMapResult(v.with_array(np.ones(v.shape, np.float32))))
    with pytest.raises(PluginError, match="expected LabelMapResult"):
        check_result(seg, Request(v), ImageResult(v))
    det = Manifest("d", "d", "detection", "m:C")
    with pytest.raises(PluginError, match="invalid box"):
        check_result(det, Request(v), BoxesResult((Box((0, 0, 5), (1, 1, 4), 0, 0.5),)))


def test_trust_list_round_trip(tmp_path):
    folder = tmp_path / "bundle"
    folder.mkdir()
    assert not trust.is_trusted(folder)
    assert "--trust" in trust.untrusted_message(folder)
    trust.set_trusted(folder)
    assert trust.is_trusted(str(folder) + "/")
    assert trust.trusted_folders() == [os.path.realpath(folder)]
    trust.set_trusted(folder, False)
    assert not trust.is_trusted(folder)


def test_the_trust_list_lives_beside_the_other_settings(tmp_path):
    from medviewer.core.settings import load_settings, save_settings

    settings = load_settings()
    settings.servers["pacs"] = "http://localhost:8042/dicom-web"
    save_settings(settings)
    trust.set_trusted(tmp_path)
    again = load_settings()
    assert again.servers == {"pacs": "http://localhost:8042/dicom-web"}  # kept
    assert again.extra["trusted_plugin_folders"] == [os.path.realpath(tmp_path)]
