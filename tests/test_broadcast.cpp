// The runtime's broadcasting ops (binary arithmetic, comparisons, Where,
// Expand), Concat, Softmax, Slice and ConvTranspose against plain per-element definitions written
// here, on random shapes: the kernels walk rows, these walk single elements.
#include <catch2/catch.hpp>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>

#include "runtime/session.hpp"
#include "test_util.hpp"

using namespace slmopt;

namespace {

// A model of one node whose inputs are graph inputs in0, in1, ...
Model node_model(const std::string& op, size_t inputs, std::vector<Attribute> attributes = {}) {
  Model m;
  m.opsets.push_back({"", 17});
  Node node;
  node.op_type = op;
  node.name = "node";
  for (size_t i = 0; i < inputs; ++i) {
    ValueInfo v;
    v.name = "in" + std::to_string(i);
    m.graph.inputs.push_back(v);
    node.inputs.push_back(v.name);
  }
  node.outputs = {"out"};
  node.attributes = std::move(attributes);
  ValueInfo out;
  out.name = "out";
  m.graph.outputs.push_back(out);
  m.graph.nodes.push_back(node);
  return m;
}

Tensor run_node(const Model& m, const std::vector<Tensor>& inputs) {
  std::map<std::string, Tensor> feeds;
  for (size_t i = 0; i < inputs.size(); ++i) feeds["in" + std::to_string(i)] = inputs[i];
  return runtime::Session(m).run(feeds).at("out");
}

// numpy's rule, written out: align right, 1 stretches.
std::vector<int64_t> broadcast(std::vector<std::vector<int64_t>> shapes) {
  size_t rank = 0;
  for (const auto& s : shapes) rank = std::max(rank, s.size());
  std::vector<int64_t> out(rank, 1);
  for (const auto& s : shapes)
    for (size_t i = 0; i < s.size(); ++i) {
      int64_t& d = out[rank - s.size() + i];
      if (d == 1) d = s[i];
    }
  return out;
}

// The flat index into a tensor of shape `in` of the element at multi-index `at` of the broadcast shape.
int64_t source_index(const std::vector<int64_t>& in, const std::vector<int64_t>& at) {
  int64_t flat = 0;
  const size_t off = at.size() - in.size();
  for (size_t i = 0; i < in.size(); ++i) flat = flat * in[i] + (in[i] == 1 ? 0 : at[off + i]);
  return flat;
}

std::vector<int64_t> unravel(int64_t i, const std::vector<int64_t>& shape) {
  std::vector<int64_t> at(shape.size());
  for (size_t d = shape.size(); d-- > 0;) {
    at[d] = i % shape[d];
    i /= shape[d];
  }
  return at;
}

// A random shape of `rank` and one that broadcasts with it (dims kept, set to 1 or dropped in front).
std::pair<std::vector<int64_t>, std::vector<int64_t>> shape_pair(std::mt19937& rng) {
  std::uniform_int_distribution<int> rank_of(0, 5), dim(1, 5), coin(0, 2);
  std::vector<int64_t> a(static_cast<size_t>(rank_of(rng)));
  for (auto& d : a) d = dim(rng);
  std::vector<int64_t> b = a;
  for (auto& d : b)
    if (coin(rng) == 0) d = 1;
  for (auto& d : a)
    if (coin(rng) == 0) d = 1;
  const auto drop = std::uniform_int_distribution<size_t>(0, b.size())(rng);
  b.erase(b.begin(), b.begin() + static_cast<std::ptrdiff_t>(drop));
  return coin(rng) ? std::pair{a, b} : std::pair{b, a};
}

}  // namespace

TEST_CASE("broadcasting Sub, Less and Where agree with the per-element definition on random shapes") {
  std::mt19937 rng(11);
  const Model sub = node_model("Sub", 2), less = node_model("Less", 2), where = node_model("Where", 3);
  for (int round = 0; round < 300; ++round) {
    const auto [sa, sb] = shape_pair(rng);
    // The condition takes a shape that broadcasts with both: a's with some dims set to 1.
    std::vector<int64_t> cond_shape = sa;
    for (auto& d : cond_shape)
      if (rng() % 2) d = 1;
    const auto shape = broadcast({sa, sb});
    const Tensor a = test::gaussian_tensor(sa, static_cast<uint32_t>(round));
    const Tensor b = test::gaussian_tensor(sb, static_cast<uint32_t>(round + 1000));
    const Tensor cond_values = test::gaussian_tensor(cond_shape, static_cast<uint32_t>(round + 2000));
    std::vector<bool> flags;
    for (int64_t i = 0; i < cond_values.numel(); ++i) flags.push_back(cond_values.data<float>()[i] > 0);
    Tensor cond(DType::Bool, cond_shape);
    for (size_t i = 0; i < flags.size(); ++i) cond.mutable_data<bool>()[i] = flags[i];

    const Tensor diff = run_node(sub, {a, b}), lt = run_node(less, {a, b}), pick = run_node(where, {cond, a, b});
    INFO("a " << shape_to_string(sa) << " b " << shape_to_string(sb) << " cond " << shape_to_string(cond_shape));
    REQUIRE(diff.shape() == shape);
    REQUIRE(lt.shape() == shape);
    REQUIRE(pick.shape() == broadcast({cond_shape, sa, sb}));
    bool same = true;
    for (int64_t i = 0; i < diff.numel(); ++i) {
      const auto at = unravel(i, shape);
      const float x = a.data<float>()[source_index(sa, at)], y = b.data<float>()[source_index(sb, at)];
      same = same && diff.data<float>()[i] == x - y && lt.data<bool>()[i] == (x < y);
      const bool c = flags[static_cast<size_t>(source_index(cond_shape, at))];
      same = same && pick.data<float>()[i] == (c ? x : y);
    }
    CHECK(same);
  }
}

TEST_CASE("Expand copies rows and stretched values as the definition says, for every element size") {
  std::mt19937 rng(12);
  const Model expand = node_model("Expand", 2);
  for (int round = 0; round < 200; ++round) {
    const auto [from, other] = shape_pair(rng);
    const auto shape = broadcast({from, other});
    const DType types[] = {DType::U8, DType::F16, DType::F32, DType::I64};
    const DType type = types[round % 4];
    const Tensor x = test::random_tensor(type, from, static_cast<uint32_t>(round));
    const Tensor target = Tensor::from_values(DType::I64, {static_cast<int64_t>(other.size())}, other);
    const Tensor y = run_node(expand, {x, target});
    INFO(shape_to_string(from) << " to " << shape_to_string(other));
    REQUIRE(y.shape() == shape);
    const auto es = static_cast<size_t>(dtype_size(type));
    bool same = true;
    for (int64_t i = 0; i < y.numel(); ++i)
      same = same && std::memcmp(y.bytes() + static_cast<size_t>(i) * es,
                                 x.bytes() + static_cast<size_t>(source_index(from, unravel(i, shape))) * es, es) == 0;
    CHECK(same);
  }
}

TEST_CASE("Concat along every axis places each input's blocks as the definition says") {
  std::mt19937 rng(13);
  std::uniform_int_distribution<int> dim(0, 4), rank_of(1, 4), count_of(1, 4);
  for (int round = 0; round < 200; ++round) {
    std::vector<int64_t> shape(static_cast<size_t>(rank_of(rng)));
    for (auto& d : shape) d = dim(rng) + 1;
    const auto axis = static_cast<int64_t>(rng() % shape.size());
    const auto count = static_cast<size_t>(count_of(rng));
    std::vector<Tensor> inputs;
    std::vector<int64_t> starts;  // where each input begins along the axis
    int64_t total = 0;
    for (size_t i = 0; i < count; ++i) {
      auto s = shape;
      s[static_cast<size_t>(axis)] = dim(rng);  // 0 too: an empty input
      inputs.push_back(test::gaussian_tensor(s, static_cast<uint32_t>(round * 10 + i)));
      starts.push_back(total);
      total += s[static_cast<size_t>(axis)];
    }
    const Tensor y = run_node(node_model("Concat", count, {Attribute::integer("axis", axis)}), inputs);
    auto out_shape = shape;
    out_shape[static_cast<size_t>(axis)] = total;
    REQUIRE(y.shape() == out_shape);
    bool same = true;
    for (int64_t e = 0; e < y.numel(); ++e) {
      auto at = unravel(e, out_shape);
      size_t i = count - 1;
      while (starts[i] > at[static_cast<size_t>(axis)] || inputs[i].shape()[static_cast<size_t>(axis)] == 0) --i;
      at[static_cast<size_t>(axis)] -= starts[i];
      int64_t flat = 0;
      for (size_t d = 0; d < at.size(); ++d) flat = flat * inputs[i].shape()[d] + at[d];
      same = same && y.data<float>()[e] == inputs[i].data<float>()[flat];
    }
    CHECK(same);
  }
}

TEST_CASE("Softmax with masked (-inf) entries equals the definition, exp(x - max) / sum") {
  Tensor x = test::gaussian_tensor({3, 5, 7}, 4, 3.0f);
  for (int64_t r = 0; r < 15; ++r)
    for (int64_t k = r % 7 + 1; k < 7; ++k) x.mutable_data<float>()[r * 7 + k] = -std::numeric_limits<float>::infinity();
  const Tensor y = run_node(node_model("Softmax", 1), {x});
  bool close = true;
  for (int64_t r = 0; r < 15; ++r) {
    const float* row = x.data<float>() + r * 7;
    double top = -INFINITY, sum = 0;
    for (int k = 0; k < 7; ++k) top = std::max(top, static_cast<double>(row[k]));
    for (int k = 0; k < 7; ++k) sum += std::exp(row[k] - top);
    for (int k = 0; k < 7; ++k) close = close && y.data<float>()[r * 7 + k] == static_cast<float>(std::exp(row[k] - top) / sum);
  }
  CHECK(close);
}

TEST_CASE("Slice (positive and negative steps, any axes, every element size) takes the elements the definition says") {
  std::mt19937 rng(11);
  const Model m = node_model("Slice", 5);
  for (int trial = 0; trial < 300; ++trial) {
    const int rank = 1 + static_cast<int>(rng() % 4);
    std::vector<int64_t> shape;
    for (int d = 0; d < rank; ++d) shape.push_back(1 + static_cast<int64_t>(rng() % 6));
    const DType dtype = std::array{DType::F32, DType::I64, DType::U8, DType::F16}[trial % 4];
    const Tensor x = test::random_tensor(dtype, shape, static_cast<uint32_t>(trial));
    // Each axis once, in a random order; ends and starts past the dims are clamped.
    std::vector<int64_t> axes, starts, ends, steps;
    for (int d = 0; d < rank; ++d)
      if (rng() % 3) axes.push_back(rng() % 2 ? d : d - rank);
    std::shuffle(axes.begin(), axes.end(), rng);
    for (size_t i = 0; i < axes.size(); ++i) {
      const int64_t dim = shape[static_cast<size_t>(axes[i] < 0 ? axes[i] + rank : axes[i])];
      steps.push_back((rng() % 2 ? 1 : -1) * (1 + static_cast<int64_t>(rng() % 3)));
      // (A start before -dim under a negative step is left out: the spec's
      // text and numpy's slicing, its reference, disagree there.)
      const int64_t lowest = steps.back() > 0 ? -dim - 1 : -dim;
      starts.push_back(lowest + static_cast<int64_t>(rng() % static_cast<uint64_t>(dim + 2 - lowest)));
      ends.push_back(rng() % 5 == 0 ? (rng() % 2 ? INT64_MAX : INT64_MIN) : static_cast<int64_t>(rng() % (2 * dim + 3)) - dim - 1);
    }
    auto ints = [](const std::vector<int64_t>& v) {
      return Tensor::from_values<int64_t>(DType::I64, {static_cast<int64_t>(v.size())}, v);
    };
    const Tensor out = run_node(m, {x, ints(starts), ints(ends), ints(axes), ints(steps)});
    // The definition: per axis, the indices start, start + step, ... before end.
    std::vector<std::vector<int64_t>> picks(static_cast<size_t>(rank));
    for (int d = 0; d < rank; ++d)
      for (int64_t i = 0; i < shape[static_cast<size_t>(d)]; ++i) picks[static_cast<size_t>(d)].push_back(i);
    for (size_t i = 0; i < axes.size(); ++i) {
      const auto a = static_cast<size_t>(axes[i] < 0 ? axes[i] + rank : axes[i]);
      const int64_t dim = shape[a], step = steps[i];
      auto norm = [&](int64_t v) { return v < 0 ? (v < -dim ? -1 : v + dim) : v; };
      int64_t s = norm(starts[i]), e = norm(ends[i]);
      if (step > 0) s = std::clamp<int64_t>(s, 0, dim), e = std::clamp<int64_t>(e, 0, dim);
      else s = std::clamp<int64_t>(s, -1, dim - 1), e = std::clamp<int64_t>(e, -1, dim - 1);
      picks[a].clear();
      for (int64_t k = s; step > 0 ? k < e : k > e; k += step) picks[a].push_back(k);
    }
    std::vector<int64_t> want_shape;
    for (const auto& p : picks) want_shape.push_back(static_cast<int64_t>(p.size()));
    INFO("trial " << trial);
    REQUIRE(out.shape() == want_shape);
    const size_t es = static_cast<size_t>(dtype_size(dtype));
    std::vector<int64_t> at(static_cast<size_t>(rank), 0);
    for (int64_t o = 0; o < out.numel(); ++o) {
      int64_t src = 0;
      for (int d = 0; d < rank; ++d) src = src * shape[static_cast<size_t>(d)] + picks[static_cast<size_t>(d)][static_cast<size_t>(at[static_cast<size_t>(d)])];
      REQUIRE(std::memcmp(out.bytes() + o * static_cast<int64_t>(es), x.bytes() + src * static_cast<int64_t>(es), es) == 0);
      for (int d = rank - 1; d >= 0 && ++at[static_cast<size_t>(d)] == want_shape[static_cast<size_t>(d)]; --d) at[static_cast<size_t>(d)] = 0;
    }
  }
}

TEST_CASE("ConvTranspose (groups, strides, dilations, pads, output padding, 1-D and 2-D) equals its definition") {
  std::mt19937 rng(17);
  for (int trial = 0; trial < 120; ++trial) {
    const bool one_d = trial % 3 == 0;
    const int64_t groups = 1 + static_cast<int64_t>(rng() % 2), cg = 1 + static_cast<int64_t>(rng() % 3),
                  mg = 1 + static_cast<int64_t>(rng() % 3), batch = 1 + static_cast<int64_t>(rng() % 2);
    const int64_t ih = one_d ? 1 : 1 + static_cast<int64_t>(rng() % 5), iw = 1 + static_cast<int64_t>(rng() % 6);
    const int64_t kh = one_d ? 1 : 1 + static_cast<int64_t>(rng() % 3), kw = 1 + static_cast<int64_t>(rng() % 3);
    const int64_t sh = one_d ? 1 : 1 + static_cast<int64_t>(rng() % 3), sw = 1 + static_cast<int64_t>(rng() % 3);
    const int64_t dh = one_d ? 1 : 1 + static_cast<int64_t>(rng() % 2), dw = 1 + static_cast<int64_t>(rng() % 2);
    const int64_t ph0 = one_d ? 0 : static_cast<int64_t>(rng() % 2), ph1 = one_d ? 0 : static_cast<int64_t>(rng() % 2);
    const int64_t pw0 = static_cast<int64_t>(rng() % 2), pw1 = static_cast<int64_t>(rng() % 2);
    const int64_t oph = one_d ? 0 : static_cast<int64_t>(rng() % sh), opw = static_cast<int64_t>(rng() % sw);
    const int64_t oh = sh * (ih - 1) + oph + (kh - 1) * dh + 1 - ph0 - ph1;
    const int64_t ow = sw * (iw - 1) + opw + (kw - 1) * dw + 1 - pw0 - pw1;
    if (oh <= 0 || ow <= 0) continue;
    const int64_t channels = groups * cg, out_channels = groups * mg;
    std::vector<int64_t> xs = {batch, channels, ih, iw}, ws = {channels, mg, kh, kw};
    if (one_d) xs = {batch, channels, iw}, ws = {channels, mg, kw};
    const Tensor x = test::gaussian_tensor(xs, static_cast<uint32_t>(3 * trial));
    const Tensor w = test::gaussian_tensor(ws, static_cast<uint32_t>(3 * trial + 1));
    const Tensor bias = test::gaussian_tensor({out_channels}, static_cast<uint32_t>(3 * trial + 2));
    std::vector<Attribute> attrs = {Attribute::integer("group", groups)};
    if (one_d) {
      attrs.push_back(Attribute::integers("strides", {sw}));
      attrs.push_back(Attribute::integers("dilations", {dw}));
      attrs.push_back(Attribute::integers("pads", {pw0, pw1}));
      attrs.push_back(Attribute::integers("output_padding", {opw}));
    } else {
      attrs.push_back(Attribute::integers("strides", {sh, sw}));
      attrs.push_back(Attribute::integers("dilations", {dh, dw}));
      attrs.push_back(Attribute::integers("pads", {ph0, pw0, ph1, pw1}));
      attrs.push_back(Attribute::integers("output_padding", {oph, opw}));
    }
    const Tensor out = run_node(node_model("ConvTranspose", 3, attrs), {x, w, bias});
    INFO("trial " << trial);
    REQUIRE(out.numel() == batch * out_channels * oh * ow);
    // The definition, in double: each input element times the kernel, added where it lands.
    std::vector<double> want(static_cast<size_t>(out.numel()), 0.0);
    for (int64_t b = 0; b < batch; ++b)
      for (int64_t o = 0; o < out_channels; ++o)
        for (int64_t p = 0; p < oh * ow; ++p) want[static_cast<size_t>((b * out_channels + o) * oh * ow + p)] = bias.data<float>()[o];
    for (int64_t b = 0; b < batch; ++b)
      for (int64_t ci = 0; ci < channels; ++ci)
        for (int64_t m = 0; m < mg; ++m)
          for (int64_t y = 0; y < ih; ++y)
            for (int64_t xx = 0; xx < iw; ++xx)
              for (int64_t ky = 0; ky < kh; ++ky)
                for (int64_t kx = 0; kx < kw; ++kx) {
                  const int64_t py = y * sh + ky * dh - ph0, px = xx * sw + kx * dw - pw0;
                  if (py < 0 || py >= oh || px < 0 || px >= ow) continue;
                  const int64_t o = (ci / cg) * mg + m;
                  want[static_cast<size_t>(((b * out_channels + o) * oh + py) * ow + px)] +=
                      static_cast<double>(x.data<float>()[((b * channels + ci) * ih + y) * iw + xx]) *
                      w.data<float>()[((ci * mg + m) * kh + ky) * kw + kx];
                }
    for (int64_t i = 0; i < out.numel(); ++i)
      REQUIRE(out.data<float>()[i] == Approx(want[static_cast<size_t>(i)]).margin(1e-5).epsilon(1e-5));
  }
}

TEST_CASE("depthwise Conv (1-D and 2-D, strides, dilations, pads) equals its definition") {
  std::mt19937 rng(23);
  for (int trial = 0; trial < 150; ++trial) {
    const bool one_d = trial % 4 == 0;
    const int64_t channels = 1 + static_cast<int64_t>(rng() % 5), batch = 1 + static_cast<int64_t>(rng() % 2);
    const int64_t ih = one_d ? 1 : 1 + static_cast<int64_t>(rng() % 7), iw = 1 + static_cast<int64_t>(rng() % 9);
    const int64_t kh = one_d ? 1 : 1 + static_cast<int64_t>(rng() % 3), kw = 1 + static_cast<int64_t>(rng() % 5);
    const int64_t sh = one_d ? 1 : 1 + static_cast<int64_t>(rng() % 2), sw = 1 + static_cast<int64_t>(rng() % 3);
    const int64_t dh = one_d ? 1 : 1 + static_cast<int64_t>(rng() % 2), dw = 1 + static_cast<int64_t>(rng() % 2);
    const int64_t ph0 = one_d ? 0 : static_cast<int64_t>(rng() % 3), ph1 = one_d ? 0 : static_cast<int64_t>(rng() % 3);
    const int64_t pw0 = static_cast<int64_t>(rng() % 3), pw1 = static_cast<int64_t>(rng() % 3);
    const int64_t oh = (ih + ph0 + ph1 - ((kh - 1) * dh + 1)) / sh + 1, ow = (iw + pw0 + pw1 - ((kw - 1) * dw + 1)) / sw + 1;
    if (ih + ph0 + ph1 < (kh - 1) * dh + 1 || iw + pw0 + pw1 < (kw - 1) * dw + 1) continue;
    std::vector<int64_t> xs = {batch, channels, ih, iw}, ws = {channels, 1, kh, kw};
    if (one_d) xs = {batch, channels, iw}, ws = {channels, 1, kw};
    const Tensor x = test::gaussian_tensor(xs, static_cast<uint32_t>(5 * trial));
    const Tensor w = test::gaussian_tensor(ws, static_cast<uint32_t>(5 * trial + 1));
    const Tensor bias = test::gaussian_tensor({channels}, static_cast<uint32_t>(5 * trial + 2));
    std::vector<Attribute> attrs = {Attribute::integer("group", channels)};
    if (one_d) {
      attrs.push_back(Attribute::integers("strides", {sw}));
      attrs.push_back(Attribute::integers("dilations", {dw}));
      attrs.push_back(Attribute::integers("pads", {pw0, pw1}));
    } else {
      attrs.push_back(Attribute::integers("strides", {sh, sw}));
      attrs.push_back(Attribute::integers("dilations", {dh, dw}));
      attrs.push_back(Attribute::integers("pads", {ph0, pw0, ph1, pw1}));
    }
    const Tensor out = run_node(node_model("Conv", 3, attrs), {x, w, bias});
    INFO("trial " << trial << " c" << channels << " b" << batch << " in " << ih << "x" << iw << " k " << kh << "x" << kw << " s " << sh << "," << sw
                   << " d " << dh << "," << dw << " p " << ph0 << "," << pw0 << "," << ph1 << "," << pw1 << " at " << oh << "x" << ow);
    REQUIRE(out.numel() == batch * channels * oh * ow);
    for (int64_t b = 0; b < batch; ++b)
      for (int64_t ch = 0; ch < channels; ++ch)
        for (int64_t y = 0; y < oh; ++y)
          for (int64_t xx = 0; xx < ow; ++xx) {
            double want = bias.data<float>()[ch];
            for (int64_t ky = 0; ky < kh; ++ky)
              for (int64_t kx = 0; kx < kw; ++kx) {
                const int64_t py = y * sh + ky * dh - ph0, px = xx * sw + kx * dw - pw0;
                if (py < 0 || py >= ih || px < 0 || px >= iw) continue;
                want += static_cast<double>(x.data<float>()[((b * channels + ch) * ih + py) * iw + px]) *
                        w.data<float>()[(ch * kh + ky) * kw + kx];
              }
            REQUIRE(out.data<float>()[((b * channels + ch) * oh + y) * ow + xx] == Approx(want).margin(1e-5).epsilon(1e-5));
          }
  }
}
