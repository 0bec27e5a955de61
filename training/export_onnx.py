"""Export the click bundle's network (models/model.pt) to ONNX (models/model.onnx), beside it.

    python training/export_onnx.py                       # the shipped bundle, in place
    python training/export_onnx.py --bundle PATH --check # another bundle; compare on random input

The learned engine runs models/model.onnx with ONNX Runtime where both are there (a light
install has no torch), and model.pt through torch otherwise. The network is built from the
bundle's own configs/inference.json (MONAI's ConfigParser), the weights loaded with
``weights_only=True`` and cast to float32 (model.pt stores float16), then traced by
``torch.onnx.export`` (the TorchScript exporter: it needs no onnxscript) with the three spatial
axes dynamic: the engine's windows shrink to the volume near its edges and are padded to a
multiple of 16, so the file must take any such size. Input ``image`` (N, 3, z, y, x) float32,
output ``logits`` (N, 2, z, y, x); the engine takes the softmax itself.

The same weights give the same file's numbers (torch's version and opset are recorded in the
file's producer fields); ``--check`` runs both on a random window and prints the largest
difference. The file is written atomically (a temporary name, then renamed).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

OPSET = 17
INPUT, OUTPUT = "image", "logits"


def build_network(bundle: Path):
    """The bundle's network in float32 with its weights, in eval mode."""
    import torch
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config(str(bundle / "configs" / "inference.json"))
    net = parser.get_parsed_content("network_def")
    state = torch.load(bundle / "models" / "model.pt", map_location="cpu", weights_only=True)
    net.load_state_dict(state.get("model", state) if isinstance(state, dict) else state)
    return net.float().eval(), [int(v) for v in parser["patch_size_zyx"]]


def export(bundle: Path, out: Path | None = None) -> Path:
    import torch

    net, patch = build_network(bundle)
    out = out or bundle / "models" / "model.onnx"
    tmp = out.with_name(out.name + ".tmp")
    example = torch.zeros((1, 3, *patch), dtype=torch.float32)
    axes = {0: "batch", 2: "z", 3: "y", 4: "x"}
    with torch.no_grad():
        torch.onnx.export(net, (example,), str(tmp), dynamo=False, opset_version=OPSET,
                          input_names=[INPUT], output_names=[OUTPUT],
                          dynamic_axes={INPUT: axes, OUTPUT: axes}, do_constant_folding=True)
    os.replace(tmp, out)
    return out


def check(bundle: Path, onnx_path: Path, shape_zyx=(32, 64, 48)) -> float:
    """Largest absolute difference of the logits, torch against ONNX Runtime, on a random
    window of another size than the export's (the dynamic axes at work)."""
    import numpy as np
    import onnxruntime as ort
    import torch

    net, _ = build_network(bundle)
    x = np.random.default_rng(0).uniform(-1, 1, (1, 3, *shape_zyx)).astype(np.float32)
    with torch.no_grad():
        ref = net(torch.from_numpy(x)).numpy()
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    got = session.run([OUTPUT], {INPUT: x})[0]
    return float(np.abs(ref - got).max())


def main() -> int:
    from medviewer.core.resources import resource_path

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bundle", type=Path, default=resource_path("click_segment_bundle"))
    ap.add_argument("--out", type=Path, help="where to write (default: BUNDLE/models/model.onnx)")
    ap.add_argument("--check", action="store_true", help="compare with torch on a random window")
    args = ap.parse_args()
    out = export(args.bundle, args.out)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB)")
    if args.check:
        print(f"largest logit difference, torch against ONNX Runtime: {check(args.bundle, out):.2e}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
