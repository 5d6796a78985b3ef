"""Jittable replay buffers: init/add/sample as pure functions over fixed-shape arrays."""

from wmjax.replay.sequences import (
    SequenceBuffer,
    add_chunk,
    add_step,
    can_sample,
    init_sequence_buffer,
    sample_prioritized,
    sample_sequences,
    set_priority,
)
from wmjax.replay.transitions import (
    RingBuffer,
    TransitionBuffer,
    add_batch,
    add_sequence,
    init_buffer,
    init_ring,
    sample_rows,
)

__all__ = [
    "TransitionBuffer",
    "add_sequence",
    "init_buffer",
    "RingBuffer",
    "init_ring",
    "add_batch",
    "sample_rows",
    "SequenceBuffer",
    "init_sequence_buffer",
    "add_step",
    "add_chunk",
    "sample_sequences",
    "sample_prioritized",
    "set_priority",
    "can_sample",
]
