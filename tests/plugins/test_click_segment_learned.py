"""The shipped learned click engine: a MONAI bundle in resources/, loaded with weights_only=True,
run through the click-segment plugin on a validation case it never trained on."""

import json

import numpy as np
import pytest
import torch

from medviewer_plugins.click_segment.learned import DEFAULT_BUNDLE, bundle_available, load_model


def test_bundle_layout_card_and_weights_only_load():
    assert bundle_available(DEFAULT_BUNDLE)
    meta = json.loads((DEFAULT_BUNDLE / "configs" / "metadata.json").read_text())
    assert meta["network_data_format"]["inputs"]["image"]["num_channels"] == 3
    state = torch.load(DEFAULT_BUNDLE / "models" / "model.pt", map_location="cpu", weights_only=True)
    assert state and all(isinstance(v, torch.Tensor) for v in state.values())
    card = (DEFAULT_BUNDLE / "docs" / "README.md").read_text()
    for heading in ("## Data", "## Split", "## Metrics", "## Reproduce"):
        assert heading in card
    model = load_model(DEFAULT_BUNDLE)
    assert model.grid.patch_zyx == tuple(json.loads(
        (DEFAULT_BUNDLE / "configs" / "inference.json").read_text())["patch_size_zyx"])


@pytest.mark.data
def test_one_click_on_a_validation_tumour(sts_cases):
    from medviewer.io import load_volume
    from medviewer.io.annotations import read_rtstruct
    from medviewer.plugins.api import CancelToken, Prompts, Request
    from medviewer.plugins.registry import get_manifest, load_plugin
    from medviewer.segmentation.guidance import deepest_point, dice

    case = next(c for c in sts_cases if c.name == "STS_024")  # validation split (STS_019-024)
    volume = load_volume(case / "image")
    truth = read_rtstruct(case / "RS.dcm", volume, roi_names="GTV_Mass_CT").array > 0
    click = volume.voxel_to_patient(deepest_point(truth, volume.spacing[::-1])[0])
    manifest = get_manifest("click-segment")
    plugin = load_plugin(manifest)
    params = manifest.resolve_params({"engine": "learned"})
    result = plugin.run(Request(volume, Prompts((tuple(click),)), params), lambda *a: None, CancelToken())
    mask = result.label_map.array > 0
    assert result.label_map.same_grid(volume)
    assert mask[tuple(volume.patient_to_voxel(click))]
    assert dice(mask, truth) > 0.5
    # a negative click in the middle of what it found removes voxels near it
    far = np.argwhere(mask & ~truth)
    if len(far):
        neg = volume.voxel_to_patient(far[len(far) // 2])
        again = plugin.run(Request(volume, Prompts((tuple(click),), (tuple(neg),)), params),
                           lambda *a: None, CancelToken())
        assert (again.label_map.array > 0).sum() != mask.sum()


class BrightNet:
    """Stands in for the network: lesion where the CT channel is bright."""

    def __call__(self, x):
        lesion = (x[:, :1] > (100 / 300)).float()
        return torch.cat([1 - lesion, lesion], 1) * 10


def test_a_click_beyond_the_first_window_still_counts(monkeypatch):
    from medviewer.core import Volume
    from medviewer.segmentation.guidance import ModelGrid
    from medviewer_plugins.click_segment import learned

    model = learned.LoadedModel(BrightNet(), ModelGrid((1.0, 1.0, 1.0), (16, 16, 16), 1.0), "cpu")
    monkeypatch.setattr(learned, "load_model", lambda bundle, device: model)
    ct = np.full((120, 32, 32), 20.0, np.float32)
    ct[10:110, 12:20, 12:20] = 200.0  # a bar 100 mm long, far longer than the 16 mm window
    volume = Volume(ct, spacing=(1.0, 1.0, 1.0), origin=(0.0, 0.0, 0.0))
    near, far = (16.0, 16.0, 20.0), (16.0, 16.0, 90.0)  # LPS mm = (x, y, z) here
    first = learned.segment_learned(volume, [near], follow=False)
    assert first[20].any() and not first[60:].any()  # one window around the click
    both = learned.segment_learned(volume, [near, far])
    assert both[20].any() and both[90].any()  # the far click got a window of its own
    assert not both[ct < 100].any()


def _bar_volume(last_slice=110):
    from medviewer.core import Volume

    ct = np.full((120, 32, 32), 20.0, np.float32)
    ct[10:last_slice, 12:20, 12:20] = 200.0  # a bar far longer than the 16 mm window
    return Volume(ct, spacing=(1.0, 1.0, 1.0), origin=(0.0, 0.0, 0.0))


class UnsureNet:
    """Lesion probability 0.6 where the CT channel is bright."""

    def __call__(self, x):
        lesion = (x[:, :1] > (100 / 300)).float()
        return torch.cat([torch.zeros_like(lesion), lesion * float(np.log(1.5))], 1)


def _use(monkeypatch, net):
    """The learned engine with ``net`` on a 1 mm grid and a 16-voxel window; the follow rule
    scaled to it (a 4 mm slab, 0.1 mL)."""
    from medviewer.segmentation.guidance import ModelGrid
    from medviewer_plugins.click_segment import learned

    model = learned.LoadedModel(net, ModelGrid((1.0, 1.0, 1.0), (16, 16, 16), 1.0), "cpu")
    monkeypatch.setattr(learned, "load_model", lambda bundle, device: model)
    monkeypatch.setattr(learned, "FOLLOW_SLAB_MM", 4.0)
    monkeypatch.setattr(learned, "FOLLOW_MIN_ML", 0.1)
    return learned


def _z_range(mask):
    z = np.nonzero(mask.any((1, 2)))[0]
    return int(z.min()), int(z.max())


def test_a_lesion_cut_by_the_window_is_followed_beyond_its_face(monkeypatch):
    learned = _use(monkeypatch, BrightNet())
    volume = _bar_volume()
    click = (16.0, 16.0, 50.0)
    once = learned.segment_learned(volume, [click], follow=False)
    assert _z_range(once) == (42, 57)  # the 16-voxel window around the click
    followed = learned.segment_learned(volume, [click])
    low, high = _z_range(followed)
    assert low < 42 - 4 and high > 57 + 4  # a window of its own beyond each face
    assert low > 42 - 16 and high < 57 + 16  # one round only
    assert not followed[volume.array < 100].any()
    assert np.array_equal(once[42:58], followed[42:58])  # what the first window found stays


def test_an_unsure_cut_is_not_followed(monkeypatch):
    learned = _use(monkeypatch, UnsureNet())  # probability 0.6: above the threshold, not sure
    volume = _bar_volume()
    click = (16.0, 16.0, 50.0)
    followed = learned.segment_learned(volume, [click])
    assert _z_range(followed) == (42, 57)
    assert np.array_equal(followed, learned.segment_learned(volume, [click], follow=False))


def test_a_cut_at_the_volume_edge_is_not_followed(monkeypatch):
    learned = _use(monkeypatch, BrightNet())
    volume = _bar_volume(last_slice=120)  # the bar runs to the volume's last slice
    followed = learned.segment_learned(volume, [(16.0, 16.0, 117.0)])
    low, high = _z_range(followed)
    assert high == 119  # the window was shifted inside the volume, its top at the last slice
    assert 104 - 16 < low < 104 - 4  # followed downwards only


def test_the_window_keeps_its_training_size_at_the_volume_edge(monkeypatch):
    learned = _use(monkeypatch, BrightNet())
    model = learned.load_model(None, "cpu")
    run = learned._probability(_bar_volume(), [(16.0, 16.0, 2.0)], [], model, None, None, 0.0, 1.0)
    assert [tuple(int(v) for v in hi - lo) for lo, hi in run.windows] == [(16, 16, 16)]
    assert run.lower[0] == 0


class AlternatingNet:
    """Lesion probability 0.6 on its odd calls, 0.9 on its even ones; counts its calls."""

    def __init__(self):
        self.calls = 0

    def __call__(self, x):
        self.calls += 1
        p = 0.6 if self.calls % 2 else 0.9
        logit = float(np.log(p / (1 - p)))
        return torch.cat([torch.zeros_like(x[:, :1]), torch.full_like(x[:, :1], logit)], 1)


def test_the_first_click_is_also_looked_at_on_a_coarser_grid(monkeypatch):
    """The first look (one positive click, no negative) runs the network on the model grid and
    on each further test-time scale's coarser grid, and averages the two where both looked; where
    only the coarser window reached, its probability counts. Corrective clicks, and a first answer
    smaller than COARSER_LOOK_MIN_ML: the model grid alone."""
    net = AlternatingNet()
    learned = _use(monkeypatch, net)
    monkeypatch.setattr(learned, "COARSER_LOOK_MIN_ML", 4.0)  # the first answer: a 16 mm cube, 4.1 mL
    model = learned.load_model(None, "cpu")
    volume = _bar_volume()
    click = (16.0, 16.0, 50.0)

    model.scales = (1.0,)
    alone = learned._probability(volume, [click], [], model, None, None, 0.0, 1.0)
    assert net.calls == 1 and not alone.covered.all()  # a 16-voxel window in a 21-voxel crop (z)
    assert np.allclose(alone.probability[alone.covered], 0.6, atol=1e-4)

    net.calls = 0
    model.scales = (1.0, 2.0)
    both = learned._probability(volume, [click], [], model, None, None, 0.0, 1.0)
    assert net.calls == 2  # the model grid (0.6), then a grid twice as coarse (0.9)
    assert both.covered.all()  # the coarse window reaches 32 mm around the click
    assert np.allclose(both.probability[alone.covered], 0.75, atol=1e-3)
    assert np.allclose(both.probability[~alone.covered], 0.9, atol=1e-3)
    assert both.probability.shape == alone.probability.shape  # on the model grid

    net.calls = 0
    corrected = learned._probability(volume, [click], [(16.0, 16.0, 54.0)], model, None, None, 0.0, 1.0)
    assert net.calls == 1 and np.allclose(corrected.probability[corrected.covered], 0.6, atol=1e-4)

    net.calls = 0
    monkeypatch.setattr(learned, "COARSER_LOOK_MIN_ML", 4.5)
    small = learned._probability(volume, [click], [], model, None, None, 0.0, 1.0)
    assert net.calls == 1 and np.array_equal(small.probability, alone.probability)


def test_the_bundles_test_time_scales(tmp_path):
    """The shipped bundle asks for scales 1.0 and 1.25; a bundle without the key runs on its grid
    alone; scales that do not start at 1.0, or lie outside 0.5-2.0, are a clear error."""
    from medviewer.core.errors import MedviewerError
    from medviewer_plugins.click_segment import learned

    assert learned._model_grid(DEFAULT_BUNDLE)[1] == (1.0, 1.25)
    config = json.loads((DEFAULT_BUNDLE / "configs" / "inference.json").read_text())
    (tmp_path / "configs").mkdir()
    path = tmp_path / "configs" / "inference.json"
    del config["test_time_scales"]
    path.write_text(json.dumps(config))
    assert learned._model_grid(tmp_path)[1] == (1.0,)
    for bad in ([1.25], [1.0, 3.0], []):
        path.write_text(json.dumps(dict(config, test_time_scales=bad)))
        with pytest.raises(MedviewerError, match="test_time_scales"):
            learned._model_grid(tmp_path)


def test_warming_the_plugin_loads_the_network_ahead_of_the_first_click(tmp_path):
    """Runner.warm on the (thread) click-segment plugin loads the learned engine's network in the
    background: the future holds the seconds it took; asking again gives the same future; a
    failed load (a missing bundle) is an error in the future and is tried again when asked."""
    from medviewer_plugins.click_segment import learned

    from medviewer.plugins.registry import get_manifest
    from medviewer.plugins.runner import Runner

    manifest = get_manifest("click-segment")
    runner = Runner()
    learned._CACHE.clear()
    future = runner.warm(manifest, {"engine": "learned"})
    assert future is not None
    assert future.result(timeout=120) > 0
    assert learned.model_loaded(DEFAULT_BUNDLE, "cpu")
    assert runner.warm(manifest, {"engine": "learned"}) is future
    classical = runner.warm(manifest, {"engine": "classical"})   # needs nothing to load
    assert classical is not future and classical.result(timeout=60) >= 0

    missing = runner.warm(manifest, {"engine": "learned", "bundle": str(tmp_path / "nothing")})
    with pytest.raises(Exception, match="bundle is missing"):
        missing.result(timeout=60)
    again = runner.warm(manifest, {"engine": "learned", "bundle": str(tmp_path / "nothing")})
    assert again is not missing


def test_the_learned_engine_runs_where_the_request_asks(monkeypatch):
    """'auto' picks CUDA when the plugin sees a usable GPU (faked here: no GPU on the CI machine)
    and the CPU otherwise; the device reaches the engine."""
    from medviewer_plugins.click_segment import impl, learned

    from medviewer.plugins.api import Prompts, Request
    from medviewer.plugins.registry import get_manifest
    from medviewer.plugins.runner import Runner

    seen = []

    def fake_engine(volume, positives, negatives, *, device, **_kw):
        seen.append(device)
        mask = np.zeros(volume.shape, bool)
        mask[2:4, 2:4, 2:4] = True
        return mask

    monkeypatch.setattr(learned, "segment_learned", fake_engine)
    from medviewer.core.volume import Volume

    volume = Volume(np.zeros((6, 6, 6), np.int16), spacing=(4.0, 4.0, 4.0))  # thick enough for it
    manifest = get_manifest("click-segment")
    request = Request(volume, Prompts(((12.0, 12.0, 12.0),), ()), {"engine": "learned"}, device="auto")
    Runner().run(manifest, request)
    monkeypatch.setattr(impl, "_cuda_usable", lambda: True)
    Runner().run(manifest, request)
    Runner(force_cpu=True).run(manifest, request)
    assert seen == ["cpu", "cuda", "cpu"]


def test_a_mask_that_reaches_the_image_edge_comes_with_a_note(monkeypatch):
    """A mask touching a face of the image has leaked beyond the scan or belongs to a lesion the
    scan cuts off: the result says so (the CLI prints it, the editor shows it); one inside does not."""
    from medviewer_plugins.click_segment import learned

    from medviewer.core.volume import Volume
    from medviewer.plugins.api import Prompts, Request
    from medviewer.plugins.registry import get_manifest
    from medviewer.plugins.runner import Runner

    box = {"value": (slice(2, 4),) * 3}

    def fake_engine(volume, positives, negatives, **_kw):
        mask = np.zeros(volume.shape, bool)
        mask[box["value"]] = True
        return mask

    monkeypatch.setattr(learned, "segment_learned", fake_engine)
    volume = Volume(np.zeros((6, 6, 6), np.int16), spacing=(4.0, 4.0, 4.0))
    request = Request(volume, Prompts(((12.0, 12.0, 12.0),), ()), {"engine": "learned"})
    manifest = get_manifest("click-segment")
    assert Runner().run(manifest, request).note == ""
    for edge in ((slice(2, 4), slice(2, 4), slice(3, 6)), (slice(0, 3), slice(2, 4), slice(2, 4))):
        box["value"] = edge
        assert "reaches the edge of the image" in Runner().run(manifest, request).note


def test_run_prints_a_label_maps_note_as_a_warning(tmp_path):
    """`medviewer run` / batch (write_result): a label map's note follows the summary line as
    "warning: ..."; without a note the summary stays one line."""
    from medviewer.core.volume import Volume
    from medviewer.io import read_image
    from medviewer.plugins.api import LabelMapResult
    from medviewer.plugins.headless import write_result
    from medviewer.plugins.registry import get_manifest

    volume = Volume(np.zeros((4, 5, 6), np.int16))
    labels = volume.with_array(np.ones((4, 5, 6), np.uint8))
    manifest = get_manifest("click-segment")
    plain = write_result(LabelMapResult(labels), manifest, volume, "x", str(tmp_path / "a.nii.gz"), False)
    assert "\n" not in plain and plain.startswith("Wrote a label map")
    warned = write_result(LabelMapResult(labels, note="it leaked"), manifest, volume, "x",
                          str(tmp_path / "b.nii.gz"), False)
    assert warned.splitlines()[1] == "warning: it leaked"
    assert read_image(str(tmp_path / "b.nii.gz")).array.all()


def _disc_slab(slices: int, spacing_z: float = 3.0):
    """A CT slab of ``slices`` slices: a disc of 60 HU (radius 20 mm) in fat (-100 HU), with noise."""
    from medviewer.core.volume import Volume

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:100, :100]
    disc = (yy - 50) ** 2 + (xx - 50) ** 2 <= 20 ** 2
    one = np.where(disc, 60, -100) + rng.normal(0, 8, (100, 100))
    array = np.repeat(one[None], slices, axis=0).astype(np.int16)
    return Volume(array, spacing=(1.0, 1.0, spacing_z)), np.repeat(disc[None], slices, axis=0)


@pytest.mark.parametrize("slices", [1, 2, 3, 4])
def test_a_slice_or_a_thin_slab_is_left_to_the_classical_engine(slices, monkeypatch):
    """The network never saw an image a few model voxels deep (a single slice, a slab under
    16 mm): the learned engine hands it to the classical one and says so. The classical engine
    used to fail on it (ITK's Gaussian needs 4 voxels along each axis); the edge warning does
    not fire for the slab's own faces, which any lesion in it touches."""
    from medviewer_plugins.click_segment import learned

    from medviewer.plugins.api import Prompts, Request
    from medviewer.plugins.registry import get_manifest
    from medviewer.plugins.runner import Runner
    from medviewer.segmentation.guidance import dice

    def no_network(*_a, **_kw):
        raise AssertionError("the network ran on a thin slab")

    monkeypatch.setattr(learned, "segment_learned", no_network)
    volume, disc = _disc_slab(slices)
    request = Request(volume, Prompts(((50.0, 50.0, 0.0),), ()), {"engine": "learned"})
    result = Runner().run(get_manifest("click-segment"), request)
    assert dice(result.label_map.array > 0, disc) > 0.9
    what = "a single slice" if slices == 1 else f"{slices} slices ({3.0 * slices:.1f} mm)"
    assert result.note == f"the image is {what} thick, and the learned engine needs 16 mm: " \
                          "the classical engine outlined this lesion"


def test_a_slab_16_mm_thick_goes_to_the_network(monkeypatch):
    from medviewer_plugins.click_segment import learned

    from medviewer.plugins.api import Prompts, Request
    from medviewer.plugins.registry import get_manifest
    from medviewer.plugins.runner import Runner

    volume, disc = _disc_slab(6, spacing_z=16.0 / 6)
    monkeypatch.setattr(learned, "segment_learned", lambda v, *_a, **_kw: disc.copy())
    result = Runner().run(get_manifest("click-segment"), Request(volume, Prompts(((50.0, 50.0, 0.0),), ()),
                                                                 {"engine": "learned"}))
    assert result.note.startswith("the mask reaches the edge of the image")


def test_segment_on_a_single_slice_says_which_engine_ran(tmp_path):
    """The CLI decides before loading the network: no seconds spent loading it for nothing, and
    the line names the engine that outlined the lesion."""
    import subprocess
    import sys

    from medviewer.io import read_image, write_image
    from tests.conftest import ROOT

    volume, disc = _disc_slab(1)
    write_image(volume, str(tmp_path / "slice.nrrd"))
    r = subprocess.run([sys.executable, "-m", "medviewer", "segment", str(tmp_path / "slice.nrrd"),
                        "--point", "50,50,0", "--out", str(tmp_path / "m.nrrd")],
                       capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == ("note: the image is a single slice thick, and the learned engine needs 16 mm: "
                        "the classical engine outlines this lesion")
    assert "by the classical engine (auto);" in lines[1] and "loading" not in lines[1] and len(lines) == 2
    assert (read_image(str(tmp_path / "m.nrrd")).array > 0).sum() > 0.9 * disc.sum()


@pytest.mark.data
def test_a_sagittal_or_feet_first_series_gets_the_same_outline(sts_cases):
    """The network learned on axial head-first arrays. A series stored in another order (sagittal
    index axes; feet first) is resampled onto the same L, P, S model grid, so one click outlines
    the same lesion: on STS_024 it gave Dice 0.734 (sagittal) and 0.818 (flipped) against the
    truth where the axial series gets 0.783, the network seeing the limb on its side."""
    import SimpleITK as sitk

    from medviewer.core.volume import Volume
    from medviewer.io import load_volume
    from medviewer.io.annotations import read_rtstruct
    from medviewer.segmentation.guidance import deepest_point, dice
    from medviewer_plugins.click_segment.learned import segment_learned

    case = next(c for c in sts_cases if c.name == "STS_024")
    volume = load_volume(case / "image")
    truth = read_rtstruct(case / "RS.dcm", volume, roi_names="GTV_Mass_CT").array > 0
    click = volume.voxel_to_patient(deepest_point(truth, volume.spacing[::-1])[0])
    axial = segment_learned(volume, [click])
    for order, flip in (([1, 2, 0], None), (None, [True, False, True])):
        image = sitk.PermuteAxes(volume.to_sitk(), order) if order else sitk.Flip(volume.to_sitk(), flip)
        other = Volume.from_sitk(image)
        mask = other.with_array(segment_learned(other, [click]).astype(np.uint8)).to_sitk()
        if order:  # back into the axial order, to compare voxel by voxel
            mask = sitk.PermuteAxes(mask, [int(np.argsort(order)[k]) for k in range(3)])
        else:
            mask = sitk.Flip(mask, flip)
        assert dice(sitk.GetArrayFromImage(mask) > 0, axial) > 0.99


def test_segment_asked_for_the_learned_engine_on_a_slice_names_the_one_that_ran(tmp_path):
    import subprocess
    import sys

    from medviewer.io import write_image
    from tests.conftest import ROOT

    volume, _disc = _disc_slab(1)
    write_image(volume, str(tmp_path / "slice.nrrd"))
    r = subprocess.run([sys.executable, "-m", "medviewer", "segment", str(tmp_path / "slice.nrrd"),
                        "--point", "50,50,0", "--engine", "learned", "--out", str(tmp_path / "m.nrrd")],
                       capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "by the classical engine;" in r.stdout.splitlines()[1]


def test_auto_asks_the_classical_engine_when_the_network_finds_nothing_at_the_click(monkeypatch):
    """LIDC's small nodules: the network unsure at the click returns nothing there (keep_clicked);
    "auto" then outlines the lesion with the classical engine and says why; the learned engine
    by name returns the empty mask with a note saying what to do."""
    from medviewer_plugins.click_segment import impl, learned

    from medviewer.core.volume import Volume
    from medviewer.plugins.api import Prompts, Request
    from medviewer.plugins.registry import get_manifest
    from medviewer.plugins.runner import Runner

    monkeypatch.setattr(learned, "segment_learned", lambda volume, *a, **k: np.zeros(volume.shape, bool))
    monkeypatch.setattr(impl, "choose_engine", lambda volume, positives: ("learned", ""))
    array = np.full((40, 40, 40), -800, np.int16)   # a 10 mm nodule in lung
    zz, yy, xx = np.mgrid[:40, :40, :40]
    array[(zz - 20) ** 2 + (yy - 20) ** 2 + (xx - 20) ** 2 <= 25] = 30
    volume = Volume(array, spacing=(1.0, 1.0, 1.0))
    manifest = get_manifest("click-segment")
    auto = Runner().run(manifest, Request(volume, Prompts(((20.0, 20.0, 20.0),), ()), {"engine": "auto"}))
    mask = auto.label_map.array > 0
    assert mask[20, 20, 20] and 300 < mask.sum() < 700
    assert "found no lesion at the click" in auto.note and "classical engine" in auto.note
    named = Runner().run(manifest, Request(volume, Prompts(((20.0, 20.0, 20.0),), ()), {"engine": "learned"}))
    assert not named.label_map.array.any() and "found no lesion at the click" in named.note
