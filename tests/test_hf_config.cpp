#include <catch2/catch.hpp>

#include "hf_config/hf_config.hpp"
#include "test_util.hpp"

using namespace slmopt;

namespace {
std::string parse_error(const std::string& text) {
  try {
    parse_hf_config(text, "config.json");
  } catch (const Error& e) {
    return e.what();
  }
  return "no error";
}
}  // namespace

TEST_CASE("stories260K config.json reads into a typed Llama description") {
  ArchConfig c = read_hf_config(test::test_data("stories260K/config.json"));
  CHECK(c.family == ArchFamily::Llama);
  CHECK(c.architecture == "LlamaForCausalLM");
  CHECK(c.hidden_size == 64);
  CHECK(c.intermediate_size == 172);
  CHECK(c.num_layers == 5);
  CHECK(c.num_heads == 8);
  CHECK(c.num_kv_heads == 4);
  CHECK(c.head_dim == 8);
  CHECK(c.vocab_size == 512);
  CHECK(c.norm_eps == Approx(1e-5));
  CHECK(c.tie_word_embeddings);
  CHECK(c.eos_token_ids == std::vector<int64_t>{2});
}

TEST_CASE("Llama 3 rope scaling, Qwen2 biases and GPT-2 field names") {
  ArchConfig llama3 = parse_hf_config(R"({"model_type":"llama","vocab_size":128256,"hidden_size":2048,
    "intermediate_size":8192,"num_hidden_layers":16,"num_attention_heads":32,"num_key_value_heads":8,
    "rope_theta":500000.0,"rope_scaling":{"factor":32.0,"high_freq_factor":4.0,"low_freq_factor":1.0,
    "original_max_position_embeddings":8192,"rope_type":"llama3"},"eos_token_id":[128001,128008,128009],
    "tie_word_embeddings":true})", "llama3.json");
  REQUIRE(llama3.rope_scaling);
  CHECK(llama3.rope_scaling->type == "llama3");
  CHECK(llama3.rope_scaling->factor == 32.0);
  CHECK(llama3.rope_scaling->original_max_position_embeddings == 8192);
  CHECK(llama3.head_dim == 64);
  CHECK(llama3.eos_token_ids.size() == 3);

  ArchConfig qwen = parse_hf_config(R"({"model_type":"qwen2","vocab_size":151936,"hidden_size":896,
    "intermediate_size":4864,"num_hidden_layers":24,"num_attention_heads":14,"num_key_value_heads":2,
    "use_sliding_window":false,"sliding_window":32768,"rms_norm_eps":1e-06})", "qwen.json");
  CHECK(qwen.family == ArchFamily::Qwen2);
  CHECK(qwen.attention_bias);
  CHECK_FALSE(qwen.sliding_window);
  CHECK(qwen.head_dim == 64);

  ArchConfig gpt2 = parse_hf_config(R"({"model_type":"gpt2","vocab_size":50257,"n_embd":768,"n_layer":12,
    "n_head":12,"n_positions":1024,"n_inner":null,"activation_function":"gelu_new"})", "gpt2.json");
  CHECK(gpt2.family == ArchFamily::GPT2);
  CHECK(gpt2.intermediate_size == 3072);
  CHECK(gpt2.hidden_size == 768);
  CHECK(gpt2.tie_word_embeddings);
}

TEST_CASE("bad config.json values are named in the error") {
  CHECK(parse_error("not json") == "config.json: config is not a JSON object");
  CHECK(parse_error(R"({"model_type":"mamba"})") ==
        "config.json: unsupported model_type 'mamba' (supported: llama, mistral, qwen2, gpt2)");
  CHECK(parse_error(R"({"model_type":"llama","vocab_size":"big"})") ==
        "config.json: field 'vocab_size' must be an integer, got \"big\"");
  CHECK(parse_error(R"({"model_type":"llama","vocab_size":10,"hidden_size":-4})") ==
        "config.json: field 'hidden_size' must be positive, got -4");
  CHECK(parse_error(R"({"model_type":"llama","vocab_size":10,"hidden_size":64,"intermediate_size":8,
    "num_hidden_layers":2,"num_attention_heads":8,"num_key_value_heads":3})") ==
        "config.json: 8 attention heads cannot be grouped over 3 key/value heads");
  CHECK(parse_error(R"({"model_type":"llama","vocab_size":10,"hidden_size":64,"intermediate_size":8,
    "num_hidden_layers":2,"num_attention_heads":8,"rope_scaling":{"factor":2}})") ==
        "config.json: field 'rope_scaling' has no 'rope_type'");
  CHECK(parse_error(R"({"model_type":"llama"})") == "config.json: missing field 'vocab_size'");
}
