#include "calib/stats_io.hpp"

#include <cstring>

#include "common/blob_container.hpp"
#include "common/json_integer.hpp"
#include "core/checked.hpp"
#include "core/error.hpp"

namespace slmopt::calib {
namespace {

constexpr char kMagic[8] = {'S', 'L', 'M', 'C', 'A', 'L', 'I', 'B'};
constexpr int kVersion = 1;
constexpr int64_t kMaxCols = int64_t{1} << 20;

template <class T>
void read_array(const container::Reader& file, const nlohmann::json& j, const std::string& what, size_t count,
                std::vector<T>& out) {
  auto [offset, length] = file.blob(j, what);
  if (length != count * sizeof(T))
    throw_bad_input(what + ": " + std::to_string(length) + " bytes, expected " + std::to_string(count * sizeof(T)),
                    file.path());
  out.resize(count);
  if (length) std::memcpy(out.data(), file.base() + offset, length);
}

}  // namespace

void write_stats(const CalibStats& stats, const std::string& path) {
  container::Writer blobs;
  nlohmann::json inputs = nlohmann::json::array();
  for (const auto& [key, s] : stats.inputs) {
    nlohmann::json j = {{"key", key}, {"kind", s.kind}, {"groups", s.groups}, {"cols", s.cols}, {"count", s.count}};
    j["sum_sq"] = blobs.add(s.sum_sq.data(), s.sum_sq.size() * sizeof(double));
    j["sum_abs"] = blobs.add(s.sum_abs.data(), s.sum_abs.size() * sizeof(double));
    j["abs_max"] = blobs.add(s.abs_max.data(), s.abs_max.size() * sizeof(float));
    if (!s.sum.empty()) j["sum"] = blobs.add(s.sum.data(), s.sum.size() * sizeof(double));
    if (s.has_gram()) j["gram"] = blobs.add(s.gram.data(), s.gram.size() * sizeof(double));
    inputs.push_back(j);
  }
  nlohmann::json names = nlohmann::json::array();
  std::vector<float> min_max;
  for (const auto& [name, r] : stats.ranges) {
    names.push_back(name);
    min_max.push_back(r.min);
    min_max.push_back(r.max);
  }
  nlohmann::json header = {{"format", "slmopt-calib"}, {"version", kVersion}, {"samples", stats.samples}};
  header["inputs"] = inputs;
  header["weights"] = stats.weight_inputs;
  header["ranges"] = {{"names", names}, {"min_max", blobs.add(min_max.data(), min_max.size() * sizeof(float))}};
  nlohmann::json hist_names = nlohmann::json::array();
  std::vector<float> lo_hi;
  std::vector<uint64_t> counts;
  int64_t bins = 0;
  for (const auto& [name, h] : stats.histograms) {
    if (bins == 0) bins = static_cast<int64_t>(h.counts.size());
    if (static_cast<int64_t>(h.counts.size()) != bins) throw_internal("histograms of different bin counts");
    hist_names.push_back(name);
    lo_hi.push_back(h.lo);
    lo_hi.push_back(h.hi);
    counts.insert(counts.end(), h.counts.begin(), h.counts.end());
  }
  if (!stats.histograms.empty())
    header["histograms"] = {{"names", hist_names},
                            {"bins", bins},
                            {"lo_hi", blobs.add(lo_hi.data(), lo_hi.size() * sizeof(float))},
                            {"counts", blobs.add(counts.data(), counts.size() * sizeof(uint64_t))}};
  blobs.write(path, kMagic, header);
}

CalibStats read_stats(const std::string& path) {
  const container::Reader file(path, kMagic, "slmopt-calib");
  const nlohmann::json& h = file.header();
  CalibStats stats;
  try {
    if (json_integer<int>(h.at("version")) != kVersion)
      throw_bad_input("version " + h.at("version").dump() + " is not supported (this build reads 1)", path);
    stats.samples = json_integer<int64_t>(h.at("samples"));
    for (const auto& j : h.at("inputs")) {
      const std::string key = j.at("key").get<std::string>();
      const std::string what = "input '" + key + "'";
      InputStats s;
      s.kind = j.at("kind").get<std::string>();
      s.groups = json_integer<int64_t>(j.at("groups"));
      s.cols = json_integer<int64_t>(j.at("cols"));
      s.count = json_integer<int64_t>(j.at("count"));
      if (s.groups < 1 || s.cols < 0 || s.cols > kMaxCols || s.groups > kMaxCols || s.count < 0)
        throw_bad_input(what + ": groups, cols or count out of range", path);
      const auto n = static_cast<size_t>(checked_mul(s.groups, s.cols, "statistics size"));
      read_array(file, j.at("sum_sq"), what + " sum_sq", n, s.sum_sq);
      read_array(file, j.at("sum_abs"), what + " sum_abs", n, s.sum_abs);
      read_array(file, j.at("abs_max"), what + " abs_max", n, s.abs_max);
      if (j.contains("sum")) read_array(file, j.at("sum"), what + " sum", n, s.sum);
      if (j.contains("gram"))
        read_array(file, j.at("gram"), what + " gram",
                   static_cast<size_t>(checked_mul(static_cast<int64_t>(n), s.cols, "Gram matrix size")), s.gram);
      if (!stats.inputs.emplace(key, std::move(s)).second) throw_bad_input(what + " appears twice", path);
    }
    for (const auto& [weight, key] : h.at("weights").items()) {
      if (!stats.inputs.count(key.get<std::string>()))
        throw_bad_input("weight '" + weight + "' names unknown input '" + key.get<std::string>() + "'", path);
      stats.weight_inputs[weight] = key.get<std::string>();
    }
    const auto& ranges = h.at("ranges");
    const auto names = ranges.at("names").get<std::vector<std::string>>();
    std::vector<float> min_max;
    read_array(file, ranges.at("min_max"), "ranges", names.size() * 2, min_max);
    for (size_t i = 0; i < names.size(); ++i) stats.ranges[names[i]] = {min_max[2 * i], min_max[2 * i + 1]};
    if (h.contains("histograms")) {
      const auto& hj = h.at("histograms");
      const auto hist_names = hj.at("names").get<std::vector<std::string>>();
      const int64_t bins = json_integer<int64_t>(hj.at("bins"));
      if (bins < 1 || bins > kMaxCols) throw_bad_input("histogram bins out of range", path);
      std::vector<float> lo_hi;
      std::vector<uint64_t> counts;
      read_array(file, hj.at("lo_hi"), "histogram ranges", hist_names.size() * 2, lo_hi);
      read_array(file, hj.at("counts"), "histogram counts",
                 static_cast<size_t>(checked_mul(static_cast<int64_t>(hist_names.size()), bins, "histogram size")), counts);
      for (size_t i = 0; i < hist_names.size(); ++i) {
        ValueHistogram& vh = stats.histograms[hist_names[i]];
        vh.lo = lo_hi[2 * i];
        vh.hi = lo_hi[2 * i + 1];
        vh.counts.assign(counts.begin() + static_cast<std::ptrdiff_t>(i * static_cast<size_t>(bins)),
                         counts.begin() + static_cast<std::ptrdiff_t>((i + 1) * static_cast<size_t>(bins)));
      }
    }
  } catch (const nlohmann::json::exception& e) {
    throw_bad_input(std::string("malformed header: ") + e.what(), path);
  }
  return stats;
}

}  // namespace slmopt::calib
