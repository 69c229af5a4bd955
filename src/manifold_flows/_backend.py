"""Defaults that depend on the JAX backend: how much work is batched at once.

On a CPU the fastest programs keep each batch of intermediates in cache: the library evaluates
fields in small chunks, pushes the exact divergence's basis vectors through the Jacobian a few
at a time, solves samples one after another and splits large graphs into blocks of receiver
rows (every figure measured on a 2-core CPU, see `benchmarks/README.md`). On an accelerator
the same serialisation leaves the device idle: there the defaults hand it whole batches and
bound only the memory.

Every default is resolved when a function is traced, from `jax.default_backend()`; an explicit
argument always wins. No default changes a result beyond floating-point round-off.
"""

import dataclasses

import jax

#: What a chunk-size argument takes to mean "the default of this backend".
AUTO = "auto"


@dataclasses.dataclass(frozen=True)
class BatchingDefaults:
    """How much work the library batches at once on one kind of backend.

    **Fields:**

    - `field_chunk`: configurations per chunk in `evaluate_batch` (the training loss);
      `None` evaluates a whole batch with one `vmap`.
    - `divergence_chunk`: basis vectors per chunk of `ExactDivergence`; `None`: all at once.
    - `sample_chunk`: samples solved together by `sample` / `log_prob_batch`; `None`: all.
    - `file_chunk`: samples per compiled call and per saved chunk of `sample_to_file`.
    - `file_batching`: how `sample_to_file` solves the samples of a chunk, `"sequential"`
      or `"vmap"` (lock-step).
    - `edge_block_elements`: the largest `(rows, n, width)` edge tensor an EGNN layer builds
      in one piece; larger graphs are processed in blocks of receiver rows.
    """

    field_chunk: int | None
    divergence_chunk: int | None
    sample_chunk: int | None
    file_chunk: int
    file_batching: str
    edge_block_elements: int


#: A CPU: cache-sized work (measured on 2 cores at N = 44, width 32; benchmarks/README.md).
CPU_DEFAULTS = BatchingDefaults(
    field_chunk=8,
    divergence_chunk=16,
    sample_chunk=1,
    file_chunk=16,
    file_batching="sequential",
    edge_block_elements=2**20,
)

#: A GPU or TPU: whole batches, bounded by memory. The divergence takes up to 128 basis
#: vectors at once (all of them for N d <= 128, e.g. N = 44 in 2D); samples run 64 at a time
#: (the best of the chunk sizes measured on an H200 with the CPU settings; to be re-tuned with
#: `benchmarks/run.py` on a GPU); an edge tensor may hold 2^24 elements (64 MB in float32).
ACCELERATOR_DEFAULTS = BatchingDefaults(
    field_chunk=None,
    divergence_chunk=128,
    sample_chunk=64,
    file_chunk=64,
    file_batching="vmap",
    edge_block_elements=2**24,
)


def resolve_chunk(chunk_size, default: int | None, where: str = "") -> int | None:
    """A chunk-size argument: `"auto"` becomes `default` (a field of `batching_defaults()`),
    `None` stays `None` (everything at once), a positive integer stays itself; anything else
    is a `ValueError` (prefixed with `where`, e.g. `"evaluate_batch: "`)."""
    if chunk_size == AUTO:
        return default
    if chunk_size is not None and (
        isinstance(chunk_size, bool | str) or int(chunk_size) != chunk_size or chunk_size < 1
    ):
        raise ValueError(
            f"{where}chunk_size must be a positive integer, None or 'auto'; got {chunk_size!r}."
        )
    return chunk_size


def batching_defaults(backend: str | None = None) -> BatchingDefaults:
    """The batching defaults of a backend.

    **Arguments:**

    - `backend`: `"cpu"`, `"gpu"`, `"cuda"`, `"rocm"`, `"tpu"`, ... (default: JAX's default
      backend, `jax.default_backend()`).

    **Returns:**

    `CPU_DEFAULTS` for the CPU, `ACCELERATOR_DEFAULTS` for anything else.
    """
    backend = jax.default_backend() if backend is None else str(backend)
    return CPU_DEFAULTS if backend == "cpu" else ACCELERATOR_DEFAULTS
