//===- main.cpp - The command line of a training program
//-------------------===//

#include "Train.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

using mass::rt::Options;

static const char *usage =
    "usage: %s [options]\n"
    "Trains the model compiled into this program; options override its train "
    "block.\n"
    "  --train DATA             training data (a directory of .npy files, or "
    "a CSV file)\n"
    "  --val DATA               validation data\n"
    "  --epochs N  --batch N  --lr X  --seed N\n"
    "  --threads N              worker threads (default: one per core)\n"
    "  --log FILE.jsonl         append one JSON object per event\n"
    "  --checkpoint-dir DIR     where best/last checkpoints go (default "
    "checkpoints)\n"
    "  --resume DIR             continue from DIR/last.safetensors and "
    "last.state.safetensors\n"
    "  --init FILE.safetensors  start from these parameters\n"
    "  --eval-only              evaluate on the validation data and exit\n"
    "  --ensemble A,B,...       evaluate the average of these checkpoints'\n"
    "                           predictions on the validation data\n"
    "  --data-shard K/N         train on rows r with r %% N == K\n"
    "  --dump-params            print parameter names, shapes and counts\n"
    "  --benchmark N            time N training steps and N forward passes on\n"
    "                           the first batch (after 3 warm-up runs), print "
    "JSON\n"
    "  --benchmark-forward N    the same for forward passes only\n"
    "  --dump-grads FILE        one forward and backward pass on the first "
    "batch,\n"
    "                           gradients and losses written as safetensors\n"
    "                           (batch norm in training mode, dropout off)\n"
    "  --dropout-seed N         with --dump-grads: dropout on, drawn from N\n"
    "  --dump-predictions FILE  the predictions (logits, values) on the\n"
    "                           validation data in evaluation mode, as\n"
    "                           safetensors pred.K [rows, ...]\n"
    "  --help\n";

static bool parseInt(const char *text, int64_t &out) {
  char *end = nullptr;
  long long v = std::strtoll(text, &end, 10);
  if (end == text || *end)
    return false;
  out = v;
  return true;
}

int main(int argc, char **argv) {
  Options o;
  for (int k = 1; k < argc; ++k) {
    std::string flag = argv[k];
    auto value = [&]() -> const char * {
      if (k + 1 >= argc) {
        std::fprintf(stderr, "error: %s needs a value\n", flag.c_str());
        std::exit(2);
      }
      return argv[++k];
    };
    auto integer = [&](int64_t &out, int64_t min) {
      const char *v = value();
      if (!parseInt(v, out) || out < min) {
        std::fprintf(stderr, "error: %s expects an integer >= %lld, got '%s'\n",
                     flag.c_str(), static_cast<long long>(min), v);
        std::exit(2);
      }
    };
    if (flag == "--help" || flag == "-h") {
      std::printf(usage, argv[0]);
      return 0;
    } else if (flag == "--train") {
      o.train = value();
    } else if (flag == "--val") {
      o.val = value();
    } else if (flag == "--epochs") {
      integer(o.epochs, 1);
    } else if (flag == "--batch") {
      integer(o.batch, 1);
    } else if (flag == "--seed") {
      integer(o.seed, 0);
    } else if (flag == "--threads") {
      integer(o.threads, 1);
    } else if (flag == "--lr") {
      const char *v = value();
      char *end = nullptr;
      o.lr = std::strtod(v, &end);
      if (end == v || *end || !(o.lr > 0)) {
        std::fprintf(stderr,
                     "error: --lr expects a positive number, got '%s'\n", v);
        return 2;
      }
    } else if (flag == "--log") {
      o.log = value();
    } else if (flag == "--checkpoint-dir") {
      o.checkpointDir = value();
    } else if (flag == "--resume") {
      o.resume = value();
    } else if (flag == "--init") {
      o.init = value();
    } else if (flag == "--eval-only") {
      o.evalOnly = true;
    } else if (flag == "--ensemble") {
      o.ensemble = value();
    } else if (flag == "--data-shard") {
      const char *v = value();
      const char *slash = std::strchr(v, '/');
      if (!slash || !parseInt(std::string(v, slash).c_str(), o.shard) ||
          !parseInt(slash + 1, o.shards) || o.shards < 1 || o.shard < 0 ||
          o.shard >= o.shards) {
        std::fprintf(stderr,
                     "error: --data-shard expects K/N with 0 <= K < N, "
                     "got '%s'\n",
                     v);
        return 2;
      }
    } else if (flag == "--benchmark") {
      integer(o.benchmark, 1);
    } else if (flag == "--benchmark-forward") {
      integer(o.benchmark, 1);
      o.benchmarkForwardOnly = true;
    } else if (flag == "--dump-params") {
      o.dumpParams = true;
    } else if (flag == "--dump-grads") {
      o.dumpGrads = value();
    } else if (flag == "--dropout-seed") {
      integer(o.dropoutSeed, 0);
    } else if (flag == "--dump-predictions") {
      o.dumpPredictions = value();
    } else {
      std::fprintf(stderr, "error: unknown option '%s' (see --help)\n",
                   flag.c_str());
      return 2;
    }
  }
  return mass::rt::run(o);
}
