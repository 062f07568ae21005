// CPU emulation of the cluster part of cooperative groups (see cuda_runtime.h).
#pragma once
#include "cuda_runtime.h"

namespace cooperative_groups {
// Code built for sm_80 only has no clusters: the helpers in cuda_common.cuh trap there.
struct cluster_group {
  cluster_group() {
    if (emu_ptx() < 90) __trap();
  }
  unsigned block_rank() const { return t_block->rank; }
  void sync() const { g_cluster_bar->arrive_and_wait(); }
  // The same offset in another block's dynamic shared memory (the only shared memory the
  // emulator gives each block its own copy of).
  template <class T> T* map_shared_rank(T* p, unsigned rank) const {
    const unsigned char* mine = t_block->smem;
    return reinterpret_cast<T*>(g_cluster_smem[rank] + (reinterpret_cast<unsigned char*>(p) - mine));
  }
};
inline cluster_group this_cluster() { return {}; }
}  // namespace cooperative_groups
