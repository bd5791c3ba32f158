"""L-BFGS (Nocedal & Wright, algorithm 7.4) with PyTorch's options, state and optional strong-Wolfe
line search (algorithms 3.5 and 3.6). Eager only: the closure is re-evaluated a data-dependent
number of times, which a traced graph cannot express."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from hybrid import errors
from hybrid.autograd import enable_grad, no_grad
from hybrid.ops import shape as sh
from hybrid.ops.creation import zeros
from hybrid.optim.optimizer import STEPPED, Optimizer, check, check_lr, tracing
from hybrid.tensor import Tensor

__all__ = ["LBFGS"]


def _dot(a: Tensor, b: Tensor) -> float:
    return float((a * b).sum().item())


def _absmax(a: Tensor) -> float:
    return float(a.abs().max().item())


def _cubic_minimum(x1: float, f1: float, g1: float, x2: float, f2: float, g2: float,
                   bounds: tuple[float, float] | None = None) -> float:
    """The minimizer of the cubic through (x1, f1, g1) and (x2, f2, g2), clamped to bounds."""
    lo, hi = bounds if bounds is not None else (min(x1, x2), max(x1, x2))
    d1 = g1 + g2 - 3 * (f1 - f2) / (x1 - x2)
    disc = d1 * d1 - g1 * g2
    if disc < 0:
        return (lo + hi) / 2.0
    d2 = disc**0.5
    if x1 <= x2:
        pos = x2 - (x2 - x1) * ((g2 + d2 - d1) / (g2 - g1 + 2 * d2))
    else:
        pos = x1 - (x1 - x2) * ((g1 + d2 - d1) / (g1 - g2 + 2 * d2))
    return min(max(pos, lo), hi)


def _strong_wolfe(evaluate: Callable[[float], tuple[float, Tensor]], t: float, d: Tensor,
                  f: float, g: Tensor, gtd: float, c1: float = 1e-4, c2: float = 0.9,
                  tolerance_change: float = 1e-9, max_ls: int = 25
                  ) -> tuple[float, Tensor, float, int]:
    """Find a step t along d meeting the strong Wolfe conditions: (loss, grad, t, evaluations)."""
    d_norm = _absmax(d)
    f_new, g_new = evaluate(t)
    evals, ls_iter = 1, 0
    gtd_new = _dot(g_new, d)
    t_prev, f_prev, g_prev, gtd_prev = 0.0, f, g, gtd
    done = False
    # bracketing phase: grow t until an interval holds a point meeting the conditions
    while ls_iter < max_ls:
        if f_new > f + c1 * t * gtd or (ls_iter > 1 and f_new >= f_prev):
            br, br_f, br_g, br_gtd = [t_prev, t], [f_prev, f_new], [g_prev, g_new], \
                [gtd_prev, gtd_new]
            break
        if abs(gtd_new) <= -c2 * gtd:
            br, br_f, br_g, br_gtd = [t], [f_new], [g_new], [gtd_new]
            done = True
            break
        if gtd_new >= 0:
            br, br_f, br_g, br_gtd = [t_prev, t], [f_prev, f_new], [g_prev, g_new], \
                [gtd_prev, gtd_new]
            break
        lo, hi = t + 0.01 * (t - t_prev), t * 10
        t_prev, t = t, _cubic_minimum(t_prev, f_prev, gtd_prev, t, f_new, gtd_new, (lo, hi))
        f_prev, g_prev, gtd_prev = f_new, g_new, gtd_new
        f_new, g_new = evaluate(t)
        evals += 1
        gtd_new = _dot(g_new, d)
        ls_iter += 1
    if ls_iter == max_ls:
        br, br_f, br_g, br_gtd = [0.0, t], [f, f_new], [g, g_new], [gtd, gtd_new]
    # zoom phase: shrink the bracket around the point
    insufficient = False
    low, high = (0, 1) if br_f[0] <= br_f[-1] else (1, 0)
    while not done and ls_iter < max_ls:
        if abs(br[1] - br[0]) * d_norm < tolerance_change:
            break
        t = _cubic_minimum(br[0], br_f[0], br_gtd[0], br[1], br_f[1], br_gtd[1])
        width, top, bottom = 0.1 * (max(br) - min(br)), max(br), min(br)
        if min(top - t, t - bottom) < width:
            # NOTE: too close to an end of the bracket: move it inside, as PyTorch does
            if insufficient or t >= top or t <= bottom:
                t = top - width if abs(t - top) < abs(t - bottom) else bottom + width
                insufficient = False
            else:
                insufficient = True
        else:
            insufficient = False
        f_new, g_new = evaluate(t)
        evals += 1
        gtd_new = _dot(g_new, d)
        ls_iter += 1
        if f_new > f + c1 * t * gtd or f_new >= br_f[low]:
            br[high], br_f[high], br_g[high], br_gtd[high] = t, f_new, g_new, gtd_new
            low, high = (0, 1) if br_f[0] <= br_f[1] else (1, 0)
        else:
            if abs(gtd_new) <= -c2 * gtd:
                done = True
            elif gtd_new * (br[high] - br[low]) >= 0:
                br[high], br_f[high], br_g[high], br_gtd[high] = \
                    br[low], br_f[low], br_g[low], br_gtd[low]
            br[low], br_f[low], br_g[low], br_gtd[low] = t, f_new, g_new, gtd_new
    return br_f[low], br_g[low], br[low], evals


class LBFGS(Optimizer):
    """Limited-memory BFGS over all parameters as one flat vector; `step(closure)` runs up to
    max_iter iterations, each re-evaluating the loss through the closure."""

    def __init__(self, params: Iterable[Any], lr: float = 1, max_iter: int = 20,
                 max_eval: int | None = None, tolerance_grad: float = 1e-7,
                 tolerance_change: float = 1e-9, history_size: int = 100,
                 line_search_fn: str | None = None) -> None:
        if max_eval is None:
            max_eval = max_iter * 5 // 4
        defaults = {"lr": lr, "max_iter": max_iter, "max_eval": max_eval,
                    "tolerance_grad": tolerance_grad, "tolerance_change": tolerance_change,
                    "history_size": history_size, "line_search_fn": line_search_fn}
        super().__init__(params, defaults)
        if len(self.param_groups) != 1:
            raise errors.ShapeError(errors.at_user(
                "LBFGS doesn't support per-parameter options (parameter groups); pass one list "
                "of parameters"))
        self._params = self.param_groups[0]["params"]

    def _check_group(self, group: dict[str, Any]) -> None:
        check_lr(group)
        check("max_iter", group["max_iter"] >= 1, group["max_iter"])
        check("history_size", group["history_size"] >= 1, group["history_size"])
        if group["line_search_fn"] not in (None, "strong_wolfe"):
            raise errors.ShapeError(errors.at_user(
                f"LBFGS: line_search_fn must be None or 'strong_wolfe', got "
                f"{group['line_search_fn']!r}"))

    # --- the parameters as one flat vector -------------------------------------------------------

    def _flat_grad(self) -> Tensor:
        views = [sh.reshape(p.grad, (-1,)) if p.grad is not None
                 else zeros((p.numel(),), dtype=p.dtype, device=p.device) for p in self._params]
        return sh.cat(views, 0)

    def _add(self, t: float, d: Tensor) -> None:
        offset = 0
        for p in self._params:
            n = p.numel()
            p.add_(sh.reshape(d[offset:offset + n], p.shape) * t)
            offset += n

    def _set(self, values: list[Tensor]) -> None:
        for p, v in zip(self._params, values):
            p.copy_(v)

    def _evaluate(self, closure: Callable[[], Any], x: list[Tensor], t: float,
                  d: Tensor) -> tuple[float, Tensor]:
        self._add(t, d)
        with enable_grad():
            loss = float(closure())
        g = self._flat_grad()
        self._set(x)
        return loss, g

    # --- the step --------------------------------------------------------------------------------

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Run L-BFGS iterations; `closure` (required) zeroes grads, computes and backprops the
        loss, and returns it. Returns the loss of the first evaluation."""
        STEPPED.add(self)
        if tracing():
            raise errors.TraceError(errors.at_user(
                "LBFGS.step cannot run inside @hybrid.compile: it calls the closure a number of "
                "times that depends on the loss values; call optimizer.step(closure) eagerly "
                "(the closure itself may call a compiled function)"))
        if closure is None:
            raise errors.DTypeError(errors.at_user(
                "LBFGS.step requires a closure that re-evaluates the model and returns the loss: "
                "optimizer.step(closure)"))
        with no_grad():
            return self._run(closure)

    def _run(self, closure: Callable[[], Any]) -> Any:
        group = self.param_groups[0]
        lr, max_iter, max_eval = float(group["lr"]), group["max_iter"], group["max_eval"]
        tol_grad, tol_change = group["tolerance_grad"], group["tolerance_change"]
        history = group["history_size"]
        state = self.state[self._params[0]]
        state.setdefault("func_evals", 0)
        state.setdefault("n_iter", 0)

        with enable_grad():
            orig_loss = closure()
        loss = float(orig_loss)
        evals = 1
        state["func_evals"] += 1
        flat_grad = self._flat_grad()
        if _absmax(flat_grad) <= tol_grad:
            return orig_loss

        d, t = state.get("d"), state.get("t")
        old_dirs, old_stps, ro = state.get("old_dirs"), state.get("old_stps"), state.get("ro")
        h_diag, prev_flat_grad = state.get("H_diag"), state.get("prev_flat_grad")
        prev_loss = state.get("prev_loss")
        n_iter = 0
        while n_iter < max_iter:
            n_iter += 1
            state["n_iter"] += 1
            if state["n_iter"] == 1:
                d, old_dirs, old_stps, ro, h_diag = -flat_grad, [], [], [], 1.0
            else:
                y, s = flat_grad - prev_flat_grad, d * t
                ys = _dot(y, s)
                if ys > 1e-10:  # curvature condition: keep the pair
                    if len(old_dirs) == history:
                        old_dirs.pop(0), old_stps.pop(0), ro.pop(0)
                    old_dirs.append(y), old_stps.append(s), ro.append(1.0 / ys)
                    h_diag = ys / _dot(y, y)
                # two-loop recursion: d = -H g
                al = state.setdefault("al", [None] * history)
                q = -flat_grad
                for i in range(len(old_dirs) - 1, -1, -1):
                    al[i] = _dot(old_stps[i], q) * ro[i]
                    q = q - old_dirs[i] * al[i]
                r = q * h_diag
                for i in range(len(old_dirs)):
                    be_i = _dot(old_dirs[i], r) * ro[i]
                    r = r + old_stps[i] * (al[i] - be_i)
                d = r
            prev_flat_grad = flat_grad.clone()
            prev_loss = loss
            t = min(1.0, 1.0 / float(flat_grad.abs().sum().item())) * lr \
                if state["n_iter"] == 1 else lr
            gtd = _dot(flat_grad, d)
            if gtd > -tol_change:  # not a descent direction
                break

            ls_evals = 0
            if group["line_search_fn"] == "strong_wolfe":
                x0 = [p.clone() for p in self._params]
                def evaluate(step: float, x0: list[Tensor] = x0, d: Tensor = d):
                    return self._evaluate(closure, x0, step, d)

                loss, flat_grad, t, ls_evals = _strong_wolfe(evaluate, t, d, loss, flat_grad, gtd,
                                                             max_ls=max_eval - evals)
                self._add(t, d)
                converged = _absmax(flat_grad) <= tol_grad
            else:
                self._add(t, d)
                converged = False
                if n_iter != max_iter:
                    with enable_grad():
                        loss = float(closure())
                    flat_grad = self._flat_grad()
                    converged = _absmax(flat_grad) <= tol_grad
                    ls_evals = 1
            evals += ls_evals
            state["func_evals"] += ls_evals
            if n_iter == max_iter or evals >= max_eval or converged:
                break
            if _absmax(d) * abs(t) <= tol_change or abs(loss - prev_loss) < tol_change:
                break

        state.update({"d": d, "t": t, "old_dirs": old_dirs, "old_stps": old_stps, "ro": ro,
                      "H_diag": h_diag, "prev_flat_grad": prev_flat_grad,
                      "prev_loss": prev_loss})
        return orig_loss

    def _load_param_state(self, p: Tensor, state: dict[str, Any], saved: dict[str, Any]) -> None:
        def own(v: Any) -> Any:
            if isinstance(v, Tensor):
                return v.to(device=p.device).clone()
            if hasattr(v, "detach") and hasattr(v, "numpy"):  # another library's tensor
                from hybrid.ops.creation import tensor

                v = v.detach().cpu().numpy()
                return tensor(v, device=p.device) if v.ndim else float(v)
            if isinstance(v, list):
                return [own(u) for u in v]
            return v

        state.clear()
        state.update({k: own(v) for k, v in saved.items()})
