// The skeleton as the fused IK sees it: joint counts, parents, the child
// that aims each joint, the pelvis children.
#pragma once

#include "ik/host_device.h"

namespace hybrik_fast {
namespace ik {

constexpr int kNumJoints = 29;      // 24 SMPL joints + 5 leaves
constexpr int kNumSmplJoints = 24;  // joints with a rotation
constexpr int kNumTwist = 23;       // joints 1..23; joint i uses twist row i - 1
constexpr int kNumPelvisChildren = 3;

// ---------------------------------------------------------------- topology
//
// Generated from hybrik_fast/skeleton.py (PARENTS_29, IK_CHILD,
// PELVIS_CHILDREN); tests/test_ik.py parses these lines and checks that they
// agree.  A function returning a literal (rather than namespace-scope arrays)
// so that device code can use it: nvcc does not place host constexpr arrays
// in device memory.
struct Topology {
  int parent[kNumJoints];           // parent of each joint, -1 for the root
  int ik_child[kNumJoints];         // child that aims joint i, -1 for leaves
  int pelvis_children[kNumPelvisChildren];
};

HOST_DEVICE constexpr Topology topology() {
  return Topology{
      /*parent=*/{-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21, 15, 22, 23, 10, 11},
      /*ik_child=*/{3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 27, 28, 15, 16, 17, 24, 18, 19, 20, 21, 22, 23, 25, 26, -1, -1, -1, -1, -1},
      /*pelvis_children=*/{3, 1, 2}};
}

// has_rotating_child(i): some joint 1..23 hangs from i (false for 10, 11, 15,
// 22, 23, whose children are leaves), derived from the parents above
struct ChildFlags {
  bool has_rotating_child[kNumSmplJoints];
};

HOST_DEVICE constexpr ChildFlags child_flags() {
  ChildFlags f{};
  const Topology topo = topology();
  for (int j = 1; j < kNumSmplJoints; ++j) f.has_rotating_child[topo.parent[j]] = true;
  return f;
}

}  // namespace ik
}  // namespace hybrik_fast
