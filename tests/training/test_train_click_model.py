"""The click engine's training script: what the network is shown, the robot user it is selected
with, and that its exported bundle is what the click-segment plugin loads."""

import json

import numpy as np
import pytest

from training import train_click_model as T


def synthetic_case(shape=(30, 50, 60), centre=(15, 25, 30), radius=8):
    zz, yy, xx = np.ogrid[:shape[0], :shape[1], :shape[2]]
    mask = (zz - centre[0]) ** 2 + (yy - centre[1]) ** 2 + (xx - centre[2]) ** 2 <= radius ** 2
    ct = np.where(mask, 60.0, 20.0).astype(np.float32) + np.linspace(-50, 50, shape[2], dtype=np.float32)
    depth = np.zeros(shape, np.float32)
    depth[mask] = radius - np.sqrt(((np.argwhere(mask) - centre) ** 2).sum(1))
    return {"name": "synthetic", "ct": ct, "mask": mask, "depth": depth + mask}


def test_training_windows_hold_the_click_inside_the_tumour():
    case, rng = synthetic_case(), np.random.default_rng(0)
    shapes = set()
    for _ in range(40):
        ct, mask, click = T.sample(case, rng)
        assert ct.shape == mask.shape and ct.dtype == np.float32
        assert mask[tuple(np.rint(click).astype(int))]
        shapes.add(ct.shape)
    assert (48, 80, 80) in shapes  # extended windows have the full size ...
    assert any(s != (48, 80, 80) for s in shapes)  # ... windows inside the crop do not


def test_extended_window_mirrors_the_ct_but_not_the_tumour():
    case = synthetic_case()
    ct, mask, lower = T._extended_window(case, (15, 25, 30), (48, 80, 80))
    assert tuple(lower) == (-9, -15, -10)
    inside = (slice(9, 39), slice(15, 65), slice(10, 70))
    assert np.array_equal(ct[inside], case["ct"]) and np.array_equal(mask[inside], case["mask"])
    assert ct[8, 40, 40] == ct[9, 40, 40]  # mirrored at the crop edge (symmetric)
    assert mask.sum() == case["mask"].sum()  # the mirrored tumour is not labelled


def test_rotation_keeps_click_and_mask_together():
    case = synthetic_case()
    rng = np.random.default_rng(5)
    for _ in range(10):
        ct, mask, click = T._rotate_scale(case["ct"], case["mask"], np.array([15.0, 25, 30]), rng)
        assert mask[tuple(np.rint(click).astype(int))]
        assert 0.5 * case["mask"].sum() < mask.sum() < 1.7 * case["mask"].sum()


def test_a_pasted_tumour_lies_in_the_body_beside_the_recipients_own():
    recipient = synthetic_case(radius=6)
    donor = synthetic_case(shape=(20, 30, 30), centre=(10, 15, 15), radius=5)
    donor["ct"] = np.where(donor["mask"], 111.0, 20.0).astype(np.float32)
    rng = np.random.default_rng(3)
    for _ in range(10):
        case = T.paste_tumour(recipient, donor, rng)
        assert case is not None
        mask = case["mask"]
        assert mask.sum() == donor["mask"].sum()  # the donor's tumour, whole, is the only label
        hu = case["ct"][mask]  # its own voxels, the edge ones blended with what lies under them,
        shift = np.median(hu) - 111.0  # all moved by one density shift of at most 15 HU
        assert abs(shift) <= 15 and hu.min() > 0.9 * (111 + shift) - 0.1 * 40 - 1e-3
        assert np.isclose(hu, 111 + shift).mean() > 0.5
        lo = np.array([5, 5, 5])  # half the donor tumour's extent (11 voxels): the mirrored margin
        own = np.zeros(mask.shape, bool)
        own[lo[0]:lo[0] + 30, lo[1]:lo[1] + 50, lo[2]:lo[2] + 60] = recipient["mask"]
        assert not (mask & own).any()  # beside the recipient's tumour, never on it
        assert case["depth"][mask].max() >= 3 and case["depth"][~mask].max() == 0
        ct, window_mask, click = T.sample(case, rng)
        assert window_mask[tuple(np.rint(click).astype(int))]
    air = dict(recipient, ct=np.full(recipient["ct"].shape, -1000.0, np.float32))
    assert T.paste_tumour(air, donor, rng) is None  # no body to place it in


def test_a_made_up_lesion_is_one_density_step_in_soft_tissue_beside_the_recipients_own():
    recipient = synthetic_case(radius=6)
    recipient["ct"] = np.full(recipient["ct"].shape, 40.0, np.float32)
    recipient["ct"][recipient["mask"]] = 200.0  # the recipient's own tumour, easy to tell apart
    rng = np.random.default_rng(7)
    steps, sizes = [], []
    for _ in range(12):
        case = T.synthetic_lesion(recipient, rng)
        assert case is not None
        mask, ct = case["mask"], case["ct"]
        assert mask.sum() >= 30
        assert not (ct[mask] > 150).any()  # not on the recipient's tumour
        assert case["depth"][mask].max() >= 1 and case["depth"][~mask].max() == 0
        core = case["depth"] >= 2  # away from the blended edge
        if core.any():
            steps.append(np.median(ct[core]) - 40.0)
        sizes.append(mask.sum() * np.prod(T.MODEL_GRID.spacing) / 1000)
        window_ct, window_mask, click = T.sample(case, rng)
        assert window_mask[tuple(np.rint(click).astype(int))]
    steps = np.abs(steps)
    assert len(steps) >= 6 and steps.min() >= 2 and steps.max() <= 40 + 50 + 12 * 3
    assert len(set(np.round(sizes))) > 6  # a new shape and size each time
    air = dict(recipient, ct=np.full(recipient["ct"].shape, -1000.0, np.float32))
    assert T.synthetic_lesion(air, rng) is None  # no soft tissue to place it in


class ThresholdNet:
    """Stands in for the network: lesion where the CT channel is bright and no negative click sits."""

    def __call__(self, x):
        import torch

        lesion = (x[:, :1] > (20 / 300)).float() * (1 - x[:, 2:3])
        return torch.cat([1 - lesion, lesion], 1) * 10


def test_robot_session_keeps_the_clicked_part_as_the_plugin_does():
    case = synthetic_case()
    case["ct"] = np.where(case["mask"], 200.0, 0.0).astype(np.float32)
    case["ct"][:, :, 50:] = 200.0  # a bright slab apart from the tumour
    raw = T.predict_patch(ThresholdNet(), case["ct"], [np.array([15.0, 25, 30])], []) > 0.5
    assert raw.sum() > 2 * case["mask"].sum()
    scores = T.robot_session(ThresholdNet(), case, 3)
    assert len(scores) == 3 and scores[0] > 0.95  # the slab is not connected to the click


def test_exported_bundle_loads_in_the_plugin(tmp_path):
    import torch

    from medviewer_plugins.click_segment.learned import bundle_available, load_model

    net = T.build_network()
    weights = tmp_path / "w.pt"
    torch.save({"model": net.state_dict()}, weights)
    T.export_bundle(str(tmp_path / "work"), str(weights), str(tmp_path / "bundle"))
    assert bundle_available(tmp_path / "bundle")
    inference = json.loads((tmp_path / "bundle" / "configs" / "inference.json").read_text())
    assert inference["network_def"] == T.NETWORK_DEF
    model = load_model(tmp_path / "bundle")
    assert model.grid == T.MODEL_GRID
    x = torch.randn((1, 3, 16, 32, 32), generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        want = net.eval()(x)
        got = model.net(x)
    assert (got - want).abs().max() < 0.05 * want.abs().max()  # weights stored in float16
    state = torch.load(tmp_path / "bundle" / "models" / "model.pt", weights_only=True)
    assert all(v.dtype == torch.float16 for v in state.values() if v.is_floating_point())


def test_the_shipped_bundle_runs_on_the_training_window_and_grid():
    """Instance norm ties the network's features to what its window holds: the plugin's window
    must be the one the network was trained on (a larger one under-segmented large tumours)."""
    from medviewer_plugins.click_segment.learned import DEFAULT_BUNDLE, load_model

    grid = load_model(DEFAULT_BUNDLE).grid
    assert grid.patch_zyx == tuple(T.TRAIN_PATCH_ZYX)
    assert grid == T.MODEL_GRID


@pytest.mark.parametrize("shape", [(17, 33, 40), (16, 32, 32)])
def test_predict_patch_returns_the_window_shape(shape):
    prob = T.predict_patch(ThresholdNet(), np.zeros(shape, np.float32), [np.array(shape) / 2], [])
    assert prob.shape == shape


def test_average_takes_the_mean_of_the_later_snapshots(tmp_path):
    import torch

    snaps = tmp_path / "snaps"
    snaps.mkdir()
    for it, value in ((100, 100.0), (200, 1.0), (300, 3.0)):
        torch.save({"model": {"w": torch.full((2,), value), "n": torch.tensor(it)}}, snaps / f"it{it:05d}.pt")
    T.average(str(tmp_path), 200, str(tmp_path / "avg.pt"))
    avg = torch.load(tmp_path / "avg.pt", weights_only=True)
    assert torch.equal(avg["model"]["w"], torch.full((2,), 2.0))
    assert avg["snapshots"] == ["it00200.pt", "it00300.pt"]


def test_the_split_keeps_ten_validation_cases_apart_from_the_34_trained_on():
    assert len(T.VAL_CASES) == 10 and len(T.TRAIN_CASES) == 34
    assert not set(T.VAL_CASES) & set(T.TRAIN_CASES)
    assert sorted(T.VAL_CASES + T.TRAIN_CASES) == [f"STS_{n:03d}" for n in range(1, 45)]


def _chest():
    """A body of soft tissue (40 HU) in air, two lungs (-850 HU) inside it."""
    ct = np.full((40, 60, 80), -1000.0, np.float32)
    ct[:, 5:55, 5:75] = 40.0
    ct[:, 12:48, 10:36] = -850.0
    ct[:, 12:48, 44:70] = -850.0
    return {"name": "chest", "ct": ct, "mask": np.zeros(ct.shape, bool), "depth": np.zeros(ct.shape)}


def test_a_made_up_lung_lesion_lies_in_the_lungs_not_in_the_air_around_the_body():
    background, rng = _chest(), np.random.default_rng(1)
    lungs = T._lungs(background)
    assert lungs[20, 30, 20] and not lungs[20, 2, 2]   # the air around the body is no lung
    made = [c for c in (T.site_lesion(background, rng, "lung") for _ in range(15)) if c is not None]
    assert len(made) >= 10
    for case in made:
        mask = case["mask"]
        assert mask.sum() >= 4 and lungs[mask].mean() >= 0.6
        assert case["ct"][mask].mean() > background["ct"][mask].mean() + 200   # solid, in air-filled lung
        # the CT changes only about the lesion (its edge blended over about half its radius)
        changed = np.argwhere(case["ct"] != background["ct"])
        where = np.argwhere(mask)
        lo, hi = where.min(0), where.max(0)
        reach = (hi - lo) // 2 + 3
        assert (changed >= lo - reach).all() and (changed <= hi + reach).all()


def test_a_made_up_organ_lesion_lies_inside_a_homogeneous_organ_and_differs_from_it():
    ct = np.full((40, 60, 60), -100.0, np.float32)     # fat
    ct[5:35, 10:50, 10:50] = 60.0                     # an organ of 60 HU
    ct += np.random.default_rng(0).normal(0, 5, ct.shape).astype(np.float32)
    background = {"name": "abdomen", "ct": ct, "mask": np.zeros(ct.shape, bool), "depth": np.zeros(ct.shape)}
    rng = np.random.default_rng(2)
    made = [c for c in (T.site_lesion(background, rng, "organ") for _ in range(15)) if c is not None]
    assert len(made) >= 5
    organ = np.zeros(ct.shape, bool)
    organ[5:35, 10:50, 10:50] = True
    for case in made:
        mask = case["mask"]
        assert organ[mask].mean() > 0.9
        assert abs(case["ct"][mask].mean() - 60.0) > 8    # hypo- or hyperdense against the organ
