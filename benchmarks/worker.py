"""One library's runners in a process of their own, driven by ``benchmarks.run``.

``python -m benchmarks.worker '<json spec>'`` builds (compiles and warms up) the runners of one
library, for every case/family/mode asked, then answers commands, one JSON object a line:

* stdin ``{"cmd": "run", "id": i, "steps": n}`` -> stdout ``{"times": [seconds, ...]}``
* stdin ``{"cmd": "quit"}``

Its first line on stdout is ``{"runners": [...], "errors": {...}, "info": {...}}``. Everything
else the libraries print goes to stderr. Spec keys: ``library`` (``seqjax``, ``flax``, ``torch``,
``keras``, ``jax-cudnn``), ``cases``, ``families``, ``modes``, ``impls`` (seqjax implementation
strings; ``"default"`` = the layer's default), ``peak`` (also time a 2048² f32 matmul).
"""

from __future__ import annotations

import json
import os
import sys
import time

os.environ.setdefault("KERAS_BACKEND", "jax")

WARMUP = 2
PEAK_N = 2048


class PeakRunner:
    """A 2048² float32 matmul in the library's own framework: the machine's matmul speed."""

    def __init__(self, library):
        self.family, self.case, self.mode = "peak", "peak", "peak"
        self.flops = 2 * PEAK_N**3
        t0 = time.perf_counter()
        if library == "torch":
            import torch

            a, b = torch.randn(PEAK_N, PEAK_N), torch.randn(PEAK_N, PEAK_N)
            self.name = "matmul peak (torch.mm 2048² f32)"
            self._step = lambda: torch.mm(a, b)
        else:
            import jax
            import jax.numpy as jnp

            k1, k2 = jax.random.split(jax.random.key(1))
            a = jax.random.normal(k1, (PEAK_N, PEAK_N), jnp.float32)
            b = jax.random.normal(k2, (PEAK_N, PEAK_N), jnp.float32)
            fn = jax.jit(jnp.dot).lower(a, b).compile()
            self.name = "matmul peak (jnp.dot 2048² f32)"
            self._step = lambda: fn(a, b).block_until_ready()
        self.compile_s = time.perf_counter() - t0
        self.mem_bytes = None

    def step(self):
        self._step()


def _seqjax_builders(impls, family):
    from benchmarks import impls as bi

    out = []
    for impl in impls:
        kw = {} if impl == "default" else {"implementation": impl}
        out.append(
            (
                impl,
                lambda c, m, kw=kw: bi.seqjax_runner(family, c, m, **kw),
            )
        )
    return out


def _label_isa(runner, impl, family):
    """Names a seqjax runner after the kernel variant it ran, if it loaded one."""
    from benchmarks import impls as bi

    if impl == "scan":
        runner.name = bi.seqjax_label(family, "scan")
        return
    try:
        from seqjax.nn.engines import cpu_build

        isa = cpu_build.loaded_isa()
    except ImportError:
        isa = None
    runner.name = bi.seqjax_label(family, None if impl == "default" else impl, isa)


def build(spec):
    from benchmarks import impls as bi
    from benchmarks.common import CASES

    runners, errors = [], {}
    lib = spec["library"]
    for mode in spec["modes"]:
        for cname in spec["cases"]:
            for family in spec["families"]:
                if lib == "seqjax":
                    builders = _seqjax_builders(spec["impls"], family)
                elif lib == "jax-cudnn":
                    from benchmarks import gpu_peers

                    builders = gpu_peers.builders() if family == "lstm" else []
                else:
                    builders = bi.peer_builders(lib, family)
                for label, make in builders:
                    try:
                        r = make(CASES[cname], mode)
                        if lib == "seqjax":
                            _label_isa(r, label, family)
                            r.impl = label
                        for _ in range(WARMUP):
                            r.step()
                    except Exception as exc:  # reported, not fatal
                        errors[f"{cname}/{mode}/{family}/{label}"] = f"{type(exc).__name__}: {exc}"[
                            :400
                        ]
                        continue
                    r.case = cname
                    runners.append(r)
    if spec.get("peak"):
        r = PeakRunner(lib)
        for _ in range(WARMUP):
            r.step()
        runners.append(r)
    return runners, errors


def info(library):
    out = {"pid": os.getpid()}
    if library == "torch":
        import torch

        out["torch_threads"] = torch.get_num_threads()
        out["torch_device"] = "cuda" if torch.cuda.is_available() else "cpu"
        out["OMP_WAIT_POLICY"] = os.environ.get("OMP_WAIT_POLICY", "(unset: OpenMP default)")
    if library != "torch":
        import jax

        out["jax_backend"] = jax.default_backend()
        out["jax_devices"] = [str(d) for d in jax.devices()]
    if library == "seqjax":
        try:
            from seqjax.nn.engines import cpu_build

            out["kernel_isa"] = cpu_build.loaded_isa()
            out["SEQJAX_CPU_ISA"] = os.environ.get("SEQJAX_CPU_ISA", "")
        except ImportError:
            pass
    return out


def main():
    spec = json.loads(sys.argv[1])
    proto = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # the libraries' own prints go to stderr
    sys.stdout = sys.stderr
    runners, errors = build(spec)
    described = [
        {
            "id": i,
            "name": r.name,
            "impl": getattr(r, "impl", None),
            "family": r.family,
            "case": r.case,
            "mode": r.mode,
            "compile_s": r.compile_s,
            "mem_bytes": r.mem_bytes,
            "flops": getattr(r, "flops", None),
        }
        for i, r in enumerate(runners)
    ]
    proto.write(
        json.dumps({"runners": described, "errors": errors, "info": info(spec["library"])}) + "\n"
    )
    for line in sys.stdin:
        msg = json.loads(line)
        if msg["cmd"] == "quit":
            break
        r = runners[msg["id"]]
        for _ in range(msg.get("warmup", 0)):
            r.step()
        times = []
        for _ in range(msg["steps"]):
            t0 = time.perf_counter()
            r.step()
            times.append(time.perf_counter() - t0)
        proto.write(json.dumps({"times": times}) + "\n")


if __name__ == "__main__":
    main()
