"""Readable pure-PyTorch reference for every computation in hybrik_fast.

This is the oracle for every kernel: tests and benchmarks import it, and the
fused backends must reproduce it.  Gradients come from autograd.
"""
from .soft_argmax import soft_argmax3d
from .kinematics import (forward_kinematics, hybrik_ik, twist_angles,
                         pelvis_rotation, rigid_transforms, swing_rotation,
                         twist_rotation)

__all__ = ["soft_argmax3d", "forward_kinematics", "hybrik_ik", "twist_angles",
           "pelvis_rotation", "rigid_transforms", "swing_rotation", "twist_rotation"]
