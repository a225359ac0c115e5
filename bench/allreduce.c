/* The all-reduce the training programs call (MPI's, on floats, summed in
 * place), timed alone at sizes from 4 bytes to 64 MiB: each size's best of
 * five rounds of repeated calls. Rank 0 prints one line per size:
 * "BYTES SECONDS_PER_CALL". bench/parallel.py builds it with mpicc and fits
 * the latency and bandwidth of its scaling model to these lines. */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  size_t most = (size_t)64 << 20;
  float *data = malloc(most);
  if (!data)
    MPI_Abort(MPI_COMM_WORLD, 1);
  for (size_t k = 0; k < most / sizeof(float); ++k)
    data[k] = 1.0f;
  for (size_t bytes = 4; bytes <= most; bytes *= 4) {
    int count = (int)(bytes / sizeof(float));
    /* About 64 MiB summed per round, at least 4 calls. */
    int calls = (int)((most / bytes) < 4 ? 4 : (most / bytes > 4096 ? 4096
                                                                 : most / bytes));
    double best = 1e30;
    for (int round = 0; round < 5; ++round) {
      MPI_Barrier(MPI_COMM_WORLD);
      double start = MPI_Wtime();
      for (int c = 0; c < calls; ++c)
        MPI_Allreduce(MPI_IN_PLACE, data, count, MPI_FLOAT, MPI_SUM,
                      MPI_COMM_WORLD);
      double t = (MPI_Wtime() - start) / calls;
      /* Every rank's time counts: the slowest decides. */
      MPI_Allreduce(MPI_IN_PLACE, &t, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
      if (t < best)
        best = t;
      /* Keep the values small: the sums double each call. */
      for (int k = 0; k < count; ++k)
        data[k] = 1.0f;
    }
    if (rank == 0)
      printf("%zu %.9f\n", bytes, best);
  }
  free(data);
  MPI_Finalize();
  return 0;
}
