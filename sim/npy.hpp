// NumPy .npy arrays (C order, little-endian) and .npz archives (plain or deflate, via libzip).
// Errors are NpyError with a message naming the file (or archive member) and what is wrong with it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace mpscope::sim {

struct NpyError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

enum class DType { float32, float64, int64, int32, uint32, uint16, uint8, boolean };
std::string_view to_string(DType t);  // NumPy's names: "float32", ..., "bool"
std::size_t item_size(DType t);

struct NpyArray {
  DType dtype = DType::float32;
  std::vector<std::int64_t> shape;
  std::vector<std::byte> bytes;  // size() * item_size(dtype), little-endian

  std::int64_t size() const;  // product of shape (1 for a scalar)
  std::string shape_string() const;  // "(3, 4)"

  // The elements as T, which must be the stored type (float for float32, std::uint8_t for bool, ...); throws
  // NpyError naming `what` and both types otherwise.
  template <typename T>
  std::span<const T> values(std::string_view what = "array") const;

  template <typename T>
  static NpyArray from(std::span<const T> values, std::vector<std::int64_t> shape);
};

NpyArray parse_npy(std::span<const std::byte> file, std::string_view name);
NpyArray read_npy(const std::filesystem::path& path);
std::vector<std::byte> serialize_npy(const NpyArray& a);
// Writes to a temporary file beside `path` and renames it into place: a failed write leaves nothing behind.
void write_npy(const std::filesystem::path& path, const NpyArray& a);

// Read access to the members of an .npz archive ("name" or "name.npy").
class NpzFile {
 public:
  explicit NpzFile(const std::filesystem::path& path);
  ~NpzFile();
  NpzFile(const NpzFile&) = delete;
  NpzFile& operator=(const NpzFile&) = delete;

  std::vector<std::string> names() const;  // without ".npy"
  bool contains(std::string_view name) const;
  NpyArray read(std::string_view name) const;  // throws NpyError listing the members when name is missing

 private:
  std::filesystem::path path_;
  void* archive_ = nullptr;  // zip_t*
};

// Writes an .npz (deflate-compressed when compress is true) atomically, like write_npy.
void write_npz(const std::filesystem::path& path, const std::map<std::string, NpyArray>& arrays, bool compress = true);

}  // namespace mpscope::sim
