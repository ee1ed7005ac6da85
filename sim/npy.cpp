#include "sim/npy.hpp"

#include <zip.h>

#include <algorithm>
#include <bit>
#include <charconv>
#include <cstring>
#include <fstream>
#include <random>
#include <type_traits>

namespace mpscope::sim {

static_assert(std::endian::native == std::endian::little, "mpscope's NPY code assumes a little-endian host");

namespace {

struct DTypeInfo {
  DType type;
  const char* name;
  const char* descr;  // as written in .npy headers
  std::size_t size;
};
constexpr DTypeInfo dtype_table[] = {
    {DType::float32, "float32", "<f4", 4}, {DType::float64, "float64", "<f8", 8}, {DType::int64, "int64", "<i8", 8},
    {DType::int32, "int32", "<i4", 4},     {DType::uint32, "uint32", "<u4", 4},   {DType::uint16, "uint16", "<u2", 2},
    {DType::uint8, "uint8", "|u1", 1},     {DType::boolean, "bool", "|b1", 1},
};

const DTypeInfo& info(DType t) {
  for (const auto& i : dtype_table)
    if (i.type == t) return i;
  throw std::logic_error("unknown DType");
}

template <typename T>
constexpr DType dtype_of() {
  if constexpr (std::is_same_v<T, float>) return DType::float32;
  if constexpr (std::is_same_v<T, double>) return DType::float64;
  if constexpr (std::is_same_v<T, std::int64_t>) return DType::int64;
  if constexpr (std::is_same_v<T, std::int32_t>) return DType::int32;
  if constexpr (std::is_same_v<T, std::uint32_t>) return DType::uint32;
  if constexpr (std::is_same_v<T, std::uint16_t>) return DType::uint16;
  if constexpr (std::is_same_v<T, std::uint8_t>) return DType::uint8;
}

[[noreturn]] void fail(std::string_view name, const std::string& what) {
  throw NpyError(std::string(name) + ": " + what);
}

std::string supported_list() {
  std::string s;
  for (const auto& i : dtype_table) s += (s.empty() ? "" : ", ") + std::string(i.name);
  return s;
}

DType parse_descr(std::string descr, std::string_view name) {
  if (descr.size() >= 2 && descr[0] == '=') descr[0] = '<';  // native order on a little-endian host
  if (descr.size() == 3 && descr[0] == '<' && descr[2] == '1') descr[0] = '|';
  for (const auto& i : dtype_table)
    if (descr == i.descr) return i.type;
  if (!descr.empty() && descr[0] == '>')
    fail(name, "big-endian data ('" + descr + "') is not supported; save it little-endian (arr.astype('<" +
                   descr.substr(1) + "'))");
  fail(name, "unsupported dtype '" + descr + "' (supported: " + supported_list() + ")");
}

// The value of key in a Python dict literal header, e.g. 'descr': '<f4'  ->  '<f4'  (raw text, trimmed).
std::string header_value(const std::string& header, const std::string& key, std::string_view name) {
  const auto k = header.find("'" + key + "'");
  if (k == std::string::npos) fail(name, "NPY header has no '" + key + "' entry");
  auto colon = header.find(':', k);
  if (colon == std::string::npos) fail(name, "malformed NPY header");
  std::size_t start = colon + 1;
  while (start < header.size() && header[start] == ' ') ++start;
  std::size_t end = start;
  if (start < header.size() && header[start] == '(') {
    end = header.find(')', start);
    if (end == std::string::npos) fail(name, "malformed shape in NPY header");
    ++end;
  } else if (start < header.size() && (header[start] == '\'' || header[start] == '"')) {
    end = header.find(header[start], start + 1);
    if (end == std::string::npos) fail(name, "malformed NPY header");
    ++end;
  } else {
    while (end < header.size() && header[end] != ',' && header[end] != '}') ++end;
  }
  std::string value = header.substr(start, end - start);
  while (!value.empty() && value.back() == ' ') value.pop_back();
  return value;
}

std::vector<std::int64_t> parse_shape(const std::string& text, std::string_view name) {
  std::vector<std::int64_t> shape;
  std::size_t i = 1;  // after '('
  while (i < text.size()) {
    while (i < text.size() && (text[i] == ' ' || text[i] == ',')) ++i;
    if (i >= text.size() || text[i] == ')') break;
    std::int64_t v = 0;
    const auto [ptr, ec] = std::from_chars(text.data() + i, text.data() + text.size(), v);
    if (ec != std::errc{} || v < 0) fail(name, "malformed shape " + text + " in NPY header");
    shape.push_back(v);
    i = static_cast<std::size_t>(ptr - text.data());
    while (i < text.size() && text[i] == 'L') ++i;  // Python 2 longs
  }
  return shape;
}

std::vector<std::byte> read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw NpyError(path.string() + ": cannot open (" + std::strerror(errno) + ")");
  std::vector<std::byte> bytes;
  in.seekg(0, std::ios::end);
  bytes.resize(static_cast<std::size_t>(in.tellg()));
  in.seekg(0);
  in.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  if (!in) throw NpyError(path.string() + ": read error");
  return bytes;
}

// A temporary name beside `path`, so that rename() replaces it atomically on the same file system.
std::filesystem::path temporary_beside(const std::filesystem::path& path) {
  std::random_device rd;
  return std::filesystem::path(path.string() + ".tmp-" + std::to_string(rd()));
}

void replace_atomically(const std::filesystem::path& tmp, const std::filesystem::path& path) {
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    std::filesystem::remove(tmp);
    throw NpyError(path.string() + ": cannot write (" + ec.message() + ")");
  }
}

}  // namespace

std::string_view to_string(DType t) { return info(t).name; }
std::size_t item_size(DType t) { return info(t).size; }

std::int64_t NpyArray::size() const {
  std::int64_t n = 1;
  for (auto d : shape) n *= d;
  return n;
}

std::string NpyArray::shape_string() const {
  std::string s = "(";
  for (std::size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + (shape.size() == 1 ? ",)" : ")");
}

template <typename T>
std::span<const T> NpyArray::values(std::string_view what) const {
  constexpr DType want = dtype_of<T>();
  const bool same = dtype == want || (want == DType::uint8 && dtype == DType::boolean);
  if (!same)
    throw NpyError(std::string(what) + ": expected " + std::string(to_string(want)) + " data, found " +
                   std::string(to_string(dtype)));
  return {reinterpret_cast<const T*>(bytes.data()), static_cast<std::size_t>(size())};
}

template <typename T>
NpyArray NpyArray::from(std::span<const T> values, std::vector<std::int64_t> shape) {
  NpyArray a;
  a.dtype = dtype_of<T>();
  a.shape = std::move(shape);
  if (a.size() != static_cast<std::int64_t>(values.size()))
    throw std::invalid_argument("NpyArray::from: shape " + a.shape_string() + " does not hold " +
                                std::to_string(values.size()) + " values");
  a.bytes.resize(values.size_bytes());
  if (!values.empty()) std::memcpy(a.bytes.data(), values.data(), values.size_bytes());  // (empty: data() may be null)
  return a;
}

#define MPSCOPE_NPY_TYPE(T)                                                        \
  template std::span<const T> NpyArray::values<T>(std::string_view) const;         \
  template NpyArray NpyArray::from<T>(std::span<const T>, std::vector<std::int64_t>);
MPSCOPE_NPY_TYPE(float)
MPSCOPE_NPY_TYPE(double)
MPSCOPE_NPY_TYPE(std::int64_t)
MPSCOPE_NPY_TYPE(std::int32_t)
MPSCOPE_NPY_TYPE(std::uint32_t)
MPSCOPE_NPY_TYPE(std::uint16_t)
MPSCOPE_NPY_TYPE(std::uint8_t)
#undef MPSCOPE_NPY_TYPE

NpyArray parse_npy(std::span<const std::byte> file, std::string_view name) {
  static constexpr unsigned char magic[] = {0x93, 'N', 'U', 'M', 'P', 'Y'};
  if (file.size() < 10 || std::memcmp(file.data(), magic, 6) != 0) fail(name, "not an NPY file (bad magic)");
  const auto major = static_cast<unsigned>(file[6]);
  std::size_t header_len = 0, header_start = 0;
  if (major == 1) {
    header_len = static_cast<std::size_t>(file[8]) | (static_cast<std::size_t>(file[9]) << 8);
    header_start = 10;
  } else if (major == 2 || major == 3) {
    if (file.size() < 12) fail(name, "truncated NPY header");
    header_len = 0;
    for (int i = 0; i < 4; ++i) header_len |= static_cast<std::size_t>(file[8 + i]) << (8 * i);
    header_start = 12;
  } else {
    fail(name, "unsupported NPY version " + std::to_string(major));
  }
  if (file.size() < header_start + header_len) fail(name, "truncated NPY header");
  const std::string header(reinterpret_cast<const char*>(file.data() + header_start), header_len);

  NpyArray a;
  std::string descr = header_value(header, "descr", name);
  if (descr.size() < 2 || (descr.front() != '\'' && descr.front() != '"'))
    fail(name, "structured dtype " + descr + " is not supported (supported: " + supported_list() + ")");
  a.dtype = parse_descr(descr.substr(1, descr.size() - 2), name);
  if (header_value(header, "fortran_order", name) != "False")
    fail(name, "Fortran-order arrays are not supported; save with np.ascontiguousarray(arr)");
  a.shape = parse_shape(header_value(header, "shape", name), name);
  // (checked: a header may claim any shape; the product and the byte count must not wrap around)
  std::int64_t elements = 1, bytes = 0;
  for (const std::int64_t d : a.shape)
    if (__builtin_mul_overflow(elements, d, &elements)) fail(name, "shape " + a.shape_string() + " holds more than 2^63 values");
  if (__builtin_mul_overflow(elements, static_cast<std::int64_t>(item_size(a.dtype)), &bytes))
    fail(name, "shape " + a.shape_string() + " of " + std::string(to_string(a.dtype)) + " needs more than 2^63 bytes");

  const std::size_t data_start = header_start + header_len;
  const auto expected = static_cast<std::size_t>(bytes);
  if (file.size() - data_start < expected)
    fail(name, "truncated data: shape " + a.shape_string() + " of " + std::string(to_string(a.dtype)) + " needs " +
                   std::to_string(expected) + " bytes, the file has " + std::to_string(file.size() - data_start));
  a.bytes.assign(file.begin() + static_cast<std::ptrdiff_t>(data_start),
                 file.begin() + static_cast<std::ptrdiff_t>(data_start + expected));
  return a;
}

NpyArray read_npy(const std::filesystem::path& path) { return parse_npy(read_file(path), path.string()); }

std::vector<std::byte> serialize_npy(const NpyArray& a) {
  std::string shape = "(";
  for (std::size_t i = 0; i < a.shape.size(); ++i) shape += (i ? ", " : "") + std::to_string(a.shape[i]);
  shape += a.shape.size() == 1 ? ",)" : ")";
  std::string header =
      "{'descr': '" + std::string(info(a.dtype).descr) + "', 'fortran_order': False, 'shape': " + shape + ", }";
  // Pad with spaces so that magic + length + header + '\n' is a multiple of 64 (NumPy's alignment).
  const std::size_t unpadded = 10 + header.size() + 1;
  header.append((64 - unpadded % 64) % 64, ' ');
  header += '\n';
  std::vector<std::byte> out(10 + header.size() + a.bytes.size());
  const unsigned char prefix[] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, static_cast<unsigned char>(header.size() & 0xFF),
                                  static_cast<unsigned char>(header.size() >> 8)};
  std::memcpy(out.data(), prefix, 10);
  std::memcpy(out.data() + 10, header.data(), header.size());
  if (!a.bytes.empty()) std::memcpy(out.data() + 10 + header.size(), a.bytes.data(), a.bytes.size());
  return out;
}

void write_npy(const std::filesystem::path& path, const NpyArray& a) {
  const std::vector<std::byte> bytes = serialize_npy(a);
  const std::filesystem::path tmp = temporary_beside(path);
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) throw NpyError(path.string() + ": cannot write (" + std::strerror(errno) + ")");
    out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
    out.close();
    if (!out) {
      std::filesystem::remove(tmp);
      throw NpyError(path.string() + ": write failed");
    }
  }
  replace_atomically(tmp, path);
}

NpzFile::NpzFile(const std::filesystem::path& path) : path_(path) {
  int error = 0;
  archive_ = zip_open(path.c_str(), ZIP_RDONLY, &error);
  if (archive_ == nullptr) {
    zip_error_t ze;
    zip_error_init_with_code(&ze, error);
    const std::string message = zip_error_strerror(&ze);
    zip_error_fini(&ze);
    throw NpyError(path.string() + ": cannot open as .npz (" + message + ")");
  }
}

NpzFile::~NpzFile() {
  if (archive_ != nullptr) zip_discard(static_cast<zip_t*>(archive_));
}

std::vector<std::string> NpzFile::names() const {
  auto* z = static_cast<zip_t*>(archive_);
  std::vector<std::string> out;
  const zip_int64_t n = zip_get_num_entries(z, 0);
  for (zip_int64_t i = 0; i < n; ++i) {
    std::string name = zip_get_name(z, static_cast<zip_uint64_t>(i), 0);
    if (name.ends_with(".npy")) name.resize(name.size() - 4);
    out.push_back(name);
  }
  return out;
}

bool NpzFile::contains(std::string_view name) const {
  const auto all = names();
  return std::find(all.begin(), all.end(), name) != all.end();
}

NpyArray NpzFile::read(std::string_view name) const {
  auto* z = static_cast<zip_t*>(archive_);
  const std::string member = std::string(name) + ".npy";
  zip_stat_t st;
  if (zip_stat(z, member.c_str(), 0, &st) != 0) {
    std::string list;
    for (const auto& n : names()) list += (list.empty() ? "" : ", ") + n;
    throw NpyError(path_.string() + ": no array '" + std::string(name) + "' (the archive holds: " + list + ")");
  }
  zip_file_t* f = zip_fopen(z, member.c_str(), 0);
  if (f == nullptr) throw NpyError(path_.string() + ": cannot read member " + member + " (" + zip_strerror(z) + ")");
  std::vector<std::byte> bytes(static_cast<std::size_t>(st.size));
  const zip_int64_t got = zip_fread(f, bytes.data(), st.size);
  zip_fclose(f);
  if (got < 0 || static_cast<zip_uint64_t>(got) != st.size)
    throw NpyError(path_.string() + ": member " + member + " is corrupt or truncated");
  return parse_npy(bytes, path_.string() + ":" + std::string(name));
}

void write_npz(const std::filesystem::path& path, const std::map<std::string, NpyArray>& arrays, bool compress) {
  const std::filesystem::path tmp = temporary_beside(path);
  int error = 0;
  zip_t* z = zip_open(tmp.c_str(), ZIP_CREATE | ZIP_TRUNCATE, &error);
  if (z == nullptr) throw NpyError(path.string() + ": cannot create .npz");
  std::vector<std::vector<std::byte>> buffers;  // must live until zip_close
  buffers.reserve(arrays.size());
  for (const auto& [name, array] : arrays) {
    buffers.push_back(serialize_npy(array));
    zip_source_t* src = zip_source_buffer(z, buffers.back().data(), buffers.back().size(), 0);
    const std::string member = name + ".npy";
    const zip_int64_t index = src ? zip_file_add(z, member.c_str(), src, ZIP_FL_OVERWRITE) : -1;
    if (index < 0 ||
        zip_set_file_compression(z, static_cast<zip_uint64_t>(index), compress ? ZIP_CM_DEFLATE : ZIP_CM_STORE, 0) != 0) {
      if (src && index < 0) zip_source_free(src);
      zip_discard(z);
      std::filesystem::remove(tmp);
      throw NpyError(path.string() + ": cannot add " + member);
    }
  }
  if (zip_close(z) != 0) {
    zip_discard(z);
    std::filesystem::remove(tmp);
    throw NpyError(path.string() + ": cannot write .npz");
  }
  replace_atomically(tmp, path);
}

}  // namespace mpscope::sim
