/* slmblob.h: a dependency-free C99 reader for slmopt's flat blob (.bin).
 *
 * Firmware includes this header; one translation unit defines
 * SLMBLOB_IMPLEMENTATION before including it. The reader never allocates:
 * slmblob_open() validates the header, the section table, every section's
 * CRC-32C, the tensor table and the golden vectors of a blob in memory or
 * flash, and later calls return pointers into it. Every size and offset is
 * checked against the blob before use, with overflow-safe arithmetic.
 * docs/blob-format.md specifies the byte layout this code reads.
 *
 * Fields are read byte by byte (little-endian on any host); weight data is
 * little-endian and is used in place, so the host must be little-endian to
 * use it without conversion (every Cortex-M, ESP32 and RISC-V MCU is).
 * The blob's first byte must sit at an address aligned to the alignment it
 * was packed with (slmblob_alignment()) for weights to be aligned too.
 */
#ifndef SLMBLOB_H
#define SLMBLOB_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SLMBLOB_VERSION_MAJOR 1
#define SLMBLOB_HEADER_SIZE 64u
#define SLMBLOB_SECTION_ENTRY_SIZE 32u
#define SLMBLOB_TENSOR_ENTRY_SIZE 112u
#define SLMBLOB_PART_ENTRY_SIZE 40u
#define SLMBLOB_GOLDEN_ENTRY_SIZE 40u
/* Sparse formats (tensor entry offset 72). Bitmap (format version 1.1): the
   last part, "mask", has one bit per weight (row-major over rows x cols, least
   significant bit first, 1 = kept) and "codes" holds only the kept weights'
   codes in that order; a pruned weight is 0. */
#define SLMBLOB_SPARSE_DENSE 0u
#define SLMBLOB_SPARSE_BITMAP 1u
#define SLMBLOB_TRAILER_SIZE 32u /* SHA-256 of everything before it */
#define SLMBLOB_MAX_DIMS 16u
#define SLMBLOB_MAX_SECTIONS 32u

enum slmblob_section_kind {
  SLMBLOB_SECTION_METADATA = 1, /* UTF-8 JSON */
  SLMBLOB_SECTION_STRINGS = 2,  /* NUL-terminated names */
  SLMBLOB_SECTION_TENSORS = 3,  /* tensor table, part table, dims */
  SLMBLOB_SECTION_GRAPH = 4,    /* onnx.ModelProto without initializers */
  SLMBLOB_SECTION_GOLDEN = 5,   /* optional: self-test inputs and outputs */
  SLMBLOB_SECTION_WEIGHTS = 6   /* tensor data, each part aligned */
};

/* Open flags. */
#define SLMBLOB_SKIP_WEIGHTS_CRC 1u /* faster boot: trust the weights section */

typedef enum {
  SLMBLOB_OK = 0,
  SLMBLOB_E_TRUNCATED,
  SLMBLOB_E_MAGIC,
  SLMBLOB_E_VERSION,
  SLMBLOB_E_ENDIAN,
  SLMBLOB_E_HEADER,
  SLMBLOB_E_HEADER_CRC,
  SLMBLOB_E_SECTION_TABLE,
  SLMBLOB_E_SECTION_CRC,
  SLMBLOB_E_PADDING,
  SLMBLOB_E_TENSOR_TABLE,
  SLMBLOB_E_GOLDEN,
  SLMBLOB_E_NOT_FOUND,
  SLMBLOB_E_ARGUMENT,
  SLMBLOB_E_UNSUPPORTED /* a scheme this reader does not decode */
} slmblob_status;

typedef struct {
  const uint8_t* data;
  uint64_t size; /* bytes of the blob proper (header's file size) */
  uint32_t alignment;
  uint32_t flags;
  const uint8_t* sections[7]; /* by kind; NULL when absent */
  uint64_t section_sizes[7];
  uint32_t tensor_count, part_count, dim_count;
  uint32_t golden_samples, golden_inputs, golden_outputs, golden_dims;
  slmblob_status error;   /* why open failed */
  uint32_t error_section; /* the section kind an error was found in, or 0 */
} slmblob;

typedef struct {
  const char* name; /* NUL-terminated */
  uint32_t bits;    /* bits per element */
  uint64_t count;   /* elements */
  const uint8_t* data;
  uint64_t size; /* = ceil(count * bits / 8) */
} slmblob_part;

typedef struct {
  const char* name;   /* NUL-terminated */
  const char* scheme; /* "" for a plain tensor, else the quantization scheme */
  uint32_t dtype;     /* onnx TensorProto.DataType of the logical elements */
  uint32_t ndim;
  int64_t dims[SLMBLOB_MAX_DIMS];
  uint32_t part_count, first_part;
  /* Quantization parameters (zero for plain tensors). */
  uint32_t bits, symmetric, scale_dtype, sub_scale_bits, transposed;
  int64_t group, super_block, rows, cols;
  /* Sparsity: format 0 = dense storage; zero_count = weights equal to zero. */
  uint32_t sparse_format, sparse_n, sparse_m;
  uint64_t zero_count;
  /* A plain tensor's data (its single part), NULL for quantized ones. */
  const void* data;
  uint64_t size;
} slmblob_tensor;

typedef struct {
  const char* name;
  uint32_t dtype, ndim, elem_bits, is_output;
  int64_t dims[SLMBLOB_MAX_DIMS];
  const void* data;
  uint64_t size;
} slmblob_value;

const char* slmblob_status_text(slmblob_status status);
uint32_t slmblob_crc32c(uint32_t crc, const void* data, size_t size);

/* Validates the blob at data[0, size); size may exceed the blob (flash padding). */
slmblob_status slmblob_open(slmblob* blob, const void* data, uint64_t size, uint32_t flags);

/* A section's bytes by kind; SLMBLOB_E_NOT_FOUND when the blob has none. */
slmblob_status slmblob_section(const slmblob* blob, uint32_t kind, const uint8_t** data, uint64_t* size);

uint32_t slmblob_tensor_count(const slmblob* blob);
slmblob_status slmblob_tensor_at(const slmblob* blob, uint32_t index, slmblob_tensor* out);
slmblob_status slmblob_find_tensor(const slmblob* blob, const char* name, slmblob_tensor* out);
slmblob_status slmblob_tensor_part(const slmblob* blob, const slmblob_tensor* tensor, uint32_t index, slmblob_part* out);
slmblob_status slmblob_find_part(const slmblob* blob, const slmblob_tensor* tensor, const char* name, slmblob_part* out);

/* Sparse tensors (sparse format 1), walked in place. Rows are output
 * channels and cols the weights each row multiplies (rows x cols = the
 * tensor's elements, whatever `transposed` says of the logical layout). The
 * codes of row r's stored weights start at index `code` of the codes part:
 *
 *   slmblob_sparse s;
 *   slmblob_sparse_begin(&blob, &t, &s);            // row 0, code 0
 *   do {
 *     uint64_t k = s.code;
 *     for (c = 0; c < s.cols; ++c)
 *       if (slmblob_sparse_stored(&s, c)) use(r, c, code k++);
 *   } while (slmblob_sparse_seek(&s, s.row + 1) == SLMBLOB_OK);
 *
 * slmblob_open() has checked that the codes part holds exactly one code per
 * set mask bit, so such a walk stays inside the blob. */
typedef struct {
  const uint8_t* mask; /* one bit per weight, row-major, least significant bit first; 1 = stored */
  int64_t rows, cols;
  int64_t row;   /* the current row */
  uint64_t code; /* index in the codes part of the current row's first stored weight */
} slmblob_sparse;

/* Positions s at row 0 of a sparse tensor; SLMBLOB_E_ARGUMENT for a dense one. */
slmblob_status slmblob_sparse_begin(const slmblob* blob, const slmblob_tensor* tensor, slmblob_sparse* s);
/* 1 when weight (s->row, col) is stored, 0 when it was pruned (its value is 0). */
int slmblob_sparse_stored(const slmblob_sparse* s, int64_t col);
/* Moves to any row (counting the mask bits in between: rows ahead cost their
 * bits, a row behind restarts from row 0); SLMBLOB_E_NOT_FOUND past the last. */
slmblob_status slmblob_sparse_seek(slmblob_sparse* s, int64_t row);
/* y[rows] = W x[cols] for a sparse `float` tensor (f32 or f16 codes), reading
 * the weights in place; the reference for a device's own sparse kernels. */
slmblob_status slmblob_sparse_matvec_f32(const slmblob* blob, const slmblob_tensor* tensor, const float* x, float* y);

/* Row `row` of a quantized tensor as floats (tensor->cols of them), as
 * slmopt's runtime dequantizes it, for every scheme slmopt writes: `int`
 * (1-8 bit codes per tensor, row or group, symmetric or with minimums, f16/f32
 * scales, one or two levels), `nf` and `lut` (3/4-bit codes into a fixed or a
 * stored table), `tcq` (2-4-bit trellis codes), `ec` (Huffman-coded uniform
 * steps; a row decodes from the mark of its block of 16, and a corrupt stream
 * gives SLMBLOB_E_TENSOR_TABLE), `binary`, `ternary`, and
 * `float`; sparse ones too (a pruned
 * weight is 0). For a sparse tensor, pass a cursor slmblob_sparse_begin gave
 * for this tensor to walk rows in order cheaply, or NULL to count from row 0. Every part is
 * checked against the tensor's layout before it is read;
 * SLMBLOB_E_UNSUPPORTED for a scheme this reader does not know. */
slmblob_status slmblob_dequantize_row(const slmblob* blob, const slmblob_tensor* tensor, slmblob_sparse* cursor,
                                      int64_t row, float* out);

/* Golden vectors: samples x (inputs, then outputs). */
uint32_t slmblob_golden_samples(const slmblob* blob);
uint32_t slmblob_golden_inputs(const slmblob* blob);
uint32_t slmblob_golden_outputs(const slmblob* blob);
/* Outputs pass when |got - want| <= atol + rtol * |want| (floats) or are equal (integers). */
void slmblob_golden_tolerance(const slmblob* blob, float* atol, float* rtol);
slmblob_status slmblob_golden_value(const slmblob* blob, uint32_t sample, uint32_t index, slmblob_value* out);

#ifdef __cplusplus
}
#endif

#endif /* SLMBLOB_H */

#ifdef SLMBLOB_IMPLEMENTATION

/* A faster CRC-32C (e.g. a hardware instruction) may replace the table for the
 * section checks: define SLMBLOB_CRC32C(crc, data, size) before the include. */
#ifndef SLMBLOB_CRC32C
#define SLMBLOB_CRC32C slmblob_crc32c
#endif

static const uint32_t slmblob__crc_table[256] = {
    0x00000000u, 0xF26B8303u, 0xE13B70F7u, 0x1350F3F4u, 0xC79A971Fu, 0x35F1141Cu,
    0x26A1E7E8u, 0xD4CA64EBu, 0x8AD958CFu, 0x78B2DBCCu, 0x6BE22838u, 0x9989AB3Bu,
    0x4D43CFD0u, 0xBF284CD3u, 0xAC78BF27u, 0x5E133C24u, 0x105EC76Fu, 0xE235446Cu,
    0xF165B798u, 0x030E349Bu, 0xD7C45070u, 0x25AFD373u, 0x36FF2087u, 0xC494A384u,
    0x9A879FA0u, 0x68EC1CA3u, 0x7BBCEF57u, 0x89D76C54u, 0x5D1D08BFu, 0xAF768BBCu,
    0xBC267848u, 0x4E4DFB4Bu, 0x20BD8EDEu, 0xD2D60DDDu, 0xC186FE29u, 0x33ED7D2Au,
    0xE72719C1u, 0x154C9AC2u, 0x061C6936u, 0xF477EA35u, 0xAA64D611u, 0x580F5512u,
    0x4B5FA6E6u, 0xB93425E5u, 0x6DFE410Eu, 0x9F95C20Du, 0x8CC531F9u, 0x7EAEB2FAu,
    0x30E349B1u, 0xC288CAB2u, 0xD1D83946u, 0x23B3BA45u, 0xF779DEAEu, 0x05125DADu,
    0x1642AE59u, 0xE4292D5Au, 0xBA3A117Eu, 0x4851927Du, 0x5B016189u, 0xA96AE28Au,
    0x7DA08661u, 0x8FCB0562u, 0x9C9BF696u, 0x6EF07595u, 0x417B1DBCu, 0xB3109EBFu,
    0xA0406D4Bu, 0x522BEE48u, 0x86E18AA3u, 0x748A09A0u, 0x67DAFA54u, 0x95B17957u,
    0xCBA24573u, 0x39C9C670u, 0x2A993584u, 0xD8F2B687u, 0x0C38D26Cu, 0xFE53516Fu,
    0xED03A29Bu, 0x1F682198u, 0x5125DAD3u, 0xA34E59D0u, 0xB01EAA24u, 0x42752927u,
    0x96BF4DCCu, 0x64D4CECFu, 0x77843D3Bu, 0x85EFBE38u, 0xDBFC821Cu, 0x2997011Fu,
    0x3AC7F2EBu, 0xC8AC71E8u, 0x1C661503u, 0xEE0D9600u, 0xFD5D65F4u, 0x0F36E6F7u,
    0x61C69362u, 0x93AD1061u, 0x80FDE395u, 0x72966096u, 0xA65C047Du, 0x5437877Eu,
    0x4767748Au, 0xB50CF789u, 0xEB1FCBADu, 0x197448AEu, 0x0A24BB5Au, 0xF84F3859u,
    0x2C855CB2u, 0xDEEEDFB1u, 0xCDBE2C45u, 0x3FD5AF46u, 0x7198540Du, 0x83F3D70Eu,
    0x90A324FAu, 0x62C8A7F9u, 0xB602C312u, 0x44694011u, 0x5739B3E5u, 0xA55230E6u,
    0xFB410CC2u, 0x092A8FC1u, 0x1A7A7C35u, 0xE811FF36u, 0x3CDB9BDDu, 0xCEB018DEu,
    0xDDE0EB2Au, 0x2F8B6829u, 0x82F63B78u, 0x709DB87Bu, 0x63CD4B8Fu, 0x91A6C88Cu,
    0x456CAC67u, 0xB7072F64u, 0xA457DC90u, 0x563C5F93u, 0x082F63B7u, 0xFA44E0B4u,
    0xE9141340u, 0x1B7F9043u, 0xCFB5F4A8u, 0x3DDE77ABu, 0x2E8E845Fu, 0xDCE5075Cu,
    0x92A8FC17u, 0x60C37F14u, 0x73938CE0u, 0x81F80FE3u, 0x55326B08u, 0xA759E80Bu,
    0xB4091BFFu, 0x466298FCu, 0x1871A4D8u, 0xEA1A27DBu, 0xF94AD42Fu, 0x0B21572Cu,
    0xDFEB33C7u, 0x2D80B0C4u, 0x3ED04330u, 0xCCBBC033u, 0xA24BB5A6u, 0x502036A5u,
    0x4370C551u, 0xB11B4652u, 0x65D122B9u, 0x97BAA1BAu, 0x84EA524Eu, 0x7681D14Du,
    0x2892ED69u, 0xDAF96E6Au, 0xC9A99D9Eu, 0x3BC21E9Du, 0xEF087A76u, 0x1D63F975u,
    0x0E330A81u, 0xFC588982u, 0xB21572C9u, 0x407EF1CAu, 0x532E023Eu, 0xA145813Du,
    0x758FE5D6u, 0x87E466D5u, 0x94B49521u, 0x66DF1622u, 0x38CC2A06u, 0xCAA7A905u,
    0xD9F75AF1u, 0x2B9CD9F2u, 0xFF56BD19u, 0x0D3D3E1Au, 0x1E6DCDEEu, 0xEC064EEDu,
    0xC38D26C4u, 0x31E6A5C7u, 0x22B65633u, 0xD0DDD530u, 0x0417B1DBu, 0xF67C32D8u,
    0xE52CC12Cu, 0x1747422Fu, 0x49547E0Bu, 0xBB3FFD08u, 0xA86F0EFCu, 0x5A048DFFu,
    0x8ECEE914u, 0x7CA56A17u, 0x6FF599E3u, 0x9D9E1AE0u, 0xD3D3E1ABu, 0x21B862A8u,
    0x32E8915Cu, 0xC083125Fu, 0x144976B4u, 0xE622F5B7u, 0xF5720643u, 0x07198540u,
    0x590AB964u, 0xAB613A67u, 0xB831C993u, 0x4A5A4A90u, 0x9E902E7Bu, 0x6CFBAD78u,
    0x7FAB5E8Cu, 0x8DC0DD8Fu, 0xE330A81Au, 0x115B2B19u, 0x020BD8EDu, 0xF0605BEEu,
    0x24AA3F05u, 0xD6C1BC06u, 0xC5914FF2u, 0x37FACCF1u, 0x69E9F0D5u, 0x9B8273D6u,
    0x88D28022u, 0x7AB90321u, 0xAE7367CAu, 0x5C18E4C9u, 0x4F48173Du, 0xBD23943Eu,
    0xF36E6F75u, 0x0105EC76u, 0x12551F82u, 0xE03E9C81u, 0x34F4F86Au, 0xC69F7B69u,
    0xD5CF889Du, 0x27A40B9Eu, 0x79B737BAu, 0x8BDCB4B9u, 0x988C474Du, 0x6AE7C44Eu,
    0xBE2DA0A5u, 0x4C4623A6u, 0x5F16D052u, 0xAD7D5351u,
};

uint32_t slmblob_crc32c(uint32_t crc, const void* data, size_t size) {
  const uint8_t* p = (const uint8_t*)data;
  crc = ~crc;
  while (size--) crc = slmblob__crc_table[(crc ^ *p++) & 0xFFu] ^ (crc >> 8);
  return ~crc;
}

static uint16_t slmblob__u16(const uint8_t* p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static uint32_t slmblob__u32(const uint8_t* p) {
  return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
static uint64_t slmblob__u64(const uint8_t* p) { return (uint64_t)slmblob__u32(p) | ((uint64_t)slmblob__u32(p + 4) << 32); }
static float slmblob__f32(const uint8_t* p) {
  union {
    uint32_t u;
    float f;
  } v;
  v.u = slmblob__u32(p);
  return v.f;
}

/* [offset, offset + length) lies inside [lo, hi). */
static int slmblob__inside(uint64_t offset, uint64_t length, uint64_t lo, uint64_t hi) {
  return offset >= lo && offset <= hi && length <= hi - offset;
}

static slmblob_status slmblob__fail(slmblob* blob, slmblob_status status, uint32_t section) {
  blob->error = status;
  blob->error_section = section;
  return status;
}

const char* slmblob_status_text(slmblob_status status) {
  switch (status) {
    case SLMBLOB_OK: return "ok";
    case SLMBLOB_E_TRUNCATED: return "truncated: the blob is shorter than its header says";
    case SLMBLOB_E_MAGIC: return "not an slmopt blob (bad magic)";
    case SLMBLOB_E_VERSION: return "unsupported blob format version";
    case SLMBLOB_E_ENDIAN: return "bad endianness marker";
    case SLMBLOB_E_HEADER: return "malformed header";
    case SLMBLOB_E_HEADER_CRC: return "header checksum mismatch";
    case SLMBLOB_E_SECTION_TABLE: return "malformed section table";
    case SLMBLOB_E_SECTION_CRC: return "section checksum mismatch";
    case SLMBLOB_E_PADDING: return "non-zero bytes between sections";
    case SLMBLOB_E_TENSOR_TABLE: return "malformed tensor table";
    case SLMBLOB_E_GOLDEN: return "malformed golden vectors";
    case SLMBLOB_E_NOT_FOUND: return "not found";
    case SLMBLOB_E_ARGUMENT: return "invalid argument";
    case SLMBLOB_E_UNSUPPORTED: return "a scheme this reader does not decode";
  }
  return "unknown status";
}

/* A name: [offset, offset + length] inside the string section, NUL at the end. */
static const char* slmblob__string(const slmblob* blob, const uint8_t* entry) {
  uint64_t offset = slmblob__u32(entry), length = slmblob__u32(entry + 4);
  const uint8_t* strings = blob->sections[SLMBLOB_SECTION_STRINGS];
  uint64_t i;
  if (!slmblob__inside(offset, length + 1, 0, blob->section_sizes[SLMBLOB_SECTION_STRINGS])) return NULL;
  if (strings[offset + length] != 0) return NULL;
  for (i = 0; i < length; ++i)
    if (strings[offset + i] == 0) return NULL;
  return (const char*)strings + offset;
}

static int slmblob__streq(const char* a, const char* b) {
  while (*a && *a == *b) ++a, ++b;
  return *a == *b;
}

/* ceil(count * bits / 8) without overflow, or UINT64_MAX. */
static uint64_t slmblob__packed(uint64_t count, uint32_t bits) {
  if (bits == 0 || bits > 64 || count > UINT64_MAX / 64) return UINT64_MAX;
  return (count * bits + 7) / 8;
}

/* Reads n dims at p into out; -1 when one is negative or their product overflows. */
static int64_t slmblob__dims(const uint8_t* p, uint32_t n, int64_t* out) {
  uint64_t numel = 1;
  uint32_t i;
  for (i = 0; i < n; ++i) {
    uint64_t d = slmblob__u64(p + 8u * i);
    if (d > (uint64_t)INT64_MAX) return -1;
    out[i] = (int64_t)d;
    if (d != 0 && numel > (uint64_t)INT64_MAX / d) return -1;
    numel *= d;
  }
  return (int64_t)numel;
}

static int slmblob__is_mask(const char* name) {
  return name && name[0] == 'm' && name[1] == 'a' && name[2] == 's' && name[3] == 'k' && name[4] == 0;
}

/* Set bits of mask[begin, end) (bit i is byte i / 8, bit i % 8). */
static uint64_t slmblob__count_bits(const uint8_t* mask, uint64_t begin, uint64_t end) {
  uint64_t n = 0, i = begin;
  for (; i < end && i % 8 != 0; ++i) n += (mask[i / 8] >> (i % 8)) & 1u;
  for (; i + 8 <= end; i += 8) {
    uint32_t b = mask[i / 8];
    b = b - ((b >> 1) & 0x55u);
    b = (b & 0x33u) + ((b >> 2) & 0x33u);
    n += (b + (b >> 4)) & 0x0Fu;
  }
  for (; i < end; ++i) n += (mask[i / 8] >> (i % 8)) & 1u;
  return n;
}

static slmblob_status slmblob__read_part(const slmblob* blob, uint32_t index, slmblob_part* out) {
  const uint8_t* e = blob->sections[SLMBLOB_SECTION_TENSORS] + 16 +
                     (uint64_t)blob->tensor_count * SLMBLOB_TENSOR_ENTRY_SIZE + (uint64_t)index * SLMBLOB_PART_ENTRY_SIZE;
  const uint8_t* weights = blob->sections[SLMBLOB_SECTION_WEIGHTS];
  uint64_t weights_start = (uint64_t)(weights - blob->data);
  uint64_t offset = slmblob__u64(e + 24), size = slmblob__u64(e + 32);
  out->name = slmblob__string(blob, e);
  out->bits = slmblob__u32(e + 8);
  out->count = slmblob__u64(e + 16);
  if (!out->name || slmblob__u32(e + 12) != 0) return SLMBLOB_E_TENSOR_TABLE;
  if (!slmblob__inside(offset, size, weights_start, weights_start + blob->section_sizes[SLMBLOB_SECTION_WEIGHTS]))
    return SLMBLOB_E_TENSOR_TABLE;
  if (offset % blob->alignment != 0 || slmblob__packed(out->count, out->bits) != size) return SLMBLOB_E_TENSOR_TABLE;
  out->data = blob->data + offset;
  out->size = size;
  return SLMBLOB_OK;
}

static slmblob_status slmblob__read_tensor(const slmblob* blob, uint32_t index, slmblob_tensor* out) {
  const uint8_t* table = blob->sections[SLMBLOB_SECTION_TENSORS];
  const uint8_t* e = table + 16 + (uint64_t)index * SLMBLOB_TENSOR_ENTRY_SIZE;
  const uint8_t* dims = table + 16 + (uint64_t)blob->tensor_count * SLMBLOB_TENSOR_ENTRY_SIZE +
                        (uint64_t)blob->part_count * SLMBLOB_PART_ENTRY_SIZE;
  uint32_t first_dim, i;
  int64_t numel;
  slmblob_part part;
  out->name = slmblob__string(blob, e);
  out->scheme = slmblob__string(blob, e + 8);
  out->dtype = slmblob__u32(e + 16);
  out->ndim = slmblob__u16(e + 20);
  out->part_count = slmblob__u16(e + 22);
  first_dim = slmblob__u32(e + 24);
  out->first_part = slmblob__u32(e + 28);
  out->bits = e[32];
  out->symmetric = e[33];
  out->scale_dtype = e[34];
  out->sub_scale_bits = e[35];
  out->transposed = e[36];
  out->group = (int64_t)slmblob__u64(e + 40);
  out->super_block = (int64_t)slmblob__u64(e + 48);
  out->rows = (int64_t)slmblob__u64(e + 56);
  out->cols = (int64_t)slmblob__u64(e + 64);
  out->sparse_format = slmblob__u32(e + 72);
  out->sparse_n = slmblob__u16(e + 76);
  out->sparse_m = slmblob__u16(e + 78);
  out->zero_count = slmblob__u64(e + 80);
  out->data = NULL;
  out->size = 0;
  if (!out->name || !out->scheme || out->ndim > SLMBLOB_MAX_DIMS || out->part_count == 0) return SLMBLOB_E_TENSOR_TABLE;
  if (first_dim > blob->dim_count || out->ndim > blob->dim_count - first_dim) return SLMBLOB_E_TENSOR_TABLE;
  if (out->first_part > blob->part_count || out->part_count > blob->part_count - out->first_part)
    return SLMBLOB_E_TENSOR_TABLE;
  for (i = 37; i < 40; ++i)
    if (e[i] != 0) return SLMBLOB_E_TENSOR_TABLE;
  for (i = 88; i < SLMBLOB_TENSOR_ENTRY_SIZE; ++i)
    if (e[i] != 0) return SLMBLOB_E_TENSOR_TABLE;
  numel = slmblob__dims(dims + 8u * (uint64_t)first_dim, out->ndim, out->dims);
  if (numel < 0 || out->zero_count > (uint64_t)numel) return SLMBLOB_E_TENSOR_TABLE;
  if (out->scheme[0] == 0) {
    /* A plain tensor: one part holding every element, of a known element type
       (1-23 but 8, a string), and no quantization parameters (bytes 32-71). */
    if (out->dtype < 1 || out->dtype > 23 || out->dtype == 8) return SLMBLOB_E_TENSOR_TABLE;
    for (i = 32; i < 72; ++i)
      if (e[i] != 0) return SLMBLOB_E_TENSOR_TABLE;
    if (out->part_count != 1 || slmblob__read_part(blob, out->first_part, &part) != SLMBLOB_OK) return SLMBLOB_E_TENSOR_TABLE;
    if (part.count != (uint64_t)numel || part.bits % 8 != 0) return SLMBLOB_E_TENSOR_TABLE;
    out->data = part.data;
    out->size = part.size;
  } else {
    /* Codes of 1-8 bits; the float scheme's 16 or 32 (sparse float weights).
       The logical type is float; flags are 0 or 1; scales f32 or f16. */
    if (out->bits < 1 || out->bits > 32 || out->rows < 0 || out->cols < 0) return SLMBLOB_E_TENSOR_TABLE;
    if (out->dtype != 1u || out->symmetric > 1u || out->transposed > 1u ||
        (out->scale_dtype != 1u && out->scale_dtype != 10u))
      return SLMBLOB_E_TENSOR_TABLE;
    if (out->cols != 0 && out->rows > INT64_MAX / out->cols) return SLMBLOB_E_TENSOR_TABLE;
    if (out->rows * out->cols != numel) return SLMBLOB_E_TENSOR_TABLE;
    for (i = 0; i < out->part_count; ++i)
      if (slmblob__read_part(blob, out->first_part + i, &part) != SLMBLOB_OK) return SLMBLOB_E_TENSOR_TABLE;
    /* After the loop, part is the last one: a bitmap's mask. */
    if (out->sparse_format == SLMBLOB_SPARSE_BITMAP &&
        (!slmblob__is_mask(part.name) || part.bits != 1 || part.count != (uint64_t)numel))
      return SLMBLOB_E_TENSOR_TABLE;
  }
  if (out->sparse_format > SLMBLOB_SPARSE_BITMAP || out->sparse_n != 0 || out->sparse_m != 0 ||
      (out->scheme[0] == 0 && out->sparse_format != SLMBLOB_SPARSE_DENSE))
    return SLMBLOB_E_TENSOR_TABLE;
  return SLMBLOB_OK;
}

static slmblob_status slmblob__read_golden(const slmblob* blob, uint32_t index, slmblob_value* out) {
  const uint8_t* g = blob->sections[SLMBLOB_SECTION_GOLDEN];
  uint64_t g_start = (uint64_t)(g - blob->data), g_end = g_start + blob->section_sizes[SLMBLOB_SECTION_GOLDEN];
  uint64_t values = (uint64_t)blob->golden_samples * (blob->golden_inputs + blob->golden_outputs);
  const uint8_t* e = g + 32 + (uint64_t)index * SLMBLOB_GOLDEN_ENTRY_SIZE;
  const uint8_t* dims = g + 32 + values * SLMBLOB_GOLDEN_ENTRY_SIZE;
  uint32_t first_dim = slmblob__u32(e + 16);
  uint64_t offset = slmblob__u64(e + 24), size = slmblob__u64(e + 32);
  int64_t numel;
  out->name = slmblob__string(blob, e);
  out->dtype = slmblob__u32(e + 8);
  out->ndim = slmblob__u32(e + 12);
  out->elem_bits = slmblob__u32(e + 20);
  out->is_output = (index % (blob->golden_inputs + blob->golden_outputs)) >= blob->golden_inputs;
  if (!out->name || out->ndim > SLMBLOB_MAX_DIMS || first_dim > blob->golden_dims ||
      out->ndim > blob->golden_dims - first_dim)
    return SLMBLOB_E_GOLDEN;
  numel = slmblob__dims(dims + 8u * (uint64_t)first_dim, out->ndim, out->dims);
  if (numel < 0 || out->elem_bits == 0 || out->elem_bits % 8 != 0 ||
      slmblob__packed((uint64_t)numel, out->elem_bits) != size || !slmblob__inside(offset, size, g_start, g_end) ||
      offset % 8 != 0)
    return SLMBLOB_E_GOLDEN;
  out->data = blob->data + offset;
  out->size = size;
  return SLMBLOB_OK;
}

static slmblob_status slmblob__open_tensors(slmblob* blob) {
  const uint8_t* t = blob->sections[SLMBLOB_SECTION_TENSORS];
  uint64_t size = blob->section_sizes[SLMBLOB_SECTION_TENSORS], need;
  uint32_t i;
  slmblob_tensor tensor;
  if (size < 16) return SLMBLOB_E_TENSOR_TABLE;
  blob->tensor_count = slmblob__u32(t);
  blob->part_count = slmblob__u32(t + 4);
  blob->dim_count = slmblob__u32(t + 8);
  if (slmblob__u32(t + 12) != 0) return SLMBLOB_E_TENSOR_TABLE;
  need = 16 + (uint64_t)blob->tensor_count * SLMBLOB_TENSOR_ENTRY_SIZE + (uint64_t)blob->part_count * SLMBLOB_PART_ENTRY_SIZE +
         (uint64_t)blob->dim_count * 8;
  if (need != size) return SLMBLOB_E_TENSOR_TABLE;
  for (i = 0; i < blob->tensor_count; ++i) {
    if (slmblob__read_tensor(blob, i, &tensor) != SLMBLOB_OK) return SLMBLOB_E_TENSOR_TABLE;
    /* Once, here: a walk over the mask takes one code per set bit. */
    if (tensor.sparse_format == SLMBLOB_SPARSE_BITMAP) {
      slmblob_part codes, mask;
      if (slmblob_find_part(blob, &tensor, "codes", &codes) != SLMBLOB_OK ||
          slmblob_tensor_part(blob, &tensor, tensor.part_count - 1, &mask) != SLMBLOB_OK ||
          slmblob__count_bits(mask.data, 0, mask.count) != codes.count)
        return SLMBLOB_E_TENSOR_TABLE;
    }
  }
  return SLMBLOB_OK;
}

static slmblob_status slmblob__open_golden(slmblob* blob) {
  const uint8_t* g = blob->sections[SLMBLOB_SECTION_GOLDEN];
  uint64_t size = blob->section_sizes[SLMBLOB_SECTION_GOLDEN], values;
  uint32_t i;
  slmblob_value value;
  if (!g) return SLMBLOB_OK;
  if (size < 32) return SLMBLOB_E_GOLDEN;
  blob->golden_samples = slmblob__u32(g);
  blob->golden_inputs = slmblob__u32(g + 4);
  blob->golden_outputs = slmblob__u32(g + 8);
  blob->golden_dims = slmblob__u32(g + 12);
  if (slmblob__u32(g + 24) != 0 || slmblob__u32(g + 28) != 0) return SLMBLOB_E_GOLDEN;
  if (blob->golden_inputs > 0xFFFFu || blob->golden_outputs > 0xFFFFu || blob->golden_outputs == 0)
    return SLMBLOB_E_GOLDEN;
  values = (uint64_t)blob->golden_samples * (blob->golden_inputs + blob->golden_outputs);
  if (!slmblob__inside(32, values * SLMBLOB_GOLDEN_ENTRY_SIZE + (uint64_t)blob->golden_dims * 8, 0, size))
    return SLMBLOB_E_GOLDEN;
  for (i = 0; i < values; ++i)
    if (slmblob__read_golden(blob, i, &value) != SLMBLOB_OK) return SLMBLOB_E_GOLDEN;
  return SLMBLOB_OK;
}

slmblob_status slmblob_open(slmblob* blob, const void* data, uint64_t size, uint32_t flags) {
  static const uint8_t magic[8] = {'S', 'L', 'M', 'B', 'L', 'O', 'B', 0x1A};
  const uint8_t* p = (const uint8_t*)data;
  uint64_t table, end, cursor, i, k;
  uint32_t count, s, status;
  if (!blob) return SLMBLOB_E_ARGUMENT;
  {
    slmblob empty = {0};
    *blob = empty;
  }
  /* An empty file (mapped as NULL, size 0) is truncated, not a caller's mistake. */
  if (size < SLMBLOB_HEADER_SIZE + SLMBLOB_TRAILER_SIZE) return slmblob__fail(blob, SLMBLOB_E_TRUNCATED, 0);
  if (!p) return slmblob__fail(blob, SLMBLOB_E_ARGUMENT, 0);
  for (i = 0; i < 8; ++i)
    if (p[i] != magic[i]) return slmblob__fail(blob, SLMBLOB_E_MAGIC, 0);
  if (slmblob__u32(p + 60) != slmblob_crc32c(0, p, 60)) return slmblob__fail(blob, SLMBLOB_E_HEADER_CRC, 0);
  if (slmblob__u16(p + 8) != SLMBLOB_VERSION_MAJOR) return slmblob__fail(blob, SLMBLOB_E_VERSION, 0);
  if (slmblob__u32(p + 12) != 0x01020304u) return slmblob__fail(blob, SLMBLOB_E_ENDIAN, 0);
  blob->flags = slmblob__u32(p + 20);
  blob->alignment = slmblob__u32(p + 24);
  count = slmblob__u32(p + 28);
  table = slmblob__u64(p + 32);
  end = slmblob__u64(p + 40);
  if (slmblob__u32(p + 16) != SLMBLOB_HEADER_SIZE || blob->alignment < 8 || blob->alignment > 65536 ||
      (blob->alignment & (blob->alignment - 1)) != 0 || slmblob__u32(p + 52) != 0 || slmblob__u32(p + 56) != 0)
    return slmblob__fail(blob, SLMBLOB_E_HEADER, 0);
  if (end > size) return slmblob__fail(blob, SLMBLOB_E_TRUNCATED, 0);
  if (end < SLMBLOB_HEADER_SIZE + SLMBLOB_TRAILER_SIZE) return slmblob__fail(blob, SLMBLOB_E_HEADER, 0);
  end -= SLMBLOB_TRAILER_SIZE; /* sections end before the hash */
  if (table != SLMBLOB_HEADER_SIZE || count > SLMBLOB_MAX_SECTIONS ||
      !slmblob__inside(table, (uint64_t)count * SLMBLOB_SECTION_ENTRY_SIZE, 0, end))
    return slmblob__fail(blob, SLMBLOB_E_SECTION_TABLE, 0);
  if (slmblob__u32(p + 48) != slmblob_crc32c(0, p + table, (size_t)count * SLMBLOB_SECTION_ENTRY_SIZE))
    return slmblob__fail(blob, SLMBLOB_E_SECTION_TABLE, 0);
  blob->data = p;
  blob->size = end + SLMBLOB_TRAILER_SIZE;
  /* Sections follow the table in file order; the gaps between them are zero. */
  cursor = table + (uint64_t)count * SLMBLOB_SECTION_ENTRY_SIZE;
  for (s = 0; s < count; ++s) {
    const uint8_t* e = p + table + (uint64_t)s * SLMBLOB_SECTION_ENTRY_SIZE;
    uint32_t kind = slmblob__u32(e);
    uint64_t offset = slmblob__u64(e + 8), length = slmblob__u64(e + 16);
    if (kind < SLMBLOB_SECTION_METADATA || kind > SLMBLOB_SECTION_WEIGHTS || blob->sections[kind] ||
        slmblob__u64(e + 24) != 0 || offset < cursor || offset % 8 != 0 || !slmblob__inside(offset, length, 0, end))
      return slmblob__fail(blob, SLMBLOB_E_SECTION_TABLE, kind);
    for (k = cursor; k < offset; ++k)
      if (p[k] != 0) return slmblob__fail(blob, SLMBLOB_E_PADDING, kind);
    if (!(kind == SLMBLOB_SECTION_WEIGHTS && (flags & SLMBLOB_SKIP_WEIGHTS_CRC)) &&
        slmblob__u32(e + 4) != SLMBLOB_CRC32C(0, p + offset, (size_t)length))
      return slmblob__fail(blob, SLMBLOB_E_SECTION_CRC, kind);
    blob->sections[kind] = p + offset;
    blob->section_sizes[kind] = length;
    cursor = offset + length;
  }
  for (k = cursor; k < end; ++k)
    if (p[k] != 0) return slmblob__fail(blob, SLMBLOB_E_PADDING, 0);
  for (s = SLMBLOB_SECTION_METADATA; s <= SLMBLOB_SECTION_WEIGHTS; ++s)
    if (s != SLMBLOB_SECTION_GOLDEN && !blob->sections[s]) return slmblob__fail(blob, SLMBLOB_E_SECTION_TABLE, s);
  if ((uint64_t)(blob->sections[SLMBLOB_SECTION_WEIGHTS] - p) % blob->alignment != 0)
    return slmblob__fail(blob, SLMBLOB_E_SECTION_TABLE, SLMBLOB_SECTION_WEIGHTS);
  if (!blob->sections[SLMBLOB_SECTION_GOLDEN] != !(blob->flags & 1u) || (blob->flags & ~1u) != 0)
    return slmblob__fail(blob, SLMBLOB_E_HEADER, 0);
  status = slmblob__open_tensors(blob);
  if (status != SLMBLOB_OK) return slmblob__fail(blob, (slmblob_status)status, SLMBLOB_SECTION_TENSORS);
  status = slmblob__open_golden(blob);
  if (status != SLMBLOB_OK) return slmblob__fail(blob, (slmblob_status)status, SLMBLOB_SECTION_GOLDEN);
  return SLMBLOB_OK;
}

slmblob_status slmblob_section(const slmblob* blob, uint32_t kind, const uint8_t** data, uint64_t* size) {
  if (!blob || !blob->data || kind < SLMBLOB_SECTION_METADATA || kind > SLMBLOB_SECTION_WEIGHTS) return SLMBLOB_E_ARGUMENT;
  if (!blob->sections[kind]) return SLMBLOB_E_NOT_FOUND;
  *data = blob->sections[kind];
  *size = blob->section_sizes[kind];
  return SLMBLOB_OK;
}

uint32_t slmblob_tensor_count(const slmblob* blob) { return blob && blob->data ? blob->tensor_count : 0; }

slmblob_status slmblob_tensor_at(const slmblob* blob, uint32_t index, slmblob_tensor* out) {
  if (!blob || !blob->data || !out || index >= blob->tensor_count) return SLMBLOB_E_ARGUMENT;
  return slmblob__read_tensor(blob, index, out);
}

slmblob_status slmblob_find_tensor(const slmblob* blob, const char* name, slmblob_tensor* out) {
  uint32_t i;
  if (!blob || !blob->data || !name || !out) return SLMBLOB_E_ARGUMENT;
  for (i = 0; i < blob->tensor_count; ++i)
    if (slmblob__read_tensor(blob, i, out) == SLMBLOB_OK && slmblob__streq(out->name, name)) return SLMBLOB_OK;
  return SLMBLOB_E_NOT_FOUND;
}

slmblob_status slmblob_tensor_part(const slmblob* blob, const slmblob_tensor* tensor, uint32_t index, slmblob_part* out) {
  if (!blob || !blob->data || !tensor || !out || index >= tensor->part_count) return SLMBLOB_E_ARGUMENT;
  return slmblob__read_part(blob, tensor->first_part + index, out);
}

slmblob_status slmblob_find_part(const slmblob* blob, const slmblob_tensor* tensor, const char* name, slmblob_part* out) {
  uint32_t i;
  if (!blob || !blob->data || !tensor || !name || !out) return SLMBLOB_E_ARGUMENT;
  for (i = 0; i < tensor->part_count; ++i)
    if (slmblob_tensor_part(blob, tensor, i, out) == SLMBLOB_OK && slmblob__streq(out->name, name)) return SLMBLOB_OK;
  return SLMBLOB_E_NOT_FOUND;
}

/* A sparse tensor's mask bits (its last part), or NULL. */
static const uint8_t* slmblob__sparse_mask(const slmblob* blob, const slmblob_tensor* tensor) {
  slmblob_part mask;
  if (tensor->sparse_format != SLMBLOB_SPARSE_BITMAP ||
      slmblob_tensor_part(blob, tensor, tensor->part_count - 1, &mask) != SLMBLOB_OK)
    return NULL;
  return mask.data;
}

slmblob_status slmblob_sparse_begin(const slmblob* blob, const slmblob_tensor* tensor, slmblob_sparse* s) {
  if (!blob || !blob->data || !tensor || !s || tensor->sparse_format != SLMBLOB_SPARSE_BITMAP) return SLMBLOB_E_ARGUMENT;
  s->mask = slmblob__sparse_mask(blob, tensor);
  if (!s->mask) return SLMBLOB_E_TENSOR_TABLE;
  s->rows = tensor->rows;
  s->cols = tensor->cols;
  s->row = 0;
  s->code = 0;
  return SLMBLOB_OK;
}

int slmblob_sparse_stored(const slmblob_sparse* s, int64_t col) {
  const uint64_t i = (uint64_t)s->row * (uint64_t)s->cols + (uint64_t)col;
  return (s->mask[i / 8] >> (i % 8)) & 1u;
}

slmblob_status slmblob_sparse_seek(slmblob_sparse* s, int64_t row) {
  if (!s || row < 0 || row >= s->rows) return SLMBLOB_E_NOT_FOUND;
  if (row < s->row) s->row = 0, s->code = 0;
  s->code += slmblob__count_bits(s->mask, (uint64_t)s->row * (uint64_t)s->cols, (uint64_t)row * (uint64_t)s->cols);
  s->row = row;
  return SLMBLOB_OK;
}

/* An IEEE half's value (subnormals, infinities and NaN included). */
static float slmblob__half(uint16_t h) {
  const uint32_t sign = (uint32_t)(h >> 15) << 31, exponent = (h >> 10) & 0x1Fu, mantissa = h & 0x3FFu;
  union {
    uint32_t u;
    float f;
  } v;
  if (exponent == 0) {
    v.f = (float)mantissa * (1.0f / 16777216.0f); /* 2^-24 */
    v.u |= sign;
  } else {
    v.u = sign | (exponent == 31 ? 0x7F800000u | (mantissa << 13) : ((exponent + 112u) << 23) | (mantissa << 13));
  }
  return v.f;
}

/* Code `index` of `bits` bits (1-32) packed least significant bit first. */
static uint32_t slmblob__code(const uint8_t* p, uint64_t index, uint32_t bits) {
  const uint64_t bit = index * bits;
  const uint32_t shift = (uint32_t)(bit % 8), span = (shift + bits + 7) / 8;
  uint64_t word = 0;
  uint32_t i;
  for (i = 0; i < span; ++i) word |= (uint64_t)p[bit / 8 + i] << (8 * i);
  return (uint32_t)((word >> shift) & ((((uint64_t)1) << bits) - 1));
}

/* A stored scale: f16 (ONNX type 10) or f32 (1). */
static float slmblob__scale(const uint8_t* p, uint64_t index, uint32_t dtype) {
  if (dtype == 10u) return slmblob__half((uint16_t)slmblob__code(p, index, 16));
  {
    union {
      uint32_t u;
      float f;
    } v;
    v.u = slmblob__code(p, index, 32);
    return v.f;
  }
}

/* The part called `name` with `bits` bits and `count` elements, or NULL. */
static const uint8_t* slmblob__layout_part(const slmblob* blob, const slmblob_tensor* t, const char* name, uint32_t bits,
                                           uint64_t count) {
  slmblob_part part;
  if (slmblob_find_part(blob, t, name, &part) != SLMBLOB_OK || part.bits != bits || part.count != count) return NULL;
  return part.data;
}

/* Fixed NormalFloat levels of the nf scheme (lib/quant/scheme_lut.cpp). */
static const float slmblob__nf4[16] = {-1.0f,        -0.69619289f, -0.52507304f, -0.39491749f,
                                       -0.28444136f, -0.18477344f, -0.09104999f, 0.0f,
                                       0.07958033f,  0.16093017f,  0.24611229f,  0.33791519f,
                                       0.4407098f,   0.56261697f,  0.72295673f,  1.0f};
static const float slmblob__nf3[8] = {-1.0f, -0.47862916f, -0.21714182f, 0.0f, 0.16093017f, 0.33791519f, 0.56261697f, 1.0f};

enum { SLMBLOB__INT, SLMBLOB__FLOAT, SLMBLOB__TABLE, SLMBLOB__BINARY, SLMBLOB__TERNARY, SLMBLOB__TRELLIS, SLMBLOB__ENTROPY };

/* What one tensor's values are made of, its parts checked against its layout
 * (lib/quant's group geometry and each scheme's parts). */
typedef struct {
  int kind, per_tensor, two_level, symmetric;
  uint32_t bits, scale_dtype, sub_bits;
  int32_t qmin;
  uint64_t cols, glen, gpr, groups, gps, spr, supers;
  uint64_t lead; /* tcq: the codes before a row's first that its first state spans */
  const uint8_t *codes, *scales, *mins, *super_scales, *super_mins;
  const uint8_t *steps, *marks, *lengths; /* ec */
  uint64_t stream_bits, symbols;
  float table[16];
} slmblob__decoder;

static slmblob_status slmblob__decoder_init(const slmblob* blob, const slmblob_tensor* t, slmblob__decoder* d) {
  const uint64_t rows = (uint64_t)t->rows, cols = (uint64_t)t->cols, n = rows * cols;
  const char* scheme = t->scheme;
  const int sparse = t->sparse_format == SLMBLOB_SPARSE_BITMAP;
  slmblob_part codes;
  uint32_t sb, i;
  {
    slmblob__decoder empty = {0};
    *d = empty;
  }
  if (slmblob__streq(scheme, "int")) d->kind = SLMBLOB__INT;
  else if (slmblob__streq(scheme, "float")) d->kind = SLMBLOB__FLOAT;
  else if (slmblob__streq(scheme, "nf") || slmblob__streq(scheme, "lut")) d->kind = SLMBLOB__TABLE;
  else if (slmblob__streq(scheme, "binary")) d->kind = SLMBLOB__BINARY;
  else if (slmblob__streq(scheme, "ternary")) d->kind = SLMBLOB__TERNARY;
  else if (slmblob__streq(scheme, "tcq")) d->kind = SLMBLOB__TRELLIS;
  else if (slmblob__streq(scheme, "ec")) d->kind = SLMBLOB__ENTROPY;
  else return SLMBLOB_E_UNSUPPORTED;
  d->bits = t->bits;
  d->symmetric = t->symmetric != 0;
  d->scale_dtype = t->scale_dtype;
  d->sub_bits = t->sub_scale_bits;
  d->cols = cols;
  if (slmblob_find_part(blob, t, "codes", &codes) != SLMBLOB_OK) return SLMBLOB_E_TENSOR_TABLE;
  d->codes = codes.data;
  if (d->kind == SLMBLOB__FLOAT)
    return (d->bits == 16 || d->bits == 32) && codes.bits == d->bits && (sparse || codes.count == n) ? SLMBLOB_OK
                                                                                                   : SLMBLOB_E_TENSOR_TABLE;
  if (d->kind == SLMBLOB__ENTROPY) {
    slmblob_part lengths;
    if (d->bits < 1 || d->bits > 8 || sparse || t->group != 0 || d->sub_bits != 0 || d->scale_dtype != 10u ||
        codes.bits != 8 || slmblob_find_part(blob, t, "lengths", &lengths) != SLMBLOB_OK || lengths.bits != 4 ||
        lengths.count % 2 == 0 || lengths.count > (4u << d->bits) - 1u)
      return SLMBLOB_E_TENSOR_TABLE;
    d->lengths = lengths.data;
    d->symbols = lengths.count;
    d->stream_bits = codes.count * 8u;
    d->steps = slmblob__layout_part(blob, t, "steps", 8, rows);
    d->marks = slmblob__layout_part(blob, t, "marks", 32, (rows + 15u) / 16u);
    return d->steps && d->marks ? SLMBLOB_OK : SLMBLOB_E_TENSOR_TABLE;
  }
  /* Ternary packs five weights a byte; tcq leads with a window's codes but one;
     the others one code of `bits` each. */
  if (d->kind == SLMBLOB__TRELLIS) {
    if (d->bits < 2 || d->bits > 4 || sparse || t->group != 0 || d->sub_bits != 0) return SLMBLOB_E_TENSOR_TABLE;
    d->lead = (8u + d->bits - 1u) / d->bits;
    if (codes.bits != d->bits || codes.count != n + d->lead) return SLMBLOB_E_TENSOR_TABLE;
  } else if (d->kind == SLMBLOB__TERNARY ? sparse || codes.bits != 8 || codes.count != (n + 4) / 5
                                         : codes.bits != d->bits || (!sparse && codes.count != n)) {
    return SLMBLOB_E_TENSOR_TABLE;
  }
  if ((d->kind == SLMBLOB__INT && (d->bits > 8 || (d->symmetric && d->bits < 2))) ||
      (d->kind == SLMBLOB__TABLE && d->bits != 3 && d->bits != 4) || (d->kind == SLMBLOB__BINARY && d->bits != 1))
    return SLMBLOB_E_TENSOR_TABLE;
  /* Groups (lib/quant/group_geometry.hpp). */
  if (t->group < -1 || (d->scale_dtype != 1u && d->scale_dtype != 10u)) return SLMBLOB_E_TENSOR_TABLE;
  d->per_tensor = t->group == -1;
  d->two_level = d->sub_bits != 0;
  if (d->per_tensor) {
    d->glen = n;
    d->groups = n > 0 ? 1 : 0;
  } else {
    d->glen = (t->group == 0 || (uint64_t)t->group >= cols) ? cols : (uint64_t)t->group;
    d->gpr = cols > 0 ? (cols + d->glen - 1) / d->glen : 0;
    d->groups = rows * d->gpr;
  }
  if (d->two_level) {
    if (d->kind == SLMBLOB__BINARY || d->kind == SLMBLOB__TERNARY || d->per_tensor || d->sub_bits < 4 ||
        d->sub_bits > 8 || t->group <= 0 || t->super_block <= 0 || t->super_block % t->group != 0 ||
        t->super_block / t->group < 2)
      return SLMBLOB_E_TENSOR_TABLE;
    d->gps = (uint64_t)(t->super_block / t->group);
    d->spr = (d->gpr + d->gps - 1) / d->gps;
    d->supers = rows * d->spr;
  }
  sb = d->scale_dtype == 10u ? 16u : 32u;
  d->scales = slmblob__layout_part(blob, t, "scales", d->two_level ? d->sub_bits : sb, d->groups);
  if (d->two_level) d->super_scales = slmblob__layout_part(blob, t, "super_scales", sb, d->supers);
  if (!d->scales || (d->two_level && !d->super_scales)) return SLMBLOB_E_TENSOR_TABLE;
  if (d->kind == SLMBLOB__INT) {
    d->qmin = d->symmetric ? -(int32_t)(1u << (d->bits - 1)) : 0;
    if (!d->symmetric) {
      d->mins = slmblob__layout_part(blob, t, "mins", d->two_level ? d->sub_bits : sb, d->groups);
      if (d->two_level) d->super_mins = slmblob__layout_part(blob, t, "super_mins", sb, d->supers);
      if (!d->mins || (d->two_level && !d->super_mins)) return SLMBLOB_E_TENSOR_TABLE;
    }
  }
  if (d->kind == SLMBLOB__TABLE) {
    if (slmblob__streq(scheme, "nf")) {
      for (i = 0; i < (1u << d->bits); ++i) d->table[i] = d->bits == 4 ? slmblob__nf4[i] : slmblob__nf3[i];
    } else {
      const uint8_t* table = slmblob__layout_part(blob, t, "table", 16, (uint64_t)1 << d->bits);
      if (!table) return SLMBLOB_E_TENSOR_TABLE;
      for (i = 0; i < (1u << d->bits); ++i) d->table[i] = slmblob__scale(table, i, 10u);
    }
  }
  return SLMBLOB_OK;
}

/* The tcq scheme (lib/quant/scheme_trellis.cpp): a weight's state is its code
   and the d->lead codes before it in the tensor's stream; the state's value,
   one LCG step summed over its bytes, is a nearly Gaussian integer. */
static int32_t slmblob__trellis_value(uint32_t state) {
  const uint32_t x = state * 34038481u + 76625530u;
  return (int32_t)((x & 255u) + ((x >> 8) & 255u) + ((x >> 16) & 255u) + (x >> 24)) - 510;
}

static void slmblob__trellis_row(const slmblob__decoder* d, uint64_t row, float* out) {
  const uint64_t first = row * d->cols;
  const uint32_t mask = (1u << (d->bits * (d->lead + 1u))) - 1u;
  const float scale = slmblob__scale(d->scales, row, d->scale_dtype);
  uint32_t state = 0;
  uint64_t c;
  for (c = 0; c < d->lead; ++c) state = (state << d->bits) | slmblob__code(d->codes, first + c, d->bits);
  for (c = 0; c < d->cols; ++c) {
    state = ((state << d->bits) | slmblob__code(d->codes, first + d->lead + c, d->bits)) & mask;
    out[c] = scale * (float)slmblob__trellis_value(state);
  }
}

/* The ec scheme (lib/quant/scheme_entropy.cpp): a row's codes are canonical
   Huffman codes (lengths stored for the codes -M..M, M = symbols / 2), read a
   bit at a time as zlib's puff.c does, from the mark of the row's block of 16
   rows; the step is 2^((s - 192) / 8) for step byte s, 0 for s = 0. */
static const float slmblob__eighths[8] = {1.0f,       1.0905077f, 1.1892071f, 1.2968396f,
                                          1.4142135f, 1.5422108f, 1.6817929f, 1.8340081f};

static float slmblob__step(uint32_t code) {
  union {
    uint32_t u;
    float f;
  } two;
  if (code == 0) return 0.0f;
  two.u = (uint32_t)((int32_t)(code >> 3) - 24 + 127) << 23; /* 2^-24 .. 2^7, exact */
  return slmblob__eighths[code & 7u] * two.f;
}

static slmblob_status slmblob__entropy_row(const slmblob__decoder* d, uint64_t row, float* out) {
  uint16_t counts[16] = {0}, next[16];
  uint16_t sorted[1023]; /* (4 << 8) - 1 symbols at most, checked at init */
  const int32_t m = (int32_t)(d->symbols / 2u);
  const uint64_t first_row = row - row % 16u;
  uint64_t i, r, c, bit;
  int32_t left = 1;
  uint32_t l;
  for (i = 0; i < d->symbols; ++i) ++counts[slmblob__code(d->lengths, i, 4)];
  counts[0] = 0;
  for (l = 1; l < 16u; ++l) {
    left = left * 2 - (int32_t)counts[l];
    if (left < 0) return SLMBLOB_E_TENSOR_TABLE; /* no prefix code has these lengths */
  }
  next[1] = 0;
  for (l = 1; l < 15u; ++l) next[l + 1] = (uint16_t)(next[l] + counts[l]);
  for (i = 0; i < d->symbols; ++i) {
    l = slmblob__code(d->lengths, i, 4);
    if (l) sorted[next[l]++] = (uint16_t)i;
  }
  bit = slmblob__code(d->marks, first_row / 16u, 32);
  for (r = first_row; r <= row; ++r) {
    const float step = slmblob__step(d->steps[r]);
    for (c = 0; c < d->cols; ++c) {
      int32_t code = 0, first = 0, index = 0, symbol = -1;
      for (l = 1; l < 16u && symbol < 0; ++l) {
        if (bit >= d->stream_bits) return SLMBLOB_E_TENSOR_TABLE;
        code |= (d->codes[bit / 8u] >> (bit % 8u)) & 1;
        ++bit;
        if (code - first < (int32_t)counts[l]) symbol = sorted[index + code - first];
        index += counts[l];
        first = (first + counts[l]) << 1;
        code <<= 1;
      }
      if (symbol < 0) return SLMBLOB_E_TENSOR_TABLE;
      if (r == row) out[c] = (float)(symbol - m) * step;
    }
  }
  return SLMBLOB_OK;
}

/* Group gi's scale and minimum as stored. */
static void slmblob__group(const slmblob__decoder* d, uint64_t gi, float* scale, float* min) {
  *min = 0.0f;
  if (!d->two_level) {
    *scale = slmblob__scale(d->scales, gi, d->scale_dtype);
    if (d->mins) *min = slmblob__scale(d->mins, gi, d->scale_dtype);
    return;
  }
  {
    const uint64_t super = (gi / d->gpr) * d->spr + (gi % d->gpr) / d->gps;
    const int32_t half = (int32_t)(1u << (d->sub_bits - 1));
    const int32_t code = (int32_t)slmblob__code(d->scales, gi, d->sub_bits);
    /* Sub-codes are signed, but an asymmetric int tensor's scales (>= 0) are not. */
    const int32_t scale_code = d->kind == SLMBLOB__INT && !d->symmetric ? code : code - half;
    *scale = slmblob__scale(d->super_scales, super, d->scale_dtype) * (float)scale_code;
    if (d->mins)
      *min = slmblob__scale(d->super_mins, super, d->scale_dtype) *
             (float)((int32_t)slmblob__code(d->mins, gi, d->sub_bits) - half);
  }
}

/* The weight whose code is number k among the stored ones (for ternary, which
   is never sparse, the weight's position). */
static float slmblob__value(const slmblob__decoder* d, uint64_t k, float scale, float min) {
  switch (d->kind) {
    case SLMBLOB__INT: return scale * (float)((int32_t)slmblob__code(d->codes, k, d->bits) + d->qmin) + min;
    case SLMBLOB__FLOAT: return d->bits == 32 ? slmblob__scale(d->codes, k, 1u) : slmblob__scale(d->codes, k, 10u);
    case SLMBLOB__TABLE: return scale * d->table[slmblob__code(d->codes, k, d->bits)];
    case SLMBLOB__BINARY: return slmblob__code(d->codes, k, 1) ? scale : -scale;
    default: {
      static const uint32_t powers[5] = {1, 3, 9, 27, 81};
      /* A hostile byte above 242 still gives a trit in {0, 1, 2}. */
      const int32_t trit = (int32_t)((d->codes[k / 5] / powers[k % 5]) % 3);
      return (float)(trit - 1) * scale;
    }
  }
}

slmblob_status slmblob_dequantize_row(const slmblob* blob, const slmblob_tensor* tensor, slmblob_sparse* cursor,
                                      int64_t row, float* out) {
  slmblob__decoder d;
  slmblob_sparse local;
  slmblob_status status;
  int sparse;
  uint64_t k, c;
  if (!blob || !blob->data || !tensor || !tensor->scheme || !out || row < 0 || row >= tensor->rows)
    return SLMBLOB_E_ARGUMENT;
  status = slmblob__decoder_init(blob, tensor, &d);
  if (status != SLMBLOB_OK) return status;
  if (d.kind == SLMBLOB__TRELLIS) {
    slmblob__trellis_row(&d, (uint64_t)row, out);
    return SLMBLOB_OK;
  }
  if (d.kind == SLMBLOB__ENTROPY) return slmblob__entropy_row(&d, (uint64_t)row, out);
  sparse = tensor->sparse_format == SLMBLOB_SPARSE_BITMAP;
  if (sparse) {
    if (!cursor) {
      cursor = &local;
      if (slmblob_sparse_begin(blob, tensor, cursor) != SLMBLOB_OK) return SLMBLOB_E_TENSOR_TABLE;
    }
    if (cursor->mask != slmblob__sparse_mask(blob, tensor)) return SLMBLOB_E_ARGUMENT; /* another tensor's cursor */
    if (slmblob_sparse_seek(cursor, row) != SLMBLOB_OK) return SLMBLOB_E_ARGUMENT;
    k = cursor->code; /* open checked: codes count = the mask's 1 bits */
  } else {
    k = (uint64_t)row * d.cols;
  }
  for (c = 0; c < d.cols;) {
    uint64_t end = d.cols;
    float scale = 0.0f, min = 0.0f;
    if (d.kind != SLMBLOB__FLOAT) {
      const uint64_t gi = d.per_tensor ? 0 : (uint64_t)row * d.gpr + c / d.glen;
      if (!d.per_tensor && (c / d.glen + 1) * d.glen < d.cols) end = (c / d.glen + 1) * d.glen;
      slmblob__group(&d, gi, &scale, &min);
    }
    for (; c < end; ++c) {
      if (sparse && !slmblob_sparse_stored(cursor, (int64_t)c)) {
        out[c] = 0.0f;
        continue;
      }
      out[c] = slmblob__value(&d, k++, scale, min);
    }
  }
  return SLMBLOB_OK;
}

slmblob_status slmblob_sparse_matvec_f32(const slmblob* blob, const slmblob_tensor* tensor, const float* x, float* y) {
  slmblob__decoder d;
  slmblob_sparse s;
  slmblob_status status;
  int64_t c;
  if (!blob || !blob->data || !x || !y || !tensor || !tensor->scheme || !slmblob__streq(tensor->scheme, "float"))
    return SLMBLOB_E_ARGUMENT;
  status = slmblob_sparse_begin(blob, tensor, &s);
  if (status == SLMBLOB_OK) status = slmblob__decoder_init(blob, tensor, &d);
  if (status != SLMBLOB_OK || s.rows == 0) return status;
  do {
    uint64_t k = s.code;
    float sum = 0.0f;
    for (c = 0; c < s.cols; ++c)
      if (slmblob_sparse_stored(&s, c)) sum += slmblob__value(&d, k++, 0.0f, 0.0f) * x[c];
    y[s.row] = sum;
  } while (slmblob_sparse_seek(&s, s.row + 1) == SLMBLOB_OK);
  return SLMBLOB_OK;
}

uint32_t slmblob_golden_samples(const slmblob* blob) { return blob && blob->data ? blob->golden_samples : 0; }
uint32_t slmblob_golden_inputs(const slmblob* blob) { return blob && blob->data ? blob->golden_inputs : 0; }
uint32_t slmblob_golden_outputs(const slmblob* blob) { return blob && blob->data ? blob->golden_outputs : 0; }

void slmblob_golden_tolerance(const slmblob* blob, float* atol, float* rtol) {
  const uint8_t* g = blob && blob->data ? blob->sections[SLMBLOB_SECTION_GOLDEN] : NULL;
  *atol = g ? slmblob__f32(g + 16) : 0.0f;
  *rtol = g ? slmblob__f32(g + 20) : 0.0f;
}

slmblob_status slmblob_golden_value(const slmblob* blob, uint32_t sample, uint32_t index, slmblob_value* out) {
  uint32_t per_sample;
  if (!blob || !blob->data || !out || !blob->sections[SLMBLOB_SECTION_GOLDEN]) return SLMBLOB_E_ARGUMENT;
  per_sample = blob->golden_inputs + blob->golden_outputs;
  if (sample >= blob->golden_samples || index >= per_sample) return SLMBLOB_E_ARGUMENT;
  return slmblob__read_golden(blob, sample * per_sample + index, out);
}

#endif /* SLMBLOB_IMPLEMENTATION */
