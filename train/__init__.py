"""Training with the fused ops (installed as hybrik_fast.train)."""
