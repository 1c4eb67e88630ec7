"""Arrays in GPU memory: what a tensor is, spelled out — a flat buffer, a shape, strides, an offset.

`DeviceArray` holds one flat, contiguous numba-cuda buffer and a *view* of it: element
[i0, i1, ...] lives at buffer[offset + i0*strides[0] + i1*strides[1] + ...] (strides counted in
elements). Slicing, transposing, splitting heads or q/k/v, and reshaping a contiguous array only
make a new view (no copy, no kernel); the kernels take (buffer, offset, strides) and so read any
view directly. That is how PyTorch's storage/view split works, reduced to what our models need.

Arithmetic on DeviceArrays (`+`, `-`, `*`, `+=`, `@`, `sum(axis=0)`, `a[...] = b`) launches one
kernel each; nothing comes back to the host unless asked: `copy_to_host()` is the one way out (there
is no implicit conversion, so a numpy call that reached a DeviceArray by mistake fails loudly
instead of copying silently).

Every elementwise operation is one generic kernel, `_map_kernel`, over up-to-4-D strided views with
numpy's broadcasting (a broadcast axis has stride 0). Each output element is written by exactly one
thread, and each column sum is one thread adding its rows in order: no atomics, so results are
the same run to run.

Launch sizes (`launch.py`): on a GPU, 256 threads a block and enough blocks to fill it (grid-stride
loops); under Numba's CUDA simulator (`NUMBA_ENABLE_CUDASIM=1`), which runs every simulated thread
as a Python thread, one block of 16 threads walks the whole array.

In-place updates (`+=`, `a[...] = b`) must not read a view that overlaps the one they write
through another layout (`x += x.T`): each element is one thread, in no set order. The models
never do that.
"""

from __future__ import annotations

import math
from numbers import Integral, Real

import numpy as np
from numba import cuda

from ..validate import models_own_inputs
from .gemm import gemm
from .launch import ELEMENTWISE_THREADS, SIMULATOR, column_chunks, grid_1d

MAX_DIMS = 4
ADD, MUL, AFFINE, FILL = range(4)  # _map_kernel's operations


# -- the one elementwise kernel --------------------------------------------------------------------
@cuda.jit
def _map_kernel(op, alpha, beta, a, a_off, a_st, b, b_off, b_st, out, o_off, o_st, shape):
    """out = alpha*a + beta*b (ADD), alpha*a*b (MUL), alpha*a + beta (AFFINE) or alpha (FILL),
    elementwise over a 4-D index space `shape`; each operand is (buffer, offset, 4 strides)."""
    n1, n2, n3 = shape[1], shape[2], shape[3]
    n = shape[0] * n1 * n2 * n3
    start, step = cuda.grid(1), cuda.gridsize(1)
    for flat in range(start, n, step):
        i3 = flat % n3
        r = flat // n3
        i2 = r % n2
        r //= n2
        i1 = r % n1
        i0 = r // n1
        o = o_off + i0 * o_st[0] + i1 * o_st[1] + i2 * o_st[2] + i3 * o_st[3]
        if op == FILL:
            out[o] = alpha
            continue
        x = a[a_off + i0 * a_st[0] + i1 * a_st[1] + i2 * a_st[2] + i3 * a_st[3]]
        if op == AFFINE:
            out[o] = alpha * x + beta
            continue
        y = b[b_off + i0 * b_st[0] + i1 * b_st[1] + i2 * b_st[2] + i3 * b_st[3]]
        if op == ADD:
            out[o] = alpha * x + beta * y
        else:
            out[o] = alpha * x * y


@cuda.jit
def _column_partials_kernel(a, a_off, s0, s1, rows, cols, chunk, partials):
    """partials[k, c] = the sum of a[r, c] over rows r of chunk k, in row order: thread (c, k),
    columns along x, row chunks along y (float64)."""
    c = cuda.blockIdx.x * cuda.blockDim.x + cuda.threadIdx.x
    k = cuda.blockIdx.y
    if c < cols:
        s = 0.0
        for r in range(k * chunk, min((k + 1) * chunk, rows)):
            s += a[a_off + r * s0 + c * s1]
        partials[k * cols + c] = s


@cuda.jit
def sum_chunks_kernel(partials, chunks, cols, out):
    """out[c] = partials[0, c] + partials[1, c] + ... in chunk order: one thread per column."""
    start, step = cuda.grid(1), cuda.gridsize(1)
    for c in range(start, cols, step):
        s = 0.0
        for k in range(chunks):
            s += partials[k * cols + c]
        out[c] = s


def _ptx_kernels():
    from numba import types

    i64, f64, t4 = types.int64, types.float64, types.UniTuple(types.int64, 4)
    pairs = []
    for src in (types.float32, types.float64):
        for dst in (types.float32, types.float64):
            a, o = src[::1], dst[::1]
            pairs.append(
                (_map_kernel, types.void(i64, f64, f64, a, i64, t4, a, i64, t4, o, i64, t4, t4))
            )
        pairs.append(
            (_column_partials_kernel, types.void(src[::1], i64, i64, i64, i64, i64, i64, f64[::1]))
        )
        pairs.append((sum_chunks_kernel, types.void(f64[::1], i64, i64, src[::1])))
    return pairs


PTX_KERNELS = _ptx_kernels()


# -- views -----------------------------------------------------------------------------------------
def _contiguous_strides(shape) -> tuple[int, ...]:
    strides, s = [], 1
    for n in reversed(shape):
        strides.append(s)
        s *= n
    return tuple(reversed(strides))


def _pad4(shape, strides):
    """Shape and strides as 4-D, leading axes of length 1 added (what the kernels take)."""
    k = MAX_DIMS - len(shape)
    if k < 0:
        raise ValueError(f"DeviceArray kernels take at most {MAX_DIMS} axes, got shape {shape}")
    return (1,) * k + tuple(shape), (0,) * k + tuple(strides)


def _broadcast_strides(arr: DeviceArray, shape) -> tuple[int, ...]:
    """arr's strides viewed as `shape` by numpy's broadcasting rules (stride 0 where repeated)."""
    k = len(shape) - arr.ndim
    if k < 0:
        raise ValueError(f"cannot broadcast shape {arr.shape} to {tuple(shape)}")
    out = [0] * k
    for n, m, s in zip(arr.shape, shape[k:], arr.strides):
        if n == m:
            out.append(s)
        elif n == 1:
            out.append(0)
        else:
            raise ValueError(f"cannot broadcast shape {arr.shape} to {tuple(shape)}")
    return tuple(out)


def _broadcast_shape(a, b) -> tuple[int, ...]:
    try:
        return np.broadcast_shapes(a, b)
    except ValueError:
        raise ValueError(f"shapes {a} and {b} do not broadcast") from None


class DeviceArray:
    """A view (shape, strides, offset) of a flat buffer in GPU memory. See the module docstring."""

    __array_priority__ = 1000  # so numpy_array + device_array comes here (and fails clearly)
    is_device_array = True  # the marker fast.device.is_device_array looks for
    device = "cuda"  # the folder of its kernels (fast/cuda/), for fast.device.kernels

    def __init__(self, buffer, shape, strides=None, offset: int = 0):
        self.buffer = buffer  # a 1-D contiguous numba device array
        self.shape = tuple(int(n) for n in shape)
        self.strides = (
            _contiguous_strides(self.shape) if strides is None else tuple(int(s) for s in strides)
        )
        self.offset = int(offset)
        if len(self.strides) != len(self.shape):
            raise ValueError(f"strides {self.strides} do not match shape {self.shape}")
        if self.size:  # every element inside the buffer: kernels do no bounds checks
            lo = self.offset + sum((n - 1) * s for n, s in zip(self.shape, self.strides) if s < 0)
            hi = self.offset + sum((n - 1) * s for n, s in zip(self.shape, self.strides) if s > 0)
            if lo < 0 or hi >= len(buffer):
                raise ValueError(
                    f"a view of shape {self.shape}, strides {self.strides} and offset "
                    f"{self.offset} reaches outside its buffer of {len(buffer)} elements"
                )

    # -- what it is
    @property
    def dtype(self) -> np.dtype:
        return np.dtype(self.buffer.dtype)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    def __len__(self) -> int:
        if not self.shape:
            raise TypeError("len() of a 0-d DeviceArray")
        return self.shape[0]

    def __repr__(self) -> str:
        return f"DeviceArray(shape={self.shape}, dtype={self.dtype.name})"

    def is_contiguous(self) -> bool:
        return all(
            s == c or n == 1
            for n, s, c in zip(self.shape, self.strides, _contiguous_strides(self.shape))
        )

    def __array__(self, *args, **kwargs):
        raise TypeError(
            "a DeviceArray lives in GPU memory: call .copy_to_host() for a numpy array "
            "(there is no implicit copy)"
        )

    def flat(self):
        """The elements of a contiguous array as a 1-D numba device array (what kernels take)."""
        if not self.is_contiguous():
            raise ValueError("flat() needs a contiguous array: call ascontiguous(x) first")
        return self.buffer[self.offset : self.offset + max(self.size, 1)]

    # -- in and out
    def copy_to_host(self) -> np.ndarray:
        a = self if self.is_contiguous() else self.copy()
        flat = a.buffer[a.offset : a.offset + a.size].copy_to_host()
        return flat.reshape(a.shape)

    def item(self) -> float:
        if self.size != 1:
            raise ValueError(f"item() needs a 1-element array, got shape {self.shape}")
        return self.copy_to_host().reshape(-1)[0].item()

    # -- views (no copy)
    def reshape(self, *shape) -> DeviceArray:
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        shape = list(shape)
        if shape.count(-1) > 1:
            raise ValueError("reshape takes at most one -1")
        if -1 in shape:
            known = math.prod(n for n in shape if n != -1)
            shape[shape.index(-1)] = self.size // known if known else 0
        if math.prod(shape) != self.size:
            raise ValueError(f"cannot reshape {self.shape} ({self.size} values) to {tuple(shape)}")
        a = self if self.is_contiguous() else self.copy()
        return DeviceArray(a.buffer, shape, None, a.offset)

    def transpose(self, *axes) -> DeviceArray:
        axes = tuple(range(self.ndim))[::-1] if not axes else tuple(axes)
        return DeviceArray(
            self.buffer, [self.shape[i] for i in axes], [self.strides[i] for i in axes], self.offset
        )

    @property
    def T(self) -> DeviceArray:
        return self.transpose()

    def swapaxes(self, a: int, b: int) -> DeviceArray:
        axes = list(range(self.ndim))
        axes[a], axes[b] = axes[b], axes[a]
        return self.transpose(*axes)

    def __getitem__(self, key) -> DeviceArray:
        """Basic indexing: ints, slices with step >= 1 and one Ellipsis, as numpy does (a view);
        or a 1-D int array alone, which takes those rows (a copy, one kernel per row)."""
        if isinstance(key, (np.ndarray, list)):
            return self.take(np.asarray(key))
        key = key if isinstance(key, tuple) else (key,)
        if any(k is Ellipsis for k in key):
            i = key.index(Ellipsis)
            key = key[:i] + (slice(None),) * (self.ndim - len(key) + 1) + key[i + 1 :]
        if len(key) > self.ndim:
            raise IndexError(f"too many indices for an array of shape {self.shape}")
        shape, strides, offset = [], [], self.offset
        for axis, k in enumerate(key):
            n, s = self.shape[axis], self.strides[axis]
            if isinstance(k, Integral) and not isinstance(k, bool):
                i = int(k) + n if k < 0 else int(k)
                if not 0 <= i < n:
                    raise IndexError(f"index {k} is out of bounds for axis {axis} with size {n}")
                offset += i * s
            elif isinstance(k, slice):
                start, stop, step = k.indices(n)
                if step < 1:
                    raise IndexError("DeviceArray slices need a positive step")
                shape.append(len(range(start, stop, step)))
                strides.append(s * step)
                offset += start * s
            else:
                raise TypeError(f"DeviceArray indices must be ints or slices, got {k!r}")
        shape += self.shape[len(key) :]
        strides += self.strides[len(key) :]
        return DeviceArray(self.buffer, shape, strides, offset)

    def take(self, rows: np.ndarray) -> DeviceArray:
        """self[rows] for a 1-D array of row indices (checked on the host), as a new array."""
        if rows.ndim != 1 or rows.dtype.kind not in "iu":
            raise IndexError(f"row indices must be a 1-D int array, got {rows.dtype} {rows.shape}")
        n = self.shape[0]
        if rows.size and (rows.min() < -n or rows.max() >= n):
            raise IndexError(f"row index out of range for axis 0 with size {n}")
        out = empty((len(rows),) + self.shape[1:], self.dtype)
        for j, i in enumerate(rows.tolist()):
            out[j] = self[i]
        return out

    def __setitem__(self, key, value) -> None:
        _assign(self[key], value)

    # -- arithmetic (one kernel each)
    def copy(self) -> DeviceArray:
        out = empty(self.shape, self.dtype)
        _assign(out, self)
        return out

    def astype(self, dtype) -> DeviceArray:
        out = empty(self.shape, np.dtype(dtype))
        _assign(out, self)
        return out

    def fill(self, value: float) -> None:
        _launch_map(FILL, float(value), 0.0, self, self, self)

    def __add__(self, other):
        return _binary(ADD, self, other, 1.0, 1.0)

    __radd__ = __add__

    def __sub__(self, other):
        return _binary(ADD, self, other, 1.0, -1.0)

    def __rsub__(self, other):
        return _binary(ADD, self, other, -1.0, 1.0)

    def __mul__(self, other):
        return _binary(MUL, self, other, 1.0, 0.0)

    __rmul__ = __mul__

    def __truediv__(self, other):
        if not isinstance(other, Real):
            raise TypeError("DeviceArray / x takes a number x")
        return _binary(MUL, self, 1.0 / float(other), 1.0, 0.0)

    def __neg__(self):
        return _binary(MUL, self, -1.0, 1.0, 0.0)

    def __iadd__(self, other):
        _inplace(ADD, self, other, 1.0)
        return self

    def __isub__(self, other):
        _inplace(ADD, self, other, -1.0)
        return self

    def __imul__(self, other):
        _inplace(MUL, self, other, 1.0)
        return self

    def __matmul__(self, other):
        """self @ other into a new array: `gemm` on the two views."""
        if not isinstance(other, DeviceArray):
            raise TypeError(
                f"a DeviceArray can only be multiplied by a DeviceArray, got {type(other)}"
            )
        return gemm(self, other, empty(self.shape[:-1] + other.shape[-1:], self.dtype))

    def sum(self, axis=None):
        """Column sums of a matrix (axis=0), the only reduction models need beyond the fused
        kernels (a bias's gradient). Two stages, no atomics: thread (column, chunk) adds its
        chunk of rows in order, then one thread per column adds the chunks in order; so the
        work spreads over columns x chunks threads, and the sum is the same every run."""
        if axis != 0 or self.ndim != 2:
            raise NotImplementedError("DeviceArray.sum supports axis=0 of a matrix")
        rows, cols = self.shape
        out = empty((cols,), self.dtype)
        if cols == 0:
            return out
        chunk, chunks = column_chunks(rows)
        partials = empty((chunks * cols,), np.float64)
        threads = ELEMENTWISE_THREADS
        _column_partials_kernel[(-(-cols // threads), chunks), threads](
            self.buffer, self.offset, self.strides[0], self.strides[1], rows, cols, chunk,
            partials.buffer,
        )  # fmt: skip
        blocks, threads = grid_1d(cols)
        sum_chunks_kernel[blocks, threads](partials.buffer, chunks, cols, out.buffer)
        return out


# -- creation --------------------------------------------------------------------------------------
def empty(shape, dtype) -> DeviceArray:
    """Uninitialised GPU memory. Under the simulator it is NaN-filled, so a kernel that reads an
    element nobody wrote fails the tests instead of passing by luck."""
    shape = (int(shape),) if isinstance(shape, Integral) else tuple(int(n) for n in shape)
    n, dtype = max(math.prod(shape), 1), np.dtype(dtype)
    if SIMULATOR:
        fill = np.nan if dtype.kind == "f" else -(2**62) if dtype.kind == "i" else 0
        return DeviceArray(cuda.to_device(np.full(n, fill, dtype=dtype)), shape)
    return DeviceArray(cuda.device_array(n, dtype=dtype), shape)


def zeros(shape, dtype) -> DeviceArray:
    out = empty(shape, dtype)
    out.fill(0.0)
    return out


def empty_like(a: DeviceArray) -> DeviceArray:
    return empty(a.shape, a.dtype)


def zeros_like(a: DeviceArray) -> DeviceArray:
    return zeros(a.shape, a.dtype)


def to_device(a, dtype=None) -> DeviceArray:
    """A numpy array (or anything np.asarray takes) copied to a new contiguous DeviceArray; a
    DeviceArray is returned as it is (not copied) unless it must change dtype."""
    if isinstance(a, DeviceArray):
        return a if dtype is None or a.dtype == np.dtype(dtype) else a.astype(dtype)
    host = np.asarray(a, dtype=dtype)
    flat = np.ascontiguousarray(host.reshape(-1)) if host.size else np.zeros(1, host.dtype)
    return DeviceArray(cuda.to_device(flat), host.shape)


def ascontiguous(a: DeviceArray) -> DeviceArray:
    return a if a.is_contiguous() else a.copy()


def floats(x, name: str, dtype=None, *, kept: bool = True, ints: bool = True) -> DeviceArray:
    """x as a float DeviceArray, or a TypeError naming `name`: float32/float64 kept, cast to
    `dtype` when given. Bools and ints are made float64 (as `fast.validate.as_float_array` does
    on the host), or refused when not `ints` (the layers and losses take float DeviceArrays
    only). A numpy operand beside DeviceArrays is refused, not copied over silently: copy it
    with `to_device`. `kept`: a caller's array is copied outside a model (a cache may keep it)."""
    if not isinstance(x, DeviceArray):
        raise TypeError(
            f"{name} must be a DeviceArray like the other operands, got {type(x).__name__} "
            "(copy it to the GPU with fast.cuda.array.to_device)"
        )
    if ints and x.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold numbers, got dtype {x.dtype}")
    if not ints and x.dtype not in (np.float32, np.float64):
        raise TypeError(f"{name} must hold float32 or float64 numbers, got dtype {x.dtype}")
    if dtype is None and x.dtype not in (np.float32, np.float64):
        dtype = np.float64
    given = x
    if dtype is not None and x.dtype != np.dtype(dtype):
        x = x.astype(dtype)
    return x.copy() if kept and x is given and not models_own_inputs() else x


# -- launching the elementwise kernel --------------------------------------------------------------
def _launch_map(op, alpha, beta, out: DeviceArray, a: DeviceArray, b: DeviceArray) -> None:
    shape, o_st = _pad4(out.shape, out.strides)
    _, a_st = _pad4(out.shape, _broadcast_strides(a, out.shape))
    _, b_st = _pad4(out.shape, _broadcast_strides(b, out.shape))
    blocks, threads = grid_1d(out.size)
    if out.size == 0:
        return
    _map_kernel[blocks, threads](
        op, alpha, beta, a.buffer, a.offset, a_st, b.buffer, b.offset, b_st,
        out.buffer, out.offset, o_st, shape,
    )  # fmt: skip


def _check_operand(other):
    if isinstance(other, DeviceArray):
        return other
    if isinstance(other, Real) and not isinstance(other, bool):
        return float(other)
    raise TypeError(
        f"DeviceArray arithmetic takes DeviceArrays or numbers, got {type(other).__name__} "
        "(copy numpy arrays to the device first)"
    )


def _binary(op, a: DeviceArray, other, alpha, beta) -> DeviceArray:
    other = _check_operand(other)
    if isinstance(other, float):  # a number: out = alpha*a + beta*x (ADD) or alpha*a*x (MUL)
        out = empty(a.shape, a.dtype)
        if op == MUL:
            _launch_map(AFFINE, alpha * other, 0.0, out, a, a)
        else:
            _launch_map(AFFINE, alpha, beta * other, out, a, a)
        return out
    out = empty(_broadcast_shape(a.shape, other.shape), np.result_type(a.dtype, other.dtype))
    _launch_map(op, alpha, beta, out, a, other)
    return out


def _inplace(op, a: DeviceArray, other, sign) -> None:
    other = _check_operand(other)
    if isinstance(other, float):
        if op == MUL:
            _launch_map(AFFINE, other, 0.0, a, a, a)
        else:
            _launch_map(AFFINE, 1.0, sign * other, a, a, a)
        return
    if _broadcast_shape(a.shape, other.shape) != a.shape:
        raise ValueError(f"cannot update shape {a.shape} in place with shape {other.shape}")
    _launch_map(op, 1.0, sign, a, a, other)


def _assign(dst: DeviceArray, value) -> None:
    """dst[...] = value (a DeviceArray broadcast to dst's shape, or a number)."""
    value = _check_operand(value)
    if isinstance(value, float):
        _launch_map(FILL, value, 0.0, dst, dst, dst)
    else:
        _launch_map(AFFINE, 1.0, 0.0, dst, value, value)


def concatenate(arrays, axis: int = 0) -> DeviceArray:
    """The arrays side by side along `axis`, in a new array (one copy kernel per input)."""
    arrays = [to_device(a) for a in arrays]
    first = arrays[0]
    axis = axis % first.ndim
    for a in arrays[1:]:
        if a.ndim != first.ndim or a.shape[:axis] + a.shape[axis + 1 :] != (
            first.shape[:axis] + first.shape[axis + 1 :]
        ):
            raise ValueError(f"cannot concatenate shapes {first.shape} and {a.shape} on {axis}")
    shape = list(first.shape)
    shape[axis] = sum(a.shape[axis] for a in arrays)
    out = empty(shape, np.result_type(*(a.dtype for a in arrays)))
    start = 0
    for a in arrays:
        index = (slice(None),) * axis + (slice(start, start + a.shape[axis]),)
        out[index] = a
        start += a.shape[axis]
    return out
