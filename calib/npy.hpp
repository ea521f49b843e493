// NumPy .npy files (format versions 1.0, 2.0 and 3.0), little-endian, C order.
//
// Layout: "\x93NUMPY" | major u8 | minor u8 | header length (u16 for 1.x, u32
// for 2.x/3.x) | ASCII dict {'descr': '<f4', 'fortran_order': False,
// 'shape': (2, 3), } padded with spaces to a 64-byte boundary and ending in
// '\n' | raw element data.
#pragma once

#include <string>

#include "core/tensor.hpp"

namespace slmopt::calib {

// Throws Error(BadInput) naming the file for anything malformed: bad magic,
// header past the end, unsupported dtype or byte order, Fortran order, data
// size that does not match the shape.
Tensor read_npy(const std::string& path);
Tensor parse_npy(const uint8_t* data, size_t size, const std::string& name);

// Writes atomically (version 1.0 header).
void write_npy(const std::string& path, const Tensor& tensor);

}  // namespace slmopt::calib
