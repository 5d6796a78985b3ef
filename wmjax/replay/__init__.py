"""Jittable replay buffers: init/add/sample as pure functions over fixed-shape arrays."""

from wmjax.replay.transitions import TransitionBuffer, add_sequence, init_buffer

__all__ = ["TransitionBuffer", "add_sequence", "init_buffer"]
