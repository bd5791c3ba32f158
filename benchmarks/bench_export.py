"""Exported programs: artifact and runtime sizes, load and first-inference time in a new
process, steady latency against the same model compiled in-process, PyTorch eager (the same
layers and weights, eval, no_grad) and onnxruntime on hybrid's ONNX export. Models: the digits MLP (64-128-128-10) at batch 1 and 359
(the test set), the VGG-style CIFAR CNN (hybrid.models.vgg_style_cifar, eval) at batch 1 and 8.

Run: python benchmarks/bench_export.py [--repeats N]   (medians; 2 threads everywhere)
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import sysconfig
import tempfile
import time

import numpy as np
from safetensors.numpy import save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "examples"))

from bench_cnn import to_torch
from common import bench, peers, setup_threads

import hybrid
from hybrid.models import vgg_style_cifar


def _mlp():
    from train_digits import MLP

    return MLP().eval()


def _layers(label: str, model):
    """The model as the flat layer list bench_cnn.to_torch translates."""
    if label.startswith("mlp"):
        return list(model.layers)
    from hybrid import nn

    return list(model.features) + [model.avgpool, nn.Flatten()] + list(model.classifier)


def _new_process_load(path: str, x_path: str) -> float:
    """ms from interpreter start to the first result of hybrid.load_exported (median of 3)."""
    script = ("import time; t=time.perf_counter(); import hybrid; import numpy as np; "
              f"p=hybrid.load_exported({path!r}); p(np.load({x_path!r})); "
              "print((time.perf_counter()-t)*1e3)")
    runs = [float(subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                                 check=True).stdout) for _ in range(3)]
    return sorted(runs)[1]


def _hybrid_run(path: str, inputs: str, repeats: int) -> tuple[float, float, float]:
    runner = os.path.join(sysconfig.get_path("scripts"), "hybrid-run")
    t = time.perf_counter()
    subprocess.run([runner, path, "--input", inputs], check=True, capture_output=True)
    wall = (time.perf_counter() - t) * 1e3
    out = subprocess.run([runner, path, "--input", inputs, "--bench", str(repeats)], check=True,
                         capture_output=True, text=True).stdout.split()
    load, first, median = float(out[1]), float(out[5]), float(out[11])
    return wall, load + first, median


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=200)
    args = parser.parse_args()
    setup_threads()
    torch = peers().get("torch")
    try:
        import onnxruntime as ort
    except ImportError:
        ort = None
    d = tempfile.mkdtemp(prefix="bench-export-")
    rt = os.path.join(hybrid.runtime_dir(), "lib", "libhybrid_rt.so")
    stripped = os.path.join(d, "rt.so")
    subprocess.run(["strip", "-o", stripped, rt], check=False)
    runner = os.path.join(sysconfig.get_path("scripts"), "hybrid-run")
    print(f"runtime: libhybrid_rt.so {os.path.getsize(stripped) / 1024:.0f} KiB stripped, "
          f"hybrid-run {os.path.getsize(runner) / 1024:.0f} KiB (stripped, static core)")
    print(f"{'model':<16} {'artifact KiB':>12} {'run wall ms':>11} {'load+1st ms':>11} "
          f"{'py load+1st':>11} | steady us: {'hybrid-run':>10} {'exported':>9} "
          f"{'compiled':>9} {'torch':>9} {'onnxrt':>9}")
    hybrid.manual_seed(0)
    for label, model, shape in (("mlp b1", _mlp(), (1, 64)), ("mlp b359", _mlp(), (359, 64)),
                                ("vgg-cifar b1", vgg_style_cifar().eval(), (1, 3, 32, 32)),
                                ("vgg-cifar b8", vgg_style_cifar().eval(), (8, 3, 32, 32))):
        x = hybrid.randn(*shape)
        path = os.path.join(d, label.replace(" ", "_") + ".hyb")
        ep = hybrid.export(model, x)
        ep.save(path)
        inputs = os.path.join(d, "in.safetensors")
        save_file({ep.inputs[0][0]: x.numpy()}, inputs)
        np.save(os.path.join(d, "x.npy"), x.numpy())
        wall, load_first, native = _hybrid_run(path, inputs, args.repeats)
        py_load = _new_process_load(path, os.path.join(d, "x.npy"))
        exported = bench(lambda: ep(x), repeats=args.repeats).median * 1e6
        compiled_fn = hybrid.compile(model)
        with hybrid.no_grad():
            compiled = bench(lambda: compiled_fn(x), repeats=args.repeats).median * 1e6
        t_us = float("nan")
        if torch is not None:
            tm = to_torch(_layers(label, model), torch).eval()
            tx = torch.from_numpy(x.numpy())
            with torch.no_grad():
                diff = float((tm(tx) - torch.from_numpy(ep(x).numpy())).abs().max())
                assert diff < 1e-3, f"{label}: torch and hybrid disagree by {diff}"
                t_us = bench(lambda: tm(tx), repeats=args.repeats).median * 1e6
        o_us = float("nan")
        if ort is not None:
            from hybrid.onnx import export as onnx_export
            onnx_path = os.path.join(d, "m.onnx")
            onnx_export(model, (x,), onnx_path)
            if ort is not None:
                opts = ort.SessionOptions()
                opts.intra_op_num_threads = 2
                sess = ort.InferenceSession(onnx_path, opts, providers=["CPUExecutionProvider"])
                feed = {sess.get_inputs()[0].name: x.numpy()}
                o_us = bench(lambda: sess.run(None, feed), repeats=args.repeats).median * 1e6
        print(f"{label:<16} {os.path.getsize(path) / 1024:>12.1f} {wall:>11.2f} {load_first:>11.3f} "
              f"{py_load:>11.1f} | {native * 1e3:>10.1f} {exported:>9.1f} "
              f"{compiled:>9.1f} {t_us:>9.1f} {o_us:>9.1f}")
    print("run wall: the whole hybrid-run process (exec, load, one run); load+1st: hybrid-run's "
          "own load and first run; py load+1st: a new python process importing hybrid, loading "
          "and running once.")


if __name__ == "__main__":
    main()
