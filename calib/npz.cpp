#include "npz.hpp"

#include <zlib.h>

#include <cstring>
#include <vector>

#include "core/buffer.hpp"
#include "core/checked.hpp"
#include "core/memory_limit.hpp"
#include "npy.hpp"

namespace slmopt::calib {
namespace {

uint16_t u16(const uint8_t* p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); }
uint32_t u32(const uint8_t* p) { return p[0] | (p[1] << 8) | (p[2] << 16) | (static_cast<uint32_t>(p[3]) << 24); }
uint64_t u64(const uint8_t* p) { return u32(p) | (static_cast<uint64_t>(u32(p + 4)) << 32); }

struct Member {
  std::string name;
  uint16_t method = 0;
  uint32_t crc = 0;
  uint64_t compressed = 0, uncompressed = 0, local_offset = 0;
};

// Replaces 0xFFFFFFFF sizes/offsets with their ZIP64 extra-field values.
void apply_zip64(Member& m, const uint8_t* extra, size_t len, bool big_uncompressed, bool big_compressed, bool big_offset) {
  size_t pos = 0;
  while (pos + 4 <= len) {
    const uint16_t id = u16(extra + pos), size = u16(extra + pos + 2);
    if (pos + 4 + size > len) throw_bad_input("ZIP extra field runs past its record");
    if (id == 0x0001) {
      size_t q = pos + 4;
      auto take = [&](uint64_t& v) {
        if (q + 8 > pos + 4 + size) throw_bad_input("truncated ZIP64 extra field");
        v = u64(extra + q);
        q += 8;
      };
      if (big_uncompressed) take(m.uncompressed);
      if (big_compressed) take(m.compressed);
      if (big_offset) take(m.local_offset);
      return;
    }
    pos += 4 + size;
  }
  if (big_uncompressed || big_compressed || big_offset) throw_bad_input("ZIP64 sizes without a ZIP64 extra field");
}

std::vector<Member> central_directory(const uint8_t* d, uint64_t size) {
  if (size < 22) throw_bad_input("too short for a ZIP archive");
  // The end-of-central-directory record is in the last 22 + 65535 bytes.
  uint64_t eocd = UINT64_MAX;
  for (uint64_t i = size - 22;; --i) {
    if (u32(d + i) == 0x06054b50) {
      eocd = i;
      break;
    }
    if (i == 0 || size - i > 22 + 65535) break;
  }
  if (eocd == UINT64_MAX) throw_bad_input("no ZIP end-of-central-directory record (not an .npz file?)");
  const uint16_t entries = u16(d + eocd + 10);
  uint64_t cd_size = u32(d + eocd + 12), cd_offset = u32(d + eocd + 16);
  if (cd_offset == 0xFFFFFFFF || cd_size == 0xFFFFFFFF) {
    // ZIP64: locator just before the EOCD points at the ZIP64 EOCD record.
    if (eocd < 20 || u32(d + eocd - 20) != 0x07064b50) throw_bad_input("missing ZIP64 locator");
    const uint64_t z64 = u64(d + eocd - 20 + 8);
    if (!range_within(z64, 56, size) || u32(d + z64) != 0x06064b50) throw_bad_input("bad ZIP64 end record");
    cd_size = u64(d + z64 + 40);
    cd_offset = u64(d + z64 + 48);
  }
  if (!range_within(cd_offset, cd_size, size)) throw_bad_input("ZIP central directory lies outside the file");
  std::vector<Member> members;
  uint64_t pos = cd_offset;
  for (uint16_t k = 0; k < entries; ++k) {
    if (!range_within(pos, 46, cd_offset + cd_size) || u32(d + pos) != 0x02014b50)
      throw_bad_input("corrupt ZIP central directory record " + std::to_string(k));
    Member m;
    m.method = u16(d + pos + 10);
    m.crc = u32(d + pos + 16);
    m.compressed = u32(d + pos + 20);
    m.uncompressed = u32(d + pos + 24);
    const uint16_t name_len = u16(d + pos + 28), extra_len = u16(d + pos + 30), comment_len = u16(d + pos + 32);
    m.local_offset = u32(d + pos + 42);
    const uint64_t record = 46ull + name_len + extra_len + comment_len;
    if (!range_within(pos, record, cd_offset + cd_size)) throw_bad_input("ZIP central directory record runs past its end");
    m.name.assign(reinterpret_cast<const char*>(d + pos + 46), name_len);
    apply_zip64(m, d + pos + 46 + name_len, extra_len, m.uncompressed == 0xFFFFFFFF, m.compressed == 0xFFFFFFFF,
                m.local_offset == 0xFFFFFFFF);
    members.push_back(std::move(m));
    pos += record;
  }
  return members;
}

// Deflate cannot expand data more than 1032-fold (RFC 1951's longest match
// per shortest code), so a larger declared size is a zip bomb or a lie.
constexpr uint64_t kMaxDeflateRatio = 1032;

std::vector<uint8_t> extract(const uint8_t* d, uint64_t size, const Member& m) {
  if ((m.method == 0 && m.compressed != m.uncompressed) ||
      (m.method == 8 && m.uncompressed / kMaxDeflateRatio > m.compressed))
    throw_bad_input("member '" + m.name + "' declares " + std::to_string(m.uncompressed) + " bytes from " +
                    std::to_string(m.compressed) + " compressed ones, more than its method can produce");
  check_memory_request(m.uncompressed, "member '" + m.name + "'");
  if (!range_within(m.local_offset, 30, size) || u32(d + m.local_offset) != 0x04034b50)
    throw_bad_input("member '" + m.name + "' has no valid local header");
  const uint64_t data = m.local_offset + 30 + u16(d + m.local_offset + 26) + u16(d + m.local_offset + 28);
  if (!range_within(data, m.compressed, size)) throw_bad_input("member '" + m.name + "' data runs past the end of the file");
  std::vector<uint8_t> out(static_cast<size_t>(m.uncompressed));
  if (m.method == 0) {
    if (m.uncompressed) std::memcpy(out.data(), d + data, out.size());
  } else if (m.method == 8) {
    z_stream zs{};
    if (inflateInit2(&zs, -MAX_WBITS) != Z_OK) throw_internal("zlib initialisation failed");
    zs.next_in = const_cast<Bytef*>(d + data);
    zs.avail_in = static_cast<uInt>(std::min<uint64_t>(m.compressed, UINT32_MAX));
    zs.next_out = out.data();
    zs.avail_out = static_cast<uInt>(out.size());
    const int rc = inflate(&zs, Z_FINISH);
    const uint64_t produced = zs.total_out;
    inflateEnd(&zs);
    // Z_BUF_ERROR with a full buffer means the stream holds more than declared.
    if (rc != Z_STREAM_END || produced != m.uncompressed)
      throw_bad_input("member '" + m.name + "' does not inflate to its declared " + std::to_string(m.uncompressed) + " bytes");
  } else {
    throw_bad_input("member '" + m.name + "' uses unsupported ZIP compression method " + std::to_string(m.method));
  }
  if (crc32(0L, out.data(), static_cast<uInt>(out.size())) != m.crc)
    throw_bad_input("member '" + m.name + "' fails its CRC-32 check");
  return out;
}

}  // namespace

std::map<std::string, Tensor> read_npz(const std::string& path) {
  auto file = MappedFile::open(path);
  try {
    std::map<std::string, Tensor> arrays;
    for (const auto& m : central_directory(file->data(), file->size())) {
      if (m.name.size() < 5 || m.name.compare(m.name.size() - 4, 4, ".npy") != 0) continue;
      const std::string name = m.name.substr(0, m.name.size() - 4);
      if (arrays.count(name)) throw_bad_input("array '" + name + "' appears twice");
      auto bytes = extract(file->data(), file->size(), m);
      arrays[name] = with_context("member '" + m.name + "'", [&] { return parse_npy(bytes.data(), bytes.size(), ""); });
    }
    return arrays;
  } catch (Error& e) {
    e.set_file_if_empty(path);
    throw;
  }
}

}  // namespace slmopt::calib
