//===- vocabulary.h - The words massc and the runtime share -----*- C++ -*-===//
//
// The contract of abi.h spelled once: the roles of entry-point values, the
// entry points, the update's hyperparameters, the outputs' names and the
// descriptor's optimizer keys. massc writes these words (as IR attributes
// `mass.ROLE = NAME` and into the descriptor); the runtime reads them into
// enums. Both include this header, so neither side can drift from the other.
//
//===----------------------------------------------------------------------===//
#ifndef MASS_VOCABULARY_H
#define MASS_VOCABULARY_H

#include <cstdint>
#include <string_view>

namespace mass::abi {

/// What an argument or result of an entry point is.
enum class Role {
  Input,      // a data input ([B, ...])
  Label,      // a label ([B, ...])
  Param,      // a trained parameter (and update's new value of it)
  Buffer,     // state training updates outside the optimizer (batch norm)
  TaskWeight, // train_step: one task's weight, zero when it sits out
  Seed,       // train_step: dropout's seed, negative for no dropout
  Output,     // a scalar: loss.T, labelled.T, metric.T.M.sum/count, grad_norm
  Grad,       // train_step's gradient of a parameter; update's argument
  State,      // update: an optimizer state (momentum, Adam's moments)
  Hyper,      // update: a hyperparameter the runtime sets each step
  Pred,       // predict's results and score's last arguments: pred.K
};

struct RoleWord {
  Role role;
  std::string_view word; // in the descriptor
  std::string_view attr; // the IR attribute, "mass." + word
};

inline constexpr RoleWord kRoleWords[] = {
    {Role::Input, "input", "mass.input"},
    {Role::Label, "label", "mass.label"},
    {Role::Param, "param", "mass.param"},
    {Role::Buffer, "buffer", "mass.buffer"},
    {Role::TaskWeight, "task_weight", "mass.task_weight"},
    {Role::Seed, "seed", "mass.seed"},
    {Role::Output, "output", "mass.output"},
    {Role::Grad, "grad", "mass.grad"},
    {Role::State, "state", "mass.state"},
    {Role::Hyper, "hyper", "mass.hyper"},
    {Role::Pred, "pred", "mass.pred"},
};

/// The IR attribute that gives a value of `role` its name: "mass.param".
constexpr std::string_view attr(Role role) {
  for (const RoleWord &w : kRoleWords)
    if (w.role == role)
      return w.attr;
  return {};
}

/// The role whose `field` (RoleWord::word or RoleWord::attr) is `text`;
/// false for none.
constexpr bool roleOf(std::string_view RoleWord::*field, std::string_view text,
                      Role &out) {
  for (const RoleWord &w : kRoleWords)
    if (w.*field == text) {
      out = w.role;
      return true;
    }
  return false;
}

/// The role a descriptor word names; false for none.
constexpr bool roleOfWord(std::string_view word, Role &out) {
  return roleOf(&RoleWord::word, word, out);
}

/// The entry points, as functions of the module and keys of the
/// descriptor's "entries" (the symbols are mass_ + the name).
inline constexpr std::string_view kForward = "forward";
inline constexpr std::string_view kTrainStep = "train_step";
inline constexpr std::string_view kUpdate = "update";
inline constexpr std::string_view kPredict = "predict";
inline constexpr std::string_view kScore = "score";
/// The update of one flat slice of kSliceValues values (or of all the
/// trained values, when fewer), as one parameter named kSliceName: the
/// runtime's sharded optimizer updates its share in such calls.
inline constexpr std::string_view kUpdateSlice = "update_slice";
/// With clipping: the squares of all the gradients, as update adds them.
inline constexpr std::string_view kGradSquaresEntry = "grad_squares";
inline constexpr std::string_view kEntries[] = {
    kForward,          kTrainStep, kUpdate, kUpdateSlice,
    kGradSquaresEntry, kPredict,   kScore};
inline constexpr int64_t kSliceValues = 65536;
inline constexpr std::string_view kSliceName = "slice";

/// update's hyperparameters (role Hyper), set by the runtime each step.
inline constexpr std::string_view kLr = "lr";
inline constexpr std::string_view kBiasCorrection1 = "bias_correction1";
inline constexpr std::string_view kBiasCorrection2 = "bias_correction2";
/// With clipping, update_slice's: the squares of all the gradients, on
/// every process, for the global norm (update adds its own).
inline constexpr std::string_view kGradSquares = "grad_squares";

/// Output names (role Output): "loss." TASK, "labelled." TASK (the rows a
/// cross-entropy averaged over), "metric." TASK "." METRIC ".sum"/".count".
inline constexpr std::string_view kLossPrefix = "loss.";
inline constexpr std::string_view kLabelledPrefix = "labelled.";
inline constexpr std::string_view kMetricPrefix = "metric.";
inline constexpr std::string_view kGradNorm = "grad_norm";

/// The descriptor's "optimizer": the optimizer's settings as massc resolved
/// them (its defaults applied), so that the runtime's bias corrections and
/// learning rate agree with the compiled update.
inline constexpr std::string_view kOptimizer = "optimizer";
inline constexpr std::string_view kOptimizerAttr = "mass.optimizer"; // module
inline constexpr std::string_view kOptimizerKind = "kind";
inline constexpr std::string_view kOptimizerLr = "lr";
inline constexpr std::string_view kOptimizerBeta1 = "beta1";
inline constexpr std::string_view kOptimizerBeta2 = "beta2";
/// {parameter: factor} for the parameters whose learning rate lr_scale
/// scales (absent when none is): update_slice takes the scaled rate.
inline constexpr std::string_view kOptimizerLrScales = "lr_scales";

/// The keys of the descriptor (abi.h describes its layout).
namespace key {
inline constexpr const char kVersion[] = "version";
inline constexpr const char kModel[] = "model";
inline constexpr const char kTasks[] = "tasks";
inline constexpr const char kName[] = "name";
inline constexpr const char kWeight[] = "weight";
/// A task's label input whose -1 entries its cross-entropy skips.
inline constexpr const char kLabels[] = "labels";
inline constexpr const char kTrain[] = "train";
inline constexpr const char kEntries[] = "entries";
inline constexpr const char kArgs[] = "args";
inline constexpr const char kResults[] = "results";
inline constexpr const char kRole[] = "role";
inline constexpr const char kDtype[] = "dtype";
inline constexpr const char kShape[] = "shape";
inline constexpr const char kInit[] = "init";
inline constexpr const char kInitScale[] = "init_scale";
inline constexpr const char kKind[] = "kind";
/// An input of ids (embedding's): each must lie in [0, id_bound).
inline constexpr const char kIdBound[] = "id_bound";
/// An f32 label whose loss takes targets in [target_min, target_max] (bce's
/// probabilities in [0, 1]).
inline constexpr const char kTargetMin[] = "target_min";
inline constexpr const char kTargetMax[] = "target_max";
inline constexpr const char kArena[] = "arena";
inline constexpr const char kBytes[] = "bytes";
inline constexpr const char kBytesPerSample[] = "bytes_per_sample";
inline constexpr const char kInPlace[] = "in_place";
/// The gradients' value indices in the order the entry calls
/// mass_grad_ready(value) on them, each once it is final.
inline constexpr const char kGradReady[] = "grad_ready";
/// "cuda" when the entry points run on an NVIDIA GPU (their buffers are
/// device memory); absent for the CPU.
inline constexpr const char kTarget[] = "target";
} // namespace key

inline constexpr std::string_view kTargetCuda = "cuda";

} // namespace mass::abi

#endif // MASS_VOCABULARY_H
