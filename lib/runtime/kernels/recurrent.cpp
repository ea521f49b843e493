// RNN, GRU and LSTM (forward, reverse, bidirectional; sequence_lens; layout 0
// and 1; clip; LSTM peepholes and input_forget; GRU linear_before_reset), with
// the activations ONNX exporters use: Sigmoid, Tanh, Relu, HardSigmoid.
#include <cmath>
#include <functional>

#include "runtime/kernels/kernel_util.hpp"

namespace slmopt::runtime {
namespace {

using Activation = std::function<double(double)>;

Activation activation(const OpContext& c, const std::string& name, float alpha, float beta) {
  if (name == "Sigmoid") return [](double x) { return 1.0 / (1.0 + std::exp(-x)); };
  if (name == "Tanh") return [](double x) { return std::tanh(x); };
  if (name == "Relu") return [](double x) { return x > 0 ? x : 0.0; };
  if (name == "HardSigmoid") return [alpha, beta](double x) { return std::clamp(alpha * x + beta, 0.0, 1.0); };
  c.fail("activation '" + name + "' is not supported");
}

// Shapes and options shared by the three cells.
struct Recurrence {
  int64_t seq = 0, batch = 0, input = 0, hidden = 0, dirs = 1;
  bool batch_major = false;
  double clip = 0;
  std::vector<int64_t> lengths;       // per batch entry
  std::vector<std::string> directions;  // "forward" / "reverse" per direction
  std::vector<Activation> acts;         // per direction: the cell's activations in order
  std::vector<double> x;                // [seq][batch][input]
};

Recurrence setup(OpContext& c, int gates, std::vector<std::string> default_acts) {
  Recurrence r;
  const Tensor& X = c.input(0);
  if (X.rank() != 3) c.fail("X must be 3-D");
  r.batch_major = c.attr_int("layout", 0) != 0;
  r.seq = r.batch_major ? X.shape()[1] : X.shape()[0];
  r.batch = r.batch_major ? X.shape()[0] : X.shape()[1];
  r.input = X.shape()[2];
  r.hidden = c.attr_int("hidden_size", 0);
  const std::string direction = c.attr_string("direction", "forward");
  r.dirs = direction == "bidirectional" ? 2 : 1;
  r.directions = direction == "bidirectional" ? std::vector<std::string>{"forward", "reverse"}
                                               : std::vector<std::string>{direction};
  if (direction != "forward" && direction != "reverse" && direction != "bidirectional")
    c.fail("unknown direction '" + direction + "'");
  const Tensor& W = c.input(1);
  if (r.hidden <= 0) r.hidden = W.shape().at(1) / gates;
  if (W.rank() != 3 || W.shape()[0] != r.dirs || W.shape()[1] != gates * r.hidden || W.shape()[2] != r.input)
    c.fail("W has shape " + shape_to_string(W.shape()) + ", expected [" + std::to_string(r.dirs) + "," +
           std::to_string(gates * r.hidden) + "," + std::to_string(r.input) + "]");
  r.clip = c.attr_float("clip", 0.0f);
  auto names = c.node.find_attribute("activations") ? c.node.find_attribute("activations")->strings : std::vector<std::string>{};
  auto alphas = c.attr_floats("activation_alpha"), betas = c.attr_floats("activation_beta");
  for (int64_t d = 0; d < r.dirs; ++d)
    for (size_t k = 0; k < default_acts.size(); ++k) {
      const size_t i = static_cast<size_t>(d) * default_acts.size() + k;
      const std::string name = i < names.size() ? names[i] : default_acts[k];
      r.acts.push_back(activation(c, name, i < alphas.size() ? alphas[i] : 0.2f, i < betas.size() ? betas[i] : 0.5f));
    }
  r.lengths.assign(static_cast<size_t>(r.batch), r.seq);
  if (c.has_input(4)) {
    r.lengths = int_values(c.input(4));
    if (static_cast<int64_t>(r.lengths.size()) != r.batch) c.fail("sequence_lens must have one entry per batch");
    for (auto l : r.lengths)
      if (l < 0 || l > r.seq) c.fail("sequence length out of range");
  }
  auto xv = doubles_of(X);
  r.x.resize(xv.size());
  for (int64_t t = 0; t < r.seq; ++t)
    for (int64_t b = 0; b < r.batch; ++b)
      for (int64_t i = 0; i < r.input; ++i)
        r.x[static_cast<size_t>((t * r.batch + b) * r.input + i)] =
            xv[static_cast<size_t>(r.batch_major ? (b * r.seq + t) * r.input + i : (t * r.batch + b) * r.input + i)];
  return r;
}

double clipped(const Recurrence& r, double v) { return r.clip > 0 ? std::clamp(v, -r.clip, r.clip) : v; }

// Writes Y [seq, dirs, batch, H] (or [batch, seq, dirs, H]) and the last state [dirs, batch, H].
struct Outputs {
  std::vector<double> y, last_h, last_c;
  explicit Outputs(const Recurrence& r)
      : y(static_cast<size_t>(r.seq * r.dirs * r.batch * r.hidden), 0.0),
        last_h(static_cast<size_t>(r.dirs * r.batch * r.hidden), 0.0),
        last_c(last_h.size(), 0.0) {}
  size_t y_index(const Recurrence& r, int64_t t, int64_t d, int64_t b, int64_t h) const {
    return static_cast<size_t>(r.batch_major ? ((b * r.seq + t) * r.dirs + d) * r.hidden + h
                                             : ((t * r.dirs + d) * r.batch + b) * r.hidden + h);
  }
  size_t state_index(const Recurrence& r, int64_t d, int64_t b, int64_t h) const {
    return static_cast<size_t>(r.batch_major ? (b * r.dirs + d) * r.hidden + h : (d * r.batch + b) * r.hidden + h);
  }
};

void emit(OpContext& c, const Recurrence& r, const Outputs& o, bool with_cell) {
  const DType t = c.input(0).dtype();
  auto make = [&](const std::vector<double>& v, std::vector<int64_t> shape) {
    return cast_tensor(Tensor::from_values<double>(DType::F64, std::move(shape), v), t);
  };
  if (c.wants_output(0))
    c.output(0) = make(o.y, r.batch_major ? std::vector<int64_t>{r.batch, r.seq, r.dirs, r.hidden}
                                          : std::vector<int64_t>{r.seq, r.dirs, r.batch, r.hidden});
  std::vector<int64_t> state = r.batch_major ? std::vector<int64_t>{r.batch, r.dirs, r.hidden}
                                             : std::vector<int64_t>{r.dirs, r.batch, r.hidden};
  if (c.wants_output(1)) c.output(1) = make(o.last_h, state);
  if (with_cell && c.wants_output(2)) c.output(2) = make(o.last_c, state);
}

std::vector<double> initial_state(OpContext& c, size_t input_index, const Recurrence& r, const Outputs& o) {
  std::vector<double> s(static_cast<size_t>(r.dirs * r.batch * r.hidden), 0.0);
  if (!c.has_input(input_index)) return s;
  auto v = doubles_of(c.input(input_index));
  if (v.size() != s.size()) c.fail("initial state has the wrong size");
  // Stored like the state outputs; keep an internal [dirs][batch][H] order.
  for (int64_t d = 0; d < r.dirs; ++d)
    for (int64_t b = 0; b < r.batch; ++b)
      for (int64_t h = 0; h < r.hidden; ++h)
        s[static_cast<size_t>((d * r.batch + b) * r.hidden + h)] = v[o.state_index(r, d, b, h)];
  return s;
}

// sum_k x[k] * m[row][k] for a row-major matrix of `cols` columns.
double dot(const double* x, const double* m, int64_t row, int64_t cols) {
  double acc = 0;
  for (int64_t k = 0; k < cols; ++k) acc += x[k] * m[row * cols + k];
  return acc;
}

// Runs the cell `step(d, b, x_t, h, c)` over time for every direction and batch entry.
template <class Step>
void unroll(const Recurrence& r, Outputs& o, std::vector<double>& h, std::vector<double>& cell, Step step) {
  for (int64_t d = 0; d < r.dirs; ++d)
    for (int64_t b = 0; b < r.batch; ++b) {
      const int64_t len = r.lengths[static_cast<size_t>(b)];
      double* hb = h.data() + (d * r.batch + b) * r.hidden;
      double* cb = cell.data() + (d * r.batch + b) * r.hidden;
      for (int64_t s = 0; s < len; ++s) {
        const int64_t t = r.directions[static_cast<size_t>(d)] == "reverse" ? len - 1 - s : s;
        step(d, r.x.data() + (t * r.batch + b) * r.input, hb, cb);
        for (int64_t k = 0; k < r.hidden; ++k) o.y[o.y_index(r, t, d, b, k)] = hb[k];
      }
      for (int64_t k = 0; k < r.hidden; ++k) {
        o.last_h[o.state_index(r, d, b, k)] = hb[k];
        o.last_c[o.state_index(r, d, b, k)] = cb[k];
      }
    }
}

void rnn_op(OpContext& c) {
  Recurrence r = setup(c, 1, {"Tanh"});
  auto W = doubles_of(c.input(1)), R = doubles_of(c.input(2));
  std::vector<double> B = c.has_input(3) ? doubles_of(c.input(3)) : std::vector<double>(static_cast<size_t>(r.dirs * 2 * r.hidden), 0.0);
  Outputs o(r);
  auto h = initial_state(c, 5, r, o);
  std::vector<double> cell(h.size(), 0.0), next(static_cast<size_t>(r.hidden));
  const int64_t H = r.hidden;
  unroll(r, o, h, cell, [&](int64_t d, const double* x, double* hb, double*) {
    const double* w = W.data() + d * H * r.input;
    const double* rr = R.data() + d * H * H;
    const double* bb = B.data() + d * 2 * H;
    for (int64_t k = 0; k < H; ++k)
      next[static_cast<size_t>(k)] = r.acts[static_cast<size_t>(d)](clipped(r, dot(x, w, k, r.input) + dot(hb, rr, k, H) + bb[k] + bb[H + k]));
    std::copy(next.begin(), next.end(), hb);
  });
  emit(c, r, o, false);
}

void gru_op(OpContext& c) {
  Recurrence r = setup(c, 3, {"Sigmoid", "Tanh"});
  const int64_t H = r.hidden;
  auto W = doubles_of(c.input(1)), R = doubles_of(c.input(2));
  std::vector<double> B = c.has_input(3) ? doubles_of(c.input(3)) : std::vector<double>(static_cast<size_t>(r.dirs * 6 * H), 0.0);
  const bool linear_before_reset = c.attr_int("linear_before_reset", 0) != 0;
  Outputs o(r);
  auto h = initial_state(c, 5, r, o);
  std::vector<double> cell(h.size(), 0.0), z(static_cast<size_t>(H)), rg(static_cast<size_t>(H)), rh(static_cast<size_t>(H));
  unroll(r, o, h, cell, [&](int64_t d, const double* x, double* hb, double*) {
    const double* w = W.data() + d * 3 * H * r.input;
    const double* rr = R.data() + d * 3 * H * H;
    const double* wb = B.data() + d * 6 * H;
    const double* rb = wb + 3 * H;
    const auto& f = r.acts[static_cast<size_t>(d * 2)];
    const auto& g = r.acts[static_cast<size_t>(d * 2 + 1)];
    for (int64_t k = 0; k < H; ++k) {
      z[static_cast<size_t>(k)] = f(clipped(r, dot(x, w, k, r.input) + dot(hb, rr, k, H) + wb[k] + rb[k]));
      rg[static_cast<size_t>(k)] = f(clipped(r, dot(x, w, H + k, r.input) + dot(hb, rr, H + k, H) + wb[H + k] + rb[H + k]));
      rh[static_cast<size_t>(k)] = rg[static_cast<size_t>(k)] * hb[k];
    }
    std::vector<double> next(static_cast<size_t>(H));
    for (int64_t k = 0; k < H; ++k) {
      const double recur = linear_before_reset ? rg[static_cast<size_t>(k)] * (dot(hb, rr, 2 * H + k, H) + rb[2 * H + k])
                                               : dot(rh.data(), rr, 2 * H + k, H) + rb[2 * H + k];
      const double cand = g(clipped(r, dot(x, w, 2 * H + k, r.input) + recur + wb[2 * H + k]));
      next[static_cast<size_t>(k)] = (1 - z[static_cast<size_t>(k)]) * cand + z[static_cast<size_t>(k)] * hb[k];
    }
    std::copy(next.begin(), next.end(), hb);
  });
  emit(c, r, o, false);
}

void lstm_op(OpContext& c) {
  Recurrence r = setup(c, 4, {"Sigmoid", "Tanh", "Tanh"});
  const int64_t H = r.hidden;
  auto W = doubles_of(c.input(1)), R = doubles_of(c.input(2));
  std::vector<double> B = c.has_input(3) ? doubles_of(c.input(3)) : std::vector<double>(static_cast<size_t>(r.dirs * 8 * H), 0.0);
  std::vector<double> P = c.has_input(7) ? doubles_of(c.input(7)) : std::vector<double>(static_cast<size_t>(r.dirs * 3 * H), 0.0);
  const bool input_forget = c.attr_int("input_forget", 0) != 0;
  Outputs o(r);
  auto h = initial_state(c, 5, r, o);
  auto cell = initial_state(c, 6, r, o);
  std::vector<double> gate(static_cast<size_t>(4 * H));
  unroll(r, o, h, cell, [&](int64_t d, const double* x, double* hb, double* cb) {
    const double* w = W.data() + d * 4 * H * r.input;
    const double* rr = R.data() + d * 4 * H * H;
    const double* wb = B.data() + d * 8 * H;
    const double* rb = wb + 4 * H;
    const double* p = P.data() + d * 3 * H;  // peepholes: i, o, f
    const auto& f = r.acts[static_cast<size_t>(d * 3)];
    const auto& g = r.acts[static_cast<size_t>(d * 3 + 1)];
    const auto& hh = r.acts[static_cast<size_t>(d * 3 + 2)];
    for (int64_t k = 0; k < 4 * H; ++k)  // gate order i, o, f, c
      gate[static_cast<size_t>(k)] = dot(x, w, k, r.input) + dot(hb, rr, k, H) + wb[k] + rb[k];
    for (int64_t k = 0; k < H; ++k) {
      const double i = f(clipped(r, gate[static_cast<size_t>(k)] + p[k] * cb[k]));
      const double fg = input_forget ? 1 - i : f(clipped(r, gate[static_cast<size_t>(2 * H + k)] + p[2 * H + k] * cb[k]));
      const double cand = g(clipped(r, gate[static_cast<size_t>(3 * H + k)]));
      cb[k] = fg * cb[k] + i * cand;
      const double og = f(clipped(r, gate[static_cast<size_t>(H + k)] + p[H + k] * cb[k]));
      hb[k] = og * hh(cb[k]);
    }
  });
  emit(c, r, o, true);
}

}  // namespace

void register_recurrent(KernelRegistry& r) {
  r.add("", "RNN", rnn_op);
  r.add("", "GRU", gru_op);
  r.add("", "LSTM", lstm_op);
}

}  // namespace slmopt::runtime
