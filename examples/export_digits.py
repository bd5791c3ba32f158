"""Train the digits MLP, export it ahead of time, and run the exported file three ways: in this
process, in a new Python process (no tracing, no LLVM, no model code), and with the native
`hybrid-run` runner (no Python at all).

    python examples/export_digits.py [--epochs 10] [--out digits.hyb]

Needs the system C compiler driver (cc) at export time only; loading needs just the runtime.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import sysconfig
import tempfile
import textwrap

import numpy as np
from safetensors.numpy import load_file, save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from train_digits import MLP, load_data, train_step

import hybrid


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--out", default=os.path.join(tempfile.gettempdir(), "digits.hyb"))
    args = parser.parse_args()

    hybrid.manual_seed(0)
    x_train, y_train, x_test, y_test = load_data(0)
    model = MLP()
    opt = hybrid.optim.Adam(model.parameters(), lr=1e-3)

    step = hybrid.compile(train_step)  # the training example's step, compiled

    for _ in range(args.epochs):
        order = np.random.default_rng(_).permutation(len(x_train))
        for i in range(0, len(order) - 63, 64):
            idx = hybrid.tensor(order[i:i + 64])
            step(model, opt, x_train[idx], y_train[idx])

    model.eval()
    program = hybrid.export(model, x_test)  # the test set's size is the program's
    program.save(args.out)
    print(program.inputs, "->", program.outputs)
    print(f"exported to {args.out} ({os.path.getsize(args.out) / 1024:.1f} KiB)")

    with hybrid.no_grad():
        eager = model(x_test).numpy()
    here = program(x_test).numpy()
    print(f"in-process: accuracy {(here.argmax(1) == y_test.numpy()).mean():.4f}, "
          f"max |exported - eager| {np.abs(here - eager).max():.2e}")

    folder = os.path.dirname(os.path.abspath(args.out))
    inputs = os.path.join(folder, "digits_in.safetensors")
    save_file({program.inputs[0][0]: x_test.numpy()}, inputs)
    script = textwrap.dedent(f"""
        import sys
        sys.modules["llvmlite"] = None  # the loader never needs LLVM
        import hybrid
        from safetensors.numpy import load_file
        prog = hybrid.load_exported({args.out!r})
        out = prog(load_file({inputs!r})[{program.inputs[0][0]!r}])
        print(out.numpy().argmax(1).tolist())
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          check=True)
    fresh = np.array(eval(done.stdout))
    print(f"new process: {(fresh == here.argmax(1)).mean():.0%} of predictions identical")

    runner = os.path.join(sysconfig.get_path("scripts"), "hybrid-run")
    outputs = os.path.join(folder, "digits_out.safetensors")
    done = subprocess.run([runner, args.out, "--input", inputs, "--output", outputs,
                           "--bench", "200"], capture_output=True, text=True, check=True)
    native = load_file(outputs)[program.outputs[0][0]]
    print(f"hybrid-run: {done.stdout.strip()}; max |hybrid-run - in-process| "
          f"{np.abs(native - here).max():.2e}")


if __name__ == "__main__":
    main()
