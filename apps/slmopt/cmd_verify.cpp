// slmopt verify FILE: checks a blob (header, CRC-32C of every section, tables,
// SHA-256) or an OTA package (manifest, hashes, Ed25519 signature with
// --pubkey, and the blob inside); --run executes the blob and compares its
// outputs with the golden vectors it carries.
#include <cmath>
#include <iostream>
#include <memory>

#include "blob/blob_io.hpp"
#include "cli_common.hpp"
#include "core/atomic_file.hpp"
#include "ota/ota_package.hpp"
#include "runtime/session.hpp"

namespace slmopt::cli {
namespace {

struct VerifyOptions {
  std::string file, pubkey, extract;
  bool run = false;
};

struct GoldenResult {
  size_t samples = 0, mismatches = 0;
  double max_abs_error = 0;
  std::string first_mismatch;
};

double element(const Tensor& t, int64_t i) {
  switch (t.dtype()) {
    case DType::F32: return t.data<float>()[i];
    case DType::F64: return t.data<double>()[i];
    case DType::I64: return static_cast<double>(t.data<int64_t>()[i]);
    case DType::I32: return t.data<int32_t>()[i];
    case DType::I8: return t.data<int8_t>()[i];
    case DType::U8: return t.data<uint8_t>()[i];
    case DType::Bool: return t.data<bool>()[i];
    default: throw_usage(std::string("golden outputs of type ") + dtype_name(t.dtype()) + " cannot be compared yet");
  }
}

// Integer outputs must be equal; float ones within atol + rtol * |want|.
GoldenResult run_golden(const Model& model, const blob::GoldenVectors& g) {
  runtime::Session session(model);
  GoldenResult r;
  for (size_t s = 0; s < g.inputs.size(); ++s, ++r.samples) {
    std::map<std::string, Tensor> feeds;
    for (size_t i = 0; i < g.input_names.size(); ++i) feeds[g.input_names[i]] = g.inputs[s][i];
    const auto outputs = session.run(feeds);
    for (size_t k = 0; k < g.output_names.size(); ++k) {
      const Tensor& want = g.outputs[s][k];
      const auto it = outputs.find(g.output_names[k]);
      std::string problem;
      if (it == outputs.end()) problem = "missing";
      else if (it->second.dtype() != want.dtype() || it->second.shape() != want.shape()) problem = "type or shape differs";
      else {
        const bool exact = !is_float(want.dtype());
        for (int64_t i = 0; i < want.numel(); ++i) {
          const double a = element(it->second, i), b = element(want, i);
          const double err = std::fabs(a - b);
          r.max_abs_error = std::max(r.max_abs_error, err);
          if (exact ? a != b : !(err <= g.atol + g.rtol * std::fabs(b))) {
            problem = "element " + std::to_string(i) + " is " + std::to_string(a) + ", expected " + std::to_string(b);
            break;
          }
        }
      }
      if (!problem.empty()) {
        if (!r.mismatches) r.first_mismatch = "sample " + std::to_string(s) + " output '" + g.output_names[k] + "': " + problem;
        ++r.mismatches;
      }
    }
  }
  return r;
}

void run_verify(const VerifyOptions& o, GlobalOptions& global) {
  nlohmann::ordered_json doc = {{"file", o.file}};
  std::vector<std::string> lines;
  if (ota::is_package_file(o.file)) {
    if (o.run) throw_usage("--run executes a blob: --extract it from the package first");
    const auto check = ota::check_package(o.file, o.pubkey);
    const std::string sha = blob::check_blob_bytes(check.blob.data(), check.blob.size(), o.file + " (blob inside)");
    doc["kind"] = "ota";
    doc["blob_bytes"] = check.blob.size();
    doc["sha256"] = sha;
    doc["signed"] = check.signed_package;
    doc["signature_checked"] = check.signature_checked;
    lines.push_back("OTA package: manifest, payload and blob hashes match; blob valid (" + human_bytes(check.blob.size()) + ")");
    lines.push_back(check.signature_checked ? "signature  valid (Ed25519)"
                                            : check.signed_package ? "signature  present, not checked (give --pubkey)"
                                                                   : "signature  none");
    if (!o.extract.empty()) {
      AtomicFile f(o.extract);
      f.write(check.blob.data(), check.blob.size());
      f.commit();
      doc["extracted"] = o.extract;
      lines.push_back("extracted  " + o.extract);
    }
  } else {
    if (!o.pubkey.empty()) throw_usage("--pubkey checks OTA packages; a blob carries no signature");
    if (!o.extract.empty()) throw_usage("--extract takes the blob out of an OTA package");
    const blob::BlobFile blob(o.file);
    doc["kind"] = "blob";
    doc["blob_bytes"] = blob.size();
    doc["sha256"] = blob.sha256_hex();
    lines.push_back("blob       header, sections (CRC-32C), tables and SHA-256 valid (" + human_bytes(blob.size()) + ")");
    if (o.run) {
      const auto golden = blob.golden();
      if (!golden) throw_bad_input("the blob holds no golden vectors (pack it with --golden or --golden-random)", o.file);
      const GoldenResult r = run_golden(blob.model(), *golden);
      doc["golden"] = {{"samples", r.samples}, {"mismatches", r.mismatches}, {"max_abs_error", r.max_abs_error},
                       {"atol", golden->atol}, {"rtol", golden->rtol}};
      if (r.mismatches) {
        global.exit_code = 1;
        doc["golden"]["first_mismatch"] = r.first_mismatch;
        if (!global.quiet) std::cerr << "slmopt: " << o.file << ": golden check failed: " << r.first_mismatch << "\n";
      }
      lines.push_back("golden     " + std::to_string(r.samples) + " sample(s), " + std::to_string(r.mismatches) +
                      " mismatching output(s), max |error| " + std::to_string(r.max_abs_error));
    }
  }
  doc["ok"] = global.exit_code == 0;
  if (global.json) return print_json(doc);
  if (!global.quiet)
    for (const auto& l : lines) std::cout << l << "\n";
}

}  // namespace

void setup_verify(CLI::App& app, GlobalOptions& global) {
  auto o = std::make_shared<VerifyOptions>();
  auto* cmd = app.add_subcommand("verify", "Check a blob or OTA package: checksums, hashes, signature, golden outputs");
  cmd->add_option("file", o->file, "Blob from slmopt pack, or its .ota package")->required();
  cmd->add_option("--pubkey", o->pubkey, "Ed25519 public key (PEM): the package's signature must match");
  cmd->add_flag("--run", o->run, "Run the blob on its golden inputs and compare the outputs");
  cmd->add_option("--extract", o->extract, "Write the blob inside an OTA package to this file");
  cmd->callback([o, &global] { run_verify(*o, global); });
}

}  // namespace slmopt::cli
