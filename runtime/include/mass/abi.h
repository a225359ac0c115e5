/*===- abi.h - The interface between generated code and the runtime ------===*
 *
 * The only thing that crosses between a model's object file (written by
 * massc) and libmass_runtime.a. Plain C, read by both sides.
 *
 *===----------------------------------------------------------------------===*/
#ifndef MASS_ABI_H
#define MASS_ABI_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The model, as a NUL-terminated JSON document:
 *   {"version": 1, "model": NAME, "tasks": [{"name", "weight"}...],
 *    "train": {KEY: VALUE...},            the train block, calls as objects
 *    "entries": {"forward" | "train_step" | "update":
 *                {"args": [V...], "results": [V...]}}}
 * where each V is {"role", "name", "dtype": "f32"|"i32", "shape": [..]}
 * with -1 for the batch dimension; params and buffers also carry "init"
 * and "init_scale". Roles: input, label, param, buffer (state that training
 * updates outside the optimizer: batch norm's running statistics),
 * task_weight and seed (train_step arguments; seed is an i32 scalar that
 * dropout draws its masks from, negative for no dropout); output ("loss.T",
 * "metric.T.M.sum", "metric.T.M.count", "grad_norm"), grad and buffer (the
 * buffers' new values; results); state and hyper (update arguments);
 * pred ("pred.K", predict's results and score's last arguments) with a
 * "kind": "logits" (read by classification ops) or "value". A program
 * compiled for an NVIDIA GPU has "target": "cuda": its entry points take
 * device memory (the arena too) and launch their kernels through the
 * mgpu* functions of MLIR's gpu-to-llvm, which libmass_cuda.a defines.  */
extern const char mass_model_descriptor[];

/* Entry points. `args` holds one pointer per argument and then one per
 * result, in the descriptor's order; each points to a memref descriptor
 * (MassMemRef below, with `rank` sizes and strides). Results are written
 * into the buffers their descriptors point to.                            */
void mass_forward(void **args);
void mass_train_step(void **args);
void mass_update(void **args);
/* update over one flat slice of the trained values (see kUpdateSlice);
 * with clipping, the squares of all the gradients as update adds them
 * (absent without: weak).                                                 */
void mass_update_slice(void **args);
void mass_grad_squares(void **args) __attribute__((weak));
/* The forward graph split at its predictions (the values losses and metrics
 * judge): predict maps inputs and parameters to them; score takes forward's
 * arguments and the predictions and returns forward's outputs.            */
void mass_predict(void **args);
void mass_score(void **args);

/* The memref descriptor of MLIR's C interface for a tensor of rank R:
 * 3 + 2R words: allocated, aligned, offset, sizes[R], strides[R].         */
typedef struct MassMemRef {
  void *allocated;
  void *aligned;
  int64_t offset;
  int64_t sizes_and_strides[]; /* sizes[R] then strides[R] */
} MassMemRef;

/* Kernels the generated code calls (the runtime defines them; the names
 * are those of MLIR's C interface for a function `mass_NAME`).
 *
 * Attention over one head of one sample, `index` = sample * heads + head:
 * q [B, T, D], k and v [B, S, D], out [B, T, D], lse [B, heads, T] (the
 * log-sum-exp of each query's scaled scores); head h owns columns
 * h * D / heads to (h + 1) * D / heads. `causal` hides key positions after
 * the query's. The backward pass writes that head's columns of dq, dk and
 * dv. D / heads is at most MASS_ATTENTION_MAX_HEAD.                      */
#define MASS_ATTENTION_MAX_HEAD 256
void _mlir_ciface_mass_attention_forward(MassMemRef *q, MassMemRef *k,
                                         MassMemRef *v, MassMemRef *out,
                                         MassMemRef *lse, int64_t index,
                                         int64_t heads, int64_t causal);
void _mlir_ciface_mass_attention_backward(
    MassMemRef *q, MassMemRef *k, MassMemRef *v, MassMemRef *out,
    MassMemRef *lse, MassMemRef *dout, MassMemRef *dq, MassMemRef *dk,
    MassMemRef *dv, int64_t index, int64_t heads, int64_t causal);

/* mass.sum_ranks: x [C] summed in place over the processes of a
 * data-parallel job (under mpirun); nothing on one process. The GPU
 * target's mass_cuda_sum_ranks takes device memory.                      */
void _mlir_ciface_mass_sum_ranks(MassMemRef *x);
void _mlir_ciface_mass_cuda_sum_ranks(MassMemRef *x);

/* Layer norm's gradient over rows x [R, D] (mass.layernorm_grad): chunk
 * `chunk` of `chunks` (rows R * chunk / chunks up to the next chunk's
 * first) writes its rows of dx [R, D] and its sums over rows into
 * partial[chunk, 0, :] (dweight) and partial[chunk, 1, :] (dbias); then
 * mass_layernorm_backward_sums adds the chunks in order into dweight and
 * dbias [D].                                                            */
void _mlir_ciface_mass_layernorm_backward(MassMemRef *x, MassMemRef *mean,
                                          MassMemRef *rstd, MassMemRef *weight,
                                          MassMemRef *dy, MassMemRef *dx,
                                          MassMemRef *partial, int64_t chunk,
                                          int64_t chunks);
void _mlir_ciface_mass_layernorm_backward_sums(MassMemRef *partial,
                                               MassMemRef *dweight,
                                               MassMemRef *dbias);

/* The same kernels on the CUDA target (libmass_cuda.a): the buffers are
 * device memory, and one host call launches what the CPU target calls
 * `count` times (index = 0 .. count - 1, or chunk = 0 .. chunks - 1).    */
void _mlir_ciface_mass_cuda_attention_forward(MassMemRef *q, MassMemRef *k,
                                              MassMemRef *v, MassMemRef *out,
                                              MassMemRef *lse, int64_t count,
                                              int64_t heads, int64_t causal);
void _mlir_ciface_mass_cuda_attention_backward(
    MassMemRef *q, MassMemRef *k, MassMemRef *v, MassMemRef *out,
    MassMemRef *lse, MassMemRef *dout, MassMemRef *dq, MassMemRef *dk,
    MassMemRef *dv, int64_t count, int64_t heads, int64_t causal);
void _mlir_ciface_mass_cuda_layernorm_backward(
    MassMemRef *x, MassMemRef *mean, MassMemRef *rstd, MassMemRef *weight,
    MassMemRef *dy, MassMemRef *dx, MassMemRef *partial, int64_t chunks);
void _mlir_ciface_mass_cuda_layernorm_backward_sums(MassMemRef *partial,
                                                    MassMemRef *dweight,
                                                    MassMemRef *dbias);

#ifdef __cplusplus
}
#endif

#endif /* MASS_ABI_H */
