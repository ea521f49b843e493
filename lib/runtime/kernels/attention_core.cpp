#include "runtime/kernels/attention_core.hpp"

#include <algorithm>
#include <cmath>
#include <vector>

#include "runtime/kernels/sgemm.hpp"

namespace slmopt::runtime {

void attend(const AttentionParams& p, const HeadOperand& q, const HeadOperand& k, const HeadOperand& v, float* out,
            int64_t out_batch, int64_t out_head, int64_t out_row) {
  const int64_t seq = q.rows, keys = k.rows, group = p.q_heads / p.kv_heads;
  std::vector<float> scores(static_cast<size_t>(seq * keys));
  for (int64_t b = 0; b < p.batch; ++b)
    for (int64_t h = 0; h < p.q_heads; ++h) {
      const int64_t g = h / group;
      const MatrixView kt{k.at(b, g), 1, k.row_stride};  // K transposed: element (d, t) is key t's d-th value
      sgemm(seq, keys, q.width, MatrixView{q.at(b, h), q.row_stride, 1}, kt, scores.data(), keys);
      const float* add = p.mask ? p.mask(b, h) : nullptr;
      for (int64_t i = 0; i < seq; ++i) {
        float* row = scores.data() + i * keys;
        float top = -INFINITY;
        for (int64_t t = 0; t < keys; ++t) {
          float s = row[t] * p.scale;
          if (p.softcap > 0.0f) s = p.softcap * std::tanh(s / p.softcap);
          row[t] = add ? s + add[i * keys + t] : s;
          top = std::max(top, row[t]);
        }
        double sum = 0;
        for (int64_t t = 0; t < keys; ++t) sum += (row[t] = std::exp(row[t] - top));
        for (int64_t t = 0; t < keys; ++t) row[t] = static_cast<float>(row[t] / sum);
      }
      sgemm(seq, v.width, keys, row_major(scores.data(), keys), MatrixView{v.at(b, g), v.row_stride, 1},
            out + b * out_batch + h * out_head, out_row);
    }
}

}  // namespace slmopt::runtime
