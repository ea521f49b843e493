#include "common/provenance_json.hpp"

#include <nlohmann/json.hpp>

namespace slmopt {

std::string provenance_to_json(const std::vector<ProvenanceRecord>& records) {
  nlohmann::ordered_json arr = nlohmann::ordered_json::array();
  for (const auto& r : records)
    arr.push_back({{"pass", r.pass}, {"options", r.options}, {"tool_version", r.tool_version}});
  return arr.dump();
}

std::vector<ProvenanceRecord> provenance_from_json(const std::string& json) {
  auto parsed = nlohmann::json::parse(json, nullptr, /*allow_exceptions=*/false);
  if (!parsed.is_array()) throw_bad_input(std::string(kProvenanceKey) + " is not a JSON array");
  std::vector<ProvenanceRecord> out;
  for (const auto& item : parsed) {
    if (!item.is_object()) throw_bad_input(std::string(kProvenanceKey) + " entry is not an object");
    ProvenanceRecord r;
    auto field = [&](const char* key) {
      auto it = item.find(key);
      return it != item.end() && it->is_string() ? it->get<std::string>() : std::string();
    };
    r.pass = field("pass");
    r.options = field("options");
    r.tool_version = field("tool_version");
    out.push_back(std::move(r));
  }
  return out;
}

}  // namespace slmopt
