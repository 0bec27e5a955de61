"""The partial-volume rim of a solid lesion towards the lung (medviewer.segmentation.air_rim)."""

import numpy as np
import SimpleITK as sitk

from medviewer.core.volume import Volume
from medviewer.segmentation.air_rim import with_air_rim
from medviewer.segmentation.guidance import dice

SPACING_XYZ = (0.7, 0.7, 1.25)


def _ball_in(background_hu: float, lesion_hu: float = 20.0, radius_mm: float = 6.0, seed: int = 0):
    """A ball of ``lesion_hu`` in ``background_hu``, blurred as a scanner blurs it (so its edge
    voxels hold both), with noise; the truth is the ball itself."""
    shape = (32, 48, 48)
    zz, yy, xx = np.meshgrid(*(np.arange(n) * s for n, s in zip(shape, SPACING_XYZ[::-1])), indexing="ij")
    centre = [n * s / 2 for n, s in zip(shape, SPACING_XYZ[::-1])]
    truth = (zz - centre[0]) ** 2 + (yy - centre[1]) ** 2 + (xx - centre[2]) ** 2 <= radius_mm ** 2
    image = sitk.GetImageFromArray(np.where(truth, lesion_hu, background_hu).astype(np.float32))
    image.SetSpacing(SPACING_XYZ)
    blurred = sitk.GetArrayFromImage(sitk.SmoothingRecursiveGaussian(image, 0.8))
    noisy = blurred + np.random.default_rng(seed).normal(0, 15, shape)
    volume = Volume(noisy.astype(np.int16), spacing=SPACING_XYZ)
    click = volume.voxel_to_patient(np.array(shape) // 2)
    return volume, truth, click


def _tight(volume: Volume, low_hu: float) -> np.ndarray:
    """What the classical engine's window gives: the lesion's voxels above ``low_hu``."""
    return volume.array > low_hu


def test_a_solid_nodule_in_the_lung_gets_its_rim():
    volume, truth, click = _ball_in(-850)
    tight = _tight(volume, -150)
    before = dice(tight, truth)
    after_mask = with_air_rim(volume, tight, [click])
    assert after_mask.sum() > tight.sum()
    assert not (tight & ~after_mask).any()  # it only adds
    assert dice(after_mask, truth) > before + 0.05, (before, dice(after_mask, truth))
    assert dice(after_mask, truth) > 0.85
    assert (after_mask & ~truth).sum() < 0.2 * truth.sum()  # a rim, not the lung


def test_no_rim_in_soft_tissue_nor_for_ground_glass():
    volume, truth, click = _ball_in(60, lesion_hu=10)  # a lesion in muscle: no air around it
    tight = truth.copy()
    tight[truth] = volume.array[truth] < 40
    assert (with_air_rim(volume, tight, [click]) == tight).all()
    ggo, truth, click = _ball_in(-850, lesion_hu=-600)  # ground glass: its own values are rim-like
    assert (with_air_rim(ggo, truth, [click]) == truth).all()


def test_a_negative_click_keeps_the_rim_near_it_out():
    volume, truth, click = _ball_in(-850)
    tight = _tight(volume, -150) & truth
    shape = np.array(truth.shape)
    edge = shape // 2 + np.array([0, 0, int(round(6.0 / 0.7))])  # the ball's edge along x
    negative = volume.voxel_to_patient(edge)
    out = with_air_rim(volume, tight, [click], [negative])
    assert not out[tuple(edge)]
    assert out.sum() > tight.sum()  # the rest of the rim is still added


def test_a_leak_through_the_lung_gets_no_rim():
    volume, truth, click = _ball_in(-850)
    tight = _tight(volume, -150)
    assert (with_air_rim(volume, tight, [click], max_ml=0.1) == tight).all()


def _shrunk(truth: np.ndarray, mm: float) -> np.ndarray:
    """``truth`` with ``mm`` taken off all round (a mask that stopped that far inside)."""
    from medviewer.segmentation.masks import dilate

    return truth & ~dilate(~truth, mm, np.asarray(SPACING_XYZ)[::-1])


def test_a_mask_that_stopped_more_than_3_mm_inside_still_gets_its_rim():
    """A mask 3.5 mm short of a 9 mm nodule all round (a noisy series' window in thick slices: a
    pasted 24 mL lesion in A0001's lung stopped 2.6 mm short in-plane, no lung in its 3 mm shell,
    Dice 0.80): its 3 mm shell holds no lung, so it got nothing. The lung fills its 5 mm shell
    all round, and the rim is sought that far."""
    volume, truth, click = _ball_in(-850, radius_mm=9.0)
    short = _shrunk(truth, 3.5)
    assert with_air_rim(volume, short, [click], wide_mm=3.0) is short  # the 3 mm shell alone: nothing
    out = with_air_rim(volume, short, [click])
    assert dice(short, truth) < 0.75 and dice(out, truth) > 0.85
    assert (out & ~truth).sum() < 0.2 * truth.sum()

