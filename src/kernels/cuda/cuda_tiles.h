// The query tiles of a batch (host side, no CUDA types): what the tiled
// attention shapes run over. A tile is a run of consecutive batch entries of
// one sequence at consecutive positions, at most tile_tokens long, cut
// greedily from the first entry; tiles cover the batch in order.
// Invariant: the output is a pure function of (pos, seq, tile_tokens), so the
// same batch always gets the same tiles (which tile holds a token never
// changes its bits anyway: every attention shape keeps one canonical order).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace reprise::kernels::cuda {

// Writes (first index, token count) per tile into *out, then the first
// indices of the one-token tiles (decode tokens beside prompt chunks), and
// returns the number of tiles; *n_singles gets the number of one-token tiles.
inline int64_t CutQueryTiles(std::span<const int32_t> pos, std::span<const int32_t> seq,
                             int64_t tile_tokens, std::vector<int32_t>* out, int64_t* n_singles) {
  out->clear();
  const int64_t n = static_cast<int64_t>(pos.size());
  for (int64_t i = 0; i < n;) {
    int64_t j = i + 1;
    while (j < n && j - i < tile_tokens && seq[j] == seq[i] && pos[j] == pos[j - 1] + 1) ++j;
    out->push_back(static_cast<int32_t>(i));
    out->push_back(static_cast<int32_t>(j - i));
    i = j;
  }
  const int64_t n_tiles = static_cast<int64_t>(out->size()) / 2;
  for (int64_t i = 0; i < n_tiles; ++i) {
    if ((*out)[2 * i + 1] == 1) out->push_back((*out)[2 * i]);
  }
  *n_singles = static_cast<int64_t>(out->size()) - 2 * n_tiles;
  return n_tiles;
}

}  // namespace reprise::kernels::cuda
