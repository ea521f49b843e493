#include "device_budget.hpp"

#include <cmath>

#include "cli_common.hpp"
#include "core/error.hpp"
#include "core/memory_limit.hpp"
#include "runtime/session.hpp"
#include "samples.hpp"

namespace slmopt::cli {

uint64_t parse_size(const std::string& text, const std::string& flag) {
  if (const std::optional<uint64_t> bytes = parse_byte_size(text)) return *bytes;
  throw_usage(flag + " expects a size such as 4MiB, 512KiB or 65536, not '" + text + "'");
}

uint64_t activation_ram(const Model& model, const std::map<std::string, Tensor>& feeds) {
  runtime::Session session(model);
  const runtime::MemoryPlan plan = session.plan_memory(feeds);
  uint64_t bytes = plan.arena_bytes + plan.scratch_bytes;
  for (const auto& [name, t] : feeds) bytes += t.nbytes();
  return bytes;
}

std::map<std::string, Tensor> declared_shape_feeds(const Model& model) {
  runtime::Session session(model);
  DataOptions one;
  one.random = 1;
  return load_requested_samples(one, session.feed_inputs()).at(0);
}

std::string shapes_of(const std::map<std::string, Tensor>& feeds) {
  std::string s;
  for (const auto& [name, t] : feeds) s += (s.empty() ? "" : ", ") + name + " " + shape_to_string(t.shape());
  return s;
}

std::vector<std::string> over_budget(const DeviceFigures& f, const std::optional<uint64_t>& flash,
                                     const std::optional<uint64_t>& ram) {
  std::vector<std::string> problems;
  auto check = [&](const char* what, uint64_t need, uint64_t have, const std::string& detail) {
    if (need > have)
      problems.push_back(std::string(what) + ": needs " + human_bytes(need) + " (" + with_thousands(static_cast<int64_t>(need)) +
                         " bytes" + detail + "), the device has " + human_bytes(have) + ": " + human_bytes(need - have) +
                         " over");
  };
  if (flash) check("flash", f.flash_bytes, *flash, "");
  if (ram && f.ram_bytes) check("RAM", *f.ram_bytes, *ram, ", activations for inputs " + f.ram_shapes);
  return problems;
}

}  // namespace slmopt::cli
