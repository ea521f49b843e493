#include "train/llama_backprop.hpp"

#include <cmath>

#include "core/error.hpp"
#include "llm/decoder_graph.hpp"
#include "runtime/numeric.hpp"

namespace slmopt::train {
namespace {

using Vector = Eigen::VectorXf;

size_t add_weight(const Model& model, LlamaWeights& w, const std::string& name, int64_t rows, int64_t cols) {
  const NamedTensor* t = model.graph.find_initializer(name);
  if (!t) throw_usage("fine-tuning needs weight '" + name + "', which the model does not have");
  const DType type = t->tensor.dtype();
  if (t->tensor.is_quantized() || (type != DType::F32 && type != DType::F16 && type != DType::BF16))
    throw_usage("fine-tuning needs float weights; '" + name + "' is " +
                (t->tensor.is_quantized() ? std::string("quantized") : dtype_name(type)));
  if (t->tensor.numel() != rows * cols)
    throw_usage("weight '" + name + "' has shape " + shape_to_string(t->tensor.shape()) + ", expected " +
                std::to_string(rows) + " x " + std::to_string(cols));
  const Tensor f32 = runtime::widen_to_float(t->tensor);  // bf16/f16 checkpoints train in f32
  w.names.push_back(name);
  w.values.push_back(Eigen::Map<const Matrix>(f32.data<float>(), rows, cols));
  return w.values.size() - 1;
}

// y = g * x / sqrt(mean(x^2) + eps), row by row; `inv` gets 1 / sqrt(...).
Matrix rms_norm(const Matrix& x, const Matrix& gain, double eps, Vector& inv) {
  inv.resize(x.rows());
  Matrix y(x.rows(), x.cols());
  for (Eigen::Index t = 0; t < x.rows(); ++t) {
    inv[t] = static_cast<float>(1.0 / std::sqrt(x.row(t).squaredNorm() / static_cast<double>(x.cols()) + eps));
    y.row(t) = x.row(t).cwiseProduct(gain.row(0)) * inv[t];
  }
  return y;
}

// Adds to dx the gradient through rms_norm, and to dgain the gain's.
void rms_norm_backward(const Matrix& x, const Matrix& gain, const Vector& inv, const Matrix& dy, Matrix& dx, Matrix& dgain) {
  const double n = static_cast<double>(x.cols());
  for (Eigen::Index t = 0; t < x.rows(); ++t) {
    const Eigen::RowVectorXf u = dy.row(t).cwiseProduct(gain.row(0));
    const float dot = u.dot(x.row(t));
    const float r = inv[t];
    dx.row(t) += r * u - x.row(t) * static_cast<float>(r * r * r * dot / n);
    dgain.row(0) += dy.row(t).cwiseProduct(x.row(t)) * r;
  }
}

// Rotates each head of x (T x heads*head_dim) by its position: HF's
// rotate_half pairs (i, i + head_dim/2). `sign` -1 applies the inverse
// rotation (the backward pass).
void rotate(const LlamaLayout& l, Matrix& x, int64_t heads, float sign) {
  const int64_t half = l.head_dim / 2;
  for (Eigen::Index t = 0; t < x.rows(); ++t)
    for (int64_t i = 0; i < half; ++i) {
      const float angle = static_cast<float>(t) * l.inv_freq[static_cast<size_t>(i)];
      const float c = std::cos(angle), s = sign * std::sin(angle);
      for (int64_t h = 0; h < heads; ++h) {
        float& a = x(t, h * l.head_dim + i);
        float& b = x(t, h * l.head_dim + i + half);
        const float a0 = a, b0 = b;
        a = a0 * c - b0 * s;
        b = b0 * c + a0 * s;
      }
    }
}

struct LayerCache {
  Matrix x, h, q, k, v, context, x_mid, h2, gate, up, gated;
  Vector inv1, inv2;
  std::vector<Matrix> probs;  // per query head, T x T
};

float silu(float z) { return z / (1.0f + std::exp(-z)); }

// One layer forward from c.x; returns the layer's output.
Matrix layer_forward(const LlamaLayout& l, const LlamaLayout::Layer& ly, const std::vector<Matrix>& w, LayerCache& c) {
  const Eigen::Index T = c.x.rows();
  c.h = rms_norm(c.x, w[ly.attn_norm], l.eps, c.inv1);
  c.q = c.h * w[ly.q].transpose();
  c.k = c.h * w[ly.k].transpose();
  c.v = c.h * w[ly.v].transpose();
  rotate(l, c.q, l.heads, 1.0f);
  rotate(l, c.k, l.kv_heads, 1.0f);
  const int64_t group = l.heads / l.kv_heads, hd = l.head_dim;
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  c.context.setZero(T, l.heads * hd);
  c.probs.assign(static_cast<size_t>(l.heads), Matrix());
  for (int64_t h = 0; h < l.heads; ++h) {
    const int64_t g = h / group;
    Matrix s = c.q.middleCols(h * hd, hd) * c.k.middleCols(g * hd, hd).transpose() * scale;
    for (Eigen::Index i = 0; i < T; ++i) {
      const float top = s.row(i).head(i + 1).maxCoeff();
      float sum = 0;
      for (Eigen::Index j = 0; j < T; ++j) {
        s(i, j) = j <= i ? std::exp(s(i, j) - top) : 0.0f;
        sum += s(i, j);
      }
      s.row(i) /= sum;
    }
    c.context.middleCols(h * hd, hd) = s * c.v.middleCols(g * hd, hd);
    c.probs[static_cast<size_t>(h)] = std::move(s);
  }
  c.x_mid = c.x + c.context * w[ly.o].transpose();
  c.h2 = rms_norm(c.x_mid, w[ly.ffn_norm], l.eps, c.inv2);
  c.gate = c.h2 * w[ly.gate].transpose();
  c.up = c.h2 * w[ly.up].transpose();
  c.gated = c.gate.unaryExpr([](float z) { return silu(z); }).cwiseProduct(c.up);
  return c.x_mid + c.gated * w[ly.down].transpose();
}

// dx: the gradient at the layer's output on entry, at its input on return.
void layer_backward(const LlamaLayout& l, const LlamaLayout::Layer& ly, const std::vector<Matrix>& w, const LayerCache& c,
                    Matrix& dx, std::vector<Matrix>& grads, float scale_grads) {
  auto acc = [&](size_t i, const Matrix& g) { grads[i] += scale_grads * g; };
  // Feed-forward.
  acc(ly.down, dx.transpose() * c.gated);
  const Matrix dgated = dx * w[ly.down];
  Matrix dgate(c.gate.rows(), c.gate.cols()), dup(c.up.rows(), c.up.cols());
  for (Eigen::Index t = 0; t < c.gate.rows(); ++t)
    for (Eigen::Index j = 0; j < c.gate.cols(); ++j) {
      const float z = c.gate(t, j), sig = 1.0f / (1.0f + std::exp(-z));
      dup(t, j) = dgated(t, j) * z * sig;
      dgate(t, j) = dgated(t, j) * c.up(t, j) * sig * (1.0f + z * (1.0f - sig));
    }
  acc(ly.gate, dgate.transpose() * c.h2);
  acc(ly.up, dup.transpose() * c.h2);
  const Matrix dh2 = dgate * w[ly.gate] + dup * w[ly.up];
  Matrix dgain = Matrix::Zero(1, l.dim);
  Matrix dx_mid = dx;
  rms_norm_backward(c.x_mid, w[ly.ffn_norm], c.inv2, dh2, dx_mid, dgain);
  acc(ly.ffn_norm, dgain);
  // Attention.
  acc(ly.o, dx_mid.transpose() * c.context);
  const Matrix dcontext = dx_mid * w[ly.o];
  const int64_t group = l.heads / l.kv_heads, hd = l.head_dim;
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  Matrix dq = Matrix::Zero(c.q.rows(), c.q.cols()), dk = Matrix::Zero(c.k.rows(), c.k.cols()),
         dv = Matrix::Zero(c.v.rows(), c.v.cols());
  for (int64_t h = 0; h < l.heads; ++h) {
    const int64_t g = h / group;
    const Matrix& p = c.probs[static_cast<size_t>(h)];
    const Matrix dctx = dcontext.middleCols(h * hd, hd);
    dv.middleCols(g * hd, hd) += p.transpose() * dctx;
    const Matrix dp = dctx * c.v.middleCols(g * hd, hd).transpose();
    Matrix ds = p.cwiseProduct(dp);
    for (Eigen::Index i = 0; i < ds.rows(); ++i) {
      const float row = ds.row(i).sum();
      ds.row(i) -= p.row(i) * row;
    }
    dq.middleCols(h * hd, hd) += ds * c.k.middleCols(g * hd, hd) * scale;
    dk.middleCols(g * hd, hd) += ds.transpose() * c.q.middleCols(h * hd, hd) * scale;
  }
  rotate(l, dq, l.heads, -1.0f);
  rotate(l, dk, l.kv_heads, -1.0f);
  acc(ly.q, dq.transpose() * c.h);
  acc(ly.k, dk.transpose() * c.h);
  acc(ly.v, dv.transpose() * c.h);
  const Matrix dh = dq * w[ly.q] + dk * w[ly.k] + dv * w[ly.v];
  dgain.setZero();
  dx = dx_mid;
  rms_norm_backward(c.x, w[ly.attn_norm], c.inv1, dh, dx, dgain);
  acc(ly.attn_norm, dgain);
}

size_t output_index(const LlamaLayout& l) { return l.head < 0 ? l.embed : static_cast<size_t>(l.head); }

const Matrix& output_weight(const LlamaLayout& l, const std::vector<Matrix>& w) { return w[output_index(l)]; }

Matrix embed(const LlamaLayout& l, const std::vector<Matrix>& w, const std::vector<int64_t>& tokens) {
  Matrix x(static_cast<Eigen::Index>(tokens.size()), l.dim);
  for (size_t t = 0; t < tokens.size(); ++t) {
    if (tokens[t] < 0 || tokens[t] >= l.vocab)
      throw_bad_input("token id " + std::to_string(tokens[t]) + " is outside the vocabulary of " + std::to_string(l.vocab));
    x.row(static_cast<Eigen::Index>(t)) = w[l.embed].row(tokens[t]);
  }
  return x;
}

}  // namespace

LlamaWeights llama_weights(const Model& model) {
  const auto info = llm::read_decoder_info(model);
  if (!info) throw_usage("fine-tuning needs a decoder built from a checkpoint (Hugging Face folder or llama2.c .bin)");
  if (info->family != "llama")
    throw_usage("fine-tuning supports the Llama family (Llama, SmolLM, TinyLlama); this model is " + info->family);
  LlamaWeights w;
  LlamaLayout& l = w.layout;
  l.eps = info->norm_eps;
  l.head_dim = info->head_dim;
  l.kv_heads = info->num_kv_heads;
  l.vocab = info->vocab_size;
  const NamedTensor* embed = model.graph.find_initializer("model.embed_tokens.weight");
  const NamedTensor* inv = model.graph.find_initializer("rotary/inv_freq");
  if (!embed || embed->tensor.rank() != 2 || !inv || inv->tensor.dtype() != DType::F32 || inv->tensor.numel() != l.head_dim / 2)
    throw_usage("fine-tuning: the model lacks the embedding or rotary frequencies of a Llama decoder built here");
  l.inv_freq.assign(inv->tensor.data<float>(), inv->tensor.data<float>() + inv->tensor.numel());
  l.dim = embed->tensor.shape()[1];
  l.embed = add_weight(model, w, "model.embed_tokens.weight", l.vocab, l.dim);
  const std::string q0 = "model.layers.0.self_attn.q_proj.weight";
  const NamedTensor* q = model.graph.find_initializer(q0);
  if (!q || q->tensor.rank() != 2 || q->tensor.shape()[0] % l.head_dim) throw_usage("fine-tuning: no " + q0);
  l.heads = q->tensor.shape()[0] / l.head_dim;
  const NamedTensor* gate = model.graph.find_initializer("model.layers.0.mlp.gate_proj.weight");
  if (!gate || gate->tensor.rank() != 2) throw_usage("fine-tuning: no model.layers.0.mlp.gate_proj.weight");
  l.ffn = gate->tensor.shape()[0];
  for (const auto& init : model.graph.initializers)
    if (init.name.ends_with(".bias"))
      throw_usage("fine-tuning does not support biases (" + init.name + ")");
  for (int64_t i = 0; i < info->num_layers; ++i) {
    const std::string p = "model.layers." + std::to_string(i) + ".";
    LlamaLayout::Layer ly{};
    ly.attn_norm = add_weight(model, w, p + "input_layernorm.weight", 1, l.dim);
    ly.q = add_weight(model, w, p + "self_attn.q_proj.weight", l.heads * l.head_dim, l.dim);
    ly.k = add_weight(model, w, p + "self_attn.k_proj.weight", l.kv_heads * l.head_dim, l.dim);
    ly.v = add_weight(model, w, p + "self_attn.v_proj.weight", l.kv_heads * l.head_dim, l.dim);
    ly.o = add_weight(model, w, p + "self_attn.o_proj.weight", l.dim, l.heads * l.head_dim);
    ly.ffn_norm = add_weight(model, w, p + "post_attention_layernorm.weight", 1, l.dim);
    ly.gate = add_weight(model, w, p + "mlp.gate_proj.weight", l.ffn, l.dim);
    ly.up = add_weight(model, w, p + "mlp.up_proj.weight", l.ffn, l.dim);
    ly.down = add_weight(model, w, p + "mlp.down_proj.weight", l.dim, l.ffn);
    l.layers.push_back(ly);
  }
  l.final_norm = add_weight(model, w, "model.norm.weight", 1, l.dim);
  if (model.graph.find_initializer("lm_head.weight"))
    l.head = static_cast<int64_t>(add_weight(model, w, "lm_head.weight", l.vocab, l.dim));
  return w;
}

// Trained weights are written as f32 whatever the checkpoint held: the
// quantize pass then rounds them once, from full precision.
void write_llama_weights(Model& model, const LlamaWeights& w) {
  for (size_t i = 0; i < w.names.size(); ++i)
    for (auto& init : model.graph.initializers)
      if (init.name == w.names[i]) {
        Tensor t(DType::F32, init.tensor.shape());
        std::copy_n(w.values[i].data(), w.values[i].size(), t.mutable_data<float>());
        init.tensor = std::move(t);
      }
}

Matrix log_softmax_rows(const Matrix& logits) {
  Matrix out(logits.rows(), logits.cols());
  for (Eigen::Index t = 0; t < logits.rows(); ++t) {
    const float top = logits.row(t).maxCoeff();
    const double sum = (logits.row(t).array() - top).exp().cast<double>().sum();
    out.row(t) = logits.row(t).array() - top - static_cast<float>(std::log(sum));
  }
  return out;
}

Matrix llama_logits(const LlamaLayout& l, const std::vector<Matrix>& w, const std::vector<int64_t>& tokens) {
  Matrix x = embed(l, w, tokens);
  for (const auto& ly : l.layers) {
    LayerCache c;
    c.x = std::move(x);
    x = layer_forward(l, ly, w, c);
  }
  Vector inv;
  return rms_norm(x, w[l.final_norm], l.eps, inv) * output_weight(l, w).transpose();
}

double llama_distill_step(const LlamaLayout& l, const std::vector<Matrix>& w, const std::vector<int64_t>& tokens,
                          const Matrix& teacher_log_probs, float scale, std::vector<Matrix>& grads) {
  std::vector<LayerCache> caches(l.layers.size());
  Matrix x = embed(l, w, tokens);
  for (size_t i = 0; i < l.layers.size(); ++i) {
    caches[i].x = std::move(x);
    x = layer_forward(l, l.layers[i], w, caches[i]);
  }
  Vector inv;
  const Matrix hf = rms_norm(x, w[l.final_norm], l.eps, inv);
  const Matrix& head = output_weight(l, w);
  const Matrix log_q = log_softmax_rows(hf * head.transpose());
  const Eigen::Index T = log_q.rows();
  const Matrix p = teacher_log_probs.array().exp().matrix();
  const double loss = (p.array() * (teacher_log_probs - log_q).array()).cast<double>().sum() / static_cast<double>(T);
  // d(mean KL)/d(logits) = (softmax(logits) - p) / T.
  const Matrix dlogits = (log_q.array().exp().matrix() - p) / static_cast<float>(T);
  grads[output_index(l)] += scale * (dlogits.transpose() * hf);
  const Matrix dhf = dlogits * head;
  Matrix dx = Matrix::Zero(x.rows(), x.cols()), dgain = Matrix::Zero(1, l.dim);
  rms_norm_backward(x, w[l.final_norm], inv, dhf, dx, dgain);
  grads[l.final_norm] += scale * dgain;
  for (size_t i = l.layers.size(); i-- > 0;) layer_backward(l, l.layers[i], w, caches[i], dx, grads, scale);
  for (size_t t = 0; t < tokens.size(); ++t) grads[l.embed].row(tokens[t]) += scale * dx.row(static_cast<Eigen::Index>(t));
  return loss;
}

}  // namespace slmopt::train
