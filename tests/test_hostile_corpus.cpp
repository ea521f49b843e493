// The hostile-input corpus, run through every command that reads a model: each
// (command, file) pair must end in exit 2 with one line on stderr that starts
// "slmopt: error: ", within a time bound, leaving nothing behind and changing
// no input. A new command added to the table inherits the whole corpus; a new
// bad file, every command. docs/fuzzing.md gives the count of pairs.
#include <catch2/catch.hpp>

#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "blob/blob_io.hpp"
#include "core/atomic_file.hpp"
#include "core/error.hpp"
#include "onnx/onnx_io.hpp"
#include "quant/quantize_weight.hpp"
#include "quant/scheme.hpp"
#include "quant/spec.hpp"
#include "safetensors/safetensors_io.hpp"
#include "test_util.hpp"

using namespace slmopt;
namespace fs = std::filesystem;

namespace {

// A runaway command is killed at this bound and fails the pair.
constexpr int kSecondsPerRun = 10;

// Every subcommand that reads a model file; {in} and {out} are replaced.
struct CommandRow {
  const char* name;
  const char* args;
};
const CommandRow kCommands[] = {
    {"inspect", "inspect {in}"},
    {"convert", "convert {in} -o {out}/c.onnx"},
    {"simplify", "simplify {in} -o {out}/s.onnx --allow-empty"},
    {"run", "run {in} --random 1 -o {out}/run"},
    {"quantize", "quantize {in} -o {out}/q.slm --bits '*=q4'"},
    {"prune", "prune {in} -o {out}/p.onnx --sparsity 0.5"},
    {"lowrank", "lowrank {in} -o {out}/l.onnx --energy 0.9"},
    {"pack", "pack {in} -o {out}/b.bin"},
    {"verify", "verify {in}"},
    {"calibrate", "calibrate {in} --random 1 -o {out}/s.bin"},
    {"eval", "eval --reference {in} --candidate {in} --random 1"},
    {"plan", "plan {in} -o {out}/plan.yaml --budget 1KiB --random 1"},
    {"generate", "generate {in} -p hi -n 1"},
};

std::string replaced(std::string text, const std::string& key, const std::string& value) {
  for (size_t at; (at = text.find(key)) != std::string::npos;) text.replace(at, key.size(), value);
  return text;
}

test::CommandResult run_bounded(const std::string& args) {
  return test::run_slmopt(args, "timeout -s KILL " + std::to_string(kSecondsPerRun));
}

std::string le64(uint64_t v) {
  std::string b;
  for (int i = 0; i < 8; ++i) b.push_back(static_cast<char>(v >> (8 * i)));
  return b;
}

// A model every command takes: y = x W with a 64 x 64 weight.
Model matmul_model() { return test::single_node_model("MatMul", test::gaussian_tensor({64, 64}, 5, 0.1f), {1, 64}); }

std::string safetensors_with_header(const std::string& header, size_t data_bytes) {
  return le64(header.size()) + header + std::string(data_bytes, '\0');
}

// A Hugging Face folder: config.json and one small tensor.
void hf_folder(const fs::path& dir, const nlohmann::json& config) {
  fs::create_directories(dir);
  test::write_bytes((dir / "config.json").string(), config.dump());
  const std::string header = R"({"model.embed_tokens.weight":{"dtype":"F32","shape":[4,4],"data_offsets":[0,64]}})";
  test::write_bytes((dir / "model.safetensors").string(), safetensors_with_header(header, 64));
}

nlohmann::json llama_config() {
  return {{"model_type", "llama"}, {"vocab_size", 4},       {"hidden_size", 4}, {"intermediate_size", 4},
          {"num_hidden_layers", 1}, {"num_attention_heads", 1}, {"head_dim", 4}};
}

// The corpus: name -> path, every one of which every command must refuse.
std::vector<std::pair<std::string, std::string>> make_corpus(const fs::path& dir) {
  std::vector<std::pair<std::string, std::string>> files;
  auto add = [&](const std::string& name, const std::string& bytes) {
    test::write_bytes((dir / name).string(), bytes);
    files.emplace_back(name, (dir / name).string());
  };
  add("empty.onnx", "");
  std::string noise(4096, '\0');
  for (size_t i = 0; i < noise.size(); ++i) noise[i] = static_cast<char>((i * 2654435761u) >> 13);
  add("garbage.onnx", noise);
  onnx_format::write_onnx(matmul_model(), (dir / "whole.onnx").string());
  const std::string whole = test::read_bytes((dir / "whole.onnx").string());
  fs::remove(dir / "whole.onnx");
  add("truncated.onnx", whole.substr(0, whole.size() / 2));
  REQUIRE(::mkfifo((dir / "fifo.onnx").c_str(), 0644) == 0);
  files.emplace_back("fifo.onnx", (dir / "fifo.onnx").string());
  fs::create_directories(dir / "folder.onnx");
  files.emplace_back("folder.onnx", (dir / "folder.onnx").string());
  {
    // External data that is a FIFO: opening it must not wait for a writer.
    const fs::path sub = dir / "fifo-data";
    fs::create_directories(sub);
    onnx_format::WriteOptions o;
    o.external = onnx_format::ExternalData::Always;
    o.external_min_bytes = 0;
    onnx_format::write_onnx(matmul_model(), (sub / "m.onnx").string(), o);
    fs::remove(sub / "m.onnx.data");
    REQUIRE(::mkfifo((sub / "m.onnx.data").c_str(), 0644) == 0);
    files.emplace_back("external data that is a FIFO", (sub / "m.onnx").string());
  }
  add("empty.safetensors", "");
  add("header-past-end.safetensors", le64(1ull << 40) + "{}");
  add("duplicate.safetensors",
      safetensors_with_header(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                              R"("w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})",
                              4));
  {
    // 50,000 tensors: a header parser quadratic in the tensor count takes minutes
    // (20,000 took 31 s before the parse was made linear); linear, 1.6 s under ASan.
    std::string header = "{";
    for (int i = 0; i < 50000; ++i)
      header += (i ? ",\"t" : "\"t") + std::to_string(i) + R"(":{"dtype":"F32","shape":[1],"data_offsets":[0,4]})";
    header += "}";
    add("50k-tensors.safetensors", safetensors_with_header(header, 4));
  }
  auto config = llama_config();
  config["head_dim"] = 2147483648LL;
  hf_folder(dir / "head-dim-2g", config);
  files.emplace_back("config.json: head_dim 2^31", (dir / "head-dim-2g").string());
  config = llama_config();
  config["num_hidden_layers"] = 1000000;
  hf_folder(dir / "million-layers", config);
  files.emplace_back("config.json: 10^6 layers", (dir / "million-layers").string());
  add("garbage.slm", noise);
  const auto blob = blob::build_blob(matmul_model(), blob::BlobOptions{});
  add("truncated-blob.bin", std::string(blob.begin(), blob.begin() + static_cast<std::ptrdiff_t>(blob.size() / 2)));
  add("unknown.xyz", "hello");
  return files;
}

}  // namespace

TEST_CASE("every command refuses every hostile file: exit 2, one line, in bounded time, nothing left behind") {
  test::TempDir corpus, out;
  const auto files = make_corpus(corpus.path());
  const auto corpus_before = corpus.entries();
  int pairs = 0;
  for (const auto& cmd : kCommands)
    for (const auto& [name, path] : files) {
      INFO(cmd.name << " on " << name);
      const std::string args = replaced(replaced(cmd.args, "{in}", "'" + path + "'"), "{out}", "'" + out.path().string() + "'");
      const auto r = run_bounded(args);
      INFO(r.err);
      CHECK(r.exit_code == 2);
      CHECK_THAT(r.err, Catch::StartsWith("slmopt: error: "));
      CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1);
      CHECK(out.entries().empty());
      ++pairs;
      for (const auto& e : out.entries()) fs::remove_all(out.path() / e);
    }
  CHECK(corpus.entries() == corpus_before);
  CHECK(fs::is_fifo(corpus.path() / "fifo.onnx"));
  CHECK(pairs == static_cast<int>(std::size(kCommands) * files.size()));
  WARN(pairs << " (command, hostile file) pairs refused cleanly");
}

TEST_CASE("an output never replaces an input, a device, a FIFO or a folder, and a symbolic link is written through") {
  test::TempDir tmp;
  const std::string model = tmp.file("m.onnx");
  onnx_format::write_onnx(matmul_model(), model);
  const std::string original = test::read_bytes(model);
  REQUIRE(::link(model.c_str(), tmp.file("hard.onnx").c_str()) == 0);
  REQUIRE(::mkfifo(tmp.file("out.fifo").c_str(), 0644) == 0);
  fs::create_directories(tmp.path() / "folder.onnx");
  const auto before = tmp.entries();
  const std::string writers[] = {
      "convert {in} -o {out}", "quantize {in} -o {out} --bits '*=q4'", "prune {in} -o {out} --sparsity 0.5",
      "lowrank {in} -o {out} --rank 8", "pack {in} -o {out}", "calibrate {in} --random 1 -o {out}",
  };
  for (const auto& w : writers)
    for (const std::string& target : {model, tmp.file("hard.onnx"), tmp.file("out.fifo"), tmp.file("folder.onnx")}) {
      INFO(w << " -> " << target);
      const auto r = run_bounded(replaced(replaced(w, "{in}", "'" + model + "'"), "{out}", "'" + target + "'"));
      INFO(r.err);
      CHECK(r.exit_code == 2);
      // A folder may be an output (run -o DIR): refused when the file is written, for its own reason.
      if (target != tmp.file("folder.onnx")) CHECK_THAT(r.err, Catch::StartsWith("slmopt: error: " + target + ": the output "));
      CHECK_THAT(r.err, Catch::StartsWith("slmopt: error: "));
      CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1);
      CHECK(test::read_bytes(model) == original);
      CHECK(tmp.entries() == before);
    }
  CHECK(fs::is_fifo(tmp.file("out.fifo")));

  // verify --extract onto its own package.
  auto r = run_bounded("pack '" + model + "' -o '" + tmp.file("p.bin") + "' --emit bin,ota");
  REQUIRE(r.exit_code == 0);
  const std::string package = test::read_bytes(tmp.file("p.ota"));
  r = run_bounded("verify '" + tmp.file("p.ota") + "' --extract '" + tmp.file("p.ota") + "'");
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.err, Catch::Contains("the output is a file this command reads"));
  CHECK(test::read_bytes(tmp.file("p.ota")) == package);

  // A symbolic link: the file it points to is replaced, the link stays.
  fs::create_directories(tmp.path() / "real");
  test::write_bytes(tmp.file("real/out.onnx"), "old");
  fs::create_symlink(tmp.path() / "real/out.onnx", tmp.path() / "link.onnx");
  r = run_bounded("convert '" + model + "' -o '" + tmp.file("link.onnx") + "'");
  CHECK(r.exit_code == 0);
  CHECK(fs::is_symlink(tmp.path() / "link.onnx"));
  CHECK(test::read_bytes(tmp.file("real/out.onnx")) == original);
  // A dangling one is refused.
  fs::create_symlink(tmp.path() / "nowhere/x.onnx", tmp.path() / "dangling.onnx");
  r = run_bounded("convert '" + model + "' -o '" + tmp.file("dangling.onnx") + "'");
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.err, Catch::Contains("symbolic link to nothing"));
}

TEST_CASE("SIGTERM during a write removes the temporary file") {
  test::TempDir tmp;
  const pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    std::signal(SIGTERM, SIG_DFL);  // not the test framework's handler: the CLI's default
    AtomicFile f(tmp.file("out.bin"));
    f.write(std::string(1 << 20, 'x'));
    ::raise(SIGTERM);
    ::_exit(0);  // not reached
  }
  int status = 0;
  REQUIRE(::waitpid(child, &status, 0) == child);
  CHECK(WIFSIGNALED(status));
  CHECK(WTERMSIG(status) == SIGTERM);
  CHECK(tmp.entries().empty());
}

TEST_CASE("files of one output set appear together or not at all") {
  test::TempDir tmp;
  try {
    OutputSet set;
    write_file_atomically(tmp.file("a.npy"), "a");
    write_file_atomically(tmp.file("b.npy"), "b");
    throw_bad_input("the third output failed");
  } catch (const Error&) {
  }
  CHECK(tmp.entries().empty());
  {
    OutputSet set;
    write_file_atomically(tmp.file("a.npy"), "a");
    write_file_atomically(tmp.file("b.npy"), "b");
    CHECK(tmp.entries().size() == 2);  // the two temporaries
    CHECK(!fs::exists(tmp.file("a.npy")));
    set.commit();
  }
  CHECK(test::read_bytes(tmp.file("a.npy")) == "a");
  CHECK(test::read_bytes(tmp.file("b.npy")) == "b");
  CHECK(tmp.entries().size() == 2);
  // run -o naming an existing file: a user error with the path, not an internal one.
  onnx_format::write_onnx(matmul_model(), tmp.file("m.onnx"));
  const auto r = run_bounded("run '" + tmp.file("m.onnx") + "' --random 2 -o '" + tmp.file("a.npy") + "'");
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.err, Catch::StartsWith("slmopt: error: " + tmp.file("a.npy")));
}

TEST_CASE("an error inside a parallel quantizer loop reaches the caller, whatever the scheme and algorithm") {
  // 512 x 512 in groups of 32: 8,192 groups, enough for the parallel fit.
  Tensor w = test::gaussian_tensor({512, 512}, 3);
  w.mutable_data<float>()[300 * 512 + 7] = 1e30f;  // no f16 scale can hold its group's range
  for (const char* spec : {"q4", "q2", "q6", "int4-g32-k6"}) {
    INFO(spec);
    const auto s = quant::parse_spec(spec);
    CHECK_THROWS_AS(quant::quantize_weight(w, quant::InputAxis::Rest, *s.scheme, s.params, {}), Error);
  }
  // The same through the CLI: exit 2 with the message, never an abort.
  test::TempDir tmp;
  Model m = test::single_node_model("MatMul", w, {1, 512});
  onnx_format::write_onnx(m, tmp.file("big.onnx"));
  for (const char* algorithm : {"rtn", "mse"}) {
    const auto r = run_bounded("quantize '" + tmp.file("big.onnx") + "' -o '" + tmp.file("q.slm") + "' --bits '*=q4' --algorithm " + algorithm);
    INFO(r.err);
    CHECK(r.exit_code == 2);
    CHECK_THAT(r.err, Catch::StartsWith("slmopt: error: "));
  }
  // NaN and infinity are refused by every scheme with the weight's name.
  for (float bad : {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity()}) {
    Tensor v = test::gaussian_tensor({64, 64}, 4);
    v.mutable_data<float>()[5] = bad;
    onnx_format::write_onnx(test::single_node_model("MatMul", v, {1, 64}), tmp.file("nan.onnx"));
    for (const char* scheme : {"q8", "q4", "nf4-ch", "tcq3-ch", "ec4-ch", "ternary-ch"}) {
      INFO(scheme);
      const auto r = run_bounded("quantize '" + tmp.file("nan.onnx") + "' -o '" + tmp.file("q.slm") + "' --bits '*=" + scheme + "'");
      CHECK(r.exit_code == 2);
      CHECK_THAT(r.err, Catch::Contains("'w'") && (Catch::Contains("NaN") || Catch::Contains("infinite")));
    }
  }
  CHECK(!fs::exists(tmp.file("q.slm")));
}

TEST_CASE("bad option values are refused before any work") {
  test::TempDir tmp;
  onnx_format::write_onnx(matmul_model(), tmp.file("m.onnx"));
  // Each refused at once, before the sensitivity run writes its cache.
  const std::pair<const char*, const char*> bad[] = {
      {"--budget abc", "--budget"}, {"--budget 1KiB --flash abc", "one budget"}, {"--flash 4MiB --align 3", "--align"},
      {"--flash 4MiB --sector 0", "--sector"}, {"--budget 1KiB --min-elements -5", "--min-elements"},
      {"--bpw -1", "--bpw"}, {"--budget 1KiB --ctx -4", "--ctx"}, {"--budget 1KiB --windows -1", "--windows"},
      {"--budget 1KiB --write out.txt", "--write"}, {"--budget 1KiB --ram lots", "--ram"},
      {"--budget 1KiB --points 99", "--points"}, {"--budget 1KiB --metric bogus", "--metric"},
  };
  for (const auto& [options, named] : bad) {
    INFO(options);
    const auto r = run_bounded("plan '" + tmp.file("m.onnx") + "' -o '" + tmp.file("p.yaml") + "' --random 2 " + options);
    CHECK(r.exit_code == 2);
    CHECK_THAT(r.err, Catch::StartsWith("slmopt: error: ") && Catch::Contains(named));
    CHECK(tmp.entries() == std::vector<std::string>{"m.onnx"});
  }
  // A flag the parser refuses: our prefix, one line.
  const auto u = run_bounded("inspect '" + tmp.file("m.onnx") + "' --no-such-flag");
  CHECK(u.exit_code == 2);
  CHECK_THAT(u.err, Catch::StartsWith("slmopt: error: "));
  CHECK(std::count(u.err.begin(), u.err.end(), '\n') == 1);
}

TEST_CASE("a 200,000-node graph goes through the commands in bounded time") {
  // y = relu(...relu(x W)...): the graph algorithms (topological order, the
  // structure check, liveness, the memory plan) must be O(n log n).
  constexpr int kNodes = 200000;
  Model m = matmul_model();
  std::string last = m.graph.nodes.back().outputs[0];
  m.graph.outputs.clear();
  for (int i = 0; i < kNodes; ++i) {
    Node n;
    n.name = "relu" + std::to_string(i);
    n.op_type = "Relu";
    n.inputs = {last};
    last = "r" + std::to_string(i);
    n.outputs = {last};
    m.graph.nodes.push_back(std::move(n));
  }
  ValueInfo out;
  out.name = last;
  out.dtype = DType::F32;
  m.graph.outputs.push_back(out);
  test::TempDir tmp;
  onnx_format::write_onnx(m, tmp.file("chain.onnx"));
  for (const char* args : {"inspect {in}", "run {in} --random 1", "pack {in} -o {out}/c.bin", "quantize {in} -o {out}/q.slm --bits '*=q8'",
                           "simplify {in} -o {out}/s.onnx --allow-empty"}) {
    INFO(args);
    const auto r = run_bounded(replaced(replaced(args, "{in}", "'" + tmp.file("chain.onnx") + "'"), "{out}", "'" + tmp.path().string() + "'"));
    INFO(r.err);
    CHECK(r.exit_code == 0);
  }
}

TEST_CASE("calibration statistics count against the memory limit") {
  // A 512-wide input: X^T X alone is 2 MiB.
  test::TempDir tmp;
  onnx_format::write_onnx(test::single_node_model("MatMul", test::gaussian_tensor({512, 8}, 6), {1, 512}), tmp.file("m.onnx"));
  auto r = run_bounded("calibrate '" + tmp.file("m.onnx") + "' --random 1 -o '" + tmp.file("s.bin") + "' --memory-limit 1MiB");
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.err, Catch::Contains("the calibration statistics of") && Catch::Contains("over the memory limit"));
  CHECK(!fs::exists(tmp.file("s.bin")));
  r = run_bounded("calibrate '" + tmp.file("m.onnx") + "' --random 1 -o '" + tmp.file("s.bin") + "' --memory-limit 8MiB");
  CHECK(r.exit_code == 0);
  // Histograms too: a million bins are 8 MB for each value.
  r = run_bounded("calibrate '" + tmp.file("m.onnx") + "' --random 1 -o '" + tmp.file("h.bin") +
                  "' --memory-limit 6MiB --histogram-bins 1000000");
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.err, Catch::Contains("the histogram of") && Catch::Contains("over the memory limit"));
  CHECK(!fs::exists(tmp.file("h.bin")));
  // An empty blob is a truncated one, not an "invalid argument".
  test::write_bytes(tmp.file("empty.bin"), "");
  r = run_bounded("verify '" + tmp.file("empty.bin") + "'");
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.err, Catch::Contains("truncated"));
}
