//===- LayerNorm.cpp - Layer norm's gradient in one pass over the rows ----===//
//
// The kernels behind mass.layernorm_grad. Over rows x [R, D] with the
// forward's mean and rstd per row, weight [D] and the result's gradient dy:
// xhat = (x - mean) * rstd, g = dy * weight,
// dx = rstd * (g - mean(g) - xhat * mean(g * xhat)) (means along the row),
// dweight = sum over rows of dy * xhat, dbias = sum over rows of dy.
// Each row is read once from memory (its second pass hits L1), instead of
// once per reduction and elementwise op. The generated code calls
// `mass_layernorm_backward` once per chunk of rows from a parallel loop
// (a fixed number of chunks: each writes its own sums over rows), then
// `mass_layernorm_backward_sums` adds the chunks in order, so the result
// does not depend on the number of threads.
//
//===----------------------------------------------------------------------===//

#include "KernelVectors.h"

#include <cstring>

namespace {

using namespace mass::rt::kernels;

/// One row: dx, and its terms added to the chunk's sums pw (dweight) and
/// pb (dbias). Contiguous rows (unit stride along D) take vectors.
void backwardRow(const float *x, const float *dy, const float *w, float mean,
                 float rstd, int64_t width, int64_t xs, int64_t dys, int64_t ws,
                 float *dx, int64_t dxs, float *pw, float *pb) {
  const bool contiguous = xs == 1 && dys == 1 && ws == 1 && dxs == 1;
  const int64_t whole = contiguous ? width / kLanes * kLanes : 0;
  V s1{}, s2{};
  for (int64_t d = 0; d < whole; d += kLanes) {
    const V dyv = loadV(dy + d);
    const V xhat = (loadV(x + d) - mean) * rstd;
    const V g = dyv * loadV(w + d);
    s1 += g;
    s2 += g * xhat;
    storeV(pw + d, loadV(pw + d) + dyv * xhat);
    storeV(pb + d, loadV(pb + d) + dyv);
  }
  float sumG = hsum(s1), sumGX = hsum(s2);
  for (int64_t d = whole; d < width; ++d) {
    const float xhat = (x[d * xs] - mean) * rstd;
    const float g = dy[d * dys] * w[d * ws];
    sumG += g;
    sumGX += g * xhat;
    pw[d] += dy[d * dys] * xhat;
    pb[d] += dy[d * dys];
  }
  const float meanG = sumG / static_cast<float>(width);
  const float meanGX = sumGX / static_cast<float>(width);
  for (int64_t d = 0; d < whole; d += kLanes) {
    const V xhat = (loadV(x + d) - mean) * rstd;
    const V g = loadV(dy + d) * loadV(w + d);
    storeV(dx + d, (g - meanG - xhat * meanGX) * rstd);
  }
  for (int64_t d = whole; d < width; ++d) {
    const float xhat = (x[d * xs] - mean) * rstd;
    const float g = dy[d * dys] * w[d * ws];
    dx[d * dxs] = (g - meanG - xhat * meanGX) * rstd;
  }
}

} // namespace

extern "C" void _mlir_ciface_mass_layernorm_backward(
    MassMemRef *xm, MassMemRef *meanm, MassMemRef *rstdm, MassMemRef *wm,
    MassMemRef *dym, MassMemRef *dxm, MassMemRef *partialm, int64_t chunk,
    int64_t chunks) {
  View<2> x(xm), dy(dym), dx(dxm);
  View<1> mean(meanm), rstd(rstdm), w(wm);
  View<3> partial(partialm);
  const int64_t rows = x.size[0], width = x.size[1];
  float *pw = partial.base + chunk * partial.stride[0];
  float *pb = pw + partial.stride[1];
  // The chunk's sums are contiguous rows of the kernel's own buffer.
  std::memset(pw, 0, sizeof(float) * width);
  std::memset(pb, 0, sizeof(float) * width);
  const int64_t first = rows * chunk / chunks;
  const int64_t end = rows * (chunk + 1) / chunks;
  for (int64_t r = first; r < end; ++r)
    backwardRow(x.row(r), dy.row(r), w.base, mean.base[r * mean.stride[0]],
                rstd.base[r * rstd.stride[0]], width, x.stride[1], dy.stride[1],
                w.stride[0], dx.row(r), dx.stride[1], pw, pb);
}

extern "C" void _mlir_ciface_mass_layernorm_backward_sums(MassMemRef *partialm,
                                                          MassMemRef *dwm,
                                                          MassMemRef *dbm) {
  View<3> partial(partialm);
  View<1> dw(dwm), db(dbm);
  const int64_t chunks = partial.size[0], width = partial.size[2];
  for (int64_t d = 0; d < width; ++d) {
    float sw = 0, sb = 0;
    for (int64_t c = 0; c < chunks; ++c) {
      const float *p = partial.base + c * partial.stride[0] + d;
      sw += p[0];
      sb += p[partial.stride[1]];
    }
    dw.base[d * dw.stride[0]] = sw;
    db.base[d * db.stride[0]] = sb;
  }
}
