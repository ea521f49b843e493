// Provenance records travel in a metadata entry as a JSON array, so any tool that
// reads the file sees which passes produced it (internal header).
#pragma once

#include <string>
#include <vector>

#include "core/ir.hpp"

namespace slmopt {

inline constexpr const char* kProvenanceKey = "slmopt.provenance";

std::string provenance_to_json(const std::vector<ProvenanceRecord>& records);
std::vector<ProvenanceRecord> provenance_from_json(const std::string& json);

}  // namespace slmopt
