// What every fuzz target shares. The invariant each one asserts: a parser
// given any bytes either loads them or throws slmopt::Error. Any other
// exception, a crash, a sanitizer report, a leak or a hang is a finding.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "core/error.hpp"
#include "core/ir.hpp"
#include "core/memory_limit.hpp"
#include "core/tensor.hpp"

namespace slmopt::fuzz {

// Each fuzz_NAME.cpp defines this: one input, any bytes. fuzz_common.cpp
// holds libFuzzer's entry points, which set a memory limit (64 MiB) far
// below libFuzzer's 2 GiB RSS ceiling, so a size read from the input that is
// too large must be refused as an Error, never reach malloc.
void fuzz_one(const uint8_t* data, size_t size);

// A folder of this process's own (under /dev/shm when there is one, so the
// readers' mmap of a fresh file costs no disk I/O), made once.
const std::string& scratch_dir();
// Writes `size` bytes to scratch_dir()/name and returns the path.
std::string write_scratch(const std::string& name, const uint8_t* data, size_t size);

// Writes three safetensors shards of a few small tensors and their index
// (`model.safetensors.index.json`) into folder `dir` with the project's
// writer, the same bytes every time; returns the index's text.
std::string write_index_shards(const std::string& dir);

// Reads every byte of a loaded tensor (so ASan sees an out-of-bounds view)
// and, for a quantized one of modest size, dequantizes it.
void touch(const Tensor& t);
// touch() on every initializer of every (sub)graph, then orders the nodes.
void touch(const Model& model);

// Set by the replay driver's --valid: inputs are the project's own valid
// files, so an Error is a failure (the writer and reader disagree).
extern bool g_require_valid;
[[noreturn]] void fail_valid_input(const Error& e);

// Runs fn; slmopt::Error is the expected way to refuse input.
template <class Fn>
void expect_load_or_error(Fn&& fn) {
  try {
    fn();
  } catch (const Error& e) {
    if (g_require_valid) fail_valid_input(e);
  }
}

// Runs fn where an Error is expected even for valid input (one pass's check
// of another pass's rules).
template <class Fn>
void ignore_error(Fn&& fn) {
  try {
    fn();
  } catch (const Error&) {
  }
}

}  // namespace slmopt::fuzz
