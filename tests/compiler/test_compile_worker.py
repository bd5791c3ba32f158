"""The compile helper (compiler/codegen/compile_worker.py): the same object code as compiling in
this process, errors reported, replaced after RESTART_AFTER compiles, never shared with a forked
child, and a compile that still succeeds when the helper dies."""

from __future__ import annotations

import os

import numpy as np
import pytest
from graphs import full, graph

from compiler.codegen import compile_worker as cw
from compiler.codegen.llvm_cpu import generate
from compiler.ir.ops import Op
from compiler.lower import lower
from compiler.passes.fuse import fuse


def _ir(scale: float) -> str:
    g, (x,) = graph("helper_test", "f32[16]")
    g.set_outputs([g.add(Op.TANH, [g.add(Op.MUL, [x, full(g, scale, "f32[]")])])])
    return generate(lower(fuse(g)).kernels, module_name=g.name)


@pytest.fixture
def fresh(monkeypatch):
    """A Compiler whose in-process allowance is spent, so every compile goes to a helper."""
    c = cw.Compiler()
    c.here = cw.IN_PROCESS
    yield c
    c.close()


def test_the_helper_emits_the_same_object_code(fresh):
    ir = _ir(1.5)
    assert fresh.compile(ir) == cw.compile_object_here(ir)
    assert (fresh.helped, fresh.helpers_started) == (1, 1)


def test_an_llvm_error_in_the_helper_is_raised_here(fresh):
    with pytest.raises(RuntimeError, match="LLVM failed in the compile helper"):
        fresh.compile("define void @f() { this is not IR }")
    assert fresh.compile(_ir(2.0)) == cw.compile_object_here(_ir(2.0))  # it keeps serving


def test_the_helper_is_replaced_after_restart_after_compiles(fresh, monkeypatch):
    monkeypatch.setattr(cw, "RESTART_AFTER", 2)
    pids = []
    for i in range(5):
        fresh.compile(_ir(1.0 + i))
        if fresh._helper is not None:
            pids.append(fresh._helper.proc.pid)
    assert fresh.helpers_started == 3 and len(set(pids)) == 3  # 2 compiles each


def test_a_dead_helper_falls_back_to_compiling_here(fresh):
    fresh.compile(_ir(3.0))
    fresh._helper.proc.kill()
    fresh._helper.proc.wait()
    ir = _ir(4.0)
    assert fresh.compile(ir) == cw.compile_object_here(ir)  # compiled here, no error
    assert fresh.here == cw.IN_PROCESS + 1 and fresh._helper is None


def test_a_forked_child_starts_its_own_helper(fresh):
    fresh.compile(_ir(5.0))
    parent_pid = fresh._helper.proc.pid
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: compile, report which helper did it
        try:
            ok = fresh.compile(_ir(6.0)) == cw.compile_object_here(_ir(6.0))
            os.write(w, f"{int(ok)} {fresh._helper.proc.pid}".encode())
        finally:
            os._exit(0)
    os.close(w)
    ok, child_helper = os.read(r, 100).decode().split()
    os.waitpid(pid, 0)
    assert ok == "1" and int(child_helper) != parent_pid
    assert fresh.compile(_ir(7.0)) == cw.compile_object_here(_ir(7.0))  # ours still works
    assert fresh._helper.proc.pid == parent_pid


def test_the_compiled_kernel_from_the_helper_runs(fresh, monkeypatch):
    import hybrid

    monkeypatch.setattr(cw, "COMPILER", fresh)
    f = hybrid.compile(lambda x: (x * 2.5).tanh())
    x = np.linspace(-1, 1, 16).astype(np.float32)
    np.testing.assert_allclose(f(hybrid.tensor(x)).numpy(), np.tanh(x * 2.5), rtol=1e-6)
    assert fresh.helped >= 1


def test_hybrid_compile_worker_0_keeps_every_compile_here(fresh, monkeypatch):
    monkeypatch.setenv("HYBRID_COMPILE_WORKER", "0")
    ir = _ir(8.0)
    assert fresh.compile(ir) == cw.compile_object_here(ir)
    assert (fresh.here, fresh.helped, fresh.helpers_started) == (cw.IN_PROCESS + 1, 0, 0)
