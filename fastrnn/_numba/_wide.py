"""A Numba compiler pipeline whose functions LLVM vectorizes with the widest vectors the CPU has.

How it wins its speed: LLVM tunes some AVX-512 CPUs (Intel's server cores among them) to
"prefer-256-bit", so Numba's loop vectorizer stops at ymm registers even where zmm are there.
fastrnn's fused pointwise passes (gates, cell state, their gradients) are loops of arithmetic
over whole rows; at 512 bits each instruction does twice the work, as in the Cython backend's
C passes, which have an AVX-512 branch.  Measured on an Intel Xeon (AVX-512), alternating
processes against 256-bit code: numba's LSTM forward took 0.94-0.99 of its time at the small and
medium sizes, float64 tiny layers 0.88-0.91; a loop of tanh alone runs 1.33x faster on long rows.
The price is the loops' scalar remainders, up to 15 float32 elements: a loop over H = 40 units
runs slower than at 256 bits, which is why the LSTM activates its four gate blocks as one loop of
4H whenever it covers every unit (its tiny forward took 1.08 of its time with four loops, 1.00
with one).  AMD's Zen 4 runs a 512-bit instruction as two 256-bit halves; measured there
(2026-12-04, alternating processes, 2 threads, forward + backward), 256-bit code took 1.03x the
time of 512-bit on the small and medium float32 LSTM and 1.00x on the small GRU (8 pairs), and
1.03-1.10x on the tiny layers, 0.94-1.06x on the small and medium ones in both dtypes (5 pairs
over 14 layers, noisier): within the VM's noise, so 512 bits there too.

The width is a per-function LLVM attribute, ``"prefer-vector-width"="512"``, so only
fastrnn's own functions get it: the process-wide alternative (``NUMBA_CPU_FEATURES``) would
change every Numba function of the user's program too.  On a CPU without AVX-512 the
attribute changes nothing (LLVM never goes wider than the registers it has).

The mechanism is Numba's documented compiler customization: a pipeline equal to Numba's
nopython pipeline in which the lowering pass is replaced by one whose ``Lower`` marks each
function as it is lowered (llvmlite's IR builder accepts only a fixed set of attribute
names, hence the subclass of its attribute set).
"""

from llvmlite import ir
from numba.core import lowering
from numba.core.compiler import CompilerBase, DefaultPassBuilder
from numba.core.compiler_machinery import register_pass
from numba.core.typed_passes import NativeLowering

__all__ = ["WideVectorsCompiler", "PREFER_WIDE"]

PREFER_WIDE = '"prefer-vector-width"="512"'


class _Attributes(ir.values.FunctionAttributes):
    """llvmlite's function attributes, plus the vector-width preference."""

    _known = ir.values.FunctionAttributes._known | {PREFER_WIDE}


def _prefer_wide(function):
    old = function.attributes
    new = _Attributes(sorted(old))
    new.alignstack, new.personality = old.alignstack, old.personality
    new.add(PREFER_WIDE)
    function.attributes = new


class _WideLower(lowering.Lower):
    def pre_lower(self):
        super().pre_lower()
        _prefer_wide(self.builder.function)


@register_pass(mutates_CFG=True, analysis_only=False)
class _WideNativeLowering(NativeLowering):
    _name = "fastrnn_wide_native_lowering"

    @property
    def lowering_class(self):
        return _WideLower


class WideVectorsCompiler(CompilerBase):
    """Numba's nopython pipeline, lowering with the vector-width preference (``pipeline_class=``)."""

    def define_pipelines(self):
        pm = DefaultPassBuilder.define_nopython_pipeline(self.state)
        pm.passes = [(_WideNativeLowering if p is NativeLowering else p, d) for p, d in pm.passes]
        if _WideNativeLowering not in (p for p, _ in pm.passes):
            raise RuntimeError("fastrnn: Numba's nopython pipeline has no NativeLowering pass to replace")
        pm.finalize()
        return [pm]
