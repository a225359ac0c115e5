//===- main.cpp - The command line of a training program ------------------===//
//
// One table of flags drives both parsing and --help: a flag is written once.
//
//===----------------------------------------------------------------------===//

#include "Comm.h"
#include "Train.h"

#include "mass/nearest.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

using mass::rt::Options;

namespace {

/// Applies a flag's value to the options; returns what is wrong with the
/// value, or "" when it is good.
using Setter = std::string (*)(Options &, const char *value);

struct Flag {
  const char *name;
  const char *value; // what the value is called in --help; null: a switch
  const char *help;  // lines after the first start with '\n'
  Setter set;
};

bool parseInt(const char *text, int64_t &out) {
  char *end = nullptr;
  errno = 0;
  long long v = std::strtoll(text, &end, 10);
  if (end == text || *end || errno == ERANGE)
    return false;
  out = v;
  return true;
}

template <std::string Options::*Field>
std::string text(Options &o, const char *value) {
  o.*Field = value;
  return "";
}

/// The most rows a step may take and the most worker threads: beyond them
/// the buffers or the thread stacks could not be allocated anyway, and the
/// message here is clearer than an allocation failure.
constexpr int64_t kMaxBatch = int64_t(1) << 24;
constexpr int64_t kMaxThreads = 1024;
constexpr int64_t kMaxCount = INT64_MAX / 2;

template <int64_t Options::*Field, int64_t Min, int64_t Max = kMaxCount>
std::string integer(Options &o, const char *value) {
  if (!parseInt(value, o.*Field) || o.*Field < Min || o.*Field > Max)
    return Max == kMaxCount ? "expects an integer >= " + std::to_string(Min)
                            : "expects an integer in [" + std::to_string(Min) +
                                  ", " + std::to_string(Max) + "]";
  return "";
}

template <bool Options::*Field> std::string on(Options &o, const char *) {
  o.*Field = true;
  return "";
}

template <int Mode> std::string setPrefetch(Options &o, const char *) {
  o.prefetch = Mode;
  return "";
}

std::string positiveNumber(Options &o, const char *value) {
  char *end = nullptr;
  o.lr = std::strtod(value, &end);
  if (end == value || *end || !(o.lr > 0) || o.lr == HUGE_VAL)
    return "expects a positive number";
  return "";
}

std::string temperature(Options &o, const char *value) {
  char *end = nullptr;
  o.temperature = std::strtod(value, &end);
  if (end == value || *end || !(o.temperature >= 0) ||
      o.temperature == HUGE_VAL)
    return "expects a number >= 0";
  return "";
}

std::string commTimeout(Options &o, const char *value) {
  char *end = nullptr;
  o.commTimeout = std::strtod(value, &end);
  if (end == value || *end || !(o.commTimeout > 0) || o.commTimeout > 1e6)
    return "expects seconds in (0, 1e6]";
  return "";
}

std::string bucketMb(Options &o, const char *value) {
  char *end = nullptr;
  o.bucketMb = std::strtod(value, &end);
  if (end == value || *end || !(o.bucketMb >= 0) || o.bucketMb > 1e6)
    return "expects MiB in [0, 1e6]";
  return "";
}

std::string shard(Options &o, const char *value) {
  const char *slash = std::strchr(value, '/');
  if (!slash || !parseInt(std::string(value, slash).c_str(), o.shard) ||
      !parseInt(slash + 1, o.shards) || o.shards < 1 || o.shard < 0 ||
      o.shard >= o.shards)
    return "expects K/N with 0 <= K < N";
  return "";
}

std::string benchmarkForward(Options &o, const char *value) {
  o.benchmarkForwardOnly = true;
  return integer<&Options::benchmark, 1>(o, value);
}

const Flag kFlags[] = {
    {"--train", "DATA",
     "training data (a directory of .npy files, or a CSV file)",
     text<&Options::train>},
    {"--val", "DATA", "validation data", text<&Options::val>},
    {"--epochs", "N", "passes over the training data",
     integer<&Options::epochs, 1>},
    {"--steps", "N",
     "train for N optimizer steps (the schedule spans\nthem; epochs no longer "
     "count)",
     integer<&Options::steps, 1>},
    {"--val-every", "N", "validate (and log) every N steps, not each epoch",
     integer<&Options::valEvery, 1>},
    {"--batch", "N", "rows per step", integer<&Options::batch, 1, kMaxBatch>},
    {"--lr", "X", "the optimizer's learning rate", positiveNumber},
    {"--seed", "N", "initialisation, shuffling, augmentation and dropout",
     integer<&Options::seed, 0>},
    {"--threads", "N", "worker threads (default: one per core)",
     integer<&Options::threads, 1, kMaxThreads>},
    {"--prefetch", nullptr,
     "draw (gather, augment) the next batch on a\nsecond thread while a "
     "step runs (default: when\n--threads leaves a core free)",
     setPrefetch<1>},
    {"--no-prefetch", nullptr, "draw each batch on the training thread",
     setPrefetch<-1>},
    {"--log", "FILE.jsonl", "append one JSON object per event",
     text<&Options::log>},
    {"--report", "FILE.svg",
     "draw the loss and metric curves of each task,\ntrain and validation, "
     "after every round",
     text<&Options::report>},
    {"--checkpoint-dir", "DIR",
     "where best/last checkpoints go (default checkpoints)",
     text<&Options::checkpointDir>},
    {"--resume", "DIR", "continue from DIR/last.state.safetensors",
     text<&Options::resume>},
    {"--init", "FILE", "start from these parameters (safetensors)",
     text<&Options::init>},
    {"--eval-only", nullptr, "evaluate on the validation data and exit",
     on<&Options::evalOnly>},
    {"--allow-nonfinite", nullptr,
     "accept NaN and Inf in the data (refused by\ndefault when the data is "
     "opened)",
     on<&Options::allowNonfinite>},
    {"--skip-nonfinite", nullptr,
     "skip a step whose loss or gradient is NaN or\nInf (counted in the log) "
     "instead of stopping",
     on<&Options::skipNonfinite>},
    {"--ensemble", "A,B,...",
     "evaluate the average of these checkpoints'\npredictions on the "
     "validation data",
     text<&Options::ensemble>},
    {"--data-shard", "K/N", "train on rows r with r % N == K", shard},
    {"--shard-optimizer", nullptr,
     "under mpirun: each process holds the optimizer\nstate of its share "
     "of the parameters alone\n(ZeRO stage 1)",
     on<&Options::shardOptimizer>},
    {"--replicas", "R",
     "split each batch into R fixed parts whose sums\nadd in one order: "
     "N processes (N divides R,\nR / N a power of two) train bit-identically "
     "to one",
     integer<&Options::replicas, 1, 4096>},
    {"--bucket-mb", "MIB",
     "under mpirun: sum the gradients in buckets of\nthis size, each started "
     "as the backward pass\nfinishes it (default 25; 0: after the step)",
     bucketMb},
    {"--comm-timeout", "SECONDS",
     "under mpirun: how long a rank waits for the\nothers before it ends the "
     "job (default 120)",
     commTimeout},
    {"--generate", "N",
     "sample N tokens after --prompt from the --init\nweights "
     "(a model of token sequences), then exit",
     integer<&Options::generate, 1>},
    {"--prompt", "TEXT", "with --generate: the text (bytes) to continue",
     text<&Options::prompt>},
    {"--temperature", "X",
     "with --generate: divides the logits (default 1;\n0 takes the most "
     "likely token)",
     temperature},
    {"--top-k", "K", "with --generate: sample among the K likeliest",
     integer<&Options::topK, 1>},
    {"--dump-params", nullptr, "print parameter names, shapes and counts",
     on<&Options::dumpParams>},
    {"--benchmark", "N",
     "time N training steps and N forward passes on\nthe first batch (after "
     "3 warm-up runs), print JSON",
     integer<&Options::benchmark, 1>},
    {"--benchmark-forward", "N", "the same for forward passes only",
     benchmarkForward},
    {"--dump-grads", "FILE",
     "one forward and backward pass on the first batch,\ngradients and "
     "losses written as safetensors\n(batch norm in training mode, dropout "
     "off)",
     text<&Options::dumpGrads>},
    {"--dropout-seed", "N", "with --dump-grads: dropout on, drawn from N",
     integer<&Options::dropoutSeed, 0>},
    {"--dump-predictions", "FILE",
     "the predictions (logits, values) on the\nvalidation data in evaluation "
     "mode, as\nsafetensors pred.K [rows, ...]",
     text<&Options::dumpPredictions>},
};

void printUsage(const char *program) {
  std::printf("usage: %s [options]\n"
              "Trains the model compiled into this program; options override "
              "its train block.\n",
              program);
  for (const Flag &flag : kFlags) {
    std::string head = std::string(flag.name) +
                       (flag.value ? std::string(" ") + flag.value : "");
    std::string help = flag.help;
    for (size_t line = 0, next; line <= help.size(); line = next + 1) {
      next = help.find('\n', line);
      if (next == std::string::npos)
        next = help.size();
      std::printf("  %-26s %s\n", line == 0 ? head.c_str() : "",
                  help.substr(line, next - line).c_str());
    }
  }
  std::printf("  %-26s %s\n", "--help", "this text");
}

} // namespace

int main(int argc, char **argv) {
  Options o;
  for (int k = 1; k < argc; ++k) {
    std::string name = argv[k];
    if (name == "--help" || name == "-h") {
      printUsage(argv[0]);
      return 0;
    }
    const Flag *flag = nullptr;
    for (const Flag &f : kFlags)
      if (name == f.name)
        flag = &f;
    if (!flag) {
      // "--epochs=3" is "--epochs 3"; a near miss gets the nearest flag.
      std::string_view given = name;
      std::string_view written = given.substr(0, given.find('='));
      std::vector<std::string_view> names;
      for (const Flag &f : kFlags)
        names.push_back(f.name);
      names.push_back("--help");
      std::string hint;
      if (written.size() < given.size() &&
          std::find(names.begin(), names.end(), written) != names.end())
        hint = "; write '" + std::string(written) + " " +
               std::string(given.substr(written.size() + 1)) + "'";
      else if (std::string_view best = mass::nearestName(written, names);
               !best.empty())
        hint = "; did you mean '" + std::string(best) + "'?";
      std::fprintf(stderr, "error: unknown option '%s'%s (see --help)\n",
                   name.c_str(), hint.c_str());
      return 2;
    }
    const char *value = "";
    if (flag->value) {
      if (k + 1 >= argc) {
        std::fprintf(stderr, "error: %s needs a value\n", flag->name);
        return 2;
      }
      value = argv[++k];
    }
    std::string problem = flag->set(o, value);
    if (!problem.empty()) {
      std::fprintf(stderr, "error: %s %s, got '%s'\n", flag->name,
                   problem.c_str(), value);
      return 2;
    }
  }
  // Buffers are allocated up front from sizes the model and the data give;
  // a size this machine cannot hold is an error, not an abort.
  int status = 1;
  try {
    status = mass::rt::run(o);
  } catch (const std::bad_alloc &) {
    std::fprintf(stderr, "error: out of memory: the model's buffers for a "
                         "batch do not fit (try a smaller --batch)\n");
  } catch (const std::length_error &) {
    std::fprintf(stderr, "error: out of memory: a buffer's size is beyond "
                         "what this machine can allocate\n");
  }
  // Under mpirun, a rank that fails ends the job: the others would wait
  // for it at their next collective.
  if (status != 0)
    mass::rt::comm::abort(status);
  mass::rt::comm::finish();
  return status;
}
