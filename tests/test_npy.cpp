// NPY / NPZ: round trips of every supported dtype, NumPy-written files, and clear errors for everything else.
#include <gtest/gtest.h>

#include <cstring>
#include <fstream>

#include "sim/npy.hpp"
#include "test_support.hpp"

using namespace mpscope::sim;
namespace fs = std::filesystem;

namespace {

fs::path temp_dir() {
  const fs::path d = fs::temp_directory_path() / ("mpscope_npy_test_" + std::to_string(::getpid()));
  fs::create_directories(d);
  return d;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const NpyError& e) {
    return e.what();
  }
  return "no error";
}

std::vector<std::byte> npy_bytes(const std::string& header_dict, std::size_t data_bytes) {
  std::string header = header_dict;
  header.append((64 - (10 + header.size() + 1) % 64) % 64, ' ');
  header += '\n';
  std::vector<std::byte> out(10 + header.size() + data_bytes);
  const unsigned char prefix[] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, static_cast<unsigned char>(header.size()), 0};
  std::memcpy(out.data(), prefix, 10);
  std::memcpy(out.data() + 10, header.data(), header.size());
  return out;
}

TEST(Npy, RoundTripsEveryDtype) {
  const fs::path dir = temp_dir();
  const std::vector<float> f = {1.5f, -2.0f, 0.1f, 1e-40f, INFINITY, 0.0f};
  const std::vector<double> d = {0.1, -1e300};
  const std::vector<std::int64_t> i = {-1, 1LL << 40, 7};
  const std::vector<std::uint16_t> u = {0x3C00, 0xFFFF};
  const std::vector<std::uint8_t> b = {1, 0, 1};
  write_npy(dir / "f.npy", NpyArray::from<float>(f, {2, 3}));
  write_npy(dir / "d.npy", NpyArray::from<double>(d, {2}));
  write_npy(dir / "i.npy", NpyArray::from<std::int64_t>(i, {3, 1}));
  write_npy(dir / "u.npy", NpyArray::from<std::uint16_t>(u, {2}));
  NpyArray flags = NpyArray::from<std::uint8_t>(b, {3});
  flags.dtype = DType::boolean;
  write_npy(dir / "b.npy", flags);

  const NpyArray rf = read_npy(dir / "f.npy");
  EXPECT_EQ(rf.dtype, DType::float32);
  EXPECT_EQ(rf.shape, (std::vector<std::int64_t>{2, 3}));
  EXPECT_EQ(std::vector<float>(rf.values<float>().begin(), rf.values<float>().end()), f);
  EXPECT_EQ(read_npy(dir / "d.npy").values<double>()[1], -1e300);
  EXPECT_EQ(read_npy(dir / "i.npy").values<std::int64_t>()[1], 1LL << 40);
  EXPECT_EQ(read_npy(dir / "u.npy").values<std::uint16_t>()[0], 0x3C00);
  EXPECT_EQ(read_npy(dir / "b.npy").dtype, DType::boolean);
  EXPECT_EQ(read_npy(dir / "b.npy").values<std::uint8_t>()[2], 1);
  EXPECT_EQ(rf.shape_string(), "(2, 3)");
  EXPECT_EQ(read_npy(dir / "d.npy").shape_string(), "(2,)");
  // no temporary files left behind
  int files = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator(dir)) ++files;
  EXPECT_EQ(files, 5);
  fs::remove_all(dir);
}

TEST(Npy, ReadsNumPyHeadersAndVersions) {
  auto bytes = npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", 8);
  const float values[] = {1.0f, 2.0f};
  std::memcpy(bytes.data() + bytes.size() - 8, values, 8);
  const NpyArray a = parse_npy(bytes, "x.npy");
  EXPECT_EQ(a.values<float>()[1], 2.0f);
  const NpyArray scalar = parse_npy(npy_bytes("{'descr': '<f8', 'fortran_order': False, 'shape': (), }", 8), "s");
  EXPECT_EQ(scalar.size(), 1);
}

TEST(Npy, ErrorsNameTheFileAndTheProblem) {
  EXPECT_NE(error_of([] { parse_npy(npy_bytes("{'descr': '>f4', 'fortran_order': False, 'shape': (1,), }", 4), "be.npy"); })
                .find("be.npy: big-endian"),
            std::string::npos);
  EXPECT_NE(error_of([] { parse_npy(npy_bytes("{'descr': '<c8', 'fortran_order': False, 'shape': (1,), }", 8), "c.npy"); })
                .find("unsupported dtype '<c8'"),
            std::string::npos);
  EXPECT_NE(error_of([] { parse_npy(npy_bytes("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }", 16), "f.npy"); })
                .find("Fortran-order"),
            std::string::npos);
  EXPECT_NE(error_of([] { parse_npy(npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (4,), }", 8), "t.npy"); })
                .find("truncated data"),
            std::string::npos);
  // shapes whose product (or byte count) wraps around 2^64: refused, not read as a small array (issue 17)
  for (const char* shape : {"(4294967296, 4294967296, 2)", "(3037000500, 3037000500)", "(9223372036854775807,)"}) {
    const std::string header = std::string("{'descr': '<f4', 'fortran_order': False, 'shape': ") + shape + ", }";
    const std::string e = error_of([&] { parse_npy(npy_bytes(header, 16), "huge.npy"); });
    EXPECT_TRUE(e.find("huge.npy: shape") != std::string::npos && e.find("more than 2^63") != std::string::npos) << shape << ": " << e;
  }
  const std::vector<std::byte> junk(20, std::byte{'x'});
  EXPECT_NE(error_of([&] { parse_npy(junk, "j.npy"); }).find("not an NPY file"), std::string::npos);
  EXPECT_NE(error_of([] { read_npy("/nonexistent/x.npy"); }).find("cannot open"), std::string::npos);
  const NpyArray f = NpyArray::from<float>(std::vector<float>{1.0f}, {1});
  EXPECT_NE(error_of([&] { f.values<double>("weights"); }).find("weights: expected float64 data, found float32"),
            std::string::npos);
}

TEST(Npz, PlainAndDeflateArchives) {
  const fs::path dir = temp_dir();
  const std::vector<float> x = {1, 2, 3, 4};
  const std::vector<std::int64_t> y = {0, 1};
  const std::map<std::string, NpyArray> arrays = {{"X", NpyArray::from<float>(x, {2, 2})},
                                                  {"Y", NpyArray::from<std::int64_t>(y, {2})}};
  for (bool compress : {false, true}) {
    const fs::path p = dir / (compress ? "z.npz" : "p.npz");
    write_npz(p, arrays, compress);
    const NpzFile z(p);
    EXPECT_EQ(z.names(), (std::vector<std::string>{"X", "Y"}));
    EXPECT_TRUE(z.contains("Y"));
    EXPECT_EQ(z.read("X").values<float>()[3], 4.0f);
    EXPECT_EQ(z.read("Y").values<std::int64_t>()[1], 1);
    EXPECT_NE(error_of([&] { z.read("W"); }).find("no array 'W' (the archive holds: X, Y)"), std::string::npos);
  }
  std::ofstream(dir / "bad.npz") << "not a zip";
  EXPECT_NE(error_of([&] { NpzFile z(dir / "bad.npz"); }).find("cannot open as .npz"), std::string::npos);
  fs::remove_all(dir);
}

TEST(Npz, ReadsTheNumPyWrittenOracle) {
  const NpzFile z(mpscope::test::data_dir() / "rounding_public.npz");  // written by numpy.savez_compressed
  const NpyArray overflow = z.read("scaler_gi7_overflow");
  EXPECT_EQ(overflow.dtype, DType::boolean);
  EXPECT_EQ(overflow.size(), 4000);
  EXPECT_EQ(z.read("scaler_gi7_scale_after").dtype, DType::float64);
}

}  // namespace
