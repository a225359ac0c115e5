//===- RuntimeTest.cpp - The runtime's readers, writers and schedules -----===//

#include "Augment.h"
#include "Background.h"
#include "Buckets.h"
#include "Comm.h"
#include "DataIO.h"
#include "Json.h"
#include "Model.h"
#include "Replicas.h"
#include "Report.h"
#include "Schedule.h"
#include "Shards.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <dirent.h>
#include <fstream>
#include <random>
#include <stdexcept>
#include <unistd.h>

using namespace mass::rt;

namespace {

std::string tempDir() {
  char pattern[] = "/tmp/mass-unit-XXXXXX";
  return ::mkdtemp(pattern);
}

void writeText(const std::string &path, const std::string &text) {
  std::ofstream(path, std::ios::binary) << text;
}

TEST(Json, ParsesAndDumps) {
  Json j;
  std::string error;
  ASSERT_TRUE(Json::parse(R"({"a": [1, 2.5, -3e2], "b": {"c": "x\"y\u00e9"},
                              "t": true, "n": null})",
                          j, error))
      << error;
  EXPECT_EQ(j["a"].items().size(), 3u);
  EXPECT_DOUBLE_EQ(j["a"].items()[2].num(), -300);
  EXPECT_EQ(j["b"]["c"].str(), "x\"y\xc3\xa9");
  EXPECT_TRUE(j["t"].flag());
  EXPECT_TRUE(j["n"].isNull());
  EXPECT_TRUE(j["missing"].isNull());
  EXPECT_EQ(j["a"].dump(), "[1,2.5,-300]");
  Json again;
  ASSERT_TRUE(Json::parse(j.dump(), again, error));
  EXPECT_EQ(again.dump(), j.dump());
}

TEST(Json, RejectsBadText) {
  Json j;
  std::string error;
  EXPECT_FALSE(Json::parse("{\"a\": }", j, error));
  EXPECT_FALSE(error.empty());
  EXPECT_FALSE(Json::parse("[1, 2", j, error));
  EXPECT_FALSE(Json::parse("{} extra", j, error));
}

TEST(Npy, RoundTripAndConversions) {
  std::string dir = tempDir();
  Tensor t(DType::F32, {2, 3});
  for (int k = 0; k < 6; ++k)
    t.f[k] = k * 0.5f;
  std::string error;
  ASSERT_TRUE(writeNpy(dir + "/a.npy", t, error)) << error;
  Tensor back;
  ASSERT_TRUE(readNpy(dir + "/a.npy", back, error)) << error;
  EXPECT_EQ(back.shape, t.shape);
  // float32 is not copied: the tensor views the mapped file, which stays
  // readable after the file is removed, and in copies of the tensor.
  ASSERT_NE(back.view, nullptr);
  EXPECT_TRUE(back.f.empty());
  std::remove((dir + "/a.npy").c_str());
  Tensor copy = back;
  back = Tensor();
  EXPECT_EQ(std::vector<float>(copy.floats(), copy.floats() + 6), t.f);

  // An int64 array as numpy writes it: converted to i32.
  std::string header =
      "{'descr': '<i8', 'fortran_order': False, 'shape': (3,), }";
  while ((10 + header.size() + 1) % 64)
    header += ' ';
  header += '\n';
  std::string bytes = std::string("\x93NUMPY\x01\x00", 8);
  bytes += static_cast<char>(header.size());
  bytes += '\0';
  bytes += header;
  for (int64_t v : {7, -1, 3})
    bytes.append(reinterpret_cast<const char *>(&v), 8);
  writeText(dir + "/b.npy", bytes);
  ASSERT_TRUE(readNpy(dir + "/b.npy", back, error)) << error;
  EXPECT_EQ(back.dtype, DType::I32);
  EXPECT_EQ(back.i, (std::vector<int32_t>{7, -1, 3}));
}

TEST(Npy, ReportsBadFiles) {
  std::string dir = tempDir();
  Tensor t;
  std::string error;
  writeText(dir + "/x.npy", "not numpy");
  EXPECT_FALSE(readNpy(dir + "/x.npy", t, error));
  EXPECT_NE(error.find("no .npy magic"), std::string::npos) << error;
  EXPECT_FALSE(readNpy(dir + "/missing.npy", t, error));
  EXPECT_NE(error.find("cannot open"), std::string::npos) << error;
  writeText(dir + "/empty.npy", "");
  EXPECT_FALSE(readNpy(dir + "/empty.npy", t, error));
  EXPECT_NE(error.find("no .npy magic"), std::string::npos) << error;
  // A directory (or a pipe, a device) is refused, never read forever.
  EXPECT_FALSE(readNpy(dir, t, error));
  EXPECT_NE(error.find("not a regular file"), std::string::npos) << error;
}

TEST(Csv, ReadsNamedColumns) {
  std::string dir = tempDir();
  writeText(dir + "/d.csv", "a,b,\"c\"\n1,2,3\n4, 5,6\n\n");
  Tensor t;
  std::string error;
  ASSERT_TRUE(readCsvColumns(dir + "/d.csv", {"c", "a"}, t, error)) << error;
  EXPECT_EQ(t.shape, (std::vector<int64_t>{2, 2}));
  EXPECT_EQ(t.f, (std::vector<float>{3, 1, 6, 4}));
  EXPECT_FALSE(readCsvColumns(dir + "/d.csv", {"z"}, t, error));
  EXPECT_NE(error.find("no column 'z'"), std::string::npos);
  writeText(dir + "/e.csv", "a\n1\nx\n");
  EXPECT_FALSE(readCsvColumns(dir + "/e.csv", {"a"}, t, error));
  EXPECT_NE(error.find("e.csv:3: 'x' in column 'a' is not a number"),
            std::string::npos)
      << error;
}

TEST(Idx, ReadsImagesAndLabels) {
  std::string dir = tempDir();
  std::string images("\0\0\x08\x03\0\0\0\x01\0\0\0\x02\0\0\0\x02", 16);
  images += std::string("\x00\xff\x80\x01", 4);
  writeText(dir + "/i.idx", images);
  Tensor t;
  std::string error;
  ASSERT_TRUE(readIdx(dir + "/i.idx", true, t, error)) << error;
  EXPECT_EQ(t.shape, (std::vector<int64_t>{1, 1, 2, 2}));
  EXPECT_FLOAT_EQ(t.f[1], 1.0f);
  std::string labels("\0\0\x08\x01\0\0\0\x03\x07\x00\x09", 11);
  writeText(dir + "/l.idx", labels);
  ASSERT_TRUE(readIdx(dir + "/l.idx", false, t, error)) << error;
  EXPECT_EQ(t.i, (std::vector<int32_t>{7, 0, 9}));
}

TEST(Safetensors, RoundTripIsAtomic) {
  std::string dir = tempDir();
  NamedTensors out;
  out.tensors["w"] = Tensor(DType::F32, {2, 2});
  out.tensors["w"].f = {1, 2, 3, 4};
  out.tensors["n"] = Tensor(DType::I32, {3});
  out.tensors["n"].i = {5, 6, 7};
  out.metadata["epoch"] = "3";
  std::string error;
  ASSERT_TRUE(writeSafetensors(dir + "/c.safetensors", out, error)) << error;
  NamedTensors in;
  ASSERT_TRUE(readSafetensors(dir + "/c.safetensors", in, error)) << error;
  EXPECT_EQ(in.tensors["w"].f, out.tensors["w"].f);
  EXPECT_EQ(in.tensors["n"].i, out.tensors["n"].i);
  EXPECT_EQ(in.metadata["epoch"], "3");
  // No temporary file stays behind.
  DIR *d = ::opendir(dir.c_str());
  int files = 0;
  while (dirent *e = ::readdir(d))
    files += e->d_name[0] != '.';
  ::closedir(d);
  EXPECT_EQ(files, 1);
  // A truncated file is rejected with a reason.
  writeText(dir + "/t.safetensors", std::string("\xff\0\0\0\0\0\0\0{}", 10));
  EXPECT_FALSE(readSafetensors(dir + "/t.safetensors", in, error));
  EXPECT_NE(error.find("header longer than the file"), std::string::npos);
}

TEST(Schedule, Values) {
  Schedule s;
  std::string error;
  Json config;
  ASSERT_TRUE(Json::parse(R"({"kind": "step", "every": 10, "gamma": 0.5})",
                          config, error));
  ASSERT_TRUE(Schedule::fromConfig(config, 1.0, 100, s, error)) << error;
  EXPECT_DOUBLE_EQ(s.at(0), 1.0);
  EXPECT_DOUBLE_EQ(s.at(9), 1.0);
  EXPECT_DOUBLE_EQ(s.at(10), 0.5);
  EXPECT_DOUBLE_EQ(s.at(25), 0.25);

  ASSERT_TRUE(
      Json::parse(R"({"kind": "exponential", "gamma": 0.9})", config, error));
  ASSERT_TRUE(Schedule::fromConfig(config, 2.0, 100, s, error));
  EXPECT_NEAR(s.at(3), 2.0 * 0.729, 1e-12);

  ASSERT_TRUE(Json::parse(R"({"kind": "cosine", "warmup": 10, "min_lr": 0.1})",
                          config, error));
  ASSERT_TRUE(Schedule::fromConfig(config, 1.0, 111, s, error));
  EXPECT_DOUBLE_EQ(s.at(0), 0.1);
  EXPECT_DOUBLE_EQ(s.at(9), 1.0);
  EXPECT_DOUBLE_EQ(s.at(10), 1.0);
  EXPECT_NEAR(s.at(60), 0.55, 1e-12); // halfway down the cosine
  EXPECT_NEAR(s.at(110), 0.1, 1e-12);

  ASSERT_TRUE(Schedule::fromConfig(Json(), 0.3, 10, s, error));
  EXPECT_DOUBLE_EQ(s.at(7), 0.3);

  ASSERT_TRUE(Json::parse(R"({"kind": "step", "every": 0})", config, error));
  EXPECT_FALSE(Schedule::fromConfig(config, 1.0, 10, s, error));
}

TEST(Model, ParsesDescriptorAndBindsMemrefs) {
  const char *descriptor = R"({"version": 1, "model": "m",
    "tasks": [{"name": "t", "weight": 0.5, "labels": "y"}, {"name": "u"}],
    "train": {"batch": 8},
    "entries": {"forward": {"args": [
        {"role": "input", "name": "x", "dtype": "f32", "shape": [-1, 3]},
        {"role": "label", "name": "y", "dtype": "i32", "shape": [-1]},
        {"role": "param", "name": "w", "dtype": "f32", "shape": [2, 3],
         "init": "uniform", "init_scale": 0.5}],
      "results": [{"role": "output", "name": "loss.t", "dtype": "f32",
                   "shape": []}]}}})";
  ModelSpec spec;
  std::string error;
  ASSERT_TRUE(ModelSpec::parse(descriptor, spec, error)) << error;
  EXPECT_EQ(spec.name, "m");
  EXPECT_EQ(spec.tasks[0].second, 0.5);
  EXPECT_EQ(spec.taskLabels.at("t"), "y");
  EXPECT_EQ(spec.taskLabels.count("u"), 0u);
  ASSERT_EQ(spec.params.size(), 1u);
  EXPECT_EQ(spec.params[0].initScale, 0.5);
  EXPECT_EQ(spec.inputs[0].withBatch(4), (std::vector<int64_t>{4, 3}));
  EXPECT_FALSE(spec.trainStep.present);

  EntryCall call(spec.forward);
  ASSERT_EQ(call.size(), 4u);
  float data[12];
  call.bind(0, data, {4, 3});
  struct Seen {
    int64_t words[7];
  } seen;
  static Seen *sink;
  sink = &seen;
  call.invoke([](void **args) {
    std::copy_n(static_cast<int64_t *>(args[0]), 7, sink->words);
  });
  EXPECT_EQ(reinterpret_cast<float *>(seen.words[1]), data);
  EXPECT_EQ(seen.words[2], 0); // offset
  EXPECT_EQ(seen.words[3], 4); // sizes
  EXPECT_EQ(seen.words[4], 3);
  EXPECT_EQ(seen.words[5], 3); // strides
  EXPECT_EQ(seen.words[6], 1);
}

TEST(Model, RejectsUnknownRolesAndAnUpdateWithoutOptimizerSettings) {
  ModelSpec spec;
  std::string error;
  EXPECT_FALSE(ModelSpec::parse(R"({"version": 1, "entries": {"forward": {
      "args": [{"role": "weight", "name": "w", "shape": [2]}]}}})",
                                spec, error));
  EXPECT_EQ(error, "a descriptor value has an unknown role 'weight'");
  ModelSpec noOptimizer;
  EXPECT_FALSE(ModelSpec::parse(R"({"version": 1, "entries": {"update": {
      "args": [], "results": []}}})",
                                noOptimizer, error));
  EXPECT_EQ(error, "the model descriptor lacks its optimizer settings");
  ModelSpec adam;
  ASSERT_TRUE(ModelSpec::parse(R"({"version": 1, "entries": {"update": {
      "args": [], "results": []}, "update_slice": {"args": [
        {"role": "param", "name": "slice", "shape": [1]}], "results": []}},
      "optimizer": {"kind": "adam", "lr": 0.001, "beta1": 0.8,
                    "beta2": 0.99}})",
                               adam, error))
      << error;
  EXPECT_EQ(adam.optimizer, "adam");
  EXPECT_DOUBLE_EQ(adam.beta1, 0.8);
  EXPECT_DOUBLE_EQ(adam.beta2, 0.99);
}

TEST(Model, ChecksTheSliceUpdateTheSquaresAndTheLrScales) {
  // update(w, grad w, lr) -> (w, grad_norm); its slice update; the
  // squares.
  auto descriptor = [](const std::string &slice, const std::string &squares,
                       const std::string &scales) {
    return R"({"version": 1, "entries": {"update": {"args": [
        {"role": "param", "name": "w", "shape": [3]},
        {"role": "grad", "name": "w", "shape": [3]},
        {"role": "hyper", "name": "lr", "shape": []}],
      "results": [{"role": "param", "name": "w", "shape": [3]},
                  {"role": "output", "name": "grad_norm", "shape": []}]},
      "update_slice": {"args": [)" +
           slice + R"(], "results": [
        {"role": "param", "name": "slice", "shape": [3]}]})" +
           squares + R"(}, "optimizer": {"kind": "sgd", "lr": 0.1,
      "beta1": 0.9, "beta2": 0.999)" +
           scales + "}}";
  };
  std::string slice = R"({"role": "param", "name": "slice", "shape": [3]},
      {"role": "grad", "name": "slice", "shape": [3]},
      {"role": "hyper", "name": "lr", "shape": []})";
  std::string squares = R"(, "grad_squares": {"args": [
      {"role": "grad", "name": "w", "shape": [3]}], "results": [
      {"role": "output", "name": "grad_squares", "shape": []}]})";
  std::string scales = R"(, "lr_scales": {"w": 10})";
  ModelSpec spec;
  std::string error;
  ASSERT_TRUE(
      ModelSpec::parse(descriptor(slice, squares, scales).c_str(), spec, error))
      << error;
  EXPECT_EQ(spec.updateSlice.args.size(), 3u);
  EXPECT_EQ(spec.gradSquares.args.size(), 1u);
  EXPECT_EQ(spec.lrScales, (std::map<std::string, double>{{"w", 10}}));
  // A slice of two dimensions, of 0 or 65,537 values, a gradient of
  // another size, a role a slice has no use for.
  for (const char *bad :
       {R"({"role": "param", "name": "slice", "shape": [3, 1]})",
        R"({"role": "param", "name": "slice", "shape": [0]})",
        R"({"role": "param", "name": "slice", "shape": [65537]})",
        R"({"role": "param", "name": "slice", "shape": [3]},
           {"role": "grad", "name": "slice", "shape": [2]})",
        R"({"role": "param", "name": "slice", "shape": [3]},
           {"role": "input", "name": "x", "shape": [3]})"}) {
    ModelSpec other;
    EXPECT_FALSE(
        ModelSpec::parse(descriptor(bad, squares, "").c_str(), other, error))
        << bad;
    EXPECT_EQ(error, "the model descriptor's update_slice is malformed");
  }
  // Clipping without the squares, or squares of other gradients.
  for (const char *bad : {"", R"(, "grad_squares": {"args": [
         {"role": "grad", "name": "v", "shape": [3]}], "results": [
         {"role": "output", "name": "grad_squares", "shape": []}]})"}) {
    ModelSpec other;
    EXPECT_FALSE(
        ModelSpec::parse(descriptor(slice, bad, "").c_str(), other, error));
    EXPECT_EQ(error,
              "the model descriptor's grad_squares does not match its update");
  }
  // A scale for a parameter the update does not train, or not a number.
  for (const char *bad :
       {R"(, "lr_scales": {"v": 2})", R"(, "lr_scales": {"w": "2"})"}) {
    ModelSpec other;
    EXPECT_FALSE(ModelSpec::parse(descriptor(slice, squares, bad).c_str(),
                                  other, error));
    EXPECT_NE(error.find("lr_scales"), std::string::npos) << error;
  }
}

TEST(Shards, SplitTheFlatParametersExactlyAndLayEachShareOutByRate) {
  using Piece = ShardPlan::Piece;
  using Chunk = ShardPlan::Chunk;
  auto same = [](const std::vector<Piece> &a, const std::vector<Piece> &b) {
    return std::equal(a.begin(), a.end(), b.begin(), b.end(),
                      [](const Piece &x, const Piece &y) {
                        return x.param == y.param && x.begin == y.begin &&
                               x.count == y.count && x.owner == y.owner &&
                               x.at == y.at;
                      });
  };
  auto chunks = [](const ShardPlan &p) {
    std::vector<std::vector<double>> out;
    for (const Chunk &c : p.chunks())
      out.push_back({double(c.at), double(c.count), c.scale});
    return out;
  };
  std::string error;
  // 12 values on 3 processes: 4 each; parameter 0 is cut between 0 and 1.
  ShardPlan three;
  ASSERT_TRUE(three.plan({5, 3, 4}, {1, 2, 1}, 3, 1, 2, error)) << error;
  EXPECT_EQ(three.counts(), (std::vector<int>{4, 4, 4}));
  EXPECT_TRUE(same(
      three.pieces(),
      {{0, 0, 4, 0, -1}, {0, 4, 1, 1, 0}, {1, 0, 3, 1, 1}, {2, 0, 4, 2, -1}}));
  EXPECT_EQ(three.owned(), 4);
  // Rate 1's run, then rate 2's in calls of at most 2 values.
  EXPECT_EQ(chunks(three), (std::vector<std::vector<double>>{
                               {0, 1, 1}, {1, 2, 2}, {3, 1, 2}}));
  EXPECT_EQ(three.offset(2), 8);
  // On 2 processes, process 1 meets rate 2 first: its run comes first.
  ShardPlan two;
  ASSERT_TRUE(two.plan({5, 3, 4}, {1, 2, 1}, 2, 1, 3, error)) << error;
  EXPECT_TRUE(same(
      two.pieces(),
      {{0, 0, 5, 0, -1}, {1, 0, 1, 0, -1}, {1, 1, 2, 1, 0}, {2, 0, 4, 1, 2}}));
  EXPECT_EQ(chunks(two), (std::vector<std::vector<double>>{
                             {0, 2, 2}, {2, 3, 1}, {5, 1, 1}}));
  // Uneven: 7 values on 3 processes are 3, 2, 2; fewer values than
  // processes leave some without any.
  ShardPlan uneven;
  ASSERT_TRUE(uneven.plan({7}, {1}, 3, 0, 8, error));
  EXPECT_EQ(uneven.counts(), (std::vector<int>{3, 2, 2}));
  ShardPlan few;
  ASSERT_TRUE(few.plan({1}, {1}, 3, 2, 8, error));
  EXPECT_EQ(few.counts(), (std::vector<int>{1, 0, 0}));
  EXPECT_EQ(few.pieces().size(), 1u);
  EXPECT_EQ(few.owned(), 0);
  EXPECT_TRUE(few.chunks().empty());
  // More than MPI counts per process.
  ShardPlan huge;
  EXPECT_FALSE(huge.plan({int64_t(5) << 31}, {1}, 2, 0, 8, error));
  EXPECT_NE(error.find("more than MPI counts"), std::string::npos) << error;
}

TEST(Model, PassesAnArenaSizedForTheBatch) {
  const char *descriptor = R"({"version": 1, "model": "m",
    "entries": {"forward": {"arena": {"bytes": 128, "bytes_per_sample": 64},
      "args": [{"role": "input", "name": "x", "dtype": "f32",
                "shape": [-1, 3]}],
      "results": [{"role": "output", "name": "loss.t", "dtype": "f32",
                   "shape": []}]}}})";
  ModelSpec spec;
  std::string error;
  ASSERT_TRUE(ModelSpec::parse(descriptor, spec, error)) << error;
  ASSERT_TRUE(spec.forward.hasArena);
  EXPECT_EQ(spec.forward.arenaSize(10), 128u + 640u);

  EntryCall call(spec.forward);
  ASSERT_EQ(call.size(), 2u); // the arena is not a value
  float x[30], loss;
  call.bind(0, x, {10, 3});
  call.bind(1, &loss, {});
  static int64_t arena[5];
  call.invoke([](void **args) {
    std::copy_n(static_cast<int64_t *>(args[2]), 5, arena);
  });
  EXPECT_NE(arena[1], 0);
  EXPECT_EQ(arena[1] % 64, 0); // aligned
  EXPECT_EQ(arena[3], 128 + 64 * 10);
  EXPECT_EQ(arena[4], 1);

  const char *bad = R"({"version": 1, "entries": {"forward": {
      "arena": {"bytes": -1}, "args": [], "results": []}}})";
  EXPECT_FALSE(ModelSpec::parse(bad, spec, error));
  EXPECT_NE(error.find("arena"), std::string::npos) << error;
}

TEST(Model, ChecksTheGradientsReportOrder) {
  // train_step(x) -> (loss, grad a, grad b): values 2 and 3.
  auto descriptor = [](const std::string &ready) {
    return R"({"version": 1, "entries": {"train_step": {"grad_ready": )" +
           ready + R"(,
      "args": [{"role": "input", "name": "x", "shape": [-1, 2]}],
      "results": [{"role": "output", "name": "loss.t", "shape": []},
                  {"role": "grad", "name": "a", "shape": [2]},
                  {"role": "grad", "name": "b", "shape": [3]}]}}})";
  };
  ModelSpec spec;
  std::string error;
  ASSERT_TRUE(ModelSpec::parse(descriptor("[3, 2]").c_str(), spec, error))
      << error;
  EXPECT_EQ(spec.trainStep.gradReady, (std::vector<int64_t>{3, 2}));
  // The loss, a value past the results, a repeat, one missing, no list.
  for (const char *bad : {"[1, 2, 3]", "[2, 4]", "[2, 2]", "[3]", "7"}) {
    ModelSpec other;
    EXPECT_FALSE(ModelSpec::parse(descriptor(bad).c_str(), other, error))
        << bad;
    EXPECT_NE(error.find("grad_ready"), std::string::npos) << error;
  }
}

/// A batch of `n` images [n, 2, 5, 7] with distinct positive values.
Tensor images(int64_t n) {
  Tensor t(DType::F32, {n, 2, 5, 7});
  for (int64_t k = 0; k < t.numel(); ++k)
    t.f[k] = static_cast<float>(k + 1);
  return t;
}

std::vector<Augmentation> parseOne(const std::string &item,
                                   std::string &error) {
  Json list;
  EXPECT_TRUE(Json::parse(("[" + item + "]").c_str(), list, error)) << error;
  ValueSpec image;
  image.name = "image";
  image.shape = {-1, 2, 5, 7};
  ValueSpec flat;
  flat.name = "flat";
  flat.shape = {-1, 4};
  std::vector<Augmentation> out;
  if (!parseAugmentations(list, {image, flat}, out, error))
    out.clear();
  return out;
}

/// `batch` after the one augmentation `item` (JSON), drawn from `seed`.
Tensor augmented(const std::string &item, Tensor batch, uint64_t seed) {
  std::string error;
  std::vector<Augmentation> parsed = parseOne(item, error);
  EXPECT_EQ(parsed.size(), 1u) << error;
  std::mt19937_64 rng(seed);
  if (parsed.size() == 1)
    augment(parsed[0], batch, batch.shape[0], rng);
  return batch;
}

TEST(Augment, FlipMirrorsAboutHalfTheImages) {
  Tensor original = images(64);
  Tensor t = augmented(R"({"kind": "flip", "input": "image"})", original, 3);
  int mirrored = 0;
  for (int64_t s = 0; s < 64; ++s) {
    bool same = true, mirror = true;
    for (int64_t p = 0; p < 10; ++p)
      for (int64_t j = 0; j < 7; ++j) {
        float got = t.f[s * 70 + p * 7 + j];
        same &= got == original.f[s * 70 + p * 7 + j];
        mirror &= got == original.f[s * 70 + p * 7 + (6 - j)];
      }
    EXPECT_TRUE(same || mirror) << "sample " << s;
    mirrored += mirror;
  }
  EXPECT_GT(mirrored, 16);
  EXPECT_LT(mirrored, 48);
}

TEST(Augment, CropShiftsWithinThePaddingAndFillsZeros) {
  Tensor original = images(40);
  Tensor t = augmented(R"({"kind": "random_crop", "input": "image", "pad": 2})",
                       original, 5);
  int shifted = 0;
  for (int64_t s = 0; s < 40; ++s) {
    // Exactly one shift within the padding explains the sample, the same
    // for both channels.
    int matches = 0;
    for (int64_t dy = -2; dy <= 2; ++dy)
      for (int64_t dx = -2; dx <= 2; ++dx) {
        bool ok = true;
        for (int64_t c = 0; c < 2; ++c)
          for (int64_t i = 0; i < 5; ++i)
            for (int64_t j = 0; j < 7; ++j) {
              int64_t si = i + dy, sj = j + dx;
              float want = si >= 0 && si < 5 && sj >= 0 && sj < 7
                               ? original.f[s * 70 + c * 35 + si * 7 + sj]
                               : 0.0f;
              ok &= t.f[s * 70 + c * 35 + i * 7 + j] == want;
            }
        if (ok) {
          ++matches;
          shifted += dy != 0 || dx != 0;
        }
      }
    EXPECT_EQ(matches, 1) << "sample " << s;
  }
  EXPECT_GT(shifted, 30);
}

TEST(Augment, NoiseHasTheRequestedSpread) {
  Tensor t = augmented(R"({"kind": "noise", "input": "flat", "std": 0.5})",
                       Tensor(DType::F32, {5000, 4}), 7);
  double sum = 0, squares = 0;
  for (float v : t.f) {
    sum += v;
    squares += v * v;
  }
  double mean = sum / t.numel();
  EXPECT_NEAR(mean, 0.0, 0.02);
  EXPECT_NEAR(std::sqrt(squares / t.numel() - mean * mean), 0.5, 0.02);
}

TEST(Augment, RejectsInputsThatAreNotImages) {
  std::string error;
  EXPECT_TRUE(parseOne(R"({"kind": "flip", "input": "flat"})", error).empty());
  EXPECT_NE(error.find("needs an image"), std::string::npos) << error;
  EXPECT_TRUE(parseOne(R"({"kind": "noise", "input": "nope", "std": 1})", error)
                  .empty());
  EXPECT_NE(error.find("not an f32 input"), std::string::npos) << error;
}

} // namespace

TEST(BackgroundJob, RunsOneJobAtATimeAndRethrows) {
  std::vector<int> seen; // before the job: it outlives the job in flight
  BackgroundJob job;
  for (int k = 0; k < 100; ++k)
    job.start([&seen, k] { seen.push_back(k); });
  job.wait();
  ASSERT_EQ(seen.size(), 100u);
  for (int k = 0; k < 100; ++k)
    EXPECT_EQ(seen[k], k);
  job.start([] { throw std::runtime_error("from the job"); });
  EXPECT_THROW(job.wait(), std::runtime_error);
  job.wait(); // the exception is reported once
  job.start([&seen] { seen.push_back(-1); });
  // Destroyed with a job in flight: it finishes first.
}

TEST(Report, CurvesRoundTripAndEscape) {
  Report r;
  EXPECT_TRUE(r.empty());
  std::string blank = r.svg("empty", "epoch");
  EXPECT_NE(blank.find("<svg"), std::string::npos);
  EXPECT_EQ(blank.find("<polyline"), std::string::npos);
  r.add(1, "a<b", "loss", "train", 2.0);
  r.add(2, "a<b", "loss", "train", 1.0);
  r.add(1, "a<b", "loss", "val", NAN); // left out
  r.add(2, "a<b", "loss", "val", 1.5);
  r.add(1, "a<b", "accuracy", "train", 0.5);
  std::string svg = r.svg("t&t", "epoch");
  EXPECT_NE(svg.find("a&lt;b: loss"), std::string::npos);
  EXPECT_NE(svg.find("t&amp;t"), std::string::npos);
  EXPECT_EQ(svg.find("a<b"), std::string::npos);
  size_t lines = 0;
  for (size_t p = svg.find("<polyline"); p != std::string::npos;
       p = svg.find("<polyline", p + 1))
    ++lines;
  EXPECT_EQ(lines, 3u); // loss train and val, accuracy train

  Report back;
  ASSERT_TRUE(back.fromText(r.toText()));
  EXPECT_EQ(back.toText(), r.toText());
  EXPECT_EQ(back.svg("t&t", "epoch"), svg);
  for (const char *bad : {"", "{}", "[[1, \"a\", \"b\", \"c\"]]",
                          "[[1, 2, \"b\", \"c\", 3]]", "[1]"})
    EXPECT_FALSE(back.fromText(bad)) << bad;
  EXPECT_EQ(back.toText(), r.toText()); // a failed read changes nothing
}

TEST(Crc32, CheckValueAndChaining) {
  // The CRC-32 catalogue's check value: the CRC of "123456789".
  EXPECT_EQ(crc32("123456789", 9), 0xCBF43926u);
  EXPECT_EQ(crc32("", 0), 0u);
  // Every split of a buffer into two calls gives the whole buffer's CRC
  // (the eight-byte rounds and the byte tail meet at any offset).
  std::string text;
  for (int k = 0; k < 100; ++k)
    text += static_cast<char>(k * 37 + 11);
  uint32_t whole = crc32(text.data(), text.size());
  for (size_t cut = 0; cut <= text.size(); ++cut)
    EXPECT_EQ(
        crc32(text.data() + cut, text.size() - cut, crc32(text.data(), cut)),
        whole)
        << cut;
}

namespace {

/// `parts` vectors of `count` floats spread over many magnitudes, so that
/// the order of a sum changes its last bits.
std::vector<std::vector<float>> spreadVectors(size_t parts, size_t count) {
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> mantissa(-1, 1);
  std::uniform_int_distribution<int> exponent(-12, 12);
  std::vector<std::vector<float>> v(parts, std::vector<float>(count));
  for (auto &p : v)
    for (float &x : p)
      x = std::ldexp(mantissa(rng), exponent(rng));
  return v;
}

std::vector<float *> pointers(std::vector<std::vector<float>> &v) {
  std::vector<float *> p;
  for (auto &x : v)
    p.push_back(x.data());
  return p;
}

bool sameBits(const std::vector<float> &a, const std::vector<float> &b) {
  return a.size() == b.size() &&
         std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

} // namespace

TEST(Comm, AddInTreeGivesTheSameBitsBlockByBlock) {
  const size_t count = 4096;
  for (size_t n : {2u, 4u, 6u, 8u, 12u}) {
    auto whole = spreadVectors(n, count);
    auto p = pointers(whole);
    comm::addInTree(p.data(), n, count);
    // Blocks of k parts added first, then the blocks' sums (k processes'
    // replicas, then the processes): the same bits when k is a power of
    // two that divides n.
    for (size_t k = 1; k <= n; k *= 2) {
      if (n % k)
        continue;
      auto parts = spreadVectors(n, count);
      std::vector<float *> blocks;
      for (size_t b = 0; b < n; b += k) {
        auto q = pointers(parts);
        comm::addInTree(q.data() + b, k, count);
        blocks.push_back(parts[b].data());
      }
      comm::addInTree(blocks.data(), blocks.size(), count);
      EXPECT_TRUE(sameBits(parts[0], whole[0]))
          << n << " parts, blocks of " << k;
    }
    // Added one after another instead (from three parts on), some sums
    // differ: the order counts.
    if (n < 3)
      continue;
    auto again = spreadVectors(n, count);
    for (size_t j = 1; j < n; ++j)
      for (size_t i = 0; i < count; ++i)
        again[0][i] += again[j][i];
    EXPECT_FALSE(sameBits(again[0], whole[0])) << n;
  }
  // Five parts: ((p0 + p1) + (p2 + p3)) + p4.
  float a[] = {1e8f}, b[] = {1}, c[] = {-1e8f}, d[] = {1}, e[] = {0.5f};
  float *five[] = {a, b, c, d, e};
  comm::addInTree(five, 5, 1);
  EXPECT_EQ(a[0], ((1e8f + 1.0f) + (-1e8f + 1.0f)) + 0.5f);
}

TEST(Replicas, SumInStepAddsEveryReplicaInTheTree) {
  // Four replicas, each on a thread of its own: each sums its vector twice
  // inside the "step"; all get the tree's sums.
  const size_t count = 1000;
  replicas::start(4, 1);
  ASSERT_TRUE(replicas::on());
  auto data = spreadVectors(4, count);
  auto expected = data;
  auto p = pointers(expected);
  comm::addInTree(p.data(), 4, count);
  std::vector<float> twice(expected[0]);
  for (size_t i = 0; i < count; ++i)
    twice[i] *= 4;
  std::vector<int> ran(4, 0);
  replicas::run([&](int j) {
    replicas::sumInStep(data[j].data(), count);
    ran[j] = sameBits(data[j], expected[0]);
    replicas::sumInStep(data[j].data(), count);
  });
  for (int j = 0; j < 4; ++j) {
    EXPECT_EQ(ran[j], 1) << j;
    // The second sum adds four equal vectors: four times the first sums.
    EXPECT_TRUE(sameBits(data[j], twice)) << j;
  }
}

TEST(Buckets, StartEachBucketWithItsLastReportAndPutTheSumsBack) {
  // Gradients of 100, 100, 300 and 50 floats, reported in this order, in
  // buckets of at most 800 bytes: {0, 1}, {2} (larger alone), {3}.
  std::vector<std::vector<float>> g = {
      std::vector<float>(100, 1.0f), std::vector<float>(100, 2.0f),
      std::vector<float>(300, 3.0f), std::vector<float>(50, 4.0f)};
  std::vector<GradBuckets::Grad> order;
  for (size_t k = 0; k < g.size(); ++k)
    order.push_back({static_cast<int64_t>(10 + k), g[k].data(), g[k].size()});
  GradBuckets buckets;
  buckets.plan(order, 800);
  EXPECT_EQ(buckets.buckets(), 3u);
  EXPECT_EQ(buckets.bytes(), 550u * 4);

  // One process: each sum is its own gradients, copied out and back.
  buckets.arm(false, "the gradients");
  mass_grad_ready(11); // half of the first bucket: nothing starts
  EXPECT_EQ(buckets.startedDuringSteps(), 0u);
  mass_grad_ready(10);
  EXPECT_EQ(buckets.startedDuringSteps(), 1u);
  mass_grad_ready(12);
  EXPECT_EQ(buckets.startedDuringSteps(), 2u);
  g[2][7] = 9.0f; // written after its report: the sum keeps the report's
  std::string error;
  ASSERT_TRUE(buckets.finish(error)) << error; // the last starts here
  EXPECT_EQ(buckets.startedDuringSteps(), 2u);
  EXPECT_EQ(g[0][99], 1.0f);
  EXPECT_EQ(g[1][0], 2.0f);
  EXPECT_EQ(g[2][7], 3.0f);
  EXPECT_EQ(g[3][49], 4.0f);
  // Disarmed: a report outside a step does nothing.
  mass_grad_ready(10);
  EXPECT_EQ(buckets.startedDuringSteps(), 2u);

  // A rank with no rows adds zeros, whether the step reports or not.
  buckets.arm(true, "the gradients");
  mass_grad_ready(10);
  mass_grad_ready(11);
  ASSERT_TRUE(buckets.finish(error)) << error;
  for (const auto &v : g)
    EXPECT_EQ(*std::max_element(v.begin(), v.end()), 0.0f);
}
