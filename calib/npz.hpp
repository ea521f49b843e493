// NumPy .npz archives (np.savez, np.savez_compressed): a ZIP file of NAME.npy
// members, stored or deflated.
//
// Read from the central directory (EOCD at the end, then one 46-byte record per
// member pointing at its 30-byte local header). Every offset and size is checked
// against the file; a member's declared uncompressed size must fit the caller's
// limit before anything is inflated, and inflation stops at that size, so a zip
// bomb fails cleanly. ZIP64 size fields are read from the extra field.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "core/tensor.hpp"

namespace slmopt::calib {

// Arrays by name (the member name without ".npy").
// A member's declared size is checked against what its compression can
// produce and against the memory limit before anything is allocated.
std::map<std::string, Tensor> read_npz(const std::string& path);

}  // namespace slmopt::calib
