"""Triton GPU kernels (installed as hybrik_fast.kernels)."""
