"""The click-to-segment plugin: runs the chosen engine on the request's clicks."""

from __future__ import annotations

import functools
import glob
import sys

import numpy as np

from medviewer.plugins.api import LabelMapResult, Plugin, PluginError
from medviewer.segmentation.air_rim import with_air_rim
from medviewer.segmentation.classical import core_is_faint, remember_last
from medviewer.segmentation.engine_choice import (choose_engine, extends_the_core, first_click_classical,
                                                  holds_the_part, inside_a_lung_mass,
                                                  lies_in_the_lung,
                                                  lung_mass_closes, lung_near, may_be_part_of_a_mass,
                                                  wall_towards_the_lung)
from medviewer.segmentation.guidance import reaches_image_edge, too_thin_for_learned
from medviewer.segmentation.lung_mass import mass_to_the_lung, outline_still_kept
from medviewer.segmentation.masks import fill_slices_in_box


@functools.cache
def _cuda_usable() -> bool:
    """Whether torch sees a CUDA GPU. On Linux without an NVIDIA driver (no /proc/driver/nvidia,
    no /dev/nvidia*) torch is not imported just to ask: a classical click stays light."""
    driver = glob.glob("/proc/driver/nvidia/version") or glob.glob("/dev/nvidia[0-9]*")
    if sys.platform.startswith("linux") and "torch" not in sys.modules and not driver:
        return False
    from medviewer_plugins.click_segment.onnx_backend import cuda_available  # onnxruntime-gpu: no torch to ask

    if cuda_available():
        return True
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


_ASKED_TOO: list = []  # the last (volume, first click, mask): the learned engine asked too (engine_choice)


def _bundle_engine(params) -> str:
    """"deepedit" or "vista3d" when the request names such a Model Zoo bundle as its ``bundle``
    (read, not run; the classical engine ignores it), else ""."""
    if params.get("engine") == "classical" or not params.get("bundle"):
        return ""
    from medviewer_plugins.click_segment.bundle_engines import KINDS, bundle_kind

    kind = bundle_kind(params["bundle"])
    return kind if kind in KINDS else ""


def algorithm_name(engine: str) -> str:
    """A click-segment result's Segment Algorithm Name (DICOM SEG), the engine that outlined it
    named: the same from the window, `segment` and `run`."""
    return f"medviewer click-to-segment ({engine})"


def previous_mask(request) -> np.ndarray | None:
    """The lesion's mask before the latest clicks, where the request carries it (the ``previous``
    parameter: a boolean array on the volume's grid from the window, or a label image file); None
    for a first click or a mask on another grid."""
    previous = request.params.get("previous")
    if previous is None or (isinstance(previous, str) and not previous):
        return None
    if isinstance(previous, str):
        from medviewer.io import read_image

        previous = read_image(previous).array
    previous = np.asarray(previous) > 0
    return previous if previous.shape == request.volume.shape else None


def corrected_result(request, mask: np.ndarray, engine: str = "classical",
                     check: bool = True) -> tuple[np.ndarray, str]:
    """Every engine's mask passes through here: corrective clicks made local and one-sided against
    the previous result (medviewer.segmentation.corrections), then a first click's result checked
    for being a plausible lesion (medviewer.segmentation.plausibility), unless ``check`` is False
    (auto chose this mask for holding the compact region at the click as a part of it). Returns
    the mask and a note for the user ("" when none)."""
    from medviewer.segmentation.corrections import CORRECTIONS, apply_corrections
    from medviewer.segmentation.plausibility import implausible

    volume, prompts = request.volume, request.prompts
    to_voxel = lambda pts: [volume.patient_to_voxel(p, clip=True) for p in pts]  # noqa: E731
    corrected = apply_corrections(previous_mask(request), mask, to_voxel(prompts.positive),
                                  to_voxel(prompts.negative), np.asarray(volume.spacing)[::-1],
                                  CORRECTIONS.get(engine, CORRECTIONS["classical"]))
    notes = [corrected.note]
    if check and len(prompts.positive) + len(prompts.negative) == 1:
        notes.append(implausible(volume, corrected.mask, prompts.positive[0]))
    return corrected.mask, "; ".join(n for n in notes if n)


class ClickSegment(Plugin):
    def gpu_available(self) -> bool:
        return _cuda_usable()

    def warm_up(self, params, device):
        """The learned engine (which "auto" may pick): import torch and MONAI and load the network
        (seconds), so that the first click is as quick as the next. The classical engine needs
        nothing."""
        if _bundle_engine(params):
            from medviewer_plugins.click_segment.bundle_engines import load_engine

            load_engine(params["bundle"], device)
        elif params.get("engine") in ("learned", "auto"):
            from medviewer_plugins.click_segment.learned import DEFAULT_BUNDLE, bundle_available, load_model

            bundle = params.get("bundle") or DEFAULT_BUNDLE
            if params.get("engine") == "auto" and not bundle_available(bundle):
                return  # auto clicks go to the classical engine, and say why
            load_model(bundle, device)

    def run(self, request, progress, cancel):
        if not request.prompts.positive:
            raise PluginError("click inside the lesion first (a positive point)")
        engine = request.params["engine"]
        if _bundle_engine(request.params):
            return self._run_bundle(_bundle_engine(request.params), request, progress)
        note = ""
        report = lambda stage, f: progress(stage, f)  # noqa: E731
        thin = too_thin_for_learned(request.volume) if engine in ("learned", "auto") else ""
        if thin:  # a slice or a thin slab: the classical engine outlines it better
            engine = "classical"
        from medviewer_plugins.click_segment.learned import DEFAULT_BUNDLE, bundle_available

        bundle = request.params.get("bundle") or DEFAULT_BUNDLE
        chosen = missing = ""
        whole = None  # the learned engine's mask where auto found the classical one a part of it
        walled = None  # the classical outline with its wall towards the lung, where auto added it
        volume, prompts = request.volume, request.prompts
        one_click = len(prompts.positive) == 1 and not prompts.negative
        mask = None
        # A mass in the lung that auto outlined along rays to the lung (lung_mass; see below), now
        # corrected: the outline is the engine's answer, and a corrective click changes it as a ball
        # at the click. (The learned engine's own answer, a third of such a mass, cut 75 mL of a 240
        # mL one at a negative click.)
        rays = None
        if engine == "auto" and not one_click and not thin and lung_near(volume, prompts.positive[0]):
            rays = outline_still_kept(volume, prompts.positive[0], previous_mask(request))
        if rays is not None:
            engine, mask = "classical", rays.copy()
            chosen = ("a mass in the lung, outlined along rays from the first click out to where the lung begins, "
                      "which a corrective click changes near itself")
        elif engine == "auto":  # the lesion's first click decides (engine_choice)
            engine, chosen = choose_engine(volume, prompts.positive)
            if engine == "learned" and not bundle_available(bundle):  # a user's own install without it
                engine = "classical"
                chosen = missing = f"the learned engine's bundle is missing ({bundle})"
            elif engine == "learned" and lung_near(volume, prompts.positive[0]):
                # A lung mass too large for the first window: region growing may close it whole,
                # where the learned engine outlines part of it (engine_choice.lung_mass_closes).
                # The first click's learned mask is kept for the corrective clicks, which rerun this.
                from medviewer_plugins.click_segment.learned import segment_learned

                first, device = prompts.positive[0], self.resolve_device(request.device)
                learned = remember_last(_ASKED_TOO, volume, (tuple(first), bundle, device),
                                        lambda: segment_learned(volume, [first], bundle=bundle, device=device,
                                                                progress=report, cancelled=cancel.is_set))
                outline = lung_mass_closes(volume, learned, first)
                if outline is not None:
                    engine = "classical"
                    chosen = ("a mass in the lung larger than the learned engine's window, which region growing "
                              "closes off whole")
                elif one_click:
                    mask = learned.copy()
            elif engine == "classical" and bundle_available(bundle):
                first = prompts.positive[0]
                # The learned engine is asked too where the classical outline may be a part: a faint
                # core (the darker part of a larger lesion?) or an outline enclosed in the chest.
                faint = core_is_faint(volume, first)
                mass = may_be_part_of_a_mass(volume, first)
                if faint or mass:
                    from medviewer_plugins.click_segment.learned import segment_learned

                    device = self.resolve_device(request.device)
                    # its answer to the first click is kept for the lesion's corrective clicks (each
                    # reruns this check; before, each ran the network twice)
                    asked = remember_last(_ASKED_TOO, volume, (tuple(first), bundle, device),
                                          lambda: segment_learned(volume, [first], bundle=bundle, device=device,
                                                                  cancelled=cancel.is_set))
                    part = first_click_classical(volume, first)
                    if faint and extends_the_core(asked, part):
                        engine, whole = "learned", asked
                        chosen = ("the faint core region growing found is part of a larger lesion, which the "
                                  "learned engine outlines")
                    elif faint and inside_a_lung_mass(volume, asked, part):
                        engine, whole = "learned", asked
                        chosen = ("the faint core region growing found lies inside a mass in the lung, which the "
                                  "learned engine outlines")
                    elif mass and holds_the_part(asked, part) and (mass == "enclosed"
                                                                    or lies_in_the_lung(volume, asked)):
                        engine, whole = "learned", asked
                        chosen = ("region growing closed off only part of a lesion in the chest, which the learned "
                                  "engine outlines whole")
                    elif mass:
                        # the centre of a mass in the chest (its dark centre inside a brighter wall, or
                        # the part of a faint one its core reached): the rest, out to where the lung begins
                        wall = wall_towards_the_lung(volume, part, first)
                        if wall is not None:
                            walled = wall
                            chosen = ("region growing closed off the centre of a lesion in the chest, and its wall, out "
                                      "to the lung, is added")
                    if whole is not None and one_click:
                        mask = whole.copy()
        if engine == "learned" and mask is None:
            from medviewer_plugins.click_segment.learned import segment_learned

            mask = segment_learned(volume, prompts.positive, prompts.negative,
                                   bundle=bundle, device=self.resolve_device(request.device),
                                   progress=report, cancelled=cancel.is_set)
        if engine == "learned":
            if not mask.any() and request.params["engine"] == "auto":
                # The network found nothing at the click (unsure of a small nodule, say): the
                # classical engine outlines what the click is in, and says so.
                engine = "classical"
                chosen = "the learned engine found no lesion at the click"
            elif not mask.any():
                note = ("the learned engine found no lesion at the click; click nearer the lesion's "
                        "middle, or try the classical or auto engine")
        if engine == "classical":
            from medviewer.segmentation.classical import ClassicalParams, reached_reach, segment_classical

            if rays is not None:
                pass  # (the outline kept, above)
            elif one_click and walled is not None:
                mask = walled.copy()  # (corrective clicks keep it: corrections change only what is near them)
            elif one_click and request.params["engine"] == "auto":
                # auto's choice may have outlined it from this one click already (cached)
                mask = first_click_classical(volume, prompts.positive[0]).copy()
            else:
                mask = segment_classical(volume, prompts.positive, prompts.negative,
                                         progress=report, cancelled=cancel.is_set)
            if reached_reach(volume, mask, prompts.positive, prompts.negative):
                note = (f"the mask grew as far as the classical engine looks ({ClassicalParams.max_radius_mm:g} mm "
                        "around the clicks): it has probably leaked beyond the lesion; add a negative click "
                        "where it spills" + ("" if thin or missing else ", or try the learned engine"))
        elif engine != "learned":
            raise PluginError(f"unknown engine {engine!r} (auto, learned or classical)")
        # Both engines stop short of a solid lesion's edge towards the lung (air_rim).
        mask = with_air_rim(volume, mask, prompts.positive, prompts.negative)
        # An outline has no hole in a slice (readers draw it so). A noisy necrotic lesion's region is
        # spongy, its holes running from slice to slice out of its top or bottom, where a 3D fill
        # leaves them (a pasted 53 mL mass in A0001's 5 mm slices: Dice 0.805 -> 0.837). A hole
        # that holds a negative click stays open: the click asked for it.
        mask = fill_slices_in_box(mask, [volume.patient_to_voxel(p, clip=True) for p in prompts.negative])
        if request.params["engine"] == "auto" and one_click and not thin and lung_near(volume, prompts.positive[0]):
            # the engines outline part of a large mass in the lung: the learned engine a third to two
            # thirds, region growing its centre; rays from the click outline it out to the lung (lung_mass)
            rays = mass_to_the_lung(volume, prompts.positive[0], mask, closed=engine == "classical")
            if rays is not None:
                mask, note = rays.copy(), ""
                chosen = ("a mass in the lung, outlined along rays from the click out to where the lung begins "
                          f"(the {engine} engine had outlined part of it)")
                engine = "classical"
        if not note and reaches_image_edge(mask, np.asarray(volume.spacing)[::-1]):
            note = ("the mask reaches the edge of the image: it may have leaked into tissue that goes on "
                    "beyond the scan, or the lesion is cut off by it; check it, and add a negative click "
                    "where it spills")
        if thin:
            note = f"{thin}: the classical engine outlined this lesion" + (f"; {note}" if note else "")
        elif chosen:
            note = f"the {engine} engine outlined it: {chosen}" + (f"; {note}" if note else "")
        # (a mask chosen for holding the region at the click as a part is no leak out of it)
        mask, after = corrected_result(request, mask, engine, check=whole is None and walled is None and rays is None)
        note = "; ".join(n for n in (note, after) if n)
        cancel.check()
        labels = request.volume.with_array(mask.astype(np.uint8), modality="SEG")
        return LabelMapResult(labels, self.manifest.labels, note=note, algorithm=algorithm_name(engine))

    def _run_bundle(self, kind: str, request, progress):
        """A DeepEdit or VISTA3D bundle's own network outlines it (bundle_engines)."""
        from medviewer_plugins.click_segment.bundle_engines import segment_bundle

        mask = segment_bundle(request.params["bundle"], request.volume, request.prompts.positive,
                              request.prompts.negative, device=self.resolve_device(request.device),
                              progress=lambda stage, f: progress(stage, f))
        labels = request.volume.with_array(mask.astype(np.uint8), modality="SEG")
        return LabelMapResult(labels, self.manifest.labels, algorithm=algorithm_name(f"{kind} bundle"))
