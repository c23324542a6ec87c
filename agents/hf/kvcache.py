"""The generator's KV cache: preallocated once per batch, prefilled in place in chunks of rows.

`new_kv_cache(config, capacity, rows)` is a transformers `DynamicCache` whose full-attention layers
are `PreallocLayer`s (one buffer per layer sized for the whole completion, written in place instead
of `torch.cat` at every step); `rows_of_cache(cache, config, start)` is a cache over rows `start:`
of it (`PrefillRows`), so a batch's prompts can be prefilled a chunk of rows at a time straight
into the one cache. `BufferPool` keeps those buffers from one batch to the next.
"""
from __future__ import annotations

import math

import torch
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer


class BufferPool:
    """The KV cache's buffers, kept from one batch to the next (`GeneratorAgent` on a CPU), up to `limit`
    bytes in all. A freed cache goes back to the system, and the next batch's writes fault its pages in
    again: ~2 GB/s, 6% of the tiny model's batch-64 prefill (docs/benchmarks.md). One cache at a time
    uses a pool (`generate` is not re-entrant); it pickles and copies empty."""

    def __init__(self, limit: int):
        self.limit = limit
        self.buffers: dict[tuple[int, str], torch.Tensor] = {}

    def empty(self, key: tuple[int, str], shape: tuple[int, ...], like: torch.Tensor) -> torch.Tensor:
        """An uninitialised tensor of `shape` (`like`'s dtype and device): a view of the buffer kept under
        `key` when it is large enough, else a new one, kept while the pool stays within its limit."""
        n = math.prod(shape)
        buf = self.buffers.get(key)
        if buf is None or buf.numel() < n or buf.dtype != like.dtype or buf.device != like.device:
            self.buffers.pop(key, None)
            buf = like.new_empty(n)
            if sum(b.numel() * b.element_size() for b in self.buffers.values()) + n * buf.element_size() \
                    <= self.limit:
                self.buffers[key] = buf
        return buf[:n].view(shape)

    def __getstate__(self):
        return {"limit": self.limit, "buffers": {}}


class PreallocLayer(DynamicLayer):
    """A `DynamicLayer` that writes into a buffer sized once per batch, instead of
    `torch.cat`-ing the whole cache at every step (on CPU that copy was over half of
    a decode step). `keys`/`values` are views of the filled part: (b, heads, n, head_dim)."""

    def __init__(self, capacity: int, rows: int = 0, pool: BufferPool | None = None, index: int = 0):
        super().__init__()
        self.capacity, self.length = capacity, 0
        self.rows = rows
        """Batch rows of the buffers (0: the first update's); a prefill in chunks of rows
        (`PrefillRows`) fills them part by part."""
        self.pool, self.index = pool, index
        """Where the buffers come from (None: new ones) and under which layer index."""

    def lazy_initialization(self, key_states, value_states) -> None:
        super().lazy_initialization(key_states, value_states)
        _, h, _, d = key_states.shape
        b = self.rows or key_states.shape[0]
        k_shape, v_shape = (b, h, self.capacity, d), (b, h, self.capacity, value_states.shape[-1])
        if self.pool is None:
            self._k, self._v = key_states.new_empty(k_shape), value_states.new_empty(v_shape)
        else:
            self._k = self.pool.empty((self.index, "k"), k_shape, key_states)
            self._v = self.pool.empty((self.index, "v"), v_shape, value_states)

    def allocate(self, heads: int, head_dim: int, like: torch.Tensor) -> bool:
        """The buffers for `rows` rows of `heads` x `head_dim` (`like`'s dtype and device) before any update, for a
        caller that writes them itself (`agents.hf.decode_step`); False when the rows are not known yet."""
        if not self.is_initialized:
            if not self.rows:
                return False
            empty = like.new_empty((self.rows, heads, 0, head_dim))
            self.lazy_initialization(empty, empty)
        return True

    def advance(self, length: int) -> None:
        """`length` slots filled (by a caller that wrote them into the buffers itself)."""
        self.length = length
        self.keys, self.values = self._k.narrow(2, 0, length), self._v.narrow(2, 0, length)

    def update(self, key_states, value_states, *args, **kwargs):
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        n = self.length + key_states.shape[-2]
        if n > self.capacity:  # never with the capacity `_decode` asks for; grow to stay correct
            self.capacity = max(n, 2 * self.capacity)
            k, v = self._k, self._v
            self._k = k.new_empty((*k.shape[:2], self.capacity, k.shape[-1]))
            self._v = v.new_empty((*v.shape[:2], self.capacity, v.shape[-1]))
            self._k[:, :, :self.length], self._v[:, :, :self.length] = k[:, :, :self.length], v[:, :, :self.length]
        self._k[:, :, self.length:n] = key_states
        self._v[:, :, self.length:n] = value_states
        self.length = n
        self.keys, self.values = self._k[:, :, :n], self._v[:, :, :n]
        return self.keys, self.values

    def batch_select_indices(self, indices) -> None:
        if self.is_initialized:
            self._k, self._v = self._k[indices], self._v[indices]
            self.keys, self.values = self._k[:, :, :self.length], self._v[:, :, :self.length]


class PrefillRows(DynamicLayer):
    """Rows `start:start+b` of a `PreallocLayer`, for a prefill in chunks of rows: the chunk's keys and
    values are written straight into the whole batch's buffers (no copy afterwards)."""

    def __init__(self, parent: PreallocLayer, start: int):
        super().__init__()
        self.parent, self.start = parent, start

    def update(self, key_states, value_states, *args, **kwargs):
        p = self.parent
        if not p.is_initialized:
            p.lazy_initialization(key_states, value_states)
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        rows, n = slice(self.start, self.start + key_states.shape[0]), key_states.shape[-2]
        p._k[rows, :, :n], p._v[rows, :, :n] = key_states, value_states
        p.length = n
        p.keys, p.values = p._k[:, :, :n], p._v[:, :, :n]
        self.keys, self.values = p._k[rows, :, :n], p._v[rows, :, :n]
        return self.keys, self.values


def cache_argument(model) -> str | None:
    """The name a model's forward gives its KV cache: `cache` (transformers >= 5.2x, where
    `past_key_values` is deprecated and warns on every call), `past_key_values` (older), or None when it
    takes neither (then it cannot continue from a cache)."""
    import inspect

    inner = model.get_base_model() if hasattr(model, "get_base_model") else model  # LoRA
    try:
        params = inspect.signature(inner.forward).parameters
    except (TypeError, ValueError, AttributeError):
        return None
    return next((n for n in ("cache", "past_key_values") if n in params), None)


def new_kv_cache(config, capacity: int, rows: int = 0, pool: BufferPool | None = None):
    """A `DynamicCache` for `config` whose full-attention layers are preallocated to `capacity` tokens
    (and `rows` batch rows; 0: the first update's), their buffers from `pool` where one is given.

    Sliding-window and other special layers keep their own transformers class.
    """
    cache = DynamicCache(config=config)
    cache.layers = [PreallocLayer(capacity, rows, pool, i) if type(layer) is DynamicLayer else layer
                    for i, layer in enumerate(cache.layers)]
    return cache


def rows_of_cache(cache, config, start: int):
    """A cache that prefills rows `start:` of `cache` (every layer a `PreallocLayer`) in place."""
    part = DynamicCache(config=config)
    part.layers = [PrefillRows(layer, start) for layer in cache.layers]
    return part
