"""compiler/plan.py: JSON round trips, the version check, validation errors, describe()."""

import dataclasses
import json
import subprocess
import sys

import numpy as np
import pytest

from compiler.ir.types import DType
from compiler.plan import (
    PLAN_VERSION,
    Buffer,
    CopyStep,
    GemmStep,
    KernelStep,
    Plan,
    PlanError,
)

F32 = DType.float32


def buf(kind, index, shape, dtype=F32, offset=0):
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    return Buffer(kind, index, offset, nbytes, dtype, tuple(shape))


def sample_plan() -> Plan:
    """x[4,3] -> t = x @ w (arena) -> y = relu(t + bias); also y2 = copy of t; x alias out."""
    w = np.arange(6, dtype=np.float32).reshape(3, 2)
    return Plan(
        arena_bytes=64,
        buffers=[
            buf("input", 0, (4, 3)),             # b0 x
            buf("constant", 0, (3, 2)),          # b1 w
            buf("arena", 0, (4, 2), offset=0),   # b2 t
            buf("output", 0, (4, 2)),            # b3 y
            buf("output", 1, (4, 2)),            # b4 y2
        ],
        steps=[
            GemmStep(F32, False, False, 4, 2, 3, 0, 1, 2, 0, 0, 0, 3, 2, 2),
            KernelStep("relu_0", 8, (2, 3), grain=4),
            CopyStep(2, 4, 0, 0, 32),
        ],
        inputs=[0],
        outputs=[3, 4, 0],
        constants=[w],
    )


def test_json_round_trip():
    plan = sample_plan()
    text = plan.to_json()
    data = json.loads(text)
    assert data["version"] == PLAN_VERSION
    assert data["constants"] == [{"dtype": "f32", "shape": [3, 2]}]
    assert data["steps"][0]["op"] == "gemm" and data["steps"][0]["dtype"] == "f32"
    loaded = Plan.from_json(text, plan.constants)
    assert loaded.buffers == plan.buffers
    assert loaded.steps == plan.steps
    assert (loaded.arena_bytes, loaded.inputs, loaded.outputs) == (64, [0], [3, 4, 0])
    assert loaded.to_json() == text


def test_round_trip_keeps_every_gemm_field():
    step = GemmStep(DType.float64, True, True, 2, 3, 4, 0, 0, 1, 1, 2, 3, 5, 6, 7,
                    batch=2, stride_a=40, stride_b=50, stride_c=60, alpha=0.5, beta=2.0)
    buffers = [buf("input", 0, (200,), DType.float64), buf("output", 0, (200,), DType.float64)]
    plan = Plan(0, buffers, [step], [0], [1])
    assert Plan.from_json(plan.to_json()).steps == [step]


def test_version_mismatch_names_both_versions():
    data = json.loads(sample_plan().to_json())
    data["version"] = PLAN_VERSION + 1
    with pytest.raises(PlanError, match=rf"version {PLAN_VERSION + 1}.*version {PLAN_VERSION}"):
        Plan.from_json(json.dumps(data), sample_plan().constants)


def _mutated_json(path, value):
    data = json.loads(sample_plan().to_json())
    target = data
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return json.dumps(data)


@pytest.mark.parametrize(
    "path, value, message",
    [
        (("steps", 1, "args"), [2, 9], r"step 1 \(kernel\): args\[1\]: buffer id 9 out of range"),
        (("buffers", 2, "offset"), 48, r"b2: \[48, 80\) overflows the arena of 64 bytes"),
        (("buffers", 2, "offset"), 2, r"b2: offset 2 is not aligned"),
        (("buffers", 2, "nbytes"), 31, r"b2: nbytes 31 != f32\[4,2\] = 32 bytes"),
        (("buffers", 2, "dtype"), "f8", r"unknown dtype 'f8'"),
        (("buffers", 2, "kind"), "scratch", r"b2: kind must be one of"),
        (("steps", 0, "op"), "conv", r"unknown step op 'conv'"),
        (("steps", 0, "lda"), 2, r"step 0 \(gemm\): lda=2 must be >= max\(1, 3\)"),
        (("steps", 0, "m"), 5, r"step 0 \(gemm\): A \(b0, 12 elements\) is read up to element 15"),
        (("steps", 0, "c_offset"), 1, r"C \(b2, 8 elements\) is read up to element 9"),
        (("steps", 0, "dtype"), "f64", r"A \(b0\) is f32, the gemm is f64"),
        (("steps", 0, "dtype"), "i32", r"dtype must be f32 or f64"),
        (("steps", 0, "batch"), 0, r"batch must be >= 1"),
        (("steps", 0, "alpha"), "2", r"alpha must be a number"),
        (("steps", 2, "nbytes"), 36, r"step 2 \(copy\): source b2 \[0, 36\) overflows its 32"),
        (("steps", 2, "dst_offset"), 4, r"destination b4 \[4, 36\) overflows"),
        (("steps", 1, "extra"), 1, r"kernel step has unknown fields \['extra'\]"),
        (("steps", 1, "n"), -1, r"n must be an int >= 0"),
        (("inputs",), [1], r"inputs\[0\] = b1 must be an input buffer with index 0"),
        (("outputs",), [3, 4, 2], r"outputs\[2\] = b2 must be an output or input buffer"),
        (("outputs",), [4, 3], r"index must be its first position"),
        (("outputs",), [3], r"output buffer b4 is not listed in outputs"),
        (("arena_bytes",), -1, r"arena_bytes must be an int >= 0"),
        (("buffers", 1, "index"), 3, r"constant index 3 out of range \(1 constants\)"),
        (("buffers",), None, r"malformed plan: TypeError"),
        (("steps", 2, "dst"), 1, r"destination b1 is a constant: only outputs, arena buffers"),
        (("steps", 0, "c"), 1, r"C b1 is a constant"),
        (("buffers", 2, "space"), "device", r"b2: memory space 'device' is not one this runtime"),
        (("buffers", 2, "where"), 1, r"buffer has unknown fields \['where'\]"),
    ],
)
def test_malformed_plans_raise_plan_error(path, value, message):
    with pytest.raises(PlanError, match=message):
        Plan.from_json(_mutated_json(path, value), sample_plan().constants)


def test_missing_field_and_bad_json():
    data = json.loads(sample_plan().to_json())
    del data["steps"][0]["m"]
    with pytest.raises(PlanError, match="malformed plan: TypeError"):
        Plan.from_json(json.dumps(data), sample_plan().constants)
    with pytest.raises(PlanError, match="not valid JSON"):
        Plan.from_json("{not json", [])
    with pytest.raises(PlanError, match="must be a JSON object"):
        Plan.from_json("[1, 2]", [])


def test_constants_must_match_their_declaration():
    text = sample_plan().to_json()
    with pytest.raises(PlanError, match="declares 1 constants, 0 given"):
        Plan.from_json(text, [])
    with pytest.raises(PlanError, match=r"constant 0: plan declares .* got float64\[3, 2\]"):
        Plan.from_json(text, [np.zeros((3, 2))])


def test_validate_catches_hand_built_mistakes():
    plan = sample_plan()
    plan.steps.append(KernelStep("k", 4, (0, 7)))
    with pytest.raises(PlanError, match=r"step 3 \(kernel\): args\[1\]: buffer id 7"):
        plan.validate()
    plan = dataclasses.replace(sample_plan(), constants=[np.zeros((2, 3), np.float32)])
    with pytest.raises(PlanError, match=r"b1: constant 0 must be a f32\[3, 2\] numpy array"):
        plan.validate()
    assert sample_plan().validate().steps  # returns the plan


def test_to_bytes_validates_and_is_the_json():
    plan = sample_plan()
    assert plan.to_bytes() == plan.to_json().encode()
    assert Plan.from_json(plan.to_bytes().decode(), plan.constants) == plan
    broken = dataclasses.replace(plan, outputs=[9])
    with pytest.raises(PlanError):
        broken.to_bytes()


def test_describe_lists_buffers_and_steps():
    text = sample_plan().describe()
    assert text.splitlines()[0] == (
        f"plan v{PLAN_VERSION}: arena 64 B, 5 buffers, 3 steps, 1 constants")
    assert "(b0) -> (b3, b4, b0)" in text
    assert "b2: arena f32[4,2] 32 B @ [0, 32)" in text
    assert "b1: constant[0] f32[3,2] 24 B" in text
    assert "0: gemm f32 b2+0 = 1 * b0+0 @ b1+0 + 0 * C  m=4 n=2 k=3 ld=(3,2,2)" in text
    assert "1: kernel relu_0(b2, b3) n=8 grain=4" in text
    assert "2: copy b2[0:32] -> b4[0:32]" in text


def test_plan_module_does_not_import_hybrid():
    code = "import sys, compiler.plan, compiler.blas; assert 'hybrid' not in sys.modules"
    root = __file__.rsplit("/tests/", 1)[0]
    subprocess.run([sys.executable, "-c", code], check=True, cwd=root)
